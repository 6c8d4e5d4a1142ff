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
"""The SVC emulator: the CLI command layer served over real SSH."""

from __future__ import annotations

import os
from typing import Any

from cinder_dpm_ephemeral.emulators import sshd
from cinder_dpm_ephemeral.emulators import volume_host
from cinder_dpm_ephemeral.emulators.svc import cli


class SVCEmulator:
    """An emulated Storwize/SVC system reachable over SSH on ``listen``.

    ``array_kwargs`` go to :class:`cli.SVCArray` (pools, copy-rate time
    scale, latency and failure injection).
    """

    def __init__(self, state_dir: str | os.PathLike[str],
                 login: tuple[str, str] = ('superuser', 'passw0rd'),
                 listen: tuple[str, int] = ('127.0.0.1', 0),
                 **array_kwargs: Any) -> None:
        self.state_dir = str(state_dir)
        os.makedirs(self.state_dir, exist_ok=True)
        # the emulated volume host's ports, for the volume service to read
        # (it may run as a user who cannot write here)
        volume_host.ensure(self.state_dir)
        self.array = cli.SVCArray(state_dir=self.state_dir, **array_kwargs)
        self.ssh = sshd.SSHCommandServer(self._run, self.state_dir, login,
                                         listen)

    def _run(self, argv: list[str]) -> tuple[str, str, int]:
        return self.array.run(argv)

    def start(self) -> SVCEmulator:
        self.ssh.start()
        return self

    def stop(self) -> None:
        self.ssh.stop()
        close = getattr(self.array, 'close', None)
        if close is not None:
            close()

    @property
    def port(self) -> int:
        return self.ssh.port

    @property
    def known_hosts_path(self) -> str:
        return self.ssh.known_hosts_path

    def inventory(self) -> dict[str, Any]:
        return self.array.inventory()

    def set_faults(self, rate: float, seed: int | None = None,
                   modes: dict[str, float] | None = None,
                   slow_seconds: float = 1.0) -> None:
        """Random faults of every CLI command (:data:`cli.SVC_FAULT_MODES`)."""
        self.array.set_faults(rate, seed, modes, slow_seconds)

    def fault_stats(self) -> dict[str, Any]:
        return self.array.fault_stats()

    def set_write_faults(self, rate: float, seed: int | None = None) -> None:
        """Write errors on a share of LUN opens (the data path)."""
        self.array.luns.set_write_faults(rate, seed)

    def calls_made(self) -> int:
        """CLI commands run so far (each one SSH exec round trip)."""
        return self.array.commands_run
