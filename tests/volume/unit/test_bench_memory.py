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
"""The benchmarks' memory figure: a process and what it runs.

``./run bench cloud`` samples a cinder-volume backend process (found in
its log) with its children; ``./run bench`` its own process, where the
volume manager runs, leaving the emulators' processes out. Both through
tools.bench.memory; here real process trees stand in for them: a parent
that later starts a child which allocates, as cinder-volume starts
``qemu-img``, and a parent that forks, as ``subprocess`` does.
"""

import os
import pathlib
import subprocess
import sys
import tempfile
import textwrap
import time
import unittest

from tools.bench import cloud
from tools.bench import memory

MiB = 1024 * 1024

PARENT = textwrap.dedent('''
    import subprocess, sys, time
    sys.stdin.readline()            # told to start its child
    child = subprocess.Popen([sys.executable, '-c',
        'import time; b = bytearray(96 * 1024 * 1024); '
        'b[::4096] = b"x" * len(b[::4096]); time.sleep(1.0)'])
    child.wait()
    time.sleep(0.3)
''')


FORKER = textwrap.dedent('''
    import os, sys, time
    b = bytearray(128 * 1024 * 1024)
    b[::4096] = b"x" * len(b[::4096])
    sys.stdout.write("ready\\n")
    sys.stdout.flush()
    sys.stdin.readline()
    pid = os.fork()                 # as subprocess does before its exec
    if pid == 0:
        time.sleep(1.0)
        os._exit(0)
    os.waitpid(pid, 0)
''')


# Holds argv[1] MiB; with argv[2], starts a holder of that many MiB as its
# own child. Says "up" once it (and its child) hold theirs, then waits for
# its stdin to close.
HOLDER = textwrap.dedent('''
    import subprocess, sys
    b = bytearray(int(sys.argv[1]) << 20)
    b[::4096] = b"x" * len(b[::4096])
    if len(sys.argv) > 2:
        child = subprocess.Popen([sys.executable, "-c", __doc__, sys.argv[2]],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        child.stdout.readline()
    print("up", flush=True)
    sys.stdin.read()
''')
HOLDER = f'"""{HOLDER}"""\n{HOLDER}'   # the script is its own __doc__

# A parent with an "array" child that holds 96 MiB and has a child of its
# own holding 64 MiB, and a "qemu-img" child holding 32 MiB.
ARRAY_TREE = textwrap.dedent('''
    import subprocess, sys
    def holder(*mib):
        p = subprocess.Popen([sys.executable, "-c", sys.argv[1]]
                             + [str(m) for m in mib],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        p.stdout.readline()
        return p
    array, work = holder(96, 64), holder(32)
    print(array.pid, flush=True)
    sys.stdin.read()
''')

# Under eventlet, as ./run bench's process is: the sampler must sample
# while the code it measures runs without yielding to green threads.
GREEN = textwrap.dedent('''
    import eventlet
    eventlet.monkey_patch()
    import os, subprocess, sys, time
    from tools.bench import memory
    with memory.TreeMemory(os.getpid()) as m:
        child = subprocess.Popen([sys.executable, "-c",
            "import time; b = bytearray(96 << 20); "
            "b[::4096] = b'x' * len(b[::4096]); time.sleep(1.0)"])
        end = time.monotonic() + 2.0
        while time.monotonic() < end:      # never yields
            pass
        child.wait()
    print((m.peak - m.idle) >> 20)
''')


class TreeMemoryTest(unittest.TestCase):

    def test_excluded_process_left_out_with_its_children(self):
        proc = subprocess.Popen([sys.executable, '-c', ARRAY_TREE, HOLDER],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                text=True)
        self.addCleanup(self._end_tree, proc)
        array = int(proc.stdout.readline())
        self.assertEqual(4, len(memory.tree(proc.pid)))
        whole, _ = memory.tree_pss(proc.pid)
        without, _ = memory.tree_pss(proc.pid, exclude={array})
        # 96 + 64 MiB of the array's processes are gone, the work's
        # 32 MiB stays.
        self.assertGreater(whole - without, 150 * MiB)
        self.assertGreater(without, 32 * MiB)
        self.assertLess(without, whole - 150 * MiB + 1)

    @staticmethod
    def _end_tree(proc):
        for p in memory.tree(proc.pid):
            p.kill()
        proc.wait()

    def test_samples_while_green_code_does_not_yield(self):
        out = subprocess.run([sys.executable, '-c', GREEN], check=True,
                             capture_output=True, text=True, timeout=60,
                             cwd=pathlib.Path(__file__).parents[3])
        self.assertGreater(int(out.stdout.split()[-1]), 90)

    def test_peak_includes_a_child_started_while_sampling(self):
        proc = subprocess.Popen([sys.executable, '-c', PARENT],
                                stdin=subprocess.PIPE, text=True)
        self.addCleanup(proc.kill)
        time.sleep(0.3)
        with memory.TreeMemory(proc.pid) as rss:
            proc.stdin.write('go\n')
            proc.stdin.flush()
            proc.wait(timeout=30)
        # the child's 96 MiB, touched page by page, on top of the parent
        self.assertGreater(rss.peak - rss.idle, 90 * MiB)
        self.assertGreater(rss.idle, 0)

    def test_a_forked_child_is_not_a_second_copy(self):
        # The child shares every page with its parent until it writes:
        # the memory held does not double (RSS summed would say it did).
        proc = subprocess.Popen([sys.executable, '-c', FORKER],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                text=True)
        self.addCleanup(proc.kill)
        self.assertEqual('ready\n', proc.stdout.readline())
        with memory.TreeMemory(proc.pid) as rss:
            proc.stdin.write('go\n')
            proc.stdin.flush()
            proc.wait(timeout=30)
        self.assertGreater(rss.peak_rss, 128 * MiB)
        self.assertLess(rss.peak - rss.idle, 32 * MiB)

    def test_no_pid_no_figure(self):
        with memory.TreeMemory(None) as rss:
            pass
        self.assertEqual((0, 0, 0), (rss.idle, rss.peak, rss.peak_rss))

    def test_backend_processes_from_the_volume_log(self):
        lines = [
            '2026-12-01 10:00:00.100 4242 INFO cinder.volume.manager [-] '
            'Starting volume driver StorwizeEphemeralDriver (2.2.0)',
            '2026-12-01 10:00:00.200 4343 INFO cinder.volume.manager [-] '
            'Starting volume driver StockStorwizeFCDriver (2.2.0)',
            '2026-12-01 10:00:00.300 4444 INFO cinder.volume.manager [-] '
            'Starting volume driver PowerFlexEphemeralDriver (3.5.0)',
        ]
        with tempfile.TemporaryDirectory() as d:
            log = pathlib.Path(d) / 'cinder-volume.log'
            log.write_text('old run\n' + '\n'.join(lines) + '\n')
            self.assertEqual({'ours': 4242, 'stock': 4343},
                             cloud.volume_backend_pids(log, len('old run\n')))


class HostDirtyTest(unittest.TestCase):

    def test_pages_written_and_not_synced_are_counted(self):
        # 128 MiB written and not synced stay dirty (the kernel starts
        # writing back at dirty_background_ratio of memory, or after
        # 30 s); fsync afterwards, so nothing is left to the next test.
        with tempfile.NamedTemporaryFile(prefix='dirty-') as f:
            block = b'\x5a' * (4 << 20)
            with memory.HostDirty() as dirty:
                for _ in range(32):
                    f.write(block)
                f.flush()
                time.sleep(3 * memory.HostDirty.INTERVAL)
            os.fsync(f.fileno())
        self.assertGreater(dirty.peak - dirty.idle, 64 << 20)
