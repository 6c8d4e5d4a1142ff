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
"""Volume lifecycle through Cinder's in-tree PowerFlex driver."""

from __future__ import annotations

import ddt

from cinder.tests.unit import utils as test_utils
from cinder import exception
from cinder.tests.unit import fake_volume
from cinder.volume.drivers.dell_emc.powerflex import utils as flex_utils

from cinder_dpm_ephemeral.emulators.powerflex import errors
from tests.volume.unit.emulators_powerflex import base

GiB = base.GiB
KIB_GIB = base.KiB_PER_GiB


class SetupTest(base.PowerFlexEmulatorTestCase):

    def test_setup_logs_in_over_verified_tls_and_finds_the_pool(self) -> None:
        client = self.driver.primary_client
        self.assertEqual(self.gw.cert_path, client.certificate_path)
        self.assertTrue(client.verify_certificate)
        self.assertEqual('3.6', client.query_rest_api_version())
        (pool,) = self.inventory()['pools']
        self.assertEqual(pool['id'],
                         client.get_storage_pool_id(base.DOMAIN, base.POOL))
        self.assertEqual('Mirroring', client.powerflex_gen_type)
        self.assertGreaterEqual(self.gw.api.calls['login'], 1)

    def test_wrong_password_fails_setup(self) -> None:
        self.assertRaises(exception.VolumeBackendAPIException,
                          self.make_driver, san_password='wrong')

    def test_unknown_pool_fails_setup(self) -> None:
        self.assertRaises(exception.InvalidInput, self.make_driver,
                          powerflex_storage_pools=f'{base.DOMAIN}:nopool')


class CreateVolumeTest(base.PowerFlexEmulatorTestCase):

    def test_thin_1gib_becomes_8gib_with_its_lun(self) -> None:
        vol = self.create_volume(size=1)
        self.assertEqual(8, vol.size)
        av = self.array_volume(vol.provider_id)
        self.assertEqual('ThinProvisioned', av['type'])
        self.assertEqual(8 * KIB_GIB, av['size_kb'])
        self.assertEqual(flex_utils.id_to_base64(vol.id), av['name'])
        self.assertRegex(vol.provider_id, r'^[0-9a-f]{16}$')
        self.assertEqual(8 * GiB, av['lun_bytes'])
        self.assertIn(vol.provider_id, self.inventory()['luns'])
        self.assertIsNone(av['ancestor_id'])
        self.assertEqual({av['vtree_id']: [vol.provider_id]},
                         self.inventory()['vtrees'])
        # Thin: nothing allocated until written.
        self.assertEqual(0, self.pool_usage()['used_kb'])

    def test_thick_reserves_its_rounded_size(self) -> None:
        vol = self.create_volume(size=9, thick=True)
        self.assertEqual(16, vol.size)
        av = self.array_volume(vol.provider_id)
        self.assertEqual('ThickProvisioned', av['type'])
        self.assertEqual(16 * KIB_GIB, av['size_kb'])
        usage = self.pool_usage()
        self.assertEqual(16 * KIB_GIB, usage['used_kb'])
        self.assertEqual((self.POOL_CAPACITY_GB - 16) * KIB_GIB,
                         usage['free_kb'])

    def test_exact_multiple_of_8_is_not_rounded(self) -> None:
        vol = self.create_volume(size=24)
        self.assertEqual(24 * KIB_GIB,
                         self.array_volume(vol.provider_id)['size_kb'])

    def test_thin_usage_follows_written_bytes(self) -> None:
        vol = self.create_volume(size=8)
        path = self.gw.array.luns.open_path(vol.provider_id)
        with open(path, 'r+b') as f:
            f.seek(GiB)
            f.write(b'\x5a' * (3 * 1024 * 1024))
        self.assertEqual(3 * 1024, self.pool_usage()['used_kb'])

    def test_duplicate_name_is_refused_with_code_6(self) -> None:
        vol = self.create_volume(size=8)
        # Same Cinder id, so the same PowerFlex name.
        twin = fake_volume.fake_volume_obj(
            self.ctxt, id=vol.id, size=8, host=self.volume_host,
            volume_type_id=self.thin_type['id'],
            expected_attrs=['glance_metadata'])
        self.assertRaises(exception.VolumeBackendAPIException,
                          self.driver.create_volume, twin)
        self.assertEqual(1, len(self.inventory()['volumes']))
        client = self.driver.primary_client
        r, body = client.execute_powerflex_post_request(
            '/types/Volume/instances',
            {'name': flex_utils.id_to_base64(vol.id),
             'volumeSizeInKb': str(KIB_GIB),
             'storagePoolId': self.pool_usage()['id']})
        self.assertEqual(500, r.status_code)
        self.assertEqual(errors.NAME_IN_USE, body['errorCode'])


class CapacityTest(base.PowerFlexEmulatorTestCase):
    POOL_CAPACITY_GB = 64

    def test_thick_beyond_free_capacity_fails_cleanly(self) -> None:
        self.create_volume(size=48, thick=True)
        before = self.inventory()
        vol = self.new_volume(size=17, thick=True)   # rounds to 24 > 16
        exc = self.assertRaises(exception.VolumeBackendAPIException,
                                self.driver.create_volume, vol)
        self.assertIn('Insufficient capacity', str(exc))
        after = self.inventory()
        self.assertEqual(before['volumes'], after['volumes'])
        self.assertEqual(before['luns'], after['luns'])
        self.assertEqual(before['vtrees'], after['vtrees'])
        # What fits still fits.
        last = self.create_volume(size=16, thick=True)
        self.assertEqual(0, self.pool_usage()['free_kb'])
        self.assertIsNotNone(self.array_volume(last.provider_id))

    def test_thin_volumes_overcommit(self) -> None:
        self.create_volume(size=48, thick=True)
        vol = self.create_volume(size=160)
        self.assertEqual(160 * KIB_GIB,
                         self.array_volume(vol.provider_id)['size_kb'])

    def test_thick_extend_beyond_capacity_fails_after_retries(self) -> None:
        vol = self.create_volume(size=40, thick=True)
        self.assertRaises(exception.VolumeBackendAPIException,
                          self.driver.extend_volume, vol, 72)
        self.assertEqual(3, self.gw.api.calls['setVolumeSize'])
        self.assertEqual(40 * KIB_GIB,
                         self.array_volume(vol.provider_id)['size_kb'])

    def test_stats_report_pool_capacity(self) -> None:
        self.create_volume(size=16, thick=True)
        self.create_volume(size=32)
        stats = self.driver.get_volume_stats(refresh=True)
        (pool,) = stats['pools']
        self.assertEqual(f'{base.DOMAIN}:{base.POOL}', pool['pool_name'])
        self.assertEqual(self.POOL_CAPACITY_GB, pool['total_capacity_gb'])
        self.assertEqual(self.POOL_CAPACITY_GB - 16,
                         pool['free_capacity_gb'])
        self.assertEqual(16 + 32, pool['provisioned_capacity_gb'])
        self.assertTrue(pool['thick_provisioning_support'])
        self.assertTrue(pool['thin_provisioning_support'])
        self.assertEqual('scaleio', stats['storage_protocol'])
        self.assertEqual(self.POOL_CAPACITY_GB, stats['total_capacity_gb'])


@ddt.ddt
class ApiVersionTest(base.PowerFlexEmulatorTestCase):
    """The driver computes capacity differently per gateway version."""

    POOL_CAPACITY_GB = 512

    @ddt.data('2.6', '3.0', '3.5', '4.5')
    def test_stats_for_each_version_branch(self, version: str) -> None:
        self.gw.stop()
        self.gw = self.start_gateway(version=version)
        drv = self.make_driver()
        vol = self.new_volume(size=16, thick=True)
        self.apply(vol, drv.create_volume(vol))
        vol = self.new_volume(size=24)
        self.apply(vol, drv.create_volume(vol))
        snap = test_utils.create_snapshot(self.ctxt, vol.id,
                                          testcase_instance=self)
        self.apply(snap, drv.create_snapshot(snap))
        (pool,) = drv.get_volume_stats(refresh=True)['pools']
        self.assertEqual(self.POOL_CAPACITY_GB, pool['total_capacity_gb'])
        self.assertEqual(self.POOL_CAPACITY_GB - 16,
                         pool['free_capacity_gb'])
        # Snapshots cost nothing until written.
        self.assertEqual(16 + 24, pool['provisioned_capacity_gb'])


class FineGranularityTest(base.PowerFlexEmulatorTestCase):
    POOL_LAYOUT = 'FineGranularity'

    def test_thick_request_becomes_thin_and_compression_is_offered(
            self) -> None:
        vol = self.create_volume(size=8, thick=True)
        self.assertEqual('ThinProvisioned',
                         self.array_volume(vol.provider_id)['type'])
        (pool,) = self.driver.get_volume_stats(refresh=True)['pools']
        self.assertFalse(pool['thick_provisioning_support'])
        self.assertTrue(pool['compression_support'])

    def test_array_refuses_thick_in_fine_granularity(self) -> None:
        client = self.driver.primary_client
        self.assertRaises(exception.VolumeBackendAPIException,
                          client.create_volume, base.DOMAIN, base.POOL,
                          'f0000000-0000-4000-8000-000000000001', 8,
                          'ThickProvisioned', 'None')
        self.assertEqual([], self.inventory()['volumes'])


class ExtendVolumeTest(base.PowerFlexEmulatorTestCase):

    def test_extend_rounds_up_and_resizes_the_lun(self) -> None:
        vol = self.create_volume(size=8)
        self.driver.extend_volume(vol, 12)
        av = self.array_volume(vol.provider_id)
        self.assertEqual(16 * KIB_GIB, av['size_kb'])
        self.assertEqual(16 * GiB, av['lun_bytes'])
        self.assertEqual(1, self.gw.api.calls['setVolumeSize'])

    def test_extend_within_the_same_8gib_unit_asks_nothing(self) -> None:
        vol = self.create_volume(size=1)     # array: 8 GiB, Cinder: 8
        vol.size = 3
        self.driver.extend_volume(vol, 5)
        self.assertNotIn('setVolumeSize', self.gw.api.calls)

    def test_shrink_is_refused_by_the_array(self) -> None:
        vol = self.create_volume(size=16)
        client = self.driver.primary_client
        self.assertRaises(exception.VolumeBackendAPIException,
                          client.extend_volume, vol.provider_id, 8)
        self.assertEqual(16 * KIB_GIB,
                         self.array_volume(vol.provider_id)['size_kb'])


class DeleteVolumeTest(base.PowerFlexEmulatorTestCase):

    def test_delete_removes_volume_vtree_and_lun(self) -> None:
        vol = self.create_volume(size=8)
        self.driver.delete_volume(vol)
        self.assertArrayEmpty()

    def test_delete_of_volume_gone_from_array_succeeds(self) -> None:
        vol = self.create_volume(size=8)
        self.gw.array.remove_volume(vol.provider_id)
        self.driver.delete_volume(vol)
        self.assertEqual(1, self.gw.api.calls['removeVolume'])
        self.assertArrayEmpty()

    def test_delete_of_never_created_volume_succeeds(self) -> None:
        vol = self.new_volume(size=8)
        vol.provider_id = '0123456789abcdef'
        self.driver.delete_volume(vol)
        vol.provider_id = None
        self.driver.delete_volume(vol)
        self.assertArrayEmpty()

    def test_transient_failure_is_retried(self) -> None:
        vol = self.create_volume(size=8)
        self.gw.inject_fault('removeVolume', count=1, error_code=65,
                             message='MDM is busy')
        self.driver.delete_volume(vol)
        self.assertEqual(2, self.gw.api.calls['removeVolume'])
        self.assertArrayEmpty()

    def test_persistent_failure_keeps_the_volume(self) -> None:
        vol = self.create_volume(size=8)
        self.gw.inject_fault('removeVolume', count=3)
        exc = self.assertRaises(exception.VolumeBackendAPIException,
                                self.driver.delete_volume, vol)
        self.assertIn('Injected failure', str(exc))
        self.assertIsNotNone(self.array_volume(vol.provider_id))
        self.driver.delete_volume(vol)
        self.assertArrayEmpty()
