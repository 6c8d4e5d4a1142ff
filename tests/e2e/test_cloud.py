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
"""A user boots DPM servers from images on the whole cloud.

Every step is an ``openstack`` command as the ``dpm-demo`` user (flavors as
``dpm-demo-admin``); what the user should see is checked against
doc/nova-filter.md and doc/image-cache.md, and what must (not) remain
underneath on the emulated SVC (CLI over SSH) and HMC (Web Services API).
"""

from __future__ import annotations

import time
from typing import Any

from testtools import content

from cinder_dpm_ephemeral.testing import images
from cinder_dpm_ephemeral.testing.cloud import layout as lay
from tests.e2e import base

MiB = images.MiB
PARTITION = 'OpenStack-%s-%%s' % lay.COMPUTE_HOST


class BootFromImageTest(base.CloudTestCase):

    def _svc_names(self) -> set[str]:
        return {v['name'] for v in self.cloud.svc('lsvdisk')}

    @staticmethod
    def _svc_host(name: str, server_id: str) -> bool:
        """Whether the SVC host ``name`` is the server's partition's.

        The DPM driver's volume connector names it by the instance uuid;
        Cinder's Storwize driver makes the SVC host name of that ('_'
        first, as it must start with a letter or '_', and a random
        suffix).
        """
        return name.startswith((server_id, '_' + server_id))

    def _mappings(self, server_id: str) -> list[dict[str, str]]:
        return [m for m in self.cloud.svc('lshostvdiskmap')
                if self._svc_host(m['name'], server_id)]

    def _wait_gone(self, volume_ids: list[str]) -> None:
        def gone() -> bool:
            listed = {v['ID'] for v in self.cloud.json(
                'volume', 'list', '--all-projects', admin=True)}
            return not listed & set(volume_ids)
        self.wait_for('volumes deleted with the server', gone, timeout=90)

    def test_boot_show_and_delete(self) -> None:
        image = images.make_disk_image(self.work, 'qcow2', 'gpt', 256 * MiB,
                                       seed=1, name='rhel-like')
        image_id = self.upload(image, 'e2e-gpt-qcow2')
        flavor = self.dpm_flavor('dpm.e2e.boot', disk=1, ephemeral=1,
                                 swap=512)
        server = self.cloud.json('server', 'create', '--image', image_id,
                                 '--flavor', flavor, '--nic', 'none',
                                 '--wait', 'e2e-boot')
        sid = server['id']
        self.addCleanup(self.cloud.openstack, 'server', 'delete', '--wait',
                        sid, check=False)
        self.assertEqual('ACTIVE', server['status'])

        # What the user sees (doc/nova-filter.md): a volume-backed server
        # with its root, ephemeral and swap volumes.
        shown = self.cloud.json('server', 'show', sid)
        self.assertEqual('N/A (booted from volume)', shown['image'])
        attached = [v['id'] for v in shown['volumes_attached']]
        self.assertEqual(3, len(attached))
        volumes = {v['ID']: v for v in self.cloud.json('volume', 'list')}
        self.assertEqual(set(attached), set(volumes))
        for v in volumes.values():
            self.assertEqual('in-use', v['Status'])
            self.assertEqual([sid], [a['server_id']
                                     for a in v['Attached to']])
        roots = [v for v in (self.cloud.json('volume', 'show', i)
                             for i in attached)
                 if v.get('volume_image_metadata', {}).get('image_id')
                 == image_id]
        self.assertEqual(1, len(roots))
        self.assertEqual('true', str(roots[0]['bootable']).lower())
        self.assertEqual(lay.DPM_VOLUME_TYPE, roots[0]['type'])

        # The partition IPLed from the root LUN (the HMC emulator's IPL
        # reads the partition's boot LUN from the SVC emulator's state).
        self.assertEqual('active', self.cloud.partitions()[PARTITION % sid])
        maps = self._mappings(sid)
        self.assertEqual({f'volume-{i}' for i in attached},
                         {m['vdisk_name'] for m in maps})

        self.delete_server(sid)
        # Neutron answered what Nova asks of it for a server without
        # networks: its security groups, and its ports to clean up.
        self.assertGreater(self.cloud.served(
            'neutron-api', 'GET /v2.0/ports?fields=security_groups&'
            f'fields=device_id&device_id={sid} '), 0)
        self.assertGreater(self.cloud.served(
            'neutron-api', f'GET /v2.0/ports?device_id={sid} '), 0)
        self._wait_gone(attached)
        names = self._svc_names()
        self.assertFalse({f'volume-{i}' for i in attached} & names)
        self.assertEqual([], self._mappings(sid))
        self.assertFalse([h for h in self.cloud.svc('lshost')
                          if self._svc_host(h['name'], sid)])
        self.assertNotIn(PARTITION % sid, self.cloud.partitions())
        self.assertFalse([g for g in self.cloud.storage_groups()
                          if sid in g])
        # The golden volume stays cached for the next boot.
        goldens = self.goldens(image_id)
        self.assertEqual(1, len(goldens))
        self.assertIn(f'volume-{goldens[0]["ID"]}', names)

    def test_storm_of_ten_one_download(self) -> None:
        image = images.make_disk_image(self.work, 'raw', 'mbr', 128 * MiB,
                                       seed=2, name='storm')
        image_id = self.upload(image, 'e2e-storm')
        flavor = self.dpm_flavor('dpm.e2e.storm', disk=1)
        self.cloud.openstack('server', 'create', '--image', image_id,
                             '--flavor', flavor, '--nic', 'none',
                             '--min', '10', '--max', '10', 'e2e-storm')

        def settled() -> list[dict[str, Any]] | None:
            servers = self.cloud.json('server', 'list', '--name',
                                      '^e2e-storm')
            if len(servers) == 10 and all(
                    s['Status'] in ('ACTIVE', 'ERROR') for s in servers):
                return servers
            return None
        servers = self.wait_for('10 servers built', settled, timeout=420,
                                interval=5)
        try:
            self.assertEqual(['ACTIVE'] * 10, [s['Status'] for s in servers])
            self.assertEqual(1, self.cloud.glance_downloads(image_id))
            self.assertEqual(1, len(self.goldens(image_id)))
            parts = self.cloud.partitions()
            for s in servers:
                self.assertEqual('active', parts[PARTITION % s['ID']])
        finally:
            self.cloud.openstack('server', 'delete', '--wait',
                                 *[s['ID'] for s in servers], timeout=600)

    def test_image_larger_than_flavor_disk(self) -> None:
        image = images.make_disk_image(self.work, 'qcow2', 'gpt', 1536 * MiB,
                                       seed=3, name='big')
        image_id = self.upload(image, 'e2e-too-big')
        flavor = self.dpm_flavor('dpm.e2e.tiny', disk=1)
        vdisks_before = self._svc_names()
        volumes_before = {v['ID'] for v in self.cloud.json('volume', 'list')}
        proc = self.cloud.openstack('server', 'create', '--image', image_id,
                                    '--flavor', flavor, '--nic', 'none',
                                    '--wait', 'e2e-too-big', check=False)
        self.assertNotEqual(0, proc.returncode, proc.stdout)
        shown = self.cloud.json('server', 'show', 'e2e-too-big')
        self.addCleanup(self.cloud.openstack, 'server', 'delete', '--wait',
                        shown['id'], check=False)
        self.assertEqual('ERROR', shown['status'])
        fault = shown['fault']['message']
        # Cinder's API refuses the root volume and says why; Nova passes
        # its words on (1.5 GiB rounds up to 2 GB).
        self.assertIn('Image virtual size is 2GB and doesn\'t fit in a '
                      'volume of size 1GB', fault)
        self.delete_server(shown['id'])
        self.assertEqual(volumes_before, {
            v['ID'] for v in self.cloud.json('volume', 'list')})
        self.assertEqual(vdisks_before - self._svc_names(), set())
        self.assertEqual(set(), self._svc_names() - vdisks_before)
        self.assertNotIn(PARTITION % shown['id'], self.cloud.partitions())
        self.assertEqual([], self.goldens(image_id))

    def test_non_dpm_flavor_untouched(self) -> None:
        image = images.make_disk_image(self.work, 'raw', 'gpt', 64 * MiB,
                                       seed=4, name='plain')
        image_id = self.upload(image, 'e2e-plain')
        flavor = self.cloud.json('flavor', 'create', '--ram', '512',
                                 '--vcpus', '1', '--disk', '1',
                                 'm1.e2e.plain', admin=True)['id']
        self.cloud.openstack('server', 'create', '--image', image_id,
                             '--flavor', flavor, '--nic', 'none', '--wait',
                             'e2e-plain', check=False)
        shown = self.cloud.json('server', 'show', 'e2e-plain')
        self.addCleanup(self.cloud.openstack, 'server', 'delete', '--wait',
                        shown['id'], check=False)
        try:
            # Not translated: an image boot with a local root disk, which
            # the DPM host (no DISK_GB) cannot take; no volume was made.
            self.assertIn(image_id, str(shown['image']))
            self.assertEqual([], shown['volumes_attached'])
            self.assertFalse([v for v in self.cloud.json('volume', 'list')
                              if shown['id'] in v['Name']])
            self.assertEqual([], self.goldens(image_id))
            log = (self.cloud.lo.logs / 'nova-api.log').read_text()
            self.assertNotIn(f'with flavor {flavor} translated', log)
        finally:
            self.delete_server(shown['id'])

    def test_nova_compute_reaches_the_database_through_the_conductor(
            self) -> None:
        # Nova's cells v2 layout: nova-compute has no database connection
        # of its own (config.nova_cpu). With the API database's connection,
        # each start of it logged "No DB access allowed in nova-compute" as
        # an ERROR (Nova's start-up check asked every cell for the minimum
        # service version itself).
        log = (self.cloud.lo.logs / 'nova-compute.log').read_text(
            errors='replace')
        self.assertIn('Starting compute node', log)
        self.assertNotIn('No DB access allowed', log)
        self.assertNotIn('Failed to get minimum service version', log)

    def test_golden_removed_after_image_deleted(self) -> None:
        image = images.make_disk_image(self.work, 'raw', 'gpt', 64 * MiB,
                                       seed=5, name='gone')
        image_id = self.upload(image, 'e2e-gone')
        vol = self.cloud.json('volume', 'create', '--image', image_id,
                              '--size', '1', '--type', lay.DPM_VOLUME_TYPE,
                              'e2e-from-image')
        self.wait_for('volume from image', lambda: self.cloud.json(
            'volume', 'show', vol['id'])['status'] == 'available')
        goldens = self.goldens(image_id)
        self.assertEqual(1, len(goldens))
        golden_vdisk = f'volume-{goldens[0]["ID"]}'
        self.assertIn(golden_vdisk, self._svc_names())
        self.cloud.openstack('volume', 'delete', vol['id'])
        self._wait_gone([vol['id']])
        self.cloud.openstack('image', 'delete', image_id)
        start = time.monotonic()
        # The periodic clean-up asks Glance with Cinder's own credentials
        # (Keystone tokens): the image is gone, so is its golden volume.
        self.wait_for('golden volume of a deleted image removed',
                      lambda: not self.goldens(image_id), timeout=150,
                      interval=5)
        self.assertNotIn(golden_vdisk, self._svc_names())
        self.addDetail('cleanup_seconds', content.text_content(
            '%.0f' % (time.monotonic() - start)))

    def test_powerflex_backend_serves_its_volume_type(self) -> None:
        # The second backend, for what is not a DPM boot: a volume of type
        # 'powerflex' from an image lands on the emulated PowerFlex, its
        # golden volume too.
        image = images.make_disk_image(self.work, 'qcow2', 'gpt', 64 * MiB,
                                       seed=6, name='pflex')
        image_id = self.upload(image, 'e2e-powerflex')
        vol = self.cloud.json('volume', 'create', '--image', image_id,
                              '--size', '1', '--type',
                              lay.POWERFLEX_VOLUME_TYPE, 'e2e-powerflex')
        self.addCleanup(self.cloud.openstack, 'volume', 'delete', vol['id'],
                        check=False)
        self.wait_for('PowerFlex volume from image', lambda: self.cloud.json(
            'volume', 'show', vol['id'])['status'] == 'available')
        shown = self.cloud.json('volume', 'show', vol['id'], admin=True)
        self.assertIn(f'@{lay.POWERFLEX_BACKEND}#',
                      shown['os-vol-host-attr:host'])
        goldens = self.goldens(image_id)
        self.assertEqual(1, len(goldens))
        golden = self.cloud.json('volume', 'show', goldens[0]['ID'],
                                 admin=True)
        self.assertIn(f'@{lay.POWERFLEX_BACKEND}#',
                      golden['os-vol-host-attr:host'])
        self.assertEqual(1, self.cloud.glance_downloads(image_id))
