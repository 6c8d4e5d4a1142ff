# Licensed under the Apache License, Version 2.0 (the "License"); you may
# not use this file except in compliance with the License. You may obtain
# a copy of the License at
#
#      http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS, WITHOUT
# WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied. See the
# License for the specific language governing permissions and limitations
# under the License.
"""Serve one OpenStack WSGI application in this process (threaded).

  python -m cinder_dpm_ephemeral.testing.cloud.wsgi NAME HOST:PORT \
      MODULE:ATTR ACCESS_LOG [-- ARGS...]

Devstack serves Keystone, Glance, Placement, Neutron, Nova's and Cinder's
APIs through uWSGI; each ships a WSGI module (``keystone.wsgi.api``,
``glance.wsgi.api``, ...) that reads its configuration when imported. Here
one small threaded server per service stands in for uWSGI: werkzeug's
(already installed with Keystone's Flask), which also decodes chunked
request bodies (image uploads). ARGS become ``sys.argv[1:]`` before the
module is imported (``--config-file ...``), as ``uwsgi --pyargv`` does.
Every request is written to ACCESS_LOG, one line each, so that a test can
count what a service served (Glance's image downloads, for instance).
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
import threading
import traceback
from typing import Any

from werkzeug import serving

from cinder_dpm_ephemeral.testing.cloud import sqlite_tx

LOG = logging.getLogger(__name__)


class _Handler(serving.WSGIRequestHandler):
    access_log: Any = None
    lock = threading.Lock()

    def log_request(self, code: Any = '-', size: Any = '-') -> None:
        line = '%s "%s" %s %s\n' % (self.log_date_time_string(),
                                    self.requestline, code, size)
        with self.lock:
            self.access_log.write(line)
            self.access_log.flush()

    def log(self, type: str, message: str, *args: Any) -> None:
        if type == 'error':
            sys.stderr.write('%s\n' % (message % args))


def main(argv: list[str]) -> int:
    name, listen, target, access_log, *rest = argv
    if rest and rest[0] == '--':
        rest = rest[1:]
    host, _, port = listen.rpartition(':')
    module_name, _, attr = target.partition(':')
    sys.argv = [name] + rest
    try:
        app = getattr(importlib.import_module(module_name),
                      attr or 'application')
    except BaseException:
        traceback.print_exc()
        sys.stderr.write(f'{name}: could not load {target}\n')
        sys.stderr.flush()
        # Threads the service started must not keep a broken API alive.
        os._exit(1)
    sqlite_tx.install()
    _Handler.access_log = open(access_log, 'a', buffering=1)
    _Handler.protocol_version = 'HTTP/1.1'
    server = serving.make_server(host, int(port), app, threaded=True,
                                 request_handler=_Handler)
    sys.stderr.write(f'{name}: serving {target} on http://{listen}\n')
    sys.stderr.flush()
    server.serve_forever()
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
