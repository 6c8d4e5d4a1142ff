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
"""The HMC emulator over real HTTPS with zhmcclient's real Session.

The emulator runs as its own process through the real command line
(``dpm-ephemeral-emulator hmc``), as it runs beside a nova-compute: the
compute test run imports Nova's test package, which monkey-patches the
process with eventlet, and an HTTPS server in green threads of the test
process would share (and block) the client's hub.
"""

from __future__ import annotations

import json
import os
import re
import signal
import ssl
import subprocess
import sys
import time
from typing import Any

import fixtures
import requests
import testtools
import urllib3
import zhmcclient

from cinder_dpm_ephemeral.emulators import hmc
from tests.compute.unit.emulators_hmc import base
from tests.compute.unit.emulators_hmc.base import LUN1, PART_PROPS

LOGIN = ('hmcuser', 'Passw0rd-hmc')
NO_RETRY = zhmcclient.RetryTimeoutConfig(
    connect_timeout=5, connect_retries=0, read_timeout=30, read_retries=0,
    operation_timeout=30, status_timeout=10)


_ANNOUNCE = re.compile(r'^HMC emulator: https://127\.0\.0\.1:(\d+)/api; '
                       r'TLS certificate (\S+) ')


class HMCProcess:
    """``dpm-ephemeral-emulator hmc`` as a child process."""

    def __init__(self, state_dir: str, svc_dir: str,
                 job_seconds: float = 0.0) -> None:
        env = dict(os.environ, DPM_EMULATOR_PASSWORD=LOGIN[1],
                   PYTHONWARNINGS='ignore')
        self.proc = subprocess.Popen(
            [sys.executable, '-m', 'cinder_dpm_ephemeral.cmd.emulator',
             'hmc', '--listen', '127.0.0.1:0', '--state-dir', state_dir,
             '--login', LOGIN[0], '--svc-state-dir', svc_dir,
             '--cpc', 'CPC1', '--cpc', 'CPC13:z13',
             '--job-seconds', str(job_seconds)],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
            env=env)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        m = _ANNOUNCE.match(line)
        if not m:
            self.stop()
            raise AssertionError(f'HMC emulator did not start: {line!r}')
        self.port, self.cert_path = int(m.group(1)), m.group(2)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=20)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


class HTTPSTestCase(testtools.TestCase):

    def setUp(self) -> None:
        super().setUp()
        # urllib3 may have been imported before Nova's test package
        # monkey-patched ssl with eventlet's: give it the SSLContext the
        # process has now, as nova-compute has it (else setting
        # minimum_version recurses, nova bug 1808951).
        self.useFixture(fixtures.MockPatchObject(
            urllib3.util.ssl_, 'SSLContext', ssl.SSLContext))
        self.state_dir = self.useFixture(fixtures.TempDir()).path
        self.svc_dir = self.useFixture(fixtures.TempDir()).path
        self.svc = base.SVCSide(self.svc_dir)
        self.emu = self.start_emulator()

    def start_emulator(self, **kwargs: Any) -> HMCProcess:
        emu = HMCProcess(self.state_dir, self.svc_dir, **kwargs)
        self.addCleanup(emu.stop)
        return emu

    def client(self, emu: HMCProcess | None = None,
               **kwargs: Any) -> zhmcclient.Client:
        emu = emu or self.emu
        kwargs.setdefault('verify_cert', emu.cert_path)
        kwargs.setdefault('retry_timeout_config', NO_RETRY)
        session = zhmcclient.Session('127.0.0.1', *kwargs.pop(
            'login', LOGIN), port=emu.port, **kwargs)
        self.addCleanup(session.logoff)
        return zhmcclient.Client(session)

    def ports(self, cpc: zhmcclient.Cpc) -> list[zhmcclient.Port]:
        return [p for a in cpc.adapters.list() for p in a.ports.list()]


class TestLogon(HTTPSTestCase):

    def test_logon_and_verified_certificate(self) -> None:
        client = self.client()
        self.assertEqual(['CPC1', 'CPC13'],
                         sorted(c.name for c in client.cpcs.list()))
        self.assertEqual(2, client.query_api_version()['api-major-version'])
        self.assertTrue(client.session.is_logon())

    def test_wrong_password_refused(self) -> None:
        client = self.client(login=(LOGIN[0], 'wrong'))
        exc = self.assertRaises(zhmcclient.ServerAuthError,
                                client.cpcs.list)
        self.assertEqual((403, 0), (exc.details.http_status,
                                    exc.details.reason))
        client = self.client(login=('someone', LOGIN[1]))
        self.assertRaises(zhmcclient.ServerAuthError, client.cpcs.list)

    def test_untrusted_certificate_refused(self) -> None:
        # the system CA bundle does not know the emulator's self-signed CA
        client = self.client(verify_cert=True)
        exc = self.assertRaises(zhmcclient.ConnectionError, client.cpcs.list)
        self.assertIn('CERTIFICATE_VERIFY_FAILED', str(exc))

    def test_session_required(self) -> None:
        url = f'https://127.0.0.1:{self.emu.port}/api/cpcs'
        r = requests.get(url, verify=self.emu.cert_path, timeout=10)
        self.assertEqual((403, 4), (r.status_code, r.json()['reason']))
        r = requests.get(url, verify=self.emu.cert_path, timeout=10,
                         headers={'X-API-Session': 'forged'})
        self.assertEqual((403, 5), (r.status_code, r.json()['reason']))
        # after logoff the session id is dead
        r = requests.post(f'https://127.0.0.1:{self.emu.port}/api/sessions',
                          json={'userid': LOGIN[0], 'password': LOGIN[1]},
                          verify=self.emu.cert_path, timeout=10)
        sid = r.json()['api-session']
        headers = {'X-API-Session': sid}
        self.assertEqual(200, requests.get(url, headers=headers, timeout=10,
                                           verify=self.emu.cert_path
                                           ).status_code)
        requests.delete(f'https://127.0.0.1:{self.emu.port}/api/sessions/'
                        f'this-session', headers=headers, timeout=10,
                        verify=self.emu.cert_path)
        r = requests.get(url, headers=headers, verify=self.emu.cert_path,
                         timeout=10)
        self.assertEqual((403, 5), (r.status_code, r.json()['reason']))

    def test_password_not_in_state_or_command_line(self) -> None:
        self.assertRaises(zhmcclient.ServerAuthError,
                          self.client(login=(LOGIN[0], 'wrong-one'))
                          .cpcs.list)
        self.client().cpcs.list()
        for name in os.listdir(self.state_dir):
            with open(os.path.join(self.state_dir, name), 'rb') as f:
                self.assertNotIn(LOGIN[1].encode(), f.read())
        self.assertNotIn(LOGIN[1], ' '.join(self.emu.proc.args))


class TestLifecycleOverHTTPS(HTTPSTestCase):

    def hba_boot_setup(self, client: zhmcclient.Client, lun: int = 1
                       ) -> zhmcclient.Partition:
        cpc = client.cpcs.find(name='CPC13')
        part = cpc.partitions.create(dict(PART_PROPS, name='inst-1'))
        hba = part.hbas.create({'name': 'hba0', 'adapter-port-uri':
                                self.ports(cpc)[0].uri})
        self.svc.vdisk('root', base.dos_mbr())
        self.svc.host('inst-1', hba.get_property('wwpn'))
        self.svc.map('root', 'inst-1', lun)
        part.update_properties({
            'boot-device': 'storage-adapter', 'boot-storage-device': hba.uri,
            'boot-world-wide-port-name': self.svc.target_wwpns()[0],
            'boot-logical-unit-number': hmc.int_to_fcp_lun(lun)})
        return part

    def test_partition_lifecycle_with_ipl(self) -> None:
        client = self.client()
        part = self.hba_boot_setup(client)
        self.assertEqual('stopped', part.get_property('status'))
        part.start()
        part.pull_full_properties()
        self.assertEqual('active', part.get_property('status'))
        exc = self.assertRaises(zhmcclient.HTTPError, part.start)
        self.assertEqual((409, 1), (exc.http_status, exc.reason))
        self.assertRaises(zhmcclient.HTTPError, part.delete)
        part.stop()
        exc = self.assertRaises(zhmcclient.HTTPError, part.stop)
        self.assertEqual((409, 1), (exc.http_status, exc.reason))
        part.delete()
        cpc = client.cpcs.find(name='CPC13')
        self.assertEqual([], cpc.partitions.list())

    def test_failed_ipl_is_a_job_error(self) -> None:
        client = self.client()
        part = self.hba_boot_setup(client)
        part.update_properties({'boot-logical-unit-number': LUN1[:4] + '1'})
        exc = self.assertRaises(zhmcclient.HTTPError, part.start)
        self.assertEqual((500, 263), (exc.http_status, exc.reason))
        self.assertIn('IPL failed', exc.message)
        self.assertEqual('POST', exc.request_method)
        self.assertTrue(exc.request_uri.endswith('/operations/start'))
        part.pull_full_properties()
        self.assertEqual('stopped', part.get_property('status'))

    def test_jobs_run_and_are_polled(self) -> None:
        self.emu.stop()
        self.emu = self.start_emulator(job_seconds=0.4)
        client = self.client()
        part = self.hba_boot_setup(client)
        job = part.start(wait_for_completion=False)
        part.pull_full_properties()
        self.assertEqual('starting', part.get_property('status'))
        status, _ = job.check_for_completion()
        self.assertEqual('running', status)
        started = time.monotonic()
        job.wait_for_completion()
        self.assertGreater(time.monotonic() - started, 0.1)
        part.wait_for_status('active', 10)
        part.stop()
        part.pull_full_properties()
        self.assertEqual('stopped', part.get_property('status'))

    def test_strictness_over_https(self) -> None:
        client = self.client()
        cpc = client.cpcs.find(name='CPC1')
        cpc.partitions.create(dict(PART_PROPS, name='dup'))
        exc = self.assertRaises(zhmcclient.HTTPError, cpc.partitions.create,
                                dict(PART_PROPS, name='dup'))
        self.assertEqual((400, 8), (exc.http_status, exc.reason))
        exc = self.assertRaises(zhmcclient.HTTPError, cpc.partitions.create,
                                dict(PART_PROPS, name='n' * 80))
        self.assertEqual((400, 7), (exc.http_status, exc.reason))

    def test_storage_group_route_and_restart(self) -> None:
        client = self.client()
        cpc = client.cpcs.find(name='CPC1')
        ports = self.ports(cpc)
        part = cpc.partitions.create(dict(PART_PROPS, name='inst-sg'))
        sg = client.consoles.console.storage_groups.create({
            'name': 'inst-sg', 'cpc-uri': cpc.uri, 'type': 'fcp',
            'shared': False, 'candidate-adapter-port-uris':
                [ports[0].uri, ports[2].uri]})
        sv = sg.storage_volumes.create({'name': 'root', 'usage': 'boot',
                                        'size': 10.0})
        part.attach_storage_group(sg)
        wwpns = [v.get_property('world-wide-port-name') for v in
                 sg.virtual_storage_resources.list(
                     filter_args={'partition-uri': part.uri})]
        self.svc.vdisk('root', base.dos_mbr())
        self.svc.host('inst-sg', *wwpns)
        self.svc.map('root', 'inst-sg', 0)
        sv.indicate_fulfillment_fcp(self.svc.target_wwpns()[2],
                                    hmc.int_to_fcp_lun(0), ports[0])
        part.update_properties({'boot-device': 'storage-volume',
                                'boot-storage-volume': sv.uri})
        part.start()

        # restart: same objects, same WWPNs, same fulfilment, still active
        self.emu.stop()
        with open(os.path.join(self.state_dir, 'hmc-state.json')) as f:
            self.assertEqual(1, json.load(f)['schema'])
        emu2 = self.start_emulator()
        client2 = self.client(emu2)
        cpc2 = client2.cpcs.find(name='CPC1')
        part2 = cpc2.partitions.find(name='inst-sg')
        self.assertEqual(part.uri, part2.uri)
        self.assertEqual('active', part2.get_property('status'))
        sg2 = client2.consoles.console.storage_groups.find(name='inst-sg')
        self.assertEqual(sorted(wwpns), sorted(
            v.get_property('world-wide-port-name') for v in
            sg2.virtual_storage_resources.list()))
        part2.stop()
        part2.start()
        part2.stop()
        # new objects after a restart get new ids and new WWPNs
        other = cpc2.partitions.create(dict(PART_PROPS, name='other'))
        sg3 = client2.consoles.console.storage_groups.create({
            'name': 'other', 'cpc-uri': cpc2.uri, 'type': 'fcp',
            'candidate-adapter-port-uris': [ports[1].uri]})
        other.attach_storage_group(sg3)
        new = sg3.virtual_storage_resources.list()[0]
        self.assertNotIn(new.get_property('world-wide-port-name'), wwpns)
        part2.detach_storage_group(sg2)
        sg2.delete()
        part2.delete()
        self.assertEqual(['other'], [p.name for p in
                                     cpc2.partitions.list()])

    def test_restart_keeps_hbas(self) -> None:
        client = self.client()
        part = self.hba_boot_setup(client, lun=4)
        wwpn = part.hbas.list()[0].get_property('wwpn')
        self.emu.stop()
        emu2 = self.start_emulator()
        part2 = self.client(emu2).cpcs.find(name='CPC13').partitions.find(
            name='inst-1')
        hbas = part2.hbas.list()
        self.assertEqual([wwpn], [h.get_property('wwpn') for h in hbas])
        part2.start()
        part2.pull_full_properties()
        self.assertEqual('active', part2.get_property('status'))
