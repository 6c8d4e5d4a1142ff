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
"""The fix ``dpm-ephemeral-doctor`` prints for an array that refused setup.

The texts are the drivers' own, as they reached the doctor.
"""

from __future__ import annotations

import testtools

from cinder_dpm_ephemeral.ops import doctor

STOPPED = 'start the array (or its emulator) or fix san_ip'
LOGIN = 'check san_login / san_password of [svc]'


class ArrayFixTest(testtools.TestCase):

    def fix(self, text: str) -> str:
        return doctor.array_fix(text, 'svc', '127.0.0.1:40123')

    def test_a_stopped_array_on_a_port_that_contains_401(self) -> None:
        # seen in CI: the emulator's random port was 40123
        self.assertIn(STOPPED, self.fix(
            'Error connecting via ssh: [Errno None] Unable to connect to '
            'port 40123 on 127.0.0.1'))
        self.assertIn(STOPPED, self.fix(
            'Error connecting via ssh: [Errno None] Unable to connect to '
            'port 24010 on 127.0.0.1'))

    def test_a_refused_login(self) -> None:
        # paramiko's AuthenticationException, wrapped by cinder.ssh_utils
        self.assertEqual(LOGIN, self.fix(
            'Error connecting via ssh: Authentication failed.'))
        # the in-tree PowerFlex client's first call after a refused login
        self.assertEqual(LOGIN, self.fix(
            'Bad or unexpected response from the storage volume backend '
            'API: Failed to query REST API version. Status code: 401.'))

    def test_trust(self) -> None:
        self.assertIn('ssh_hosts_key_file', self.fix(
            'Error connecting via ssh: Server \'[127.0.0.1]:40123\' not '
            'found in known_hosts'))
        self.assertIn('driver_ssl_cert_path', self.fix(
            "HTTPSConnectionPool(host='127.0.0.1', port=40123): Max retries "
            "exceeded (Caused by SSLError(SSLCertVerificationError(1, "
            "'certificate verify failed')))"))
