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
"""More of the in-tree driver's paths on the emulated SVC: manage, revert,
group snapshots, multi-host attach, and the error codes it checks."""

from __future__ import annotations

from typing import Any

from cinder import exception
from cinder import objects
from cinder.objects import fields
from cinder.tests.unit import utils as test_utils
from cinder.volume import group_types
from cinder.volume.drivers.ibm.storwize_svc import storwize_svc_common
from cinder.volume import volume_types

from cinder_dpm_ephemeral.emulators.svc import common
from tests.volume.unit.emulators import svc_base
from tests.volume.unit.emulators.svc_base import CONNECTOR, GiB

OTHER = {'host': 'dpm-compute-2', 'wwpns': ['c05076ffe5000b01',
                                            'c05076ffe5000b02']}


class ManageTestCase(svc_base.DriverTestCase):

    def test_manage_thin_and_thick(self) -> None:
        self.ok('mkvdisk -name legacy_thin -mdiskgrp pool0 -iogrp 0 -size 3 '
                '-unit gb -rsize 2% -autoexpand')
        self.ok('mkvdisk -name legacy_thick -mdiskgrp pool0 -iogrp 0 '
                '-size 1 -unit gb')
        for source, thick, size in (('legacy_thin', False, 3),
                                    ('legacy_thick', True, 1)):
            vol = self.new_volume(size=size, thick=thick)
            ref = {'source-name': source}
            self.assertEqual(size,
                             self.driver.manage_existing_get_size(vol, ref))
            self.driver.manage_existing(vol, ref)
            self.assertIn(vol.name, self.inv()['vdisks'])
        # a thin vdisk refused by a thick type
        self.ok('mkvdisk -name legacy2 -mdiskgrp pool0 -iogrp 0 -size 1 '
                '-unit gb -rsize 2% -autoexpand')
        vol = self.new_volume(thick=True)
        self.assertRaises(exception.ManageExistingVolumeTypeMismatch,
                          self.driver.manage_existing, vol,
                          {'source-name': 'legacy2'})

    def test_manage_by_uid(self) -> None:
        self.ok('mkvdisk -name legacy -mdiskgrp pool0 -iogrp 0 -size 1 '
                '-unit gb -rsize 2% -autoexpand')
        uid = self.inv()['vdisks']['legacy']['uid']
        vol = self.new_volume()
        self.driver.manage_existing(vol, {'source-id': uid})
        self.assertEqual([vol.name], list(self.inv()['vdisks']))


class RevertAndGroupTestCase(svc_base.DriverTestCase):

    def _bytes(self, vol: Any, data: bytes | None = None) -> bytes:
        uid = self.inv()['vdisks'][vol.name]['uid']
        path = self.array.luns.open_path(uid)
        if data is not None:
            with open(path, 'r+b') as f:
                f.write(data)
        with open(path, 'rb') as f:
            return f.read(8)

    def test_revert_to_snapshot(self) -> None:
        vol = self.create_volume()
        self._bytes(vol, b'state-A!')
        snap = self.create_snapshot(vol)
        self._bytes(vol, b'state-B!')
        self.driver.revert_to_snapshot(self.ctxt, vol, snap)
        self.assertEqual(b'state-A!', self._bytes(vol))
        self.finish_copies()
        fcmaps = self.inv()['fcmaps']
        self.assertEqual([(vol.name, snap.name)],
                         [(m['source'], m['target'])
                          for m in fcmaps.values()])
        self.driver.delete_snapshot(snap)
        self.driver.delete_volume(vol)
        self.assertArrayEmpty()

    def test_group_snapshot(self) -> None:
        gtype = group_types.create(
            self.ctxt, 'cg', {'consistent_group_snapshot_enabled':
                              '<is> True'})
        group = test_utils.create_group(
            self.ctxt, host='cinder-volume@%s#%s' % (svc_base.BACKEND,
                                                     svc_base.POOL),
            group_type_id=gtype['id'],
            volume_type_ids=[self.thin_type['id']])
        self.assertEqual(fields.GroupStatus.AVAILABLE,
                         self.driver.create_group(self.ctxt,
                                                  group)['status'])
        vols = [self.create_volume(group_id=group.id) for _ in range(2)]
        gsnap = test_utils.create_group_snapshot(
            self.ctxt, group_id=group.id, group_type_id=gtype['id'])
        snaps = [test_utils.create_snapshot(
            self.ctxt, v.id, gsnap.id, gsnap.name, gsnap.id,
            fields.SnapshotStatus.CREATING) for v in vols]
        update, snap_updates = self.driver.create_group_snapshot(
            self.ctxt, gsnap, snaps)
        self.assertEqual(fields.GroupSnapshotStatus.AVAILABLE,
                         update['status'])
        inv = self.inv()
        self.assertEqual([], inv['fcconsistgrps'])   # dropped once started
        self.assertEqual(
            sorted((v.name, s.name) for v, s in zip(vols, snaps,
                                                    strict=True)),
            sorted((m['source'], m['target'])
                   for m in inv['fcmaps'].values()))
        self.assertEqual({'copying'},
                         {m['status'] for m in inv['fcmaps'].values()})
        update, _ = self.driver.delete_group_snapshot(self.ctxt, gsnap,
                                                      snaps)
        self.assertEqual(fields.GroupSnapshotStatus.DELETED,
                         update['status'])
        inv = self.inv()
        self.assertEqual(sorted(v.name for v in vols), sorted(inv['vdisks']))
        self.assertEqual({}, inv['fcmaps'])
        objects.Group.get_by_id(self.ctxt, group.id)


class ConnectionPathsTestCase(svc_base.DriverTestCase):

    def test_multihost_attach(self) -> None:
        vol = self.create_volume()
        c1 = self.driver.initialize_connection(vol, CONNECTOR)
        c2 = self.driver.initialize_connection(vol, OTHER)
        self.assertEqual(0, c1['data']['target_lun'])
        self.assertEqual(0, c2['data']['target_lun'])
        inv = self.inv()
        self.assertEqual(2, len(inv['hosts']))
        self.assertEqual(2, len(inv['mappings']))
        self.driver.terminate_connection(vol, CONNECTOR)
        self.driver.terminate_connection(vol, OTHER)
        self.assertEqual({}, self.inv()['hosts'])

    def test_multihost_disabled(self) -> None:
        drv = self.make_driver(storwize_svc_multihostmap_enabled=False)
        vol = self.create_volume()
        drv.initialize_connection(vol, CONNECTOR)
        self.assertRaises(exception.VolumeDriverException,
                          drv.initialize_connection, vol, OTHER)

    def test_scsi_id_race_is_retried(self) -> None:
        vol = self.create_volume()
        self.array.inject_fault('mkvdiskhostmap', 1, common.E_SCSI_IN_USE)
        conn = self.driver.initialize_connection(vol, CONNECTOR)
        self.assertEqual(0, conn['data']['target_lun'])
        maps = [c for c in self.array.commands if c[1] == 'mkvdiskhostmap']
        self.assertEqual(2, len(maps))

    def test_host_deleted_out_of_band(self) -> None:
        vol = self.create_volume()
        self.driver.initialize_connection(vol, CONNECTOR)
        # an administrator removes the host on the array; the driver still
        # caches WWPN -> host name
        (host,) = self.inv()['hosts']
        self.ok('rmhost -force "%s"' % host)
        conn = self.driver.initialize_connection(vol, CONNECTOR)
        self.assertEqual(0, conn['data']['target_lun'])
        inv = self.inv()
        self.assertEqual(1, len(inv['hosts']))
        self.assertEqual(1, len(inv['mappings']))

    def test_transient_array_error_surfaces(self) -> None:
        self.array.inject_fault('mkvdisk', 1, common.E_UNSTABLE)
        self.assertRaises(exception.VolumeBackendAPIException,
                          self.create_volume)
        self.assertEqual({}, self.inv()['vdisks'])
        self.create_volume()

    def test_storwize_ssh_direct(self) -> None:
        ssh = storwize_svc_common.StorwizeSSH(
            lambda cmd, check_exit_code=True, attempts=1:
            svc_base.run_ssh_on(self.array, cmd, check_exit_code))
        self.assertEqual('0', ssh.mkhost('h1', 'wwpn', 'C05076FFE5000C01'))
        ssh.addhostport('h1', 'wwpn', 'C05076FFE5000C02')
        fabric = ssh.lsfabric(host='h1')
        self.assertEqual(8, len(fabric))
        self.assertEqual(4, len(set(fabric.select('local_wwpn'))))
        vol = self.create_volume(size=2)
        ssh.mkvdiskhostmap('h1', vol.name, '3', False)
        self.assertEqual('3', ssh.get_vdiskhostmapid(vol.name, 'h1'))
        ssh.expandvdisksize(vol.name, 1)
        self.assertEqual(str(3 * GiB), ssh.lsvdisk(vol.name)['capacity'])
        ssh.rmvdiskhostmap('h1', vol.name)
        ssh.rmhost('h1')
        self.assertEqual([], list(ssh.lshost()))


class QoSTestCase(svc_base.DriverTestCase):

    def test_iops_and_mbps_throttles(self) -> None:
        iops = volume_types.create(self.ctxt, 'svc-iops', {
            'qos:IOThrottling': '500', 'qos:IOThrottling_unit': 'iops'})
        mbps = volume_types.create(self.ctxt, 'svc-mbps', {
            'qos:IOThrottling': '100', 'qos:IOThrottling_unit': 'mbps'})
        v1 = self.apply(*self._create_typed(iops['id']))
        v2 = self.apply(*self._create_typed(mbps['id']))
        throttles = self.info('lsthrottle -delim !')
        self.assertEqual(
            [(v1.name, '500', ''), (v2.name, '', '100')],
            list(throttles.select('object_name', 'IOPs_limit',
                                  'bandwidth_limit_MB')))
        detail = self.driver._helpers.get_vdisk_attributes(v1.name)
        self.assertEqual('500', detail['IOPs_limit'])

    def _create_typed(self, type_id: str) -> tuple[Any, Any]:
        vol = test_utils.create_volume(
            self.ctxt, host='cinder-volume@%s#%s' % (svc_base.BACKEND,
                                                     svc_base.POOL),
            size=1, volume_type_id=type_id, status='creating',
            testcase_instance=self)
        return vol, self.driver.create_volume(vol)
