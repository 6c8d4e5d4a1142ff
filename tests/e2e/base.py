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
"""One cloud per test run, the ``openstack`` command, and what lies beneath.

The cloud (cinder_dpm_ephemeral.testing.cloud) comes up once per run in
``.cloud-e2e/`` (or ``$DPM_E2E_CLOUD_DIR``), on ports moved by
``E2E_PORT_OFFSET`` so that it does not meet a cloud a user runs from
``.cloud/``, and goes down when the test process exits (stestr runs this
suite in one worker), shared by every test class of the suite. A cloud
left by an interrupted run is ended first. Tests drive it with the real
``openstack`` client as the ``dpm-demo`` user (each command a process of
its own, forked from one that loaded the client once: :mod:`.osc`), and
look under it the way an operator would: the SVC's CLI over SSH, the
HMC's Web Services API through zhmcclient, Glance's access log.
"""

from __future__ import annotations

import atexit
import fcntl
import json
import os
import pathlib
import shutil
import subprocess
import threading
import time
from typing import Any

import fixtures
import paramiko
import testtools
import zhmcclient

from cinder_dpm_ephemeral.testing.cloud import cloud
from cinder_dpm_ephemeral.testing.cloud import config
from cinder_dpm_ephemeral.testing.cloud import layout as lay
from cinder_dpm_ephemeral.testing.cloud import services as svcs
from tests.e2e import osc

E2E_PORT_OFFSET = int(os.environ.get('DPM_E2E_PORT_OFFSET', '100'))

_lock = threading.Lock()
_cloud: Cloud | None = None
_failure: str | None = None


class Cloud:
    """A running cloud and ways to look at it."""

    def __init__(self, lo: lay.Layout, timings: dict[str, float]) -> None:
        self.lo = lo
        self.timings = timings
        self.env = dict(os.environ)
        self.env.update({'OS_CLIENT_CONFIG_FILE': str(lo.clouds_yaml),
                         'OS_CLOUD': 'dpm-demo'})
        for k in ('OS_AUTH_URL', 'OS_USERNAME', 'OS_PASSWORD',
                  'OS_PROJECT_NAME', 'OS_TOKEN'):
            self.env.pop(k, None)
        self._osc = osc.Zygote()

    # -- the user's command -------------------------------------------------
    def openstack(self, *args: str, admin: bool = False,
                  check: bool = True, timeout: float = 600
                  ) -> subprocess.CompletedProcess[str]:
        proc = self._osc.run(['--os-cloud',
                              'dpm-demo-admin' if admin else 'dpm-demo',
                              *args], self.env, timeout)
        if check and proc.returncode != 0:
            raise AssertionError(
                f'openstack {" ".join(args)} failed ({proc.returncode}):\n'
                f'{proc.stdout}{proc.stderr}')
        return proc

    def close(self) -> None:
        self._osc.close()

    def json(self, *args: str, admin: bool = False) -> Any:
        return json.loads(self.openstack(*args, '-f', 'json',
                                         admin=admin).stdout)

    # -- Glance's side --------------------------------------------------------
    def served(self, service: str, request: str) -> int:
        """Requests starting with ``request`` that ``service`` answered 200."""
        log = self.lo.logs / f'{service}-access.log'
        with open(log) as f:
            return sum(1 for line in f
                       if f'"{request}' in line and '" 200 ' in line)

    def glance_downloads(self, image_id: str) -> int:
        """Image data downloads Glance served for ``image_id``."""
        return self.served('glance-api', f'GET /v2/images/{image_id}/file ')

    # -- the SVC, as its administrator sees it --------------------------------
    def svc(self, command: str) -> list[dict[str, str]]:
        """``command -delim !`` on the SVC emulator's CLI, parsed."""
        state = self.lo.data / 'emulators' / 'svc'
        client = paramiko.SSHClient()
        client.load_host_keys(str(state / 'known_hosts'))
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        client.connect(lay.HOST, port=self.lo.ports['svc'],
                       username='superuser',
                       password=self.lo.passwords['svc'],
                       look_for_keys=False, allow_agent=False, timeout=30)
        try:
            _in, out, err = client.exec_command(f'{command} -delim !',
                                                timeout=60)
            text = out.read().decode()
            if out.channel.recv_exit_status() != 0:
                raise AssertionError(f'SVC {command}: {err.read().decode()}')
        finally:
            client.close()
        rows = [line.split('!') for line in text.splitlines() if line]
        if not rows:
            return []
        return [dict(zip(rows[0], r, strict=False)) for r in rows[1:]]

    # -- the HMC, through its Web Services API ------------------------------
    def hmc_cpc(self) -> tuple[zhmcclient.Session, zhmcclient.Cpc]:
        dpm = config.dpm_compute(self.lo)['dpm']
        session = zhmcclient.Session(
            lay.HOST, dpm['hmc_username'], dpm['hmc_password'],
            port=dpm['hmc_port'], verify_cert=dpm['hmc_ca_certs'])
        client = zhmcclient.Client(session)
        cpc = client.cpcs.find(**{'object-id': dpm['cpc_object_id']})
        return session, cpc

    def partitions(self) -> dict[str, str]:
        """Partition name -> status on the emulated CPC."""
        session, cpc = self.hmc_cpc()
        try:
            return {p.get_property('name'): p.get_property('status')
                    for p in cpc.partitions.list(full_properties=True)}
        finally:
            session.logoff()

    def storage_groups(self) -> list[str]:
        session, cpc = self.hmc_cpc()
        try:
            try:
                if not cpc.feature_enabled('dpm-storage-management'):
                    return []
            except ValueError:  # a z13-like CPC: no such feature at all
                return []
            console = zhmcclient.Client(session).consoles.console
            return [g.name for g in console.storage_groups.list()]
        finally:
            session.logoff()


def e2e_dir() -> pathlib.Path:
    return pathlib.Path(os.environ.get('DPM_E2E_CLOUD_DIR')
                        or lay.REPO / '.cloud-e2e')


def _layout() -> lay.Layout:
    os.environ['DPM_CLOUD_PORT_OFFSET'] = str(E2E_PORT_OFFSET)  # for Layout
    return lay.Layout.load(e2e_dir())


_LOCK_WAIT = 1800.0
_lock_file: Any = None


def _take_suite_lock() -> None:
    """One e2e run at a time per checkout.

    A second run (several people share the checkout; ``./run test`` runs
    this suite) would end the first one's cloud as a leftover: it waits
    for the first to finish instead, up to half an hour.
    """
    global _lock_file
    path = e2e_dir().with_name(e2e_dir().name + '.lock')
    _lock_file = open(path, 'a+')
    deadline = time.monotonic() + _LOCK_WAIT
    while True:
        try:
            fcntl.flock(_lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f'another end-to-end run holds {path} (its cloud in '
                    f'{e2e_dir()}) for more than {_LOCK_WAIT:.0f} s; let it '
                    'finish, or set DPM_E2E_CLOUD_DIR and '
                    'DPM_E2E_PORT_OFFSET for a second one') from None
            time.sleep(5)


def _release_suite_lock() -> None:
    global _lock_file
    if _lock_file is not None:
        fcntl.flock(_lock_file, fcntl.LOCK_UN)
        _lock_file.close()
        _lock_file = None


def bring_up() -> Cloud:
    """A new cloud in the suite's directory (a leftover one ended first)."""
    _take_suite_lock()
    lo = _layout()
    cloud.down(lo)
    shutil.rmtree(lo.root, ignore_errors=True)
    lo = _layout()
    try:
        timings = cloud.up(lo)
    except svcs.ServiceError as exc:
        cloud.down(lo)
        _release_suite_lock()
        raise AssertionError(
            f'the cloud did not come up: {exc}\n(logs in {lo.logs})'
        ) from None
    return Cloud(lo, timings)


def take_down() -> None:
    """End the suite's cloud; its directory stays for a look at the logs."""
    global _cloud
    with _lock:
        try:
            if _cloud is not None:
                try:
                    _cloud.close()
                finally:
                    cloud.down(_layout())
        finally:
            _cloud = None
            _release_suite_lock()


def get_cloud() -> Cloud:
    """The process's cloud, brought up by the first test that needs it."""
    global _cloud, _failure
    with _lock:
        if _failure:
            raise AssertionError(_failure)
        if _cloud is None:
            atexit.register(take_down)
            try:
                _cloud = bring_up()
            except AssertionError as exc:
                _failure = str(exc)
                raise
        return _cloud


def wait_for(what: str, check: Any, timeout: float = 120,
             interval: float = 2) -> Any:
    """check()'s first true result; a test failure after timeout s."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f'{what}: not after {timeout:.0f} s')
        time.sleep(interval)


class CloudTestCase(testtools.TestCase):
    """Tests against one cloud, as the demo project's member.

    The cloud comes up with the suite's first test and goes down when the
    test process exits (stestr runs the suite in one process), so that
    every test class of the suite shares it. A test that stops, restarts or
    reconfigures a service puts it back as it found it (addCleanup).
    """

    def setUp(self) -> None:
        super().setUp()
        self.cloud = get_cloud()
        self.work = pathlib.Path(self.useFixture(fixtures.TempDir()).path)

    # -- users' steps -------------------------------------------------------
    def upload(self, image: Any, name: str) -> str:
        out = self.cloud.json(
            'image', 'create', '--disk-format', image.disk_format,
            '--container-format', image.container_format,
            '--file', image.path, name)
        return out['id']

    def dpm_flavor(self, name: str, disk: int = 1, ephemeral: int = 0,
                   swap: int = 0) -> str:
        args = ['flavor', 'create', '--ram', '2048', '--vcpus', '1',
                '--disk', str(disk), '--property',
                'dpm:boot_from_volume=true']
        if ephemeral or swap:
            # doc/nova-filter.md: DPM hosts report no DISK_GB
            args += ['--ephemeral', str(ephemeral), '--swap', str(swap),
                     '--property', 'resources:DISK_GB=0']
        return self.cloud.json(*args, name, admin=True)['id']

    def delete_server(self, server_id: str) -> None:
        self.cloud.openstack('server', 'delete', '--wait', server_id)

    def goldens(self, image_id: str) -> list[dict[str, Any]]:
        return self.cloud.json('volume', 'list', '--all-projects', '--name',
                               f'dpm-golden-{image_id}', admin=True)

    def wait_for(self, what: str, check: Any, timeout: float = 120,
                 interval: float = 2) -> Any:
        return wait_for(what, check, timeout, interval)
