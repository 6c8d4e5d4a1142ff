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
"""Walking skeleton: a real Cinder puts a Glance image on an emulated SVC LUN.

Real Cinder API -> scheduler -> volume manager, our driver (the in-tree
Storwize FC driver underneath) talking SSH to the SVC emulator with host key
verification, real os-brick (LOCAL connector in emulation) and real qemu-img.
"""

import hashlib

from cinder_dpm_ephemeral.testing import backends
from cinder_dpm_ephemeral.testing import cinder_harness
from cinder_dpm_ephemeral.testing import images

MiB = 1024 * 1024
GiB = 1024 * MiB

CONNECTOR = {
    'host': 'dpm-partition-0001',
    'initiator': None,
    'wwpns': ['c05076ffe5000010', 'c05076ffe5000011'],
    'wwnns': ['c05076ffe5000010', 'c05076ffe5000011'],
    'platform': 's390x',
    'os_type': 'linux',
    'multipath': False,
}


def _zero_padded_sha256(raw_sha_source: str, size: int) -> str:
    h = hashlib.sha256()
    with open(raw_sha_source, 'rb') as f:
        for chunk in iter(lambda: f.read(MiB), b''):
            h.update(chunk)
            size -= len(chunk)
    zero = bytes(MiB)
    while size > 0:
        n = min(MiB, size)
        h.update(zero[:n])
        size -= n
    return h.hexdigest()


class SVCImageVolumeTest(cinder_harness.CinderHarness):
    BACKEND = 'svc'

    def start_backends(self):
        self.svc = backends.SVCBackend(self.work_dir).start()
        self.addCleanup(self.svc.stop)

    def backend_options(self):
        return self.svc.backend_options(self.BACKEND)

    def default_options(self):
        return self.svc.default_options()

    def _vdisk(self, volume_id):
        inv = self.svc.emulator.inventory()
        found = [v for v in inv['vdisks']
                 if v['name'] == f'volume-{volume_id}']
        return found[0] if found else None

    def test_image_to_lun_connect_and_delete(self):
        image = images.make_image(self.work_dir, 24 * MiB, 'qcow2', seed=7)
        meta = self.add_image(image)

        vol = self.create_volume(1, image_id=meta['id'])
        vol = self.wait_for_volume(vol['id'])
        self.assertEqual('available', vol['status'], vol)
        self.assertEqual('true', vol['bootable'])

        # The LUN holds exactly the image's raw content, then zeros.
        vdisk = self._vdisk(vol['id'])
        self.assertIsNotNone(vdisk)
        uid = vdisk['vdisk_UID']
        self.assertEqual(GiB, self.svc.luns.size(uid))
        self.assertEqual(image.raw_sha256,
                         self.svc.luns.sha256(uid, image.virtual_size))
        raw = images.make_image(self.work_dir, 24 * MiB, 'raw', seed=7,
                                name='reference')
        self.assertEqual(_zero_padded_sha256(raw.path, GiB),
                         self.svc.luns.sha256(uid))

        # Nova's view: FC connection info agrees with the array's mapping.
        conn = self.initialize_connection(vol['id'], CONNECTOR)
        self.assertEqual('fibre_channel', conn['driver_volume_type'])
        data = conn['data']
        inv = self.svc.emulator.inventory()
        hosts = [h for h in inv['hosts']
                 if {p.lower() for p in h['wwpns']} ==
                 set(CONNECTOR['wwpns'])]
        self.assertEqual(1, len(hosts), inv['hosts'])
        maps = [m for m in inv['host_mappings']
                if m['host_name'] == hosts[0]['name'] and
                m['vdisk_name'] == vdisk['name']]
        self.assertEqual(1, len(maps), inv['host_mappings'])
        self.assertEqual(int(maps[0]['scsi_id']), int(data['target_lun']))
        node_wwpns = {w.lower() for n in inv['nodes'] for w in n['wwpns']}
        target_wwns = data['target_wwn']
        if isinstance(target_wwns, str):
            target_wwns = [target_wwns]
        self.assertNotEqual([], list(target_wwns))
        self.assertLessEqual({w.lower() for w in target_wwns}, node_wwpns)
        for initiator in CONNECTOR['wwpns']:
            self.assertIn(initiator, data['initiator_target_map'])

        self.terminate_connection(vol['id'], CONNECTOR)
        inv = self.svc.emulator.inventory()
        self.assertEqual([], [m for m in inv['host_mappings']
                              if m['vdisk_name'] == vdisk['name']])

        self.delete_volume(vol['id'])
        inv = self.svc.emulator.inventory()
        self.assertEqual([], inv['vdisks'])
        self.assertEqual([], inv['host_mappings'])
        self.assertEqual([], inv['fcmaps'])
        self.assertEqual({}, self.svc.luns.list())
