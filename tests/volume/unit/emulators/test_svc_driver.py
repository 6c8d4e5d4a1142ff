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
"""Cinder's in-tree Storwize FC driver against the emulated SVC."""

from __future__ import annotations

from cinder import exception

from tests.volume.unit.emulators import svc_base
from tests.volume.unit.emulators.svc_base import CONNECTOR, GiB, POOL


class DriverSetupTestCase(svc_base.DriverTestCase):

    def test_setup_finds_system_nodes_and_npiv_ports(self) -> None:
        state = self.driver._state
        self.assertEqual(svc_base.SYSTEM, state['system_name'])
        self.assertEqual((8, 5, 0, 6), state['code_level'])
        self.assertEqual([0], state['available_iogrps'])
        self.assertFalse(state['compression_enabled'])
        self.assertEqual({'FC'}, state['enabled_protocols'])
        nodes = state['storage_nodes']
        self.assertEqual(['1', '2'], sorted(nodes))
        for node in nodes.values():
            self.assertEqual('0', node['IO_group'])
            # the physical ports and their NPIV (host I/O) ports, all in
            # the default FC portset64
            self.assertEqual(4, len(node['WWPN']))

    def test_volume_stats(self) -> None:
        self.create_volume(size=2, thick=True)
        self.create_volume(size=4)
        stats = self.driver.get_volume_stats(refresh=True)
        self.assertEqual('IBM', stats['vendor_name'])
        (pool,) = stats['pools']
        self.assertEqual(POOL, pool['pool_name'])
        self.assertEqual(64.0, pool['total_capacity_gb'])
        # thick 2 GiB + thin 2% of 4 GiB
        used = 2 * GiB + (4 * GiB * 2 // 100 + 511) // 512 * 512
        self.assertAlmostEqual((64 * GiB - used) / GiB,
                               pool['free_capacity_gb'])
        self.assertEqual(6.0, pool['provisioned_capacity_gb'])
        self.assertEqual('up', pool['backend_state'])
        self.assertTrue(pool['easytier_support'])

    def test_missing_pool_fails_setup(self) -> None:
        self.assertRaises(exception.InvalidInput, self.make_driver,
                          storwize_svc_volpool_name=['nopool'])


class DriverVolumeTestCase(svc_base.DriverTestCase):

    def test_create_thin_and_thick_then_delete(self) -> None:
        thin = self.create_volume(size=1)
        thick = self.create_volume(size=2, thick=True)
        inv = self.inv()
        self.assertTrue(inv['vdisks'][thin.name]['thin'])
        self.assertFalse(inv['vdisks'][thick.name]['thin'])
        self.assertEqual(2 * GiB, inv['vdisks'][thick.name]['capacity'])
        attrs = self.driver._helpers.get_vdisk_attributes(thin.name)
        self.assertEqual(str(GiB), attrs['capacity'])
        self.assertEqual(POOL, attrs['mdisk_grp_name'])
        self.assertEqual('0', attrs['IO_group_id'])
        self.driver.delete_volume(thin)
        self.driver.delete_volume(thick)
        self.assertArrayEmpty()

    def test_delete_missing_volume_succeeds(self) -> None:
        vol = self.new_volume()
        self.driver.delete_volume(vol)
        self.assertArrayEmpty()

    def test_extend(self) -> None:
        vol = self.create_volume(size=1)
        self.driver.extend_volume(vol, 3)
        inv = self.inv()
        self.assertEqual(3 * GiB, inv['vdisks'][vol.name]['capacity'])
        uid = inv['vdisks'][vol.name]['uid']
        self.assertEqual(3 * GiB, self.array.luns.size(uid))

    def test_pool_full(self) -> None:
        self.create_volume(size=60, thick=True)
        self.assertRaises(exception.VolumeBackendAPIException,
                          self.create_volume, size=8, thick=True)
        self.assertEqual(1, len(self.inv()['vdisks']))

    def test_delete_mapped_volume_removes_mapping(self) -> None:
        vol = self.create_volume()
        self.driver.initialize_connection(vol, CONNECTOR)
        self.driver.delete_volume(vol)
        inv = self.inv()
        self.assertEqual({}, inv['vdisks'])
        self.assertEqual([], inv['mappings'])


class DriverConnectionTestCase(svc_base.DriverTestCase):

    def test_attach_two_volumes_then_detach(self) -> None:
        v1 = self.create_volume()
        v2 = self.create_volume()
        c1 = self.driver.initialize_connection(v1, CONNECTOR)
        c2 = self.driver.initialize_connection(v2, CONNECTOR)
        self.assertEqual('fibre_channel', c1['driver_volume_type'])
        self.assertEqual(0, c1['data']['target_lun'])
        self.assertEqual(1, c2['data']['target_lun'])
        # the NPIV ports the host's ports are logged in to (lsfabric)
        targets = sorted(c1['data']['target_wwn'])
        npiv = sorted(w for n in self.driver._state['storage_nodes'].values()
                      for w in n['WWPN'] if w[-1] in '9A')
        self.assertEqual(4, len(npiv))
        self.assertEqual(npiv, targets)
        itmap = c1['data']['initiator_target_map']
        self.assertEqual(sorted(CONNECTOR['wwpns']), sorted(itmap))
        inv = self.inv()
        (host,) = inv['hosts'].values()
        self.assertEqual(sorted(w.upper() for w in CONNECTOR['wwpns']),
                         sorted(host['wwpns']))
        self.assertEqual(2, len(inv['mappings']))

        self.driver.terminate_connection(v1, CONNECTOR)
        inv = self.inv()
        self.assertEqual(1, len(inv['hosts']))
        self.assertEqual([v2.name], [m['vdisk'] for m in inv['mappings']])
        self.driver.terminate_connection(v2, CONNECTOR)
        inv = self.inv()
        self.assertEqual({}, inv['hosts'])        # driver removes idle host
        self.assertEqual([], inv['mappings'])

    def test_attach_is_idempotent_and_host_reused(self) -> None:
        v1 = self.create_volume()
        c1 = self.driver.initialize_connection(v1, CONNECTOR)
        again = self.driver.initialize_connection(v1, CONNECTOR)
        self.assertEqual(c1['data']['target_lun'],
                         again['data']['target_lun'])
        # a fresh driver (restarted service) finds the host by its WWPNs
        other = self.make_driver()
        v2 = self.create_volume()
        c2 = other.initialize_connection(v2, CONNECTOR)
        self.assertEqual(1, c2['data']['target_lun'])
        self.assertEqual(1, len(self.inv()['hosts']))

    def test_terminate_without_connector_host(self) -> None:
        v1 = self.create_volume()
        self.driver.initialize_connection(v1, CONNECTOR)
        self.driver.terminate_connection(v1, None)
        self.assertEqual([], self.inv()['mappings'])

    def test_state_survives_restart(self) -> None:
        vol = self.create_volume()
        self.driver.initialize_connection(vol, CONNECTOR)
        before = self.inv()
        self.array = self.make_array()
        self.assertEqual(before, self.inv())
        drv = self.make_driver()
        drv.terminate_connection(vol, CONNECTOR)
        drv.delete_volume(vol)
        self.assertArrayEmpty()


class DriverFlashCopyTestCase(svc_base.DriverTestCase):

    def _write(self, vol: object, data: bytes) -> str:
        uid = self.inv()['vdisks'][vol.name]['uid']
        with open(self.array.luns.open_path(uid), 'r+b') as f:
            f.write(data)
        return uid

    def test_clone_copies_in_background_then_mapping_goes(self) -> None:
        src = self.create_volume(size=1)
        src_uid = self._write(src, b'golden image')
        tgt = self.new_volume(size=1)
        self.apply(tgt, self.driver.create_cloned_volume(tgt, src))
        inv = self.inv()
        (fcm,) = inv['fcmaps'].values()
        self.assertEqual((src.name, tgt.name, 'copying', 50, True),
                         (fcm['source'], fcm['target'], fcm['status'],
                          fcm['copy_rate'], fcm['autodelete']))
        tgt_uid = inv['vdisks'][tgt.name]['uid']
        self.assertEqual(self.array.luns.sha256(src_uid, 4096),
                         self.array.luns.sha256(tgt_uid, 4096))
        # The driver's volumes are thin (rsize 2 %): the background copy
        # moves only the allocated grains of the source, here the one
        # 256 KiB grain written ("only the space that is used on the
        # source volume is copied", IBM, thin-provisioned FlashCopy):
        # 1/8 s at 2 MiB/s, not the 512 s of the whole 1 GiB.
        self.clock.advance(0.1)
        (fcm,) = self.inv()['fcmaps'].values()
        self.assertEqual(0, fcm['progress'])
        self.clock.advance(0.1)
        inv = self.inv()
        self.assertEqual({}, inv['fcmaps'])
        self.assertEqual(256 << 10, self.array.luns.counters()[
            'svc_background_copy_bytes'])
        self.driver.delete_volume(src)
        self.driver.delete_volume(tgt)
        self.assertArrayEmpty()

    def test_larger_clone_is_extended(self) -> None:
        src = self.create_volume(size=1)
        tgt = self.new_volume(size=2)
        self.apply(tgt, self.driver.create_cloned_volume(tgt, src))
        inv = self.inv()
        self.assertEqual(2 * GiB, inv['vdisks'][tgt.name]['capacity'])

    def test_delete_clone_source_waits_for_copy(self) -> None:
        self.clock.step = 10.0          # every command moves time on 10 s
        src = self.create_volume(size=1)
        tgt = self.new_volume(size=1)
        self.apply(tgt, self.driver.create_cloned_volume(tgt, src))
        self.driver.delete_volume(src)
        inv = self.inv()
        self.assertEqual([tgt.name], list(inv['vdisks']))
        self.assertEqual({}, inv['fcmaps'])

    def test_delete_clone_target_while_copying(self) -> None:
        src = self.create_volume(size=1)
        tgt = self.new_volume(size=1)
        self.apply(tgt, self.driver.create_cloned_volume(tgt, src))
        self.driver.delete_volume(tgt)
        inv = self.inv()
        self.assertEqual([src.name], list(inv['vdisks']))
        self.assertEqual({}, inv['fcmaps'])

    def test_snapshot_and_volume_from_snapshot(self) -> None:
        vol = self.create_volume(size=1)
        self._write(vol, b'before')
        snap = self.create_snapshot(vol)
        inv = self.inv()
        (fcm,) = inv['fcmaps'].values()
        self.assertEqual((vol.name, snap.name, 0, 'copying'),
                         (fcm['source'], fcm['target'], fcm['copy_rate'],
                          fcm['status']))
        self.assertTrue(inv['vdisks'][snap.name]['thin'])
        self._write(vol, b'after!')
        new = self.new_volume(size=1)
        self.apply(new, self.driver.create_volume_from_snapshot(new, snap))
        self.finish_copies()
        uid = self.inv()['vdisks'][new.name]['uid']
        with open(self.array.luns.open_path(uid), 'rb') as f:
            self.assertEqual(b'before', f.read(6))
        self.driver.delete_snapshot(snap)
        self.driver.delete_volume(vol)
        self.driver.delete_volume(new)
        self.assertArrayEmpty()

    def test_delete_volume_with_snapshot_copies_it_out(self) -> None:
        self.clock.step = 10.0
        vol = self.create_volume(size=1)
        snap = self.create_snapshot(vol)
        self.driver.delete_volume(vol)
        inv = self.inv()
        self.assertEqual([snap.name], list(inv['vdisks']))
        self.assertEqual({}, inv['fcmaps'])
        self.driver.delete_snapshot(snap)
        self.assertArrayEmpty()

    def test_extend_volume_with_snapshot(self) -> None:
        vol = self.create_volume(size=1)
        self.create_snapshot(vol)
        self.driver.extend_volume(vol, 2)
        inv = self.inv()
        self.assertEqual(2 * GiB, inv['vdisks'][vol.name]['capacity'])
