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
"""Processes of the cloud: start, health checks, stop, with pid files.

Every service runs as its own process in its own process group
(``start_new_session``), its output in ``<cloud>/logs/<name>.log``, its pid
and start time in ``<cloud>/run/<name>.pid``. Each process also carries
``DPM_CLOUD_DIR`` in its environment: ``stop_all`` ends the process groups
it recorded, then any process still carrying this cloud's marker (helpers
that left the group, such as Erlang's ``erl_child_setup``), and nothing
else.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import re
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable

import logging

from cinder_dpm_ephemeral.testing.cloud import layout as lay

LOG = logging.getLogger(__name__)

MARKER = 'DPM_CLOUD_DIR'


class ServiceError(Exception):
    """A service of the cloud did not come up (the message names it)."""


@dataclasses.dataclass
class Service:
    name: str
    argv: list[str]
    env: dict[str, str] = dataclasses.field(default_factory=dict)
    # None when healthy, else what is wrong; None: alive is healthy.
    health: Callable[[], str | None] | None = None
    timeout: float = 180.0
    # A line of its log saying that it gave up while it still runs (Nova's
    # and Cinder's services log a failed start on their top-level logger).
    fatal: str | None = None
    # The port it listens on: must be free before it starts.
    port: int | None = None


def http_health(url: str) -> Callable[[], str | None]:
    def check() -> str | None:
        try:
            # http:// URLs of this cloud only (built from the layout)
            with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310
                code = resp.status
        except urllib.error.HTTPError as exc:
            code = exc.code
        except (OSError, ValueError) as exc:
            return f'{url}: {exc}'
        return None if code < 500 else f'{url} answered HTTP {code}'
    return check


def tcp_health(port: int) -> Callable[[], str | None]:
    def check() -> str | None:
        try:
            socket.create_connection((lay.HOST, port), timeout=2).close()
        except OSError as exc:
            return f'nothing listens on {lay.HOST}:{port} ({exc})'
        return None
    return check


def file_health(path: pathlib.Path) -> Callable[[], str | None]:
    def check() -> str | None:
        return None if path.exists() and path.stat().st_size else (
            f'{path} not written yet')
    return check


# -- pid files ----------------------------------------------------------------
def _start_time(pid: int) -> str | None:
    try:
        with open(f'/proc/{pid}/stat') as f:
            stat = f.read()
    except OSError:
        return None
    return stat.rsplit(')', 1)[1].split()[19]


def _pid_file(lo: lay.Layout, name: str) -> pathlib.Path:
    return lo.run / f'{name}.pid'


def recorded_pid(lo: lay.Layout, name: str) -> int | None:
    """The pid of ``name`` if the recorded process is still that process."""
    try:
        pid_s, started = _pid_file(lo, name).read_text().split()
    except (OSError, ValueError):
        return None
    pid = int(pid_s)
    return pid if _start_time(pid) == started else None


def recorded_names(lo: lay.Layout) -> list[str]:
    if not lo.run.is_dir():
        return []
    return sorted(p.stem for p in lo.run.glob('*.pid'))


def log_tail(lo: lay.Layout, name: str, lines: int = 15) -> str:
    try:
        text = (lo.logs / f'{name}.log').read_text(errors='replace')
    except OSError:
        return '(no log)'
    return '\n'.join(text.splitlines()[-lines:])


SUDO_SHIM = '''#!/bin/sh
# This cloud's services run as root, where devstack runs them as a user
# with sudo (oslo.privsep and rootwrap start helpers with "sudo ...").
# As root, sudo would only change PATH (its secure_path lacks the venv's
# cinder-rootwrap and privsep-helper): run the command itself.
while [ $# -gt 0 ]; do
    case "$1" in
        --) shift; break ;;
        -u|-g|-C) shift 2 ;;
        -*) shift ;;
        *) break ;;
    esac
done
exec "$@"
'''


def service_env(lo: lay.Layout) -> dict[str, str]:
    """The environment of every process of the cloud."""
    env = dict(os.environ)
    env[MARKER] = str(lo.root)
    path = [lay.venv_bin('').rstrip('/'), env.get('PATH', '/usr/bin:/bin')]
    if os.geteuid() == 0:
        shim = lo.root / 'bin' / 'sudo'
        if not shim.exists():
            shim.parent.mkdir(parents=True, exist_ok=True)
            shim.write_text(SUDO_SHIM)
            shim.chmod(0o755)
        path.insert(0, str(shim.parent))
    env['PATH'] = os.pathsep.join(path)
    return env


# -- start --------------------------------------------------------------------
_URL_PASSWORD = re.compile(r'(://[^:/@\s]+:)[^@\s]+@')


def shown(argv: list[str]) -> str:
    """A command line for a log: URL passwords (transport URLs) masked."""
    return _URL_PASSWORD.sub(r'\1***@', ' '.join(argv))


def start(lo: lay.Layout, svc: Service) -> int:
    pid = recorded_pid(lo, svc.name)
    if pid is not None:
        LOG.info('%s already running (pid %d)', svc.name, pid)
        return pid
    if svc.port is not None and tcp_health(svc.port)() is None:
        raise ServiceError(
            f'service {svc.name} cannot start: {lay.HOST}:{svc.port} is '
            'already in use by a process this cloud did not start (another '
            'cloud, or a leftover of one?); end it, or move this cloud\'s '
            'ports with DPM_CLOUD_PORT_OFFSET')
    lo.run.mkdir(parents=True, exist_ok=True)
    lo.logs.mkdir(parents=True, exist_ok=True)
    env = service_env(lo)
    env.update(svc.env)
    env.setdefault('PYTHONWARNINGS', 'ignore')
    with open(lo.logs / f'{svc.name}.log', 'ab') as log:
        log.write(f'==== {time.ctime()}: {shown(svc.argv)}\n'.encode())
        log.flush()
        proc = subprocess.Popen(svc.argv, stdin=subprocess.DEVNULL,
                                stdout=log, stderr=subprocess.STDOUT,
                                env=env, cwd=str(lo.root),
                                start_new_session=True)
    _pid_file(lo, svc.name).write_text(
        f'{proc.pid} {_start_time(proc.pid)}\n')
    return proc.pid


def wait_healthy(lo: lay.Layout, services: list[Service],
                 started: float) -> dict[str, float]:
    """Wait for all; returns seconds from ``started`` to healthy, per name.

    Raises ServiceError naming the first service that died or stayed
    unhealthy past its timeout, with the end of its log.
    """
    pending = {s.name: s for s in services}
    ready: dict[str, float] = {}
    last: dict[str, str] = {}
    while pending:
        for name, svc in list(pending.items()):
            if recorded_pid(lo, name) is None:
                raise ServiceError(
                    f'service {name} exited while starting; end of '
                    f'{lo.logs / (name + ".log")}:\n{log_tail(lo, name)}')
            if svc.fatal and _log_matches(lo, name, svc.fatal):
                raise ServiceError(
                    f'service {name} failed to start; end of '
                    f'{lo.logs / (name + ".log")}:\n{log_tail(lo, name)}')
            problem = svc.health() if svc.health else None
            if problem is None:
                ready[name] = time.monotonic() - started
                del pending[name]
                continue
            last[name] = problem
            if time.monotonic() - started > svc.timeout:
                raise ServiceError(
                    f'service {name} is not healthy after {svc.timeout:.0f} '
                    f's: {problem}; end of {lo.logs / (name + ".log")}:\n'
                    f'{log_tail(lo, name)}')
        if pending:
            time.sleep(0.5)
    return ready


def _log_matches(lo: lay.Layout, name: str, pattern: str) -> bool:
    try:
        text = (lo.logs / f'{name}.log').read_text(errors='replace')
    except OSError:
        return False
    # Only this start's part of the log (each start writes a ==== line).
    return re.search(pattern, text.rsplit('\n==== ', 1)[-1],
                     flags=re.M) is not None


# -- stop ---------------------------------------------------------------------
def _group_alive(pgid: int) -> bool:
    # When this process started the service (the demo, the tests), its
    # ended leader stays a zombie in the group until reaped.
    try:
        os.waitpid(pgid, os.WNOHANG)
    except ChildProcessError:
        pass
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def marked_pids(lo: lay.Layout) -> list[int]:
    """Processes of this cloud.

    Those with its marker in their environment, or (services that rewrite
    their process title over the environment, as Nova's and Neutron's do)
    with its directory in their command line.
    """
    want = f'{MARKER}={lo.root}'.encode()
    root = f'{lo.root}/'.encode()
    found = []
    for entry in os.listdir('/proc'):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f'/proc/{entry}/environ', 'rb') as f:
                env = f.read().split(b'\0')
            with open(f'/proc/{entry}/cmdline', 'rb') as f:
                cmdline = f.read()
        except OSError:
            continue
        if want in env or root in cmdline:
            found.append(int(entry))
    return found


def stop(lo: lay.Layout, name: str, grace: float = 15.0) -> bool:
    """End ``name``'s process group; True if something was running."""
    pid = recorded_pid(lo, name)
    _pid_file(lo, name).unlink(missing_ok=True)
    if pid is None:
        return False
    _signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while _group_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if _group_alive(pid):
        LOG.warning('%s did not end on SIGTERM; killing it', name)
        _signal_group(pid, signal.SIGKILL)
    return True


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


def stop_stragglers(lo: lay.Layout) -> list[int]:
    """Kill what is left with this cloud's marker (by pid, one by one)."""
    left = marked_pids(lo)
    for pid in left:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 5
    while left and time.monotonic() < deadline:
        time.sleep(0.2)
        left = [p for p in left if _start_time(p) is not None]
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return left


def run_once(lo: lay.Layout, name: str, argv: list[str],
             env: dict[str, str] | None = None, timeout: float = 600
             ) -> None:
    """Run a set-up command to completion, output appended to its log."""
    lo.logs.mkdir(parents=True, exist_ok=True)
    full_env = service_env(lo)
    full_env.update(env or {})
    full_env.setdefault('PYTHONWARNINGS', 'ignore')
    log_path = lo.logs / f'setup-{name}.log'
    with open(log_path, 'ab') as log:
        log.write(f'==== {time.ctime()}: {shown(argv)}\n'.encode())
        log.flush()
        rc = subprocess.call(argv, stdin=subprocess.DEVNULL, stdout=log,
                             stderr=subprocess.STDOUT, env=full_env,
                             cwd=str(lo.root), timeout=timeout)
    if rc != 0:
        tail = '\n'.join(log_path.read_text(errors='replace')
                         .splitlines()[-15:])
        raise ServiceError(f'set-up step {name} failed (exit {rc}): '
                           f'{shown(argv[:3])}...; end of {log_path}:\n'
                           f'{tail}')
