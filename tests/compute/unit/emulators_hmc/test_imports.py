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
"""The HMC emulator imports neither Cinder nor Nova."""

from __future__ import annotations

import subprocess
import sys

import testtools

CHECK = '''
import sys
import cinder_dpm_ephemeral.cmd.emulator as cli
import cinder_dpm_ephemeral.emulators.hmc as hmc
hmc.HMCEmulator
cli.build_parser().parse_args(['hmc', '--state-dir', '/x', '--login', 'u:p'])
bad = sorted(m for m in sys.modules
             if m.split('.')[0] in ('cinder', 'nova', 'os_brick'))
print(' '.join(bad))
'''


class TestImports(testtools.TestCase):

    def test_no_cinder_or_nova(self) -> None:
        out = subprocess.run([sys.executable, '-c', CHECK], check=True,
                             capture_output=True, text=True, timeout=60)
        self.assertEqual('', out.stdout.strip())
