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
"""A probe: what a write into the page cache costs on this machine.

The machines these benchmarks run on are Firecracker virtual machines
whose balloon device has free page reporting on (feature bit 5 of the
balloon device, ``/sys/bus/virtio/devices/*/features``): the guest hands
its free memory back to the host, and a page the host took back costs a
host fault when the guest next writes it. The probe measures what that
does to a buffered write: the same 1 GiB costs about 13 times more after
an idle pause than right after a file of its size was freed, all of it
system CPU (``doc/results/first-touch.json``).

That is the signature of the slow cold builds: about one 1 GiB build in
five to ten had a copy step 1.5-4 times as long, doing the same work
with two to four times the system CPU (``./run bench cold``'s
``copy_trace``; doc/benchmarks.md, "The slow copy steps"). That they
have this cause is not proven: the memory the guest reported during
them did not line up with them, and :func:`warm` did not remove them.

``python -m tools.bench.first_touch [--mib 1024] [--repeats 3]`` writes
a file of ``--mib`` MiB into the page cache (1 MiB ``write`` calls, no
``fsync``: the page cache alone), timed, and unlinks it, in three
conditions in turn per repeat:

* ``idle``: after 8 s in which the probe frees nothing;
* ``after_file``: right after a file of 1.5 times the size was written
  and unlinked (:func:`warm`);
* ``after_anonymous``: right after as much anonymous memory was touched
  and unmapped.

Each trial also gives ``reported_mib_before``: how much free memory the
guest reported to the host from the start of the wait to the write
(this kernel's ``page_reporting`` counter ``reported_kib``; None
elsewhere).

Results: ``doc/results/first-touch.json`` (``--out``). :func:`warm` is
what ``./run bench cold --warm-mib N`` runs before each timed copy (the
reference's and the build's alike). It did not remove the slow builds:
in two runs with it, 11 of 36 builds had a copy step over 0.65 s (the
others 0.41-0.65 s), against 7 of 60 in three runs without
(doc/benchmarks.md), so it is off by default.
"""

from __future__ import annotations

import argparse
import json
import mmap
import os
import resource
import statistics
import tempfile
import time
from typing import Any

MiB = 1024 * 1024
_ZEROS = bytes(MiB)


def _write(path: str, nbytes: int, data: bytes = _ZEROS) -> dict[str, float]:
    """Write ``nbytes`` into a new file's page cache; seconds, system CPU."""
    r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC,
                 0o600)
    try:
        left = nbytes
        while left > 0:
            left -= os.write(fd, data[:min(left, len(data))])
    finally:
        os.close(fd)
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    return {'seconds': time.monotonic() - t0,
            'sys_seconds': r1.ru_stime - r0.ru_stime}


def warm(directory: str, nbytes: int) -> float:
    """Write ``nbytes`` into a file in ``directory``, unlink it; seconds.

    The file is never synced: its pages are dropped at the unlink without
    a write to the disk (the dirty threshold is far above it here). Meant
    to have the page cache's next pages be ones the host has not taken
    back: in the probe a write right after it is fast.
    """
    if nbytes <= 0:
        return 0.0
    fd, path = tempfile.mkstemp(prefix='warm-', dir=directory)
    os.close(fd)
    try:
        return _write(path, nbytes)['seconds']
    finally:
        os.unlink(path)


def reported_kib() -> int | None:
    """KiB of free memory this guest has reported to the host so far.

    (A counter of this guest kernel's page reporting module; None where
    the kernel has no such counter.)
    """
    try:
        with open('/sys/module/page_reporting/parameters/reported_kib') as f:
            return int(f.read())
    except (OSError, ValueError):
        return None


def _touch_anonymous(nbytes: int) -> None:
    area = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    try:
        for off in range(0, nbytes, mmap.PAGESIZE):
            area[off] = 1
    finally:
        area.close()


def run(mib: int = 1024, repeats: int = 3, idle: float = 8.0,
        directory: str | None = None) -> dict[str, Any]:
    directory = directory or tempfile.gettempdir()
    size = mib * MiB
    data = os.urandom(MiB)     # what a copy writes: not zeros
    kinds = ('idle', 'after_file', 'after_anonymous')
    trials: dict[str, list[dict[str, float]]] = {k: [] for k in kinds}
    target = os.path.join(directory, f'first-touch-{os.getpid()}')
    for _ in range(repeats):
        for kind in kinds:
            before = reported_kib()
            time.sleep(idle)
            if kind == 'after_file':
                warm(directory, size * 3 // 2)
            elif kind == 'after_anonymous':
                _touch_anonymous(size * 3 // 2)
            after = reported_kib()
            try:
                trial = _write(target, size, data)
            finally:
                os.unlink(target)
            # what the guest reported to the host while it waited
            trial['reported_mib_before'] = (
                None if before is None or after is None
                else (after - before) / 1024)
            trials[kind].append(trial)

    def med(kind: str, key: str) -> float:
        return round(statistics.median(t[key] for t in trials[kind]), 4)
    return {
        'started': time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime()),
        'mib': mib, 'repeats': repeats, 'idle_seconds': idle,
        'cpus': os.cpu_count(), 'kernel': os.uname().release,
        'trials': trials,
        'headline': {
            **{f'{k}_seconds': med(k, 'seconds') for k in kinds},
            **{f'{k}_sys_seconds': med(k, 'sys_seconds') for k in kinds},
            **{f'{k}_spread': [round(min(t['seconds'] for t in trials[k]), 4),
                               round(max(t['seconds'] for t in trials[k]), 4)]
               for k in kinds},
            'idle_over_after_file': round(
                med('idle', 'seconds') / med('after_file', 'seconds'), 2)},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog='python -m tools.bench.first_touch')
    parser.add_argument('--mib', type=int, default=1024)
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--idle', type=float, default=8.0)
    parser.add_argument('--dir', default=None,
                        help='where the files go (default: the temp dir)')
    parser.add_argument('--out', default=os.path.join(
        'doc', 'results', 'first-touch.json'))
    args = parser.parse_args(argv)
    results = run(args.mib, args.repeats, args.idle, args.dir)
    with open(args.out, 'w') as f:
        json.dump(results, f, indent=2)
    print(f'results: {args.out}')
    print(json.dumps(results['headline']))
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
