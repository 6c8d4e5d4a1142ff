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
"""The cloud benchmark's memory figure: one backend process and children.

``./run bench cloud`` reports cinder-volume's RSS during a cold boot from
the backend's own process (found in its log) and what it runs; here a
real process tree stands in for it: a parent that later starts a child
which allocates, as cinder-volume starts ``qemu-img``.
"""

import pathlib
import subprocess
import sys
import tempfile
import textwrap
import time
import unittest

from tools.bench import cloud

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


class VolumeServiceRssTest(unittest.TestCase):

    def test_peak_includes_a_child_started_while_sampling(self):
        proc = subprocess.Popen([sys.executable, '-c', PARENT],
                                stdin=subprocess.PIPE, text=True)
        self.addCleanup(proc.kill)
        time.sleep(0.3)
        with cloud.VolumeServiceRss(proc.pid) as rss:
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
        with cloud.VolumeServiceRss(proc.pid) as rss:
            proc.stdin.write('go\n')
            proc.stdin.flush()
            proc.wait(timeout=30)
        self.assertGreater(rss.peak_rss, 128 * MiB)
        self.assertLess(rss.peak - rss.idle, 32 * MiB)

    def test_no_pid_no_figure(self):
        with cloud.VolumeServiceRss(None) as rss:
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
