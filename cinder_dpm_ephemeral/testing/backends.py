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
"""Emulated arrays wired to Cinder backend sections, for tests and demos."""

from __future__ import annotations

import os
import secrets
from typing import Any, Self

from cinder_dpm_ephemeral.emulators import lunstore
from cinder_dpm_ephemeral.emulators import process

SVC_DRIVER = 'cinder_dpm_ephemeral.svc.driver.StorwizeEphemeralDriver'
SVC_INTREE_DRIVER = ('cinder.volume.drivers.ibm.storwize_svc.'
                     'storwize_svc_fc.StorwizeSVCFCDriver')


class _EmulatedBackend:
    """An array emulator process and the LUN store it keeps its bytes in."""

    state_dir: str
    emulator: process.EmulatorProcess

    def start(self) -> Self:
        self.emulator.start()
        return self

    def stop(self) -> None:
        self.emulator.stop()

    @property
    def luns(self) -> lunstore.LunStore:
        return lunstore.LunStore(self.state_dir)


class SVCBackend(_EmulatedBackend):
    """An SVC emulator on 127.0.0.1 and the cinder.conf that reaches it."""

    def __init__(self, work_dir: str, driver: str = SVC_DRIVER,
                 pool: str = 'pool0', pool_bytes: int = 10 * 1024 ** 4,
                 emulate_data_path: bool = True,
                 **array_kwargs: Any) -> None:
        self.state_dir = os.path.join(work_dir, 'svc')
        self.driver = driver
        self.pool = pool
        self.emulate_data_path = emulate_data_path
        self.login = ('superuser', secrets.token_urlsafe(12))
        # The array runs in its own process, as a real one would.
        self.emulator = process.EmulatorProcess(
            'svc', self.state_dir, self.login, pools={pool: pool_bytes},
            **array_kwargs)

    def backend_options(self, name: str = 'svc') -> dict[str, Any]:
        opts: dict[str, Any] = {
            'volume_driver': self.driver,
            'volume_backend_name': name,
            'san_ip': '127.0.0.1',
            'san_ssh_port': self.emulator.port,
            'san_login': self.login[0],
            'san_password': self.login[1],
            'storwize_svc_volpool_name': self.pool,
        }
        if self.emulate_data_path:
            opts['dpm_ephemeral_emulator_state_dir'] = self.state_dir
        return opts

    def default_options(self) -> dict[str, Any]:
        # Host keys are verified: the emulator's key is the only one known.
        return {'ssh_hosts_key_file': self.emulator.known_hosts_path,
                'strict_ssh_host_key_policy': True}


POWERFLEX_DRIVER = ('cinder_dpm_ephemeral.powerflex.driver.'
                    'PowerFlexEphemeralDriver')
POWERFLEX_INTREE_DRIVER = ('cinder.volume.drivers.dell_emc.powerflex.driver.'
                           'PowerFlexDriver')


class PowerFlexBackend(_EmulatedBackend):
    """A PowerFlex gateway emulator on 127.0.0.1 and its cinder.conf."""

    def __init__(self, work_dir: str, driver: str = POWERFLEX_DRIVER,
                 domain: str = 'domain1', pool: str = 'pool1',
                 capacity_gb: int = 100 * 1024,
                 sdcs: tuple[str, ...] = (),
                 emulate_data_path: bool = True, **gw_kwargs: Any) -> None:
        self.state_dir = os.path.join(work_dir, 'powerflex')
        self.driver = driver
        self.domain, self.pool = domain, pool
        self.emulate_data_path = emulate_data_path
        self.login = ('admin', secrets.token_urlsafe(12))
        self.emulator = process.EmulatorProcess(
            'powerflex', self.state_dir, self.login,
            pools=[{'domain': domain, 'name': pool,
                    'capacity_gb': capacity_gb}],
            sdcs=list(sdcs), volume_host=emulate_data_path, **gw_kwargs)

    def backend_options(self, name: str = 'powerflex') -> dict[str, Any]:
        opts = dict(self.emulator.call('cinder_options',
                                       [f'{self.domain}:{self.pool}']))
        opts['volume_driver'] = self.driver
        opts['volume_backend_name'] = name
        if self.emulate_data_path:
            opts['dpm_ephemeral_emulator_state_dir'] = self.state_dir
        return opts

    def default_options(self) -> dict[str, Any]:
        return {}
