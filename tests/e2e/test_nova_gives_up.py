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
"""Nova gives up on a root volume still being built: nothing leaks.

nova-compute restarts with ``block_device_allocate_retries = 2`` (Nova
waits about 3 s instead of the cloud's 300). The golden volume of a new
image cannot be built while another holder has its lock (the cache's
single-flight lock, which this test takes in the cloud's own coordination
backend, as a second volume service building the same image would): the
root volume stays ``creating``/``downloading`` until the test lets go.
Nova gives up, Cinder refuses Nova's delete of a volume in that state,
and the DPM driver (``failed_spawn_cleanup``) waits for the volume, then
deletes it: the server ends ``ERROR`` with a fault naming the volume and
the fix, and neither the project, the SVC nor the HMC keeps anything.
The same when the user deletes the server while its root volume is built.
"""

from __future__ import annotations

import configparser
from typing import Any

from tooz import coordination

from cinder_dpm_ephemeral.testing import images
from cinder_dpm_ephemeral.testing.cloud import cloud as cloud_mod
from cinder_dpm_ephemeral.testing.cloud import layout as lay
from tests.e2e import base

MiB = images.MiB
PARTITION = 'OpenStack-%s-%%s' % lay.COMPUTE_HOST
GAVE_UP = 'Nova stopped waiting for volume'
COMPUTE_OVERRIDES = {
    'DEFAULT': {'block_device_allocate_retries': 2,
                'block_device_allocate_retries_interval': 1},
    'dpm': {'volume_settle_timeout': 180},
}


class GoldenLock:
    """The golden cache's lock of an image, held by this test."""

    def __init__(self, lo: lay.Layout, image_id: str) -> None:
        parser = configparser.ConfigParser(interpolation=None)
        parser.read(lo.conf('cinder'))
        url = parser.get('coordination', 'backend_url')
        self.coordinator = coordination.get_coordinator(
            url, b'e2e-nova-gives-up')
        self.coordinator.start()
        # cinder.coordination's prefix + image_cache.cache's lock name
        self.lock = self.coordinator.get_lock(
            f'cinder-dpm-golden-{image_id}-{lay.SVC_POOL}'.encode())
        self.held = False

    def __enter__(self) -> GoldenLock:
        self.held = self.lock.acquire(blocking=True)
        return self

    def release(self) -> None:
        if self.held:
            self.lock.release()
            self.held = False

    def __exit__(self, *exc: Any) -> None:
        self.release()
        self.coordinator.stop()


class NovaGivesUpTest(base.CloudTestCase):

    @classmethod
    def setUpClass(cls) -> None:
        super().setUpClass()
        cls.restarted = False

    def setUp(self) -> None:
        super().setUp()
        if not type(self).restarted:
            lo = self.cloud.lo
            cloud_mod.restart_compute(lo, COMPUTE_OVERRIDES)
            type(self).restarted = True

    @classmethod
    def tearDownClass(cls) -> None:
        # the cloud's own nova-compute again for the classes that follow
        if cls.restarted:
            cloud_mod.restart_compute(base.get_cloud().lo)
            cls.restarted = False
        super().tearDownClass()

    # -- helpers ------------------------------------------------------------
    def _new_image(self, seed: int) -> str:
        image = images.make_disk_image(self.work, 'qcow2', 'gpt', 64 * MiB,
                                       seed=seed, name=f'slow-{seed}')
        return self.upload(image, f'e2e-slow-{seed}')

    def _log_since(self, offset: int) -> str:
        with open(self.cloud.lo.logs / 'nova-compute.log', 'rb') as f:
            f.seek(offset)
            return f.read().decode(errors='replace')

    def _log_size(self) -> int:
        return (self.cloud.lo.logs / 'nova-compute.log').stat().st_size

    def _root_volumes(self) -> list[dict[str, Any]]:
        """The demo project's volumes (the root volume being built)."""
        return self.cloud.json('volume', 'list', '--long')

    def _start_boot(self, image_id: str, flavor: str, name: str
                    ) -> tuple[str, str]:
        """Server create; (server id, root volume id) once Nova gave up.

        Returns when the DPM driver waits for the volume Nova gave up on.
        """
        offset = self._log_size()
        sid = self.cloud.json('server', 'create', '--image', image_id,
                              '--flavor', flavor, '--nic', 'none',
                              name)['id']
        self.addCleanup(self.cloud.openstack, 'server', 'delete', '--wait',
                        sid, check=False)
        self.wait_for('Nova giving up on the root volume',
                      lambda: f'Instance {sid}: {GAVE_UP}' in
                      self._log_since(offset), timeout=120, interval=1)
        [vol] = self._root_volumes()
        self.assertIn(vol['Status'], ('creating', 'downloading'))
        self.assertIn(vol['ID'], self._log_since(offset))
        # the server waits meanwhile
        self.assertEqual('BUILD', self.cloud.json('server', 'show',
                                                  sid)['status'])
        return sid, vol['ID']

    def _nothing_left(self, sid: str, volume_id: str) -> None:
        self.wait_for('root volume deleted', lambda: volume_id not in {
            v['ID'] for v in self.cloud.json('volume', 'list',
                                             '--all-projects', admin=True)},
            timeout=120)
        self.assertEqual([], self._root_volumes())
        self.assertNotIn(f'volume-{volume_id}',
                         {v['name'] for v in self.cloud.svc('lsvdisk')})
        self.assertFalse([m for m in self.cloud.svc('lshostvdiskmap')
                          if sid in m['name']])
        self.assertFalse([h for h in self.cloud.svc('lshost')
                          if sid in h['name']])
        self.assertNotIn(PARTITION % sid, self.cloud.partitions())
        self.assertFalse([g for g in self.cloud.storage_groups()
                          if sid in g])

    # -- tests --------------------------------------------------------------
    def test_server_error_says_why_and_volume_deleted(self) -> None:
        image_id = self._new_image(seed=41)
        flavor = self.dpm_flavor('dpm.e2e.slow', disk=1)
        with GoldenLock(self.cloud.lo, image_id) as lock:
            sid, volume_id = self._start_boot(image_id, flavor, 'e2e-slow')
            lock.release()  # the golden volume gets built now

            def failed() -> dict[str, Any] | None:
                shown = self.cloud.json('server', 'show', sid)
                return shown if shown['status'] == 'ERROR' else None
            shown = self.wait_for('server in ERROR', failed, timeout=180)
        fault = shown['fault']['message']
        for words in (volume_id, 'Nova gave up', 'deleted',
                      'block_device_allocate_retries',
                      'cinder-dpm-ephemeral cache warm'):
            self.assertIn(words, fault)
        self._nothing_left(sid, volume_id)
        # the golden volume (the internal tenant's) stays for the next boot
        self.assertEqual(1, len(self.goldens(image_id)))
        self.delete_server(sid)

    def test_server_deleted_while_root_volume_built(self) -> None:
        image_id = self._new_image(seed=42)
        flavor = self.dpm_flavor('dpm.e2e.slow.delete', disk=1)
        with GoldenLock(self.cloud.lo, image_id) as lock:
            sid, volume_id = self._start_boot(image_id, flavor,
                                              'e2e-slow-delete')
            self.cloud.openstack('server', 'delete', sid)
            lock.release()
            self.wait_for('server gone', lambda: sid not in {
                s['ID'] for s in self.cloud.json('server', 'list')},
                timeout=180)
        self._nothing_left(sid, volume_id)
