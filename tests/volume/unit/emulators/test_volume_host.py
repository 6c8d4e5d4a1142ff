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
"""The emulated volume host's identity, shared through the state dir."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import fixtures
import testtools

from cinder_dpm_ephemeral.emulators import volume_host
from cinder_dpm_ephemeral.emulators.powerflex import gateway


ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.dirname(os.path.abspath(__file__))))))

_ENSURE = ('import json, sys\n'
           'from cinder_dpm_ephemeral.emulators import volume_host\n'
           'print(json.dumps(volume_host.ensure(sys.argv[1])))\n')


class VolumeHostTest(testtools.TestCase):

    def setUp(self) -> None:
        super().setUp()
        self.dir = self.useFixture(fixtures.TempDir()).path
        self.out = self.useFixture(fixtures.TempDir()).path

    def test_made_once_and_kept(self) -> None:
        first = volume_host.ensure(self.dir)
        self.assertEqual(first, volume_host.ensure(self.dir))
        self.assertEqual(first, volume_host.load(self.dir))
        for wwpn in first['wwpns']:
            self.assertRegex(wwpn, re.compile('^c05076[0-9a-f]{10}$'))
        self.assertEqual(2, len(set(first['wwpns'])))
        # readable by a volume service running as another user
        self.assertEqual(0o644, os.stat(os.path.join(
            self.dir, volume_host.FILE)).st_mode & 0o777)

    def test_processes_racing_agree(self) -> None:
        # fresh interpreters (a fork of the eventlet-patched test worker
        # can hang), started together; each answers into a file, not a
        # pipe: a greenthread another test left listening on a closed fd
        # makes eventlet refuse a read on the reused fd number
        env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep +
                   os.environ.get('PYTHONPATH', ''))
        outs = [os.path.join(self.out, 'p%d.json' % i) for i in range(6)]
        procs = []
        for path in outs:
            with open(path, 'w') as f:
                procs.append(subprocess.Popen(
                    [sys.executable, '-c', _ENSURE, self.dir],
                    stdout=f, env=env, cwd=ROOT))
        got = []
        for p, path in zip(procs, outs, strict=True):
            self.assertEqual(0, p.wait(timeout=60))
            with open(path) as f:
                got.append(json.load(f))
        self.assertEqual(1, len({repr(g) for g in got}), got)
        self.assertEqual([volume_host.FILE], os.listdir(self.dir))

    def test_only_what_the_host_lacks_is_added(self) -> None:
        ident = volume_host.ensure(self.dir)
        bare = {'host': 'cinder-1', 'initiator': 'iqn.x', 'wwpns': []}
        props = volume_host.connector(self.dir, bare)
        self.assertEqual(ident['wwpns'], props['wwpns'])
        self.assertEqual(ident['sdc_guid'], props['sdc_guid'])
        self.assertEqual(('cinder-1', 'iqn.x'),
                         (props['host'], props['initiator']))
        self.assertEqual([], bare['wwpns'])     # the caller's is untouched
        real = {'host': 'cinder-1', 'wwpns': ['5005076801000001'],
                'sdc_guid': 'a-real-sdc'}
        props = volume_host.connector(self.dir, real)
        self.assertEqual((['5005076801000001'], 'a-real-sdc'),
                         (props['wwpns'], props['sdc_guid']))

    def test_powerflex_registers_the_sdc_only_when_asked(self) -> None:
        plain = gateway.PowerFlexGateway(os.path.join(self.dir, 'a'))
        self.assertEqual([], plain.array.sdcs())
        self.assertFalse(os.path.exists(os.path.join(self.dir, 'a',
                                                     volume_host.FILE)))
        state = os.path.join(self.dir, 'b')
        gw = gateway.PowerFlexGateway(state, volume_host=True)
        [sdc] = gw.array.sdcs()
        self.assertEqual((volume_host.load(state)['sdc_guid'],
                          volume_host.SDC_NAME), (sdc['sdcGuid'], sdc['name']))
        # a restart on the same state keeps one SDC, the same
        again = gateway.PowerFlexGateway(state, volume_host=True)
        self.assertEqual([sdc['id']], [s['id'] for s in again.array.sdcs()])
