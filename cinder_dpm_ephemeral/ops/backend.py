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
"""A configured backend's driver, built the way cinder-volume builds it.

The ops command reads cinder.conf like ``cinder-manage`` does (Cinder's
global oslo.config object, Cinder's DB API on ``[database] connection``)
and reaches an array through the backend's own driver: the configured
``volume_driver`` with ``Configuration(volume_backend_opts,
config_group=<backend>)``, ``do_setup`` and ``check_for_setup_error``.
"""

from __future__ import annotations

import time
from typing import Any

from cinder import context as cinder_context
from cinder.db import api as db_api
from cinder.volume import configuration
from cinder.volume import driver as volume_driver
from cinder.volume.drivers.san import san
from cinder.volume import manager
from oslo_config import cfg
from oslo_log import log as logging
from oslo_utils import importutils

LOG = logging.getLogger(__name__)
CONF = cfg.CONF

SVC = 'svc'
POWERFLEX = 'powerflex'


def backends() -> list[str]:
    return list(CONF.enabled_backends or [])


def backend_conf(backend: str) -> configuration.Configuration:
    """The backend section with the driver's own options registered."""
    conf = configuration.Configuration(manager.volume_backend_opts,
                                       config_group=backend)
    if array_kind(conf):
        # What the driver's __init__ would register (san_*, the in-tree
        # driver's and the golden cache's options), without building it.
        cls = importutils.import_class(conf.volume_driver)
        conf.append_config_values(volume_driver.volume_opts)
        conf.append_config_values(san.san_opts)
        conf.append_config_values(cls.get_driver_options())
    return conf


def array_kind(conf: Any) -> str | None:
    driver = conf.safe_get('volume_driver') or ''
    if driver.startswith('cinder_dpm_ephemeral.svc.'):
        return SVC
    if driver.startswith('cinder_dpm_ephemeral.powerflex.'):
        return POWERFLEX
    return None


def host_of(backend: str) -> str:
    return '%s@%s' % (CONF.host, backend)


def build_driver(backend: str) -> Any:
    """The backend's driver after ``do_setup`` (raises what it raises)."""
    conf = backend_conf(backend)
    driver = importutils.import_object(
        conf.volume_driver, configuration=conf, host=host_of(backend),
        db=db_api)
    ctx = cinder_context.get_admin_context()
    driver.do_setup(ctx)
    driver.check_for_setup_error()
    return driver


def close_driver(driver: Any) -> None:
    """Close an SVC driver's SSH pool (its __del__ would at exit)."""
    pool = getattr(driver, 'sshpool', None)
    closed = False
    while pool is not None and pool.free_items:
        pool.free_items.popleft().close()
        pool.current_size -= 1
        closed = True
    if closed:
        # Under eventlet (the volume service, its tests) paramiko's
        # transport is a green thread still listening on the closed
        # socket: let it see the close before its descriptor is reused.
        time.sleep(0.1)
