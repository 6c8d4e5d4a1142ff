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
"""Pure rules of the boot-from-volume filter: targeting, sizes, mappings."""

import ddt
import testtools

from nova_shim.api import bfv_filter
from nova_shim.api import targeting

IMG = '155d900f-4e14-4e4c-a73d-069cbf4541e6'
GiB = 1024 ** 3


def _decide(specs, translate_all=False, hv=('PRSM',)):
    return targeting.decide(specs, translate_all=translate_all,
                            flavor_extra_spec='dpm:boot_from_volume',
                            hypervisor_types=list(hv))


@ddt.ddt
class TestTargeting(testtools.TestCase):

    @ddt.data('true', 'True', 'yes', '1', 'on')
    def test_own_extra_spec_true(self, value):
        self.assertTrue(_decide({'dpm:boot_from_volume': value}).targeted)

    @ddt.data('false', 'no', '0', 'off')
    def test_own_extra_spec_false_wins(self, value):
        specs = {'dpm:boot_from_volume': value,
                 'capabilities:hypervisor_type': 'PRSM'}
        decision = _decide(specs, translate_all=True)
        self.assertFalse(decision.targeted)
        self.assertIn('false', decision.reason)

    def test_unparsable_own_spec_is_unset(self):
        self.assertFalse(_decide({'dpm:boot_from_volume': 'maybe'}).targeted)
        self.assertTrue(_decide({'dpm:boot_from_volume': 'maybe'},
                                translate_all=True).targeted)

    @ddt.data('PRSM', 'prsm', 's== PRSM', '= PRSM', '== PRSM', '<in> PRSM',
              '<or> QEMU <or> PRSM')
    def test_hypervisor_type_match(self, value):
        decision = _decide({'capabilities:hypervisor_type': value})
        self.assertTrue(decision.targeted)
        self.assertIn('capabilities:hypervisor_type', decision.reason)

    @ddt.data('QEMU', 's!= PRSM', '<all-in> PRSM', 's== ', '<or> QEMU')
    def test_hypervisor_type_no_match(self, value):
        self.assertFalse(
            _decide({'capabilities:hypervisor_type': value}).targeted)

    def test_hypervisor_rule_disabled_by_empty_list(self):
        self.assertFalse(_decide({'capabilities:hypervisor_type': 'PRSM'},
                                 hv=()).targeted)

    def test_global_switch(self):
        self.assertFalse(_decide({}).targeted)
        decision = _decide({}, translate_all=True)
        self.assertTrue(decision.targeted)
        self.assertEqual('translate_all', decision.reason)


class TestRootSize(testtools.TestCase):

    def test_flavor_root_gb_wins(self):
        self.assertEqual(
            20, bfv_filter.root_volume_gb(20, {'min_disk': 40}, 50 * GiB))

    def test_min_disk(self):
        self.assertEqual(3, bfv_filter.root_volume_gb(0, {'min_disk': 3},
                                                      None))

    def test_virtual_size_rounded_up(self):
        self.assertEqual(
            2, bfv_filter.root_volume_gb(0, {'min_disk': 0}, GiB + 1))
        self.assertEqual(1, bfv_filter.root_volume_gb(0, {}, GiB))

    def test_larger_of_min_disk_and_virtual_size(self):
        self.assertEqual(
            5, bfv_filter.root_volume_gb(0, {'min_disk': 2}, 5 * GiB))
        self.assertEqual(
            8, bfv_filter.root_volume_gb(0, {'min_disk': 8}, 5 * GiB))

    def test_unknown_size_is_a_400(self):
        err = self.assertRaises(bfv_filter.FilterError,
                                bfv_filter.root_volume_gb, 0,
                                {'id': IMG, 'min_disk': 0}, None)
        self.assertIn(IMG, err.message)
        self.assertIn('root_gb 0', err.message)
        self.assertEqual(400, err.status.code)


class TestImageDefinesRoot(testtools.TestCase):

    def test_plain_image(self):
        self.assertFalse(bfv_filter.image_defines_root(
            {'properties': {'architecture': 's390x'}}))

    def test_volume_backed_snapshot(self):
        props = {'bdm_v2': True, 'root_device_name': '/dev/vda',
                 'block_device_mapping': [{
                     'boot_index': 0, 'source_type': 'snapshot',
                     'destination_type': 'volume', 'snapshot_id': 'snap',
                     'delete_on_termination': True}]}
        self.assertTrue(bfv_filter.image_defines_root({'properties': props}))

    def test_bdm_v2_without_root(self):
        props = {'bdm_v2': True, 'block_device_mapping': [{
            'boot_index': None, 'source_type': 'snapshot',
            'destination_type': 'volume', 'snapshot_id': 'snap'}]}
        self.assertFalse(bfv_filter.image_defines_root({'properties': props}))

    def test_legacy_mapping_of_root_device(self):
        props = {'root_device_name': '/dev/vda', 'block_device_mapping': [
            {'device_name': '/dev/vda', 'snapshot_id': 'snap',
             'delete_on_termination': True}]}
        self.assertTrue(bfv_filter.image_defines_root({'properties': props}))


class TestPlan(testtools.TestCase):

    def _plan(self, server=None, root=5, eph=0, swap=0, vtype=None):
        return bfv_filter.plan_block_devices(server or {}, IMG, root, eph,
                                             swap, vtype)

    def test_root_only(self):
        self.assertEqual([{
            'uuid': IMG, 'source_type': 'image',
            'destination_type': 'volume', 'boot_index': 0,
            'delete_on_termination': True, 'volume_size': 5}], self._plan())

    def test_volume_type_everywhere_we_create(self):
        plan = self._plan(eph=2, swap=512, vtype='dpm-svc')
        self.assertEqual(['dpm-svc'] * 3, [b['volume_type'] for b in plan])

    def test_flavor_ephemeral_and_swap(self):
        plan = self._plan(eph=10, swap=1025)
        self.assertEqual(
            [{'source_type': 'blank', 'destination_type': 'volume',
              'delete_on_termination': True, 'volume_size': 10},
             {'source_type': 'blank', 'destination_type': 'volume',
              'delete_on_termination': True, 'volume_size': 2}], plan[1:])

    def test_client_local_blanks_become_volumes(self):
        server = {'block_device_mapping_v2': [
            {'source_type': 'blank', 'destination_type': 'local',
             'guest_format': 'swap', 'boot_index': -1, 'volume_size': 1},
            {'source_type': 'blank', 'destination_type': 'local',
             'boot_index': -1, 'guest_format': 'ext4'}]}
        plan = self._plan(server, eph=4, swap=2048, vtype='t')
        self.assertEqual(3, len(plan))  # no extra flavor blanks
        swap, eph = plan[1], plan[2]
        self.assertEqual(
            {'source_type': 'blank', 'destination_type': 'volume',
             'boot_index': -1, 'volume_size': 1,
             'delete_on_termination': True, 'volume_type': 't'}, swap)
        self.assertEqual(('volume', 4, 'ext4', True),
                         (eph['destination_type'], eph['volume_size'],
                          eph['guest_format'], eph['delete_on_termination']))

    def test_local_blank_without_any_size_refused(self):
        server = {'block_device_mapping_v2': [
            {'source_type': 'blank', 'destination_type': 'local'}]}
        self.assertRaises(bfv_filter.FilterError, self._plan, server)

    def test_client_volumes_kept_and_image_root_replaced(self):
        attach = {'source_type': 'volume', 'destination_type': 'volume',
                  'uuid': 'vol-1', 'boot_index': 1}
        server = {'block_device_mapping_v2': [
            {'source_type': 'image', 'destination_type': 'local',
             'uuid': IMG, 'boot_index': '0'}, attach]}
        plan = self._plan(server, vtype='t')
        self.assertEqual(2, len(plan))
        self.assertEqual('volume', plan[0]['destination_type'])
        self.assertEqual(attach, plan[1])  # not given our volume type


class TestIsImageBoot(testtools.TestCase):

    def _ok(self, **server):
        base = {'imageRef': IMG, 'flavorRef': '1'}
        base.update(server)
        return bfv_filter.BootFromVolumeFilter._is_image_boot(base)

    def test_shapes(self):
        self.assertTrue(self._ok())
        self.assertTrue(self._ok(block_device_mapping_v2=[
            {'source_type': 'image', 'destination_type': 'local',
             'boot_index': 0, 'uuid': IMG}]))
        self.assertFalse(self._ok(imageRef=''))
        self.assertFalse(self._ok(imageRef=None))
        self.assertFalse(self._ok(flavorRef=None))
        self.assertFalse(self._ok(block_device_mapping=[{'volume_id': 'v'}]))
        self.assertFalse(self._ok(block_device_mapping_v2='junk'))
        self.assertFalse(self._ok(block_device_mapping_v2=[
            {'source_type': 'volume', 'destination_type': 'volume',
             'boot_index': 0, 'uuid': 'v'}]))
        self.assertFalse(bfv_filter.BootFromVolumeFilter._is_image_boot([]))
