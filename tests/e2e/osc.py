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
"""The ``openstack`` command, each run in a process forked from a warm one.

Before a command does anything, python-openstackclient imports itself,
the SDK and its plugins: about 2.3 s of the 2.8 s that ``openstack volume
list`` takes here on an idle machine, more while the other suites run
beside this one, and the suite runs over a hundred commands. So a
*zygote* process imports the client once; each command then runs in a
child forked from it, as ``openstack`` would run it: a process of its
own, the command's arguments and environment, its own standard output,
error and exit status (negative for a signal, as :mod:`subprocess` says),
killed after ``timeout`` seconds. Only the start-up is shared.

The zygote reads one request per line on its standard input (JSON:
``argv``, ``env``, and the files for the child's output), answers the
child's pid, then its exit status, and runs one command at a time.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
from typing import Any

#: what the suite's commands use, imported by the zygote before any fork
WARM_MODULES = (
    'openstackclient.compute.v2.flavor',
    'openstackclient.compute.v2.server',
    'openstackclient.image.v2.image',
    'openstackclient.volume.v3.volume',
    'openstackclient.volume.v3.volume_type',
    'openstack.block_storage.v3._proxy',
    'openstack.compute.v2._proxy',
    'openstack.image.v2._proxy',
)


def _child(request: dict[str, Any]) -> int:
    """Run one command as ``openstack`` would (in the forked child)."""
    from openstackclient import shell
    os.environ.clear()
    os.environ.update(request['env'])
    sys.argv = ['openstack', *request['argv']]
    null = os.open(os.devnull, os.O_RDONLY)
    out = os.open(request['stdout'], os.O_WRONLY | os.O_TRUNC)
    err = os.open(request['stderr'], os.O_WRONLY | os.O_TRUNC)
    for fd, target in ((null, 0), (out, 1), (err, 2)):
        os.dup2(fd, target)
        os.close(fd)
    try:
        rc = shell.main(request['argv'])
    except SystemExit as exc:
        rc = exc.code if isinstance(exc.code, int) else 1
    except BaseException:       # what the command's process would print
        import traceback
        traceback.print_exc()
        rc = 1
    sys.stdout.flush()
    sys.stderr.flush()
    return int(rc or 0)


def serve() -> None:
    """The zygote: load the client once, then fork a child per command."""
    import importlib
    sys.argv[0] = 'openstack'       # the name the client gives itself
    from openstackclient import shell
    shell.OpenStackShell()          # its command entry points, its logging
    for name in WARM_MODULES:
        importlib.import_module(name)
    answers = sys.stdout
    for line in sys.stdin:
        request = json.loads(line)
        answers.flush()
        pid = os.fork()
        if pid == 0:
            rc = 1
            try:
                rc = _child(request)
            finally:
                os._exit(rc)
        answers.write(json.dumps({'pid': pid}) + '\n')
        answers.flush()
        _pid, status = os.waitpid(pid, 0)
        answers.write(json.dumps(
            {'rc': os.waitstatus_to_exitcode(status)}) + '\n')
        answers.flush()


class Zygote:
    """The test side: run ``openstack ARGS`` through the zygote."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[str] | None = None
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._dir = tempfile.mkdtemp(prefix='osc-')

    def _start(self) -> subprocess.Popen[str]:
        if self._proc is None or self._proc.poll() is not None:
            self._proc = subprocess.Popen(
                [sys.executable, os.path.abspath(__file__)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                bufsize=1)
            # Answers are read by a thread of their own: a select() on the
            # pipe misses a line that an earlier readline() already took
            # into the file object's buffer (both answers of a quick
            # command arrive together).
            self._lines = queue.Queue()
            threading.Thread(target=self._read, args=(self._proc,
                                                      self._lines),
                             daemon=True).start()
        return self._proc

    @staticmethod
    def _read(proc: subprocess.Popen[str],
              lines: queue.Queue[str | None]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    def _answer(self, proc: subprocess.Popen[str],
                timeout: float | None) -> dict[str, Any] | None:
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            return None
        if line is None:
            raise RuntimeError(
                f'the openstack zygote ended (status {proc.wait()})')
        return json.loads(line)

    def run(self, argv: list[str], env: dict[str, str],
            timeout: float) -> subprocess.CompletedProcess[str]:
        """``openstack *argv``, as :func:`subprocess.run` would give it."""
        cmd = ['openstack', *argv]
        with self._lock:
            proc = self._start()
            out = os.path.join(self._dir, 'stdout')
            err = os.path.join(self._dir, 'stderr')
            for path in (out, err):
                open(path, 'w').close()
            proc.stdin.write(json.dumps({'argv': argv, 'env': env,
                                         'stdout': out,
                                         'stderr': err}) + '\n')
            proc.stdin.flush()
            pid = self._answer(proc, None)['pid']
            done = self._answer(proc, timeout)
            if done is None:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass            # it ended meanwhile
                self._answer(proc, None)
                raise subprocess.TimeoutExpired(cmd, timeout)
            with open(out) as f_out, open(err) as f_err:
                return subprocess.CompletedProcess(
                    cmd, done['rc'], f_out.read(), f_err.read())

    def close(self) -> None:
        with self._lock:
            if self._proc is not None and self._proc.poll() is None:
                self._proc.stdin.close()
                self._proc.wait(timeout=30)
            self._proc = None
            for name in ('stdout', 'stderr'):
                try:
                    os.unlink(os.path.join(self._dir, name))
                except FileNotFoundError:
                    pass
            os.rmdir(self._dir)


if __name__ == '__main__':
    serve()
