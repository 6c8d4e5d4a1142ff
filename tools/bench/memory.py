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
"""Memory of a process and what it runs, as the benchmarks report it.

Both benchmarks ask one question: how much memory does the volume service
hold while it builds a volume from an image, ``qemu-img`` and os-brick's
commands included? ``./run bench cloud`` asks it of a cinder-volume
backend process; ``./run bench`` of its own process, where the volume
manager runs (with the emulators' processes left out: they are the array,
not the host).

The figure is PSS (proportional set size, ``/proc/<pid>/smaps_rollup``)
summed over the tree: each shared page counted once, split among the
processes sharing it. Summing RSS instead counts a child that has been
forked and not yet exec'ed as a second copy of its whole parent, for a
moment (``subprocess`` forks before each ``qemu-img``): a spike of the
parent's size that no memory backs.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Collection
from typing import Any


def _native() -> tuple[Any, Any]:
    """(threading, time) that block for real even under eventlet.

    The sampler must not yield to green threads: under eventlet's patched
    modules its samples would wait for the very work they measure.
    """
    if 'eventlet' in sys.modules:
        import eventlet.patcher
        return (eventlet.patcher.original('threading'),
                eventlet.patcher.original('time'))
    import threading
    import time
    return threading, time


def tree(pid: int, exclude: Collection[int] = ()) -> list[Any]:
    """psutil processes of pid and its descendants.

    A process in ``exclude`` is left out with all its descendants.
    """
    import psutil
    root = psutil.Process(pid)
    children: dict[int, list[Any]] = {}
    for child in root.children(recursive=True):
        try:
            children.setdefault(child.ppid(), []).append(child)
        except psutil.Error:
            pass                    # ended while we looked
    out, todo = [], [root]
    while todo:
        proc = todo.pop()
        if proc.pid in exclude:
            continue
        out.append(proc)
        todo.extend(children.get(proc.pid, ()))
    return out


def tree_pss(pid: int, exclude: Collection[int] = ()) -> tuple[int, int]:
    """(PSS of pid's tree in bytes, pid's own RSS); (0, 0) once it ended.

    A descendant that ends, or that runs as another user (the privsep
    daemon as root: its smaps are not ours to read), adds nothing.
    """
    import psutil
    try:
        procs = tree(pid, exclude)
        rss = procs[0].memory_info().rss
    except (psutil.Error, IndexError):
        return 0, 0
    total = 0
    for proc in procs:
        try:
            total += proc.memory_full_info().pss
        except psutil.Error:
            pass
    return total, rss


class TreeMemory:
    """Peak PSS of a process tree while the ``with`` block runs.

    ``idle``: the tree's PSS on entry. ``peak``: the largest sampled.
    ``peak_rss``: the root process's own largest RSS, no children. All
    three stay 0 when ``pid`` is None. ``exclude`` is read on entry.

    The samples are taken every :attr:`INTERVAL` by a process of its own
    (this module run as a script, left out of the tree it measures). A
    thread in the measured process would share its GIL: with the volume
    service busy copying an image in Python, each of a sample's many
    reads of ``/proc`` waited for the GIL, and a sample took seconds.
    """

    INTERVAL = 0.02

    def __init__(self, pid: int | None,
                 exclude: Collection[int] = ()) -> None:
        self.pid = pid
        self.exclude = exclude
        self.idle = self.peak = self.peak_rss = 0
        self._proc: Any = None

    def __enter__(self) -> TreeMemory:
        if self.pid is None:
            return self
        import subprocess
        self._proc = subprocess.Popen(
            [sys.executable, __file__, str(self.pid), str(self.INTERVAL),
             *(str(p) for p in self.exclude)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        # the first sample, once the sampler runs
        self.idle = self.peak = int(self._proc.stdout.readline().split()[0])
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._proc is None:
            return
        proc, self._proc = self._proc, None
        proc.stdin.close()                  # stop: a last sample, then
        out = proc.stdout.read().split()    # "<peak pss> <peak rss>"
        proc.wait()
        self.peak, self.peak_rss = max(self.peak, int(out[0])), int(out[1])


def _sample(pid: int, interval: float, exclude: set[int]) -> None:
    """The sampler process: peak PSS of pid's tree until stdin closes."""
    import select
    exclude.add(os.getpid())
    pss, rss = tree_pss(pid, exclude)
    peak, peak_rss = pss, rss
    print(pss, flush=True)
    while True:
        ready, _, _ = select.select([sys.stdin], [], [], interval)
        pss, rss = tree_pss(pid, exclude)
        peak, peak_rss = max(peak, pss), max(peak_rss, rss)
        if ready and not sys.stdin.read(1):
            break
    print(peak, peak_rss, flush=True)


def host_dirty_bytes() -> int:
    """The host's dirty page cache: ``Dirty`` + ``Writeback`` (meminfo).

    Pages written and not yet on the disk, whoever wrote them: the kernel
    throttles every writer on the host once they pass ``vm.dirty_ratio``.
    """
    total = 0
    with open('/proc/meminfo') as f:
        for line in f:
            name, _, rest = line.partition(':')
            if name in ('Dirty', 'Writeback'):
                total += int(rest.split()[0]) * 1024
    return total


class HostDirty:
    """Peak of :func:`host_dirty_bytes` while the ``with`` block runs.

    ``idle``: on entry; ``peak``: the largest sampled, every
    :attr:`INTERVAL` from a native thread (one read of ``/proc/meminfo``
    per sample). Host-wide: measured on a machine where the benchmark is
    the only writer, it is what the build leaves unwritten.
    """

    INTERVAL = 0.02

    def __init__(self) -> None:
        self.idle = self.peak = 0
        self._stop = False
        self._thread: Any = None

    def _take(self) -> None:
        self.peak = max(self.peak, host_dirty_bytes())

    def __enter__(self) -> HostDirty:
        threading, time = _native()
        self.idle = self.peak = host_dirty_bytes()

        def loop() -> None:
            while not self._stop:
                time.sleep(self.INTERVAL)
                self._take()
        self._thread = threading.Thread(target=loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop = True
        self._thread.join()
        self._take()


if __name__ == '__main__':
    _sample(int(sys.argv[1]), float(sys.argv[2]),
            {int(p) for p in sys.argv[3:]})
