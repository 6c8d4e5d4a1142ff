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
"""Mapping volumes to SDCs through Cinder's in-tree PowerFlex driver."""

from __future__ import annotations

from cinder.tests.unit import utils as test_utils
from cinder import exception
from cinder.volume import qos_specs
from cinder.volume import volume_types
from cinder.volume.drivers.dell_emc.powerflex import utils as flex_utils

from tests.volume.unit.emulators_powerflex import base

GUID0, GUID1 = base.SDC_GUIDS


def connector(guid: str, host: str = 'compute-0') -> dict[str, str]:
    return {'sdc_guid': guid, 'host': host, 'platform': 's390x',
            'os_type': 'linux'}


class ConnectionTest(base.PowerFlexEmulatorTestCase):

    def test_initialize_maps_to_the_sdc_found_by_guid(self) -> None:
        vol = self.create_volume(size=8)
        info = self.driver.initialize_connection(vol, connector(GUID0))
        self.assertEqual('scaleio', info['driver_volume_type'])
        data = info['data']
        self.assertEqual(vol.provider_id, data['scaleIO_volume_id'])
        self.assertEqual(flex_utils.id_to_base64(vol.id),
                         data['scaleIO_volname'])
        self.assertEqual(GUID0, data['sdc_guid'])
        self.assertIs(True, data['discard'])
        av = self.array_volume(vol.provider_id)
        self.assertEqual([self.sdc_id(GUID0)], av['mapped_sdcs'])

    def test_guid_lookup_ignores_case(self) -> None:
        vol = self.create_volume(size=8)
        self.driver.initialize_connection(vol, connector(GUID1.lower()))
        self.assertEqual([self.sdc_id(GUID1)],
                         self.array_volume(vol.provider_id)['mapped_sdcs'])

    def test_initialize_twice_maps_once(self) -> None:
        vol = self.create_volume(size=8)
        self.driver.initialize_connection(vol, connector(GUID0))
        self.driver.initialize_connection(vol, connector(GUID0))
        self.assertEqual(1, self.gw.api.calls['addMappedSdc'])
        self.assertEqual(1, len(
            self.array_volume(vol.provider_id)['mappings']))

    def test_multiattach_maps_to_two_sdcs(self) -> None:
        vol = self.create_volume(size=8)
        self.driver.initialize_connection(vol, connector(GUID0))
        self.driver.initialize_connection(vol, connector(GUID1, 'c1'))
        self.assertEqual(
            sorted([self.sdc_id(GUID0), self.sdc_id(GUID1)]),
            sorted(self.array_volume(vol.provider_id)['mapped_sdcs']))
        self.driver.terminate_connection(vol, connector(GUID0))
        self.assertEqual([self.sdc_id(GUID1)],
                         self.array_volume(vol.provider_id)['mapped_sdcs'])

    def test_terminate_unmaps(self) -> None:
        vol = self.create_volume(size=8)
        self.driver.initialize_connection(vol, connector(GUID0))
        self.driver.terminate_connection(vol, connector(GUID0))
        self.assertEqual([], self.array_volume(vol.provider_id)['mappings'])
        rest = self.driver.primary_client.query_volume(vol.provider_id)
        self.assertIsNone(rest['mappedSdcInfo'])
        # Terminating again is harmless.
        self.driver.terminate_connection(vol, connector(GUID0))

    def test_force_detach_without_connector_unmaps_all(self) -> None:
        vol = self.create_volume(size=8)
        self.driver.initialize_connection(vol, connector(GUID0))
        self.driver.initialize_connection(vol, connector(GUID1, 'c1'))
        self.driver.terminate_connection(vol, None)
        self.assertEqual([], self.array_volume(vol.provider_id)['mappings'])

    def test_unknown_sdc_fails_and_maps_nothing(self) -> None:
        vol = self.create_volume(size=8)
        self.assertRaises(exception.VolumeBackendAPIException,
                          self.driver.initialize_connection, vol,
                          connector('00000000-0000-0000-0000-000000000000'))
        self.assertEqual([], self.array_volume(vol.provider_id)['mappings'])

    def test_connector_without_sdc_guid_is_refused(self) -> None:
        vol = self.create_volume(size=8)
        self.assertRaises(exception.InvalidHost,
                          self.driver.initialize_connection, vol,
                          {'host': 'compute-0'})

    def test_qos_limits_are_set_on_the_mapping(self) -> None:
        specs = qos_specs.create(self.ctxt, 'pf-qos', {
            'consumer': 'back-end', 'maxIOPS': '1000', 'maxBWS': '2048'})
        vtype = volume_types.create(self.ctxt, 'pf-qos-type', {})
        qos_specs.associate_qos_with_type(self.ctxt, specs['id'],
                                          vtype['id'])
        vol = test_utils.create_volume(
            self.ctxt, host=self.volume_host, size=8,
            volume_type_id=vtype['id'], testcase_instance=self)
        self.apply(vol, self.driver.create_volume(vol))
        self.driver.initialize_connection(vol, connector(GUID0))
        (mapping,) = self.array_volume(vol.provider_id)['mappings']
        self.assertEqual(1000, mapping['limitIops'])
        self.assertEqual(2048 // 1024, mapping['limitBwInMbps'])

    def test_snapshot_can_be_attached(self) -> None:
        vol = self.create_volume(size=8)
        snap = self.create_snapshot(vol)
        self.driver.initialize_connection_snapshot(snap, connector(GUID0))
        self.assertEqual([self.sdc_id(GUID0)],
                         self.array_volume(snap.provider_id)['mapped_sdcs'])
        self.driver.terminate_connection_snapshot(snap, connector(GUID0))
        self.assertEqual([], self.array_volume(snap.provider_id)['mappings'])

    def test_delete_of_mapped_volume_unmaps_first(self) -> None:
        vol = self.create_volume(size=8)
        self.driver.initialize_connection(vol, connector(GUID0))
        self.driver.delete_volume(vol)
        self.assertArrayEmpty()
