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
"""Real Cinder (API -> scheduler -> volume manager) in one process.

Built on Cinder's own functional test base, which ships in the wheel: sqlite
in memory, oslo.messaging ``fake:/``. On top of it this harness:

* configures the backend the way an operator does, through a real
  ``cinder.conf`` with ``enabled_backends`` and a backend section (written to
  the test's temp dir and parsed by oslo.config), so drivers see exactly the
  options they would in production;
* keeps tooz coordination real (file locks): Cinder's per-image locks and our
  single-flight claims are only meaningful with real locks;
* serves images from :mod:`cinder_dpm_ephemeral.testing.glance` (real bytes,
  streamed, counted);
* fixes the traps of running Cinder's services in one process (scheduler
  start-up wait, service heartbeat row sharing, privsep as root, quotas);
* delivers RPC casts when they are sent, as a broker does, not at the fake
  driver's next 50 ms poll (:mod:`~cinder_dpm_ephemeral.testing.rpc_doorbell`).

Subclasses set :attr:`BACKEND` and return the backend section's options from
:meth:`backend_options`; :meth:`start_backends` runs before Cinder starts
(start the array emulators there).
"""

from __future__ import annotations

import configparser
import os
import shutil
import sys
import tempfile
import time
from typing import Any

from cinder import context as cinder_context
from cinder.db import api as db_api
from cinder.db import models as db_models
from cinder.tests.functional import functional_helpers
from cinder.tests.functional.api import client as api_client
from oslo_config import cfg

from cinder_dpm_ephemeral.testing import glance
from cinder_dpm_ephemeral.testing import rpc_doorbell

CONF = cfg.CONF


class CinderHarness(functional_helpers._FunctionalTestBase):
    """Base class: one real Cinder with one configured backend."""

    MOCK_TOOZ = False
    BACKEND = 'backend1'
    _osapi_version = '3.44'   # os-set_bootable, attachments
    #: seconds between API polls while waiting (each poll is a real API
    #: request served in this process, so it costs the volume service CPU)
    poll_interval = 0.05

    # -- hooks for subclasses -------------------------------------------------
    def start_backends(self) -> None:
        """Start whatever the backend talks to (before Cinder starts)."""

    def backend_options(self) -> dict[str, Any]:
        """Options of the ``[BACKEND]`` section of cinder.conf."""
        raise NotImplementedError

    def default_options(self) -> dict[str, Any]:
        """Extra ``[DEFAULT]`` options."""
        return {}

    # -- set-up ---------------------------------------------------------------
    def setUp(self) -> None:
        self.work_dir = tempfile.mkdtemp(prefix='dpm-eph-')
        self.addCleanup(shutil.rmtree, self.work_dir, ignore_errors=True)
        self._disable_privsep_daemons()
        self.images = glance.ImageStore(os.path.join(self.work_dir, 'glance'))
        glance.install(self, self.images)
        self.start_backends()
        rpc_doorbell.install()
        super().setUp()
        self.addCleanup(self._close_driver_connections)
        self.addCleanup(self._wait_for_background_work)
        self.api.update_project(self.api.project_id)
        # The default quota class in the database (10 volumes) wins over
        # the quota_* options: lift it for this project, as an admin would.
        self.api.api_put(
            f'/os-quota-sets/{self.api.project_id}',
            {'quota_set': {'volumes': -1, 'gigabytes': -1, 'snapshots': -1,
                           'per_volume_gigabytes': -1}})

    def _wait_for_background_work(self) -> None:
        # A spare LUN still being made after the test's last build
        # (spares.replenish_soon) would go on after this test, against
        # its stopped array and into the next test's database.
        from cinder_dpm_ephemeral.image_cache import spares
        cache = getattr(self.driver, 'image_cache', None)
        if cache is not None:
            spares.wait_made(cache)

    def _close_driver_connections(self) -> None:
        # Close the driver's SSH pool while the array still answers, so its
        # __del__ has nothing left to do at interpreter exit.
        pool = getattr(self.driver, 'sshpool', None)
        if pool is None:
            return
        while pool.free_items:
            pool.free_items.popleft().close()
            pool.current_size -= 1

    @staticmethod
    def _disable_privsep_daemons() -> None:
        # We may run as root with no sudo: run privileged entry points
        # in-process instead of through a privsep helper.
        import os_brick.privileged

        import cinder.privsep
        os_brick.privileged.default.set_client_mode(False)
        cinder.privsep.sys_admin_pctxt.set_client_mode(False)

    def _write_cinder_conf(self) -> str:
        conf = configparser.ConfigParser(interpolation=None)
        conf.optionxform = str  # type: ignore[assignment,method-assign]
        defaults = {
            'enabled_backends': self.BACKEND,
            'scheduler_driver_init_wait_time': 1,
            'service_down_time': 86400,
            'image_conversion_dir': os.path.join(self.work_dir, 'conversion'),
            'quota_volumes': -1,
            'quota_snapshots': -1,
            'quota_gigabytes': -1,
            'quota_backups': -1,
            'state_path': os.path.join(self.work_dir, 'state'),
        }
        defaults.update(self.default_options())
        conf['DEFAULT'] = {k: _ini(v) for k, v in defaults.items()}
        conf[self.BACKEND] = {k: _ini(v)
                              for k, v in self.backend_options().items()}
        os.makedirs(defaults['state_path'], exist_ok=True)
        path = os.path.join(self.work_dir, 'cinder.conf')
        with open(path, 'w') as f:
            conf.write(f)
        self.cinder_conf_path = path
        return path

    def _get_flags(self) -> dict[str, Any]:
        # Called by the base class after Cinder's TestCase parsed an empty
        # configuration and before any service starts: parse ours instead.
        CONF([], project='cinder',
             default_config_files=[self._write_cinder_conf()])
        return super()._get_flags()

    def _start_api_service(self) -> None:
        # The wheel installs api-paste.ini under <prefix>/etc/cinder, while
        # the base class looks beside the source tree.
        from cinder import service
        CONF.api_paste_config = self.api_paste_config()
        self.osapi = service.WSGIService('osapi_volume')
        self.osapi.start()
        self.auth_url = (f'http://{self.osapi.host}:{self.osapi.port}/v'
                         f'{self.osapi_version_major}')

    def api_paste_config(self) -> str:
        """The API's paste pipeline (the wheel's; tests may add filters)."""
        return os.path.join(sys.prefix, 'etc', 'cinder', 'api-paste.ini')

    def start_service(self, name: str, host: str | None = None,
                      **kwargs: Any) -> Any:
        if name == 'volume' and host is None:
            # One volume service per enabled backend, named like
            # cinder-volume names them: host@backend. The host is this
            # test's own: a green thread an earlier test left running in
            # this process (a stats update still retrying against an
            # array that test stopped) publishes its stats under a host
            # this test's scheduler does not know, instead of overwriting
            # the pools of this test's backend.
            tag = os.path.basename(self.work_dir).rsplit('-', 1)[-1]
            host = f'harness-{tag}@{self.BACKEND}'
            kwargs.setdefault('service_name', self.BACKEND)
        return super().start_service(name, host=host, **kwargs)

    # -- helpers for tests ----------------------------------------------------
    @property
    def volume_manager(self) -> Any:
        return self.volume.manager

    @property
    def driver(self) -> Any:
        return self.volume.manager.driver

    def add_image(self, image: Any, **kwargs: Any) -> dict[str, Any]:
        return self.images.add(image.path, image.disk_format, **kwargs)

    def create_volume(self, size_gb: int, image_id: str | None = None,
                      name: str | None = None, **extra: Any) -> dict:
        body: dict[str, Any] = {'size': size_gb}
        if image_id:
            body['imageRef'] = image_id
        if name:
            body['name'] = name
        body.update(extra)
        return self.api.post_volume({'volume': body})

    def wait_for_volume(self, volume_id: str, statuses: tuple[str, ...] = (
            'available', 'error'), timeout: float = 120.0) -> dict | None:
        """Poll until the volume reaches one of ``statuses`` (or is gone)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                vol = self.api.get_volume(volume_id)
            except api_client.OpenStackApiException404:
                return None
            if vol['status'] in statuses:
                return vol
            if time.monotonic() > deadline:
                self.fail(f'volume {volume_id} still {vol["status"]} after '
                          f'{timeout}s (waiting for {statuses})')
            time.sleep(self.poll_interval)

    def wait_for_deleted(self, volume_id: str, timeout: float = 120.0) -> None:
        vol = self.wait_for_volume(volume_id, ('error_deleting',), timeout)
        if vol is not None:
            self.fail(f'volume {volume_id} failed to delete: {vol}')

    def delete_volume(self, volume_id: str) -> None:
        """Delete through the API; return once Cinder's books are settled.

        The volume manager destroys the row *before* it commits the
        quota reservation it took for the delete, so "gone from the API"
        alone leaves a window in which the project's usage still counts
        the volume.
        """
        ctx = cinder_context.get_admin_context()
        project_id = db_api.volume_get(ctx, volume_id).project_id
        self.api.delete_volume(volume_id)
        self.wait_for_deleted(volume_id)
        self.wait_for_reservations(project_id)

    def wait_for_reservations(self, project_id: str,
                              timeout: float = 60.0) -> None:
        """Poll until ``project_id`` has no outstanding quota reservation."""
        ctx = cinder_context.get_admin_context()
        deadline = time.monotonic() + timeout
        while True:
            with db_api.main_context_manager.reader.using(ctx):
                pending = (db_api.model_query(ctx, db_models.Reservation,
                                              read_deleted='no')
                           .filter_by(project_id=project_id).count())
            if not pending:
                return
            if time.monotonic() > deadline:
                self.fail(f'project {project_id} still has {pending} quota '
                          f'reservation(s) outstanding after {timeout}s')
            time.sleep(self.poll_interval)

    def initialize_connection(self, volume_id: str,
                              connector: dict[str, Any]) -> dict[str, Any]:
        """os-initialize_connection, as Nova's old attach flow calls it."""
        return self.api.api_post(
            f'/volumes/{volume_id}/action',
            {'os-initialize_connection': {'connector': connector}}
        )['connection_info']

    def terminate_connection(self, volume_id: str,
                             connector: dict[str, Any]) -> None:
        self.api.api_post(
            f'/volumes/{volume_id}/action',
            {'os-terminate_connection': {'connector': connector}})


def _ini(value: Any) -> str:
    if isinstance(value, bool):
        return 'True' if value else 'False'
    if isinstance(value, (list, tuple)):
        return ','.join(str(v) for v in value)
    return str(value)
