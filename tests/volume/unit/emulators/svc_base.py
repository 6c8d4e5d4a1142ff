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
"""Helpers for the SVC emulator tests: a step clock, an array in a temp
dir, and Cinder's in-tree Storwize FC driver wired to the array.

The driver is Cinder's own ``StorwizeSVCFCDriver``, unmodified except for
its one I/O method, ``_run_ssh``: instead of paramiko it joins the command
list the way the driver does, splits it the way a shell would
(``shlex.split``, which strips the driver's quotes as the real SVC's shell
does), runs it on the emulated array, and raises
``ProcessExecutionError`` on a non-zero status like
``processutils.ssh_execute``.
"""

from __future__ import annotations

import shlex
from typing import Any

import fixtures
import tenacity
from oslo_concurrency import processutils

from cinder import context
from cinder import utils as cinder_utils
from cinder.tests.unit import test
from cinder.volume import configuration as conf
from cinder.volume import driver as volume_driver
from cinder.volume.drivers.ibm.storwize_svc import storwize_svc_common
from cinder.volume.drivers.ibm.storwize_svc import storwize_svc_fc
from cinder.volume.drivers.san import san
from cinder.volume import volume_types

from cinder_dpm_ephemeral.emulators.svc.cli import SVCArray
from tests.volume.unit import driver_objects

GiB = 1024 ** 3
BACKEND = 'svc_emu'
POOL = 'pool0'
SYSTEM = 'svc-test-sys'
CONNECTOR = {'host': 'dpm-compute-1', 'wwpns': ['c05076ffe5000a01',
                                                'c05076ffe5000a02'],
             'initiator': 'iqn.1993-08.org.debian:01:abc'}


class StepClock:
    """A clock that moves ``step`` seconds each time it is read."""

    def __init__(self, step: float = 0.0, start: float = 1.7e9) -> None:
        self.now = start
        self.step = step

    def __call__(self) -> float:
        self.now += self.step
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def keyed(inv: dict[str, Any]) -> dict[str, Any]:
    """``SVCArray.inventory()`` keyed by name, for terse assertions."""
    return {
        'vdisks': {v['name']: dict(v, uid=v['vdisk_UID'])
                   for v in inv['vdisks']},
        'hosts': {h['name']: h for h in inv['hosts']},
        'mappings': [{'host': m['host_name'], 'vdisk': m['vdisk_name'],
                      'scsi_id': m['scsi_id']}
                     for m in inv['host_mappings']],
        'fcmaps': {m['name']: m for m in inv['fcmaps']},
        'fcconsistgrps': inv['fcconsistgrps'],
        'luns': inv['luns'],
    }


def run_ssh_on(array: SVCArray, cmd_list: list[str],
               check_exit_code: bool = True) -> tuple[str, str]:
    """What ``_run_ssh`` + ``processutils.ssh_execute`` do, minus SSH."""
    cinder_utils.check_ssh_injection(cmd_list)
    command = ' '.join(cmd_list)
    out, err, status = array.run(shlex.split(command))
    if status and check_exit_code:
        raise processutils.ProcessExecutionError(
            exit_code=status, stdout=out, stderr=err, cmd=command)
    return out, err


class EmulatedFCDriver(storwize_svc_fc.StorwizeSVCFCDriver):
    """The in-tree FC driver whose SSH runs on an :class:`SVCArray`."""

    array: SVCArray

    def _run_ssh(self, cmd_list: list[str], check_exit_code: bool = True,
                 attempts: int = 1) -> tuple[str, str]:
        return run_ssh_on(self.array, cmd_list, check_exit_code)


class ArrayTestCase(test.TestCase):
    """An emulated array in a temp dir, with a controllable clock."""

    POOL_BYTES = 64 * GiB

    def setUp(self) -> None:
        super().setUp()
        self.state_dir = self.useFixture(fixtures.TempDir()).path
        self.clock = StepClock()
        self.array = self.make_array()

    def make_array(self, **kwargs: Any) -> SVCArray:
        kwargs.setdefault('system_name', SYSTEM)
        kwargs.setdefault('pools', {POOL: self.POOL_BYTES})
        kwargs.setdefault('clock', self.clock)
        return SVCArray(self.state_dir, **kwargs)

    def inv(self) -> dict[str, Any]:
        return keyed(self.array.inventory())

    def cli(self, command: str) -> tuple[str, str, int]:
        return self.array.run(shlex.split(command))

    def ok(self, command: str) -> str:
        out, err, status = self.cli(command)
        self.assertEqual(0, status, err)
        self.assertEqual('', err)
        return out

    def fails(self, command: str, code: str) -> str:
        out, err, status = self.cli(command)
        self.assertEqual(1, status, out)
        self.assertEqual('', out)
        self.assertTrue(err.startswith(code + ' '), err)
        return err

    def info(self, command: str, with_header: bool = True
             ) -> storwize_svc_common.CLIResponse:
        """Run and parse with the driver's own ``CLIResponse``."""
        argv = shlex.split(command)
        out, err, status = self.array.run(argv)
        self.assertEqual(0, status, err)
        return storwize_svc_common.CLIResponse((out, err), ssh_cmd=argv,
                                               delim='!',
                                               with_header=with_header)


class DriverTestCase(driver_objects.DriverObjects, ArrayTestCase):
    """The in-tree Storwize FC driver set up against the emulated array."""

    FLASHCOPY_RATE = 50
    VOLUME_SIZE = 1
    volume_host = f'cinder-volume@{BACKEND}#{POOL}'

    def setUp(self) -> None:
        super().setUp()
        # driver construction sleeps 1 s; retries wait through tenacity
        self.mock_object(tenacity.nap, 'sleep')
        self.ctxt = context.get_admin_context()
        self.thin_type = volume_types.create(self.ctxt, 'svc-thin', {})
        self.thick_type = volume_types.create(
            self.ctxt, 'svc-thick', {'drivers:rsize': '-1'})
        self.driver = self.make_driver()

    def configure(self, **extra: Any) -> conf.Configuration:
        cfg = conf.Configuration(
            volume_driver.volume_opts + san.san_opts
            + storwize_svc_common.storwize_svc_opts
            + storwize_svc_fc.storwize_svc_fc_opts, config_group=BACKEND)
        options = {
            'volume_backend_name': BACKEND,
            'san_ip': '127.0.0.1',
            'san_ssh_port': 22,
            'san_login': 'superuser',
            'san_password': 'passw0rd',
            'storwize_svc_volpool_name': [POOL],
            'storwize_svc_flashcopy_rate': self.FLASHCOPY_RATE,
            'storwize_svc_flashcopy_timeout': 60,
        }
        options.update(extra)
        for name, value in options.items():
            self.override_config(name, value, group=BACKEND)
        return cfg

    def make_driver(self, **extra: Any) -> EmulatedFCDriver:
        with fixtures.MonkeyPatch('time.sleep', lambda s: None):
            drv = EmulatedFCDriver(configuration=self.configure(**extra),
                                   host='cinder-volume@%s' % BACKEND)
        drv.array = self.array
        drv.db = self.db_api()
        drv.do_setup(self.ctxt)
        drv.check_for_setup_error()
        drv._check_callhome_loop.stop()
        drv._helpers.check_fcmapping_interval = 0
        return drv

    @staticmethod
    def db_api() -> Any:
        from cinder.db import api as db_api
        return db_api

    # -- Cinder objects ---
    def finish_copies(self) -> None:
        """Let every background copy run to completion."""
        self.clock.advance(10 ** 7)
        self.array.tick()

    def assertArrayEmpty(self) -> None:  # noqa: N802 (unittest style)
        inv = self.inv()
        self.assertEqual({}, inv['vdisks'])
        self.assertEqual({}, inv['hosts'])
        self.assertEqual([], inv['mappings'])
        self.assertEqual({}, inv['fcmaps'])
        self.assertEqual([], inv['luns'])
