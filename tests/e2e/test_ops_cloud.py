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
"""The operator's commands on the whole cloud, as an operator runs them.

``cinder-dpm-ephemeral`` on the cloud's cinder.conf and ``nova-dpm-doctor``
on its nova-cpu.conf (nova-compute's), each a process of its own in the
environment of the cloud's services (their root helper): doctor says OK
for every check, a tenant's non-public image is warmed ahead of its first
boot (Glance asked with Cinder's service user: the internal tenant cannot
see the image), ``cache list`` shows the golden volume, and the boot that
follows is a clone: Glance serves the image once, to the warm.
"""

from __future__ import annotations

import json
import os
import subprocess
from typing import Any

from cinder_dpm_ephemeral.testing import images
from cinder_dpm_ephemeral.testing.cloud import layout as lay
from cinder_dpm_ephemeral.testing.cloud import services as svcs
from tests.e2e import base

MiB = 1024 * 1024


class OperatorCommandsTest(base.CloudTestCase):

    def _run(self, script: str, conf: str, *args: str) -> tuple[int, Any]:
        env = svcs.service_env(self.cloud.lo)
        env['PYTHONWARNINGS'] = 'ignore'
        proc = subprocess.run(
            [lay.venv_bin(script), '--config-file', conf, '--format', 'json',
             *args], capture_output=True, text=True, timeout=300, env=env,
            cwd=str(self.cloud.lo.root))
        try:
            return proc.returncode, json.loads(proc.stdout)
        except ValueError:
            self.fail(f'{script} {" ".join(args)}: rc {proc.returncode}\n'
                      f'{proc.stdout}\n{proc.stderr[-3000:]}')

    def test_doctor_warm_and_cache_list(self) -> None:
        cinder_conf = str(self.cloud.lo.conf('cinder'))
        rc, checks = self._run('cinder-dpm-ephemeral', cinder_conf,
                               'doctor')
        self.assertEqual(0, rc, checks)
        self.assertEqual({'OK'}, {c['status'] for c in checks}, checks)
        cpu_conf = str(self.cloud.lo.conf('nova', 'nova-cpu.conf'))
        rc, checks = self._run('nova-dpm-doctor', cpu_conf)
        self.assertEqual((0, ['config', 'hmc tls', 'hmc logon', 'cpc',
                              'adapters']),
                         (rc, [c['name'] for c in checks]), checks)

        image = images.make_disk_image(self.work, 'qcow2', 'gpt', 64 * MiB,
                                       seed=31, name='ops-warm')
        image_id = self.upload(image, 'e2e-ops-warm')
        visibility = self.cloud.json('image', 'show', image_id)['visibility']
        self.assertIn(visibility, ('shared', 'private'))
        rc, [row] = self._run('cinder-dpm-ephemeral', cinder_conf, 'cache',
                              'warm', image_id, '--backend',
                              lay.SVC_BACKEND, '--pool', lay.SVC_POOL)
        self.assertEqual(0, rc)
        self.assertEqual(os.path.getsize(image.path),
                         row['downloaded_bytes'])
        rc, rows = self._run('cinder-dpm-ephemeral', cinder_conf, 'cache',
                             'list')
        [golden] = [r for r in rows if r['image'] == image_id]
        self.assertEqual((lay.SVC_BACKEND, lay.SVC_POOL, 'ready', 0),
                         (golden['backend'], golden['pool'], golden['state'],
                          golden['clones']))
        self.assertEqual(1, self.cloud.glance_downloads(image_id))

        flavor = self.dpm_flavor('dpm.e2e.ops', disk=1)
        server = self.cloud.json('server', 'create', '--image', image_id,
                                 '--flavor', flavor, '--nic', 'none',
                                 '--wait', 'e2e-ops')
        self.addCleanup(self.cloud.openstack, 'server', 'delete', '--wait',
                        server['id'], check=False)
        self.assertEqual('ACTIVE', server['status'], server)
        self.assertEqual(1, self.cloud.glance_downloads(image_id))
        rc, rows = self._run('cinder-dpm-ephemeral', cinder_conf, 'cache',
                             'list')
        self.assertEqual([1], [r['clones'] for r in rows
                               if r['image'] == image_id])
        rc, found = self._run('cinder-dpm-ephemeral', cinder_conf,
                              'reconcile')
        self.assertEqual((0, []), (rc, found))

    def test_volume_service_counts_its_golden_volumes(self) -> None:
        # A golden volume built by cinder-volume itself is told to its
        # volume manager's allocated_capacity_gb (the manager is found
        # from the driver: image_cache/accounting.py).
        image = images.make_disk_image(self.work, 'raw', 'mbr', 32 * MiB,
                                       seed=32, name='ops-capacity')
        image_id = self.upload(image, 'e2e-ops-capacity')
        vol = self.cloud.json('volume', 'create', '--image', image_id,
                              '--size', '1', 'e2e-ops-capacity')
        self.addCleanup(self.cloud.openstack, 'volume', 'delete', vol['id'],
                        check=False)
        self.wait_for('volume from image', lambda: self.cloud.json(
            'volume', 'show', vol['id'])['status'] == 'available')
        self.assertEqual(1, len(self.goldens(image_id)))
        # At the options' defaults a spare LUN of its size follows, made in
        # the background (in no call of the volume manager) and counted
        # all the same.
        cinder_conf = str(self.cloud.lo.conf('cinder'))

        def spare_made() -> bool:
            rc, rows = self._run('cinder-dpm-ephemeral', cinder_conf,
                                 'cache', 'list')
            return rc == 0 and any(r['state'] == 'spare' for r in rows)
        self.wait_for('a spare LUN after the build', spare_made)
        log = (self.cloud.lo.logs / 'cinder-volume.log').read_text(
            errors='replace')
        self.assertNotIn('No volume manager owns this driver', log)
