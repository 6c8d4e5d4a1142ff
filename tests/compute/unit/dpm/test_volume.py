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
"""WWPN and LUN formats, root volume and target choice (pure functions)."""

import testtools

from cinder_dpm_ephemeral.emulators.hmc import ipl
from nova_shim.virt.dpm import volume


class VolumeTest(testtools.TestCase):

    def test_normalize_wwpn(self) -> None:
        for raw in ('C05076D24D80016E', '0xc05076d24d80016e',
                    'c0:50:76:d2:4d:80:01:6e'):
            self.assertEqual('c05076d24d80016e', volume.normalize_wwpn(raw))
        for bad in ('c05076d24d8001', 'zz5076d24d80016e', ''):
            self.assertRaises(ValueError, volume.normalize_wwpn, bad)

    def test_fcp_lun(self) -> None:
        self.assertEqual('0000000000000000', volume.fcp_lun(0))
        self.assertEqual('0001000000000000', volume.fcp_lun(1))
        self.assertEqual('00ff000000000000', volume.fcp_lun('255'))
        self.assertEqual('4100000000000000', volume.fcp_lun(256))
        self.assertEqual('47ff000000000000', volume.fcp_lun(2047))
        self.assertRaises(ValueError, volume.fcp_lun, 16384)
        for lun in (0, 1, 7, 255, 256, 2047):
            self.assertEqual(lun, volume.scsi_lun(volume.fcp_lun(lun)))
            # the HMC emulator's IPL reads them back the same way
            self.assertEqual(lun, ipl.fcp_lun_to_int(volume.fcp_lun(lun)))

    def test_root_bdm_by_boot_index(self) -> None:
        bdi = {'block_device_mapping': [
            {'boot_index': -1, 'connection_info': {'serial': 'eph'}},
            {'boot_index': 0, 'connection_info': {'serial': 'root'}},
            {'boot_index': None, 'connection_info': {'serial': 'swap'}}]}
        self.assertEqual('root', volume.bdm_volume_id(volume.root_bdm(bdi)))
        self.assertEqual(['eph', 'swap'], [
            volume.bdm_volume_id(b) for b in volume.extra_bdms(bdi)])
        self.assertIsNone(volume.root_bdm({'block_device_mapping': []}))

    def test_targets_for(self) -> None:
        data = {'target_wwn': ['500507681019AB09', '500507681029AB09'],
                'initiator_target_map': {
                    'C05076D24D80016E': ['500507681029AB09',
                                         '500507681019AB09']}}
        self.assertEqual(['500507681029ab09', '500507681019ab09'],
                         volume.targets_for(data, 'c05076d24d80016e', []))
        self.assertEqual(['500507681019ab09'],
                         volume.targets_for(data, 'c05076d24d80016e',
                                            ['500507681029AB09']))
        # initiator unknown to the map: target_wwn, as a list or a string
        self.assertEqual(['500507681019ab09', '500507681029ab09'],
                         volume.targets_for(data, 'c05076d24d80016f', []))
        self.assertEqual(['500507681019ab09'], volume.targets_for(
            {'target_wwn': '500507681019AB09'}, 'c05076d24d80016f', []))

    def test_fc_data_refuses_other_types(self) -> None:
        bdm = {'connection_info': {'driver_volume_type': 'iscsi',
                                   'data': {'target_lun': 1}}}
        self.assertRaisesRegex(ValueError, 'iscsi is not supported',
                               volume.fc_data, bdm)
