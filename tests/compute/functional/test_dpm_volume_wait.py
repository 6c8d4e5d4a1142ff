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
"""Volumes Nova gives up on, and encrypted volumes, with the real compute.

Nova 34's compute manager builds the server (block device code, its wait
for the root volume, its clean-up) with the DPM driver on the emulated HMC;
Cinder is ``harness.SVCCinder``, whose volumes from an image stay
``downloading`` for ``image_copy_seconds`` and cannot be deleted
meanwhile, as Cinder's.
"""

from typing import Any

from tests.compute.functional import test_dpm_compute

IMAGE = test_dpm_compute.S390X_IMAGE


class TestVolumeNovaGaveUpOn(test_dpm_compute.DPMComputeTestBase):

    def setUp(self) -> None:
        super().setUp()
        # Nova polls twice, without sleeping, then gives up.
        self.flags(block_device_allocate_retries=1)
        self.flags(volume_settle_timeout=30, group='dpm')

    def _boot_slow(self, seconds: float) -> tuple[dict[str, Any], str]:
        self.rcinder.image_copy_seconds = seconds
        server = self.api.post_server(self._body(self.dpm_flavor,
                                                 image=IMAGE))
        server = self._wait_for_state_change(server, 'ERROR')
        [root] = [v for v, c in self.rcinder.created.items()
                  if c['image_id'] == IMAGE]
        return server, root

    def test_deleted_once_settled_and_the_fault_says_why(self) -> None:
        server, root = self._boot_slow(1.5)
        fault = server['fault']['message']
        # Nova's own delete was refused while the volume was downloading
        self.assertIn(root, self.rcinder.refused_deletes)
        # ... the driver waited and deleted it: nothing leaks
        self.assertEqual([root], self.rcinder.deleted)
        self.assertEqual([root], list(self.rcinder.created))
        self.assertNotIn(root, self.rcinder.cinder.volumes)
        self.assertEqual([], [v['name'] for v in
                              self.svc.state.data['vdisks'].values()])
        self.assert_nothing_left()
        for words in (root, 'downloading', 'Nova gave up', 'deleted',
                      'block_device_allocate_retries',
                      'cinder-dpm-ephemeral cache warm'):
            self.assertIn(words, fault)
        self.assertTrue(fault.endswith('cache warm'), fault)  # whole
        self._delete_server(server)
        self.assertEqual([root], self.rcinder.deleted)

    def test_no_wait_names_the_volume_to_delete(self) -> None:
        self.flags(volume_settle_timeout=0, group='dpm')
        server, root = self._boot_slow(600)
        fault = server['fault']['message']
        for words in (root, 'downloading', 'delete it when it settles',
                      'block_device_allocate_retries'):
            self.assertIn(words, fault)
        self.assertEqual([], self.rcinder.deleted)
        self.assert_nothing_left()
        self._delete_server(server)


class TestEncryptedVolumeRefused(test_dpm_compute.DPMComputeTestBase):

    def test_encrypted_connection_refused_nothing_left(self) -> None:
        self.rcinder.encrypted_volumes = True
        server = self.api.post_server(self._body(self.dpm_flavor,
                                                 image=IMAGE))
        server = self._wait_for_state_change(server, 'ERROR')
        fault = server['fault']['message']
        self.assertIn('is encrypted', fault)
        self.assertIn('LUKS', fault)
        self.assert_nothing_left()
        self._delete_server(server)
        self.assertEqual(set(self.rcinder.created),
                         set(self.rcinder.deleted))
