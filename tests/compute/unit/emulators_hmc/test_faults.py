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
"""Fault injection into the standalone HMC emulator, through its
control file (``faults.json`` in the state directory), as ``./run faults
--cloud`` arms it beside a running nova-compute."""

from __future__ import annotations

import time
from typing import Any

import zhmcclient

from cinder_dpm_ephemeral.emulators import faults
from tests.compute.unit.emulators_hmc.base import PART_PROPS
from tests.compute.unit.emulators_hmc.test_https import HTTPSTestCase


class TestFaultControl(HTTPSTestCase):

    def arm(self, rate: float, **params: Any) -> None:
        # returns once the emulator (reading it every 0.5 s) applied it
        faults.write_control_file(self.state_dir, rate, seed=7, **params)

    def injected(self, mode: str) -> int:
        """Faults of ``mode`` injected so far (stats lag up to 0.5 s)."""
        time.sleep(1.0)
        return faults.read_stats(self.state_dir)['injected'][mode]

    def test_503_armed_then_disarmed(self) -> None:
        cpc = self.client().cpcs.find(name='CPC1')
        self.arm(1.0, modes={'http503': 1.0})
        exc = self.assertRaises(zhmcclient.HTTPError, cpc.partitions.list)
        # HMC WS API: 503 reason 1, the HMC cannot reach the SE
        self.assertEqual((503, 1), (exc.http_status, exc.reason))
        self.assertGreaterEqual(self.injected('http503'), 1)
        self.arm(0.0)
        self.assertEqual([], cpc.partitions.list())

    def test_lost_answer_before_and_after_the_hmc_acted(self) -> None:
        cpc = self.client().cpcs.find(name='CPC1')
        self.arm(1.0, modes={'timeout_before': 1.0}, timeout_seconds=0)
        self.assertRaises(zhmcclient.ConnectionError, cpc.partitions.create,
                          dict(PART_PROPS, name='before'))
        self.arm(1.0, modes={'timeout_after': 1.0}, timeout_seconds=0)
        self.assertRaises(zhmcclient.ConnectionError, cpc.partitions.create,
                          dict(PART_PROPS, name='after'))
        self.arm(0.0)
        # the request whose answer was lost after the HMC acted took
        # effect; the one lost before did not
        self.assertEqual(['after'],
                         [p.name for p in cpc.partitions.list()])

    def test_no_control_file_no_faults(self) -> None:
        cpc = self.client().cpcs.find(name='CPC1')
        for _ in range(20):
            cpc.partitions.list()
        self.assertEqual({}, faults.read_stats(self.state_dir))
