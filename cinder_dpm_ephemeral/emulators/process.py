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
"""Run an emulated array in its own process, and talk to it.

A real array is another machine; Cinder's services run under eventlet,
which turns threads into green threads and would make an in-process
emulator share its hub (and block it with file locks and copies). So tests,
the demo and benchmarks start the emulator as a child process
(``python -m cinder_dpm_ephemeral.emulators.process``), which speaks SSH or
HTTPS like the real thing, and keep a small control pipe to it for what no
real array offers: the inventory of everything it holds, and knobs for
limits and fault injection.

Control protocol: one JSON object per line on the child's stdin, one JSON
answer per line on its stdout. The password travels on that pipe, never on
a command line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from typing import Any


class EmulatorError(Exception):
    """The emulator process failed or answered with an error."""


class EmulatorProcess:
    """A child process running an SVC or PowerFlex emulator."""

    def __init__(self, kind: str, state_dir: str, login: tuple[str, str],
                 listen: tuple[str, int] = ('127.0.0.1', 0),
                 **kwargs: Any) -> None:
        if kind not in ('svc', 'powerflex'):
            raise ValueError(f'unknown emulator kind {kind!r}')
        self.kind = kind
        self.state_dir = state_dir
        self._spec = {'kind': kind, 'state_dir': state_dir,
                      'login': list(login), 'listen': list(listen),
                      'kwargs': kwargs}
        self._proc: subprocess.Popen[str] | None = None
        self._lock = threading.Lock()
        self.info: dict[str, Any] = {}

    # -- life cycle ----------------------------------------------------------
    def start(self) -> EmulatorProcess:
        env = dict(os.environ)
        env.setdefault('PYTHONWARNINGS', 'ignore')
        self._proc = subprocess.Popen(
            [sys.executable, '-m', 'cinder_dpm_ephemeral.emulators.process'],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=None,
            text=True, bufsize=1, env=env)
        self.info = self._request(self._spec)
        return self

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            assert proc.stdin is not None
            proc.stdin.write(json.dumps({'op': 'stop'}) + '\n')
            proc.stdin.flush()
            proc.wait(timeout=15)
        except (OSError, ValueError, subprocess.TimeoutExpired):
            proc.kill()
            proc.wait(timeout=15)

    def __enter__(self) -> EmulatorProcess:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -- control -------------------------------------------------------------
    def _request(self, msg: dict[str, Any]) -> Any:
        with self._lock:
            proc = self._proc
            if proc is None or proc.poll() is not None:
                raise EmulatorError(f'{self.kind} emulator is not running')
            assert proc.stdin is not None and proc.stdout is not None
            proc.stdin.write(json.dumps(msg) + '\n')
            proc.stdin.flush()
            line = proc.stdout.readline()
        if not line:
            raise EmulatorError(f'{self.kind} emulator exited (status '
                                f'{proc.poll()})')
        answer = json.loads(line)
        if 'error' in answer:
            raise EmulatorError(answer['error'])
        return answer['result']

    def call(self, path: str, *args: Any, **kwargs: Any) -> Any:
        """Call ``emulator.<path>(*args, **kwargs)`` in the child."""
        return self._request({'op': 'call', 'path': path, 'args': list(args),
                              'kwargs': kwargs})

    def set(self, path: str, value: Any) -> None:
        """Set ``emulator.<path> = value`` in the child."""
        self._request({'op': 'set', 'path': path, 'value': value})

    def inventory(self) -> dict[str, Any]:
        return self.call('inventory')

    def set_faults(self, rate: float, seed: int | None = None,
                   write_rate: float | None = None,
                   **params: Any) -> None:
        """Random faults in the running emulator (0: none).

        ``rate`` applies to every management call (SVC CLI command,
        PowerFlex REST call; modes and their weights in ``modes=``, mode
        parameters such as ``slow_seconds`` as keywords), ``write_rate``
        (default ``rate``) to opens of a LUN for I/O, which then fail
        every write.
        """
        self.call('set_faults', rate, seed, **params)
        self.call('set_write_faults',
                  rate if write_rate is None else write_rate, seed)

    def fault_stats(self) -> dict[str, Any]:
        """Faults injected so far, per mode."""
        return self.call('fault_stats')

    @property
    def port(self) -> int:
        return int(self.info['port'])

    @property
    def known_hosts_path(self) -> str:
        return self.info['known_hosts_path']

    @property
    def cert_path(self) -> str:
        return self.info['cert_path']


# -- the child ----------------------------------------------------------------
def _resolve(root: Any, path: str) -> tuple[Any, str]:
    parts = path.split('.')
    obj = root
    for p in parts[:-1]:
        obj = getattr(obj, p)
    return obj, parts[-1]


def _make(spec: dict[str, Any]) -> Any:
    login = tuple(spec['login'])
    listen = (spec['listen'][0], int(spec['listen'][1]))
    if spec['kind'] == 'svc':
        from cinder_dpm_ephemeral.emulators.svc import server
        return server.SVCEmulator(spec['state_dir'], login=login,
                                  listen=listen, **spec['kwargs'])
    from cinder_dpm_ephemeral.emulators.powerflex import gateway
    return gateway.PowerFlexGateway(spec['state_dir'], login=login,
                                    listen=listen, **spec['kwargs'])


def _child() -> int:
    out = sys.stdout
    sys.stdout = sys.stderr  # only protocol answers on the real stdout

    def answer(**kw: Any) -> None:
        out.write(json.dumps(kw, default=str) + '\n')
        out.flush()

    spec = json.loads(sys.stdin.readline())
    try:
        emulator = _make(spec).start()
    except Exception as exc:
        answer(error=f'{type(exc).__name__}: {exc}')
        return 1
    answer(result={
        'port': emulator.port,
        'known_hosts_path': getattr(emulator, 'known_hosts_path', None),
        'cert_path': getattr(emulator, 'cert_path', None)})
    for line in sys.stdin:
        msg = json.loads(line)
        op = msg.get('op')
        if op == 'stop':
            break
        try:
            obj, name = _resolve(emulator, msg['path'])
            if op == 'set':
                setattr(obj, name, msg['value'])
                answer(result=None)
            else:
                answer(result=getattr(obj, name)(*msg.get('args', []),
                                                 **msg.get('kwargs', {})))
        except Exception as exc:
            answer(error=f'{type(exc).__name__}: {exc}')
    emulator.stop()
    return 0


if __name__ == '__main__':
    sys.exit(_child())
