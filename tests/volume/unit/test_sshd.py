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
"""The emulators' SSH command server, driven by a real paramiko client."""

import threading

import fixtures
import paramiko
import testtools

from cinder_dpm_ephemeral.emulators import sshd


class SSHCommandServerTest(testtools.TestCase):
    def setUp(self):
        super().setUp()
        self.dir = self.useFixture(fixtures.TempDir()).path
        self.seen = []

        def handler(argv):
            self.seen.append(argv)
            if argv[:1] == ['fail']:
                return '', 'CMMVC5753E no such object\n', 1
            return '!'.join(argv) + '\n', '', 0

        self.server = sshd.SSHCommandServer(handler, self.dir,
                                            ('superuser', 's3cret')).start()
        self.addCleanup(self.server.stop)

    def _client(self, password='s3cret',  # noqa: S107 (test secret)
                known_hosts=True):
        client = paramiko.SSHClient()
        if known_hosts:
            client.load_host_keys(self.server.known_hosts_path)
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        client.connect('127.0.0.1', port=self.server.port,
                       username='superuser', password=password,
                       look_for_keys=False, allow_agent=False, timeout=10)
        self.addCleanup(client.close)
        return client

    def _run(self, client, cmd):
        stdin, out, err = client.exec_command(cmd, timeout=10)
        stdin.close()  # as Cinder's processutils.ssh_execute does
        status = out.channel.recv_exit_status()
        return out.read().decode(), err.read().decode(), status

    def test_commands_quotes_stripped_and_status(self):
        client = self._client()
        out, err, status = self._run(
            client, 'svcinfo lsvdisk -delim ! "volume-1"')
        self.assertEqual(('svcinfo!lsvdisk!-delim!!!volume-1\n', '', 0),
                         (out, err, status))
        out, err, status = self._run(client, 'fail now')
        self.assertEqual(1, status)
        self.assertIn('CMMVC5753E', err)

    def test_connection_reused_for_many_commands(self):
        client = self._client()
        for i in range(20):
            out, _err, status = self._run(client, f'echo {i}')
            self.assertEqual((f'echo!{i}\n', 0), (out, status))
        self.assertEqual(20, len(self.seen))

    def test_concurrent_channels(self):
        client = self._client()
        results = []

        def worker(i):
            results.append(self._run(client, f'cmd {i}')[0])

        threads = [threading.Thread(target=worker, args=(i,))
                   for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        self.assertEqual(sorted(f'cmd!{i}\n' for i in range(8)),
                         sorted(results))

    def test_wrong_password_rejected(self):
        self.assertRaises(paramiko.AuthenticationException, self._client,
                          password='wrong')
        self.assertEqual([], self.seen)

    def test_unknown_host_key_rejected(self):
        self.assertRaises(paramiko.SSHException, self._client,
                          known_hosts=False)

    def test_host_key_survives_restart(self):
        with open(self.server.known_hosts_path) as f:
            first = f.read().split()[1:]
        self.server.stop()
        again = sshd.SSHCommandServer(lambda argv: ('', '', 0), self.dir,
                                      ('u', 'p')).start()
        self.addCleanup(again.stop)
        with open(again.known_hosts_path) as f:
            self.assertEqual(first, f.read().split()[1:])
