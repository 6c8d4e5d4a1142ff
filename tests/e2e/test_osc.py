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
"""The suite's ``openstack`` command (:mod:`tests.e2e.osc`) gives what the
installed command gives: output, errors, exit status; and a command that
hangs is killed at its timeout without taking the next one with it.

No cloud: a socket that accepts and never answers stands in for a
Keystone that does not respond.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import testtools

from tests.e2e import osc

OPENSTACK = os.path.join(os.path.dirname(sys.executable), 'openstack')


class ZygoteTest(testtools.TestCase):

    def setUp(self) -> None:
        super().setUp()
        self.zygote = osc.Zygote()
        self.addCleanup(self.zygote.close)
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith('OS_')}

    def _both(self, *argv: str) -> tuple[subprocess.CompletedProcess[str],
                                         subprocess.CompletedProcess[str]]:
        ours = self.zygote.run(list(argv), self.env, timeout=120)
        real = subprocess.run([OPENSTACK, *argv], env=self.env,
                              capture_output=True, text=True, timeout=120)
        return ours, real

    def test_output_and_status_as_the_installed_command(self) -> None:
        ours, real = self._both('--version')
        self.assertEqual(0, ours.returncode)
        self.assertEqual(real.stdout, ours.stdout)
        self.assertTrue(ours.stdout.startswith('openstack '), ours.stdout)

        ours, real = self._both('no-such-command')
        self.assertNotEqual(0, ours.returncode)
        self.assertEqual(real.returncode, ours.returncode)
        self.assertIn("'no-such-command' is not an openstack command",
                      ours.stdout + ours.stderr)
        self.assertEqual((real.stdout, real.stderr),
                         (ours.stdout, ours.stderr))

        # The environment is the command's own: no cloud named, nothing to
        # authenticate with, as the installed command says.
        ours, real = self._both('server', 'list')
        self.assertEqual(real.returncode, ours.returncode)
        self.assertNotEqual(0, ours.returncode)
        self.assertIn('auth', ours.stderr)
        self.assertEqual((real.stdout, real.stderr),
                         (ours.stdout, ours.stderr))

    def test_hanging_command_killed_at_timeout(self) -> None:
        silent = socket.socket()
        self.addCleanup(silent.close)
        silent.bind(('127.0.0.1', 0))
        silent.listen(8)
        url = f'http://127.0.0.1:{silent.getsockname()[1]}/v3'
        start = time.monotonic()
        self.assertRaises(
            subprocess.TimeoutExpired, self.zygote.run,
            ['--os-auth-url', url, '--os-username', 'u', '--os-password',
             'p', '--os-project-name', 'p', '--os-user-domain-id',
             'default', '--os-project-domain-id', 'default', 'token',
             'issue'], self.env, 3)
        self.assertLess(time.monotonic() - start, 60)
        # The next command runs as if nothing happened.
        self.assertEqual(0, self.zygote.run(['--version'], self.env,
                                            60).returncode)
