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
"""Encrypted volume types refused for DPM servers by the nova-api filter.

Real nova-api pipeline (Nova's functional harness); the volume type's
encryption comes from ``harness.RecordingCinder``, which, like Cinder's
default policy, answers ``GET /types/{id}/encryption`` to administrators
only (the filter asks with Nova's ``[cinder]`` credentials).
"""

from tests.compute.functional import test_bfv_filter

SECRET = {'id': '7d1c6e3a-52f1-4c1e-9a61-2b9d1f0c4e77', 'name': 'secret-luks'}


class TestEncryptedVolumeTypes(test_bfv_filter.BfvFilterTestBase):

    def setUp(self) -> None:
        super().setUp()
        self.rcinder.volume_types.append(dict(SECRET))
        self.rcinder.encrypted_types['secret-luks'] = 'luks'

    def _refused(self, body: dict, name: str = 'secret-luks') -> None:
        status, message = self._post_error(body)
        self.assertEqual(400, status)
        self.assertIn('Volume type %s is encrypted' % name, message)
        self.assertIn('LUKS', message)
        self.assertIn('without encryption', message)
        self.assertEqual({}, self.rcinder.created)

    def test_configured_type_encrypted(self) -> None:
        self.flags(volume_type='secret-luks', group='dpm_boot_from_volume')
        self.rcinder.project_defaults[self.api.project_id] = 'secret-luks'
        for version in ('2.1', '2.67', 'latest'):
            self.api.microversion = version
            self._refused(self._body(self.targeted))
        # not a DPM flavor: not the filter's business
        self.api.microversion = 'latest'
        self._delete_server(self._boot(self.plain))

    def test_type_asked_in_block_device_mapping(self) -> None:
        data = {'source_type': 'blank', 'destination_type': 'volume',
                'volume_size': 1, 'boot_index': -1,
                'volume_type': 'secret-luks',
                'delete_on_termination': True}
        self._refused(self._body(self.targeted,
                                 block_device_mapping_v2=[data]))
        # by id too
        data['volume_type'] = SECRET['id']
        self._refused(self._body(self.targeted,
                                 block_device_mapping_v2=[data]))

    def test_boot_from_volume_request_with_encrypted_type(self) -> None:
        root = {'uuid': test_bfv_filter.IMAGE, 'source_type': 'image',
                'destination_type': 'volume', 'boot_index': 0,
                'volume_size': 5, 'volume_type': 'secret-luks',
                'delete_on_termination': True}
        body = self._body(self.targeted, block_device_mapping_v2=[root])
        body['server']['imageRef'] = ''
        self._refused(body)

    def test_unencrypted_types_boot(self) -> None:
        server = self._boot(self.targeted)
        self.assertEqual('dpm-svc', self._bdms(server['id'])[0].volume_type)
        self.assertGreater(self.rcinder.encryption_lookups, 0)
        self._delete_server(server)
