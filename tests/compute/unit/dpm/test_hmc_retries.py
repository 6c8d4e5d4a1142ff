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
"""The DPM driver's HMC session (``hmc.RetryingSession``) against the HMC
emulator's process with faults armed: it sends again what the HMC says
it did not do, and nothing that may have taken effect."""

from __future__ import annotations

import time
from typing import Any

import zhmcclient

from cinder_dpm_ephemeral.emulators import faults
from nova_shim.virt.dpm import hmc
from tests.compute.unit.emulators_hmc.base import PART_PROPS
from tests.compute.unit.emulators_hmc.test_https import LOGIN
from tests.compute.unit.emulators_hmc.test_https import NO_RETRY
from tests.compute.unit.emulators_hmc.test_https import HTTPSTestCase


class TestRetryingSession(HTTPSTestCase):

    def session(self, cls: Any = hmc.RetryingSession, verify: Any = None,
                **kwargs: Any) -> zhmcclient.Session:
        if cls is hmc.RetryingSession:
            kwargs.setdefault('retries', 8)
            kwargs.setdefault('interval', 0.0)
        session = cls('127.0.0.1', *LOGIN, port=self.emu.port,
                      verify_cert=verify or self.emu.cert_path,
                      retry_timeout_config=NO_RETRY, **kwargs)
        self.addCleanup(self.disarm_and_logoff, session)
        return session

    def disarm_and_logoff(self, session: zhmcclient.Session) -> None:
        faults.write_control_file(self.state_dir, 0.0)
        session.logoff()

    def cpc(self, session: zhmcclient.Session) -> zhmcclient.Cpc:
        return zhmcclient.Client(session).cpcs.find(name='CPC1')

    def test_503_and_busy_sent_again(self) -> None:
        plain = self.cpc(self.session(zhmcclient.Session))
        ours = self.cpc(self.session())
        faults.write_control_file(self.state_dir, 0.5, seed=3,
                                  modes={'http503': 1.0})
        # zhmcclient alone fails at the first 503 ...
        self.assertRaises(zhmcclient.HTTPError,
                          lambda: [plain.partitions.list()
                                   for _ in range(10)])
        # ... ours sends it again: reads and a create go through
        for _ in range(10):
            ours.partitions.list()
        ours.partitions.create(dict(PART_PROPS, name='p1'))
        time.sleep(1.0)     # the stats file lags up to 0.5 s
        self.assertGreaterEqual(
            faults.read_stats(self.state_dir)['injected']['http503'], 2)
        faults.write_control_file(self.state_dir, 0.0)
        self.assertEqual(['p1'], [p.name for p in ours.partitions.list()])

    def test_query_sent_again_after_500_post_not(self) -> None:
        ours = self.cpc(self.session())
        ours.partitions.list()
        faults.write_control_file(self.state_dir, 0.5, seed=3,
                                  modes={'http500': 1.0})
        for _ in range(10):
            ours.partitions.list()
        # a POST that failed with a 500 may have done something: not sent
        # again (at rate 1 the first try fails and is the only one)
        faults.write_control_file(self.state_dir, 1.0, seed=3,
                                  modes={'http500': 1.0})
        exc = self.assertRaises(zhmcclient.HTTPError, ours.partitions.create,
                                dict(PART_PROPS, name='p500'))
        self.assertEqual(500, exc.http_status)
        time.sleep(1.0)     # the stats file lags up to 0.5 s
        # counted since the second arming: the POST, once
        self.assertEqual(
            1, faults.read_stats(self.state_dir)['injected']['http500'])

    def test_lost_post_not_sent_again(self) -> None:
        cpc = self.cpc(self.session())
        cpc.partitions.list()
        faults.write_control_file(self.state_dir, 1.0, seed=3,
                                  modes={'timeout_after': 1.0},
                                  timeout_seconds=0)
        self.assertRaises(zhmcclient.ConnectionError, cpc.partitions.create,
                          dict(PART_PROPS, name='once'))
        faults.write_control_file(self.state_dir, 0.0)
        # created once (the HMC acted); a second create would have been
        # refused as a duplicate name or made a second partition
        self.assertEqual(['once'], [p.name for p in cpc.partitions.list()])

    def test_bulk_read_sent_again_after_lost_answer(self) -> None:
        # list(full_properties=True) reads the objects through one POST of
        # Submit Requests (the aggregation service), all of it GETs: a
        # query, sent again after a lost answer like a GET.
        cpc = self.cpc(self.session())
        cpc.partitions.create(dict(PART_PROPS, name='pb'))
        faults.write_control_file(self.state_dir, 0.5, seed=3,
                                  modes={'timeout_after': 1.0},
                                  timeout_seconds=0)
        for _ in range(10):
            (part,) = cpc.partitions.list(full_properties=True)
            self.assertEqual('stopped', part.get_property('status'))
        time.sleep(1.0)     # the stats file lags up to 0.5 s
        self.assertGreaterEqual(
            faults.read_stats(self.state_dir)['injected']['timeout_after'],
            5)

    def test_untrusted_certificate_not_retried(self) -> None:
        session = hmc.RetryingSession(
            '127.0.0.1', *LOGIN, port=self.emu.port, verify_cert=True,
            retry_timeout_config=NO_RETRY, retries=3, interval=5.0)
        t = time.monotonic()
        self.assertRaises(zhmcclient.ConnectionError,
                          zhmcclient.Client(session).cpcs.list)
        self.assertLess(time.monotonic() - t, 5.0)
