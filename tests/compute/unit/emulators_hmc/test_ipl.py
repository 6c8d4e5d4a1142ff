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
"""The emulated IPL against a real SVC emulator state (in-process HMC).

Each failure case changes one thing of a bootable setup, and the start
fails with the HMC's job error (500/263), a message naming it, and the
partition still stopped.
"""

from __future__ import annotations

import ddt
import testtools

from cinder_dpm_ephemeral.emulators import hmc
from tests.compute.unit.emulators_hmc import base
from tests.compute.unit.emulators_hmc.base import LUN1


class TestLunEncoding(testtools.TestCase):

    def test_fcp_lun_round_trip(self) -> None:
        for lun, fcp in ((0, '0000000000000000'), (1, LUN1),
                         (255, '00ff000000000000'),
                         (256, '4100000000000000'),
                         (2047, '47ff000000000000')):
            self.assertEqual(fcp, hmc.int_to_fcp_lun(lun))
            self.assertEqual(lun, hmc.fcp_lun_to_int(fcp))

    def test_not_single_level(self) -> None:
        # str(1) as nova-dpm sent it, zero-padded the way zhmcclient pads
        for fcp in ('1', '0000000000000001', '0001000000000001',
                    '8001000000000000', '0101000000000000', 'xyz', ''):
            self.assertIsNone(hmc.fcp_lun_to_int(fcp), fcp)


@ddt.ddt
class TestHbaIpl(base.HMCTestCase):
    """z13 route: boot HBA WWPN, boot WWPN and LUN."""

    def setUp(self) -> None:
        super().setUp()
        self.part, self.hba = self.hba_partition()
        self.wwpn = self.hba.get_property('wwpn')
        self.svc.vdisk('root', base.dos_mbr())
        self.svc.vdisk('data0')
        self.svc.host('cmp1-inst', self.wwpn)
        self.svc.map('data0', 'cmp1-inst', 0)
        self.svc.map('root', 'cmp1-inst', 1)
        self.target = self.svc.target_wwpns()[1]

    def start_fails(self, part: object | None = None) -> str:
        part = part or self.part
        msg = self.refused(500, 263, part.start)
        self.assertTrue(msg.startswith('IPL failed: '), msg)
        self.assertEqual('stopped', self.status(part))
        return msg

    def test_boot_from_mapped_lun_with_mbr(self) -> None:
        self.set_hba_boot(self.part, self.hba, self.target, LUN1)
        self.part.start()
        self.assertEqual('active', self.status(self.part))

    def test_lowercase_target_and_gpt_disk(self) -> None:
        self.svc.vdisk('gpt', base.gpt_disk())
        self.svc.map('gpt', 'cmp1-inst', 5)
        self.set_hba_boot(self.part, self.hba, self.target.lower(),
                          hmc.int_to_fcp_lun(5))
        self.part.start()
        self.assertEqual('active', self.status(self.part))

    def test_empty_volume(self) -> None:
        self.set_hba_boot(self.part, self.hba, self.target, '0' * 16)
        msg = self.start_fails()
        self.assertIn('no boot record on vdisk data0', msg)

    def test_wrong_lun_number(self) -> None:
        self.set_hba_boot(self.part, self.hba, self.target,
                          hmc.int_to_fcp_lun(2))
        msg = self.start_fails()
        self.assertIn('no LUN 2', msg)
        self.assertIn('SCSI ids [0, 1]', msg)

    @ddt.data('1', '0000000000000001')
    def test_integer_lun_encoding(self, lun: str) -> None:
        # nova-dpm's str(target_lun), or zhmcclient's zero padding of it
        self.set_hba_boot(self.part, self.hba, self.target, lun)
        msg = self.start_fails()
        self.assertIn('SCSI LUN 1 is 0001000000000000', msg)

    def test_unknown_target_wwpn(self) -> None:
        self.set_hba_boot(self.part, self.hba, '500507680B21AC8A', LUN1)
        msg = self.start_fails()
        self.assertIn('no storage controller port with WWPN '
                      '500507680B21AC8A', msg)

    def test_physical_port_without_host_io(self) -> None:
        self.set_hba_boot(self.part, self.hba, self.svc.physical_wwpns()[0],
                          LUN1)
        self.assertIn('does not permit host I/O', self.start_fails())

    def test_initiator_not_on_any_host(self) -> None:
        part, hba = self.hba_partition('other')
        self.set_hba_boot(part, hba, self.target, LUN1)
        msg = self.start_fails(part)
        self.assertIn(f'initiator WWPN {hba.get_property("wwpn")} is not a '
                      f'port of any host', msg)

    def test_mapping_removed(self) -> None:
        self.svc.cli('rmvdiskhostmap -host cmp1-inst root')
        self.set_hba_boot(self.part, self.hba, self.target, LUN1)
        self.assertIn('no LUN 1', self.start_fails())

    def test_lun_data_missing(self) -> None:
        uid = self.svc.array.state.by_name('vdisks', 'root')['uid']
        self.svc.luns.delete(uid)
        self.set_hba_boot(self.part, self.hba, self.target, LUN1)
        self.assertIn('has no data in the LUN store', self.start_fails())

    def test_no_boot_device(self) -> None:
        self.assertIn('boot-device none', self.start_fails())

    def test_boot_hba_deleted(self) -> None:
        self.set_hba_boot(self.part, self.hba, self.target, LUN1)
        self.hba.delete()
        self.assertIn('no boot-storage-device', self.start_fails())

    def test_svc_state_missing(self) -> None:
        session = hmc.faked_session(
            hmc.cpc_definition('CPC13', storage_groups=False),
            svc_state_dir=self.svc_dir + '/nowhere')
        cpc = base.zhmcclient.Client(session).cpcs.find(name='CPC13')
        p = cpc.partitions.create(dict(base.PART_PROPS, name='p'))
        h = p.hbas.create({'name': 'h', 'adapter-port-uri':
                           self.ports(cpc)[0].uri})
        self.set_hba_boot(p, h, self.target, LUN1)
        self.assertIn('svc-state.json does not exist', self.start_fails(p))


class TestStorageVolumeIpl(base.HMCTestCase):
    """z14 route: the boot volume's paths from the partition's VSRs."""

    def setUp(self) -> None:
        super().setUp()
        self.part, self.sg, self.sv = self.sg_partition()
        self.wwpns = self.vsr_wwpns(self.sg, self.part)
        self.svc.vdisk('root', base.dos_mbr())
        self.svc.host('cmp1-inst', *self.wwpns)
        self.svc.map('root', 'cmp1-inst', 3)
        self.target = self.svc.target_wwpns()[0]
        self.port = self.ports(self.z14)[0]

    def boot_from(self, target: str, lun: str) -> None:
        self.sv.indicate_fulfillment_fcp(target, lun, self.port)
        self.part.update_properties({'boot-device': 'storage-volume',
                                     'boot-storage-volume': self.sv.uri})

    def test_boot(self) -> None:
        self.boot_from(self.target, hmc.int_to_fcp_lun(3))
        self.part.start()
        self.assertEqual('active', self.status(self.part))

    def test_one_vsr_wwpn_on_the_host_is_enough(self) -> None:
        self.svc.cli(f'rmhostport -fcwwpn {self.wwpns[0]} cmp1-inst')
        self.boot_from(self.target, hmc.int_to_fcp_lun(3))
        self.part.start()

    def test_unfulfilled_volume(self) -> None:
        self.part.update_properties({'boot-device': 'storage-volume',
                                     'boot-storage-volume': self.sv.uri})
        msg = self.refused(500, 263, self.part.start)
        self.assertIn('is not fulfilled', msg)
        self.assertEqual('stopped', self.status(self.part))

    def test_wrong_lun_names_every_path(self) -> None:
        self.boot_from(self.target, LUN1)
        msg = self.refused(500, 263, self.part.start)
        for w in self.wwpns:
            self.assertIn(f'no LUN 1 (FCP LUN {LUN1}) for initiator {w}',
                          msg)
        self.assertEqual('stopped', self.status(self.part))

    def test_host_without_partition_wwpns(self) -> None:
        self.svc.cli('rmvdiskhostmap -host cmp1-inst root')
        self.svc.cli('rmhost cmp1-inst')
        self.boot_from(self.target, hmc.int_to_fcp_lun(3))
        self.assertIn('is not a port of any host',
                      self.refused(500, 263, self.part.start))


class TestValidateLunPath(base.HMCTestCase):
    """Validate LUN Path answers from the same SVC state (409 484/485)."""

    def setUp(self) -> None:
        super().setUp()
        self.part, self.sg, self.sv = self.sg_partition()
        self.wwpn = self.vsr_wwpns(self.sg, self.part)[0]
        self.svc.vdisk('root')  # empty: reachability ignores the content
        self.svc.host('cmp1-inst', self.wwpn)
        self.svc.map('root', 'cmp1-inst', 1)
        self.port = self.ports(self.z14)[0]
        self.target = self.svc.target_wwpns()[3]

    def test_reachable(self) -> None:
        self.z14.validate_lun_path(self.wwpn, self.port, self.target, LUN1)

    def test_target_not_reachable(self) -> None:
        for target in ('500507680B21AC8A', self.svc.physical_wwpns()[0]):
            self.refused(409, 484, self.z14.validate_lun_path, self.wwpn,
                         self.port, target, LUN1)

    def test_lun_not_reachable(self) -> None:
        self.refused(409, 485, self.z14.validate_lun_path, self.wwpn,
                     self.port, self.target, hmc.int_to_fcp_lun(2))
        # zhmcclient pads '1' to 0000000000000001: not the SVC's LUN 1
        self.refused(409, 485, self.z14.validate_lun_path, self.wwpn,
                     self.port, self.target, '1')
        other = self.vsr_wwpns(self.sg, self.part)[1]
        msg = self.refused(409, 485, self.z14.validate_lun_path, other,
                           self.port, self.target, LUN1)
        self.assertIn('is not a port of any host', msg)

    def test_needs_storage_management_feature(self) -> None:
        self.refused(400, 7, self.z13.validate_lun_path, self.wwpn,
                     self.ports(self.z13)[0], self.target, LUN1)
