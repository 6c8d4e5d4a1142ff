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
"""The download read ahead into a spool while the golden LUN is made."""

import os
import random
import tempfile
import unittest

import eventlet

from cinder_dpm_ephemeral.image_cache import readahead

MiB = 1024 * 1024


class _Download:
    """Chunks as glanceclient yields them; a failure after ``fail_after``."""

    def __init__(self, chunks, fail_after=None, pause=0.0):
        self.chunks = chunks
        self.fail_after = fail_after
        self.pause = pause
        self.served = 0
        self.closed = False

    def __iter__(self):
        try:
            for i, chunk in enumerate(self.chunks):
                if i == self.fail_after:
                    raise ConnectionResetError('Connection reset by peer')
                if self.pause:
                    eventlet.sleep(self.pause)
                self.served += len(chunk)
                yield chunk
        finally:
            self.closed = True


def _chunks(n, size=MiB, seed=3):
    rng = random.Random(seed)
    return [rng.randbytes(size) for _ in range(n)]


class ReadAheadTest(unittest.TestCase):

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix='readahead-')
        self.addCleanup(os.rmdir, self.dir)
        self.fds = set(os.listdir('/proc/self/fd'))

    def _ahead(self, download, limit=None):
        it = iter(download)
        ahead = readahead.ReadAhead(
            it, self.dir, limit if limit is not None else 1 << 40)
        self.addCleanup(ahead.close)
        return ahead

    def _settle(self, download, want):
        """Let the read-ahead run, as the LUN's creation would."""
        for _ in range(1000):
            if download.served >= want:
                break
            eventlet.sleep(0.001)

    def test_without_start_chunks_pass_through(self):
        data = _chunks(4)
        ahead = self._ahead(_Download(data))
        self.assertEqual(data, list(ahead))
        self.assertEqual(0, ahead.spooled)

    def test_reads_ahead_then_hands_back_the_same_bytes_in_order(self):
        data = _chunks(6, size=MiB + 17)
        down = _Download(data)
        ahead = self._ahead(down)
        first = next(ahead)          # the head, read before the LUN exists
        ahead.start()
        self._settle(down, sum(map(len, data)))
        # the whole download was read while nobody consumed it
        self.assertEqual(sum(map(len, data)), down.served)
        self.assertEqual(sum(map(len, data)) - len(first), ahead.spooled)
        rest = b''.join(ahead)
        self.assertEqual(b''.join(data), first + rest)
        # the spool has no name in the directory, ever
        self.assertEqual([], os.listdir(self.dir))

    def test_what_was_handed_back_is_dropped_from_the_spool(self):
        # The spool's blocks as the build reads it back: every DROP_EVERY
        # bytes handed back leave the spool (its pages freed), and what
        # was not handed back yet is still there, in order.
        data = _chunks(40)
        down = _Download(data)
        ahead = self._ahead(down)
        ahead.start()
        self._settle(down, 40 * MiB)
        self.assertEqual(40 * MiB, ahead.spooled)
        fd = ahead._fd

        def spool_bytes():
            return os.fstat(fd).st_blocks * 512
        full = spool_bytes()
        self.assertGreaterEqual(full, 40 * MiB)
        got = []
        for _ in range(20):
            got.append(next(ahead))
        # 16 MiB dropped (two rounds of DROP_EVERY), 4 MiB not yet
        self.assertEqual(16 * MiB, ahead.dropped)
        self.assertEqual(full - 16 * MiB, spool_bytes())
        got.extend(ahead)
        self.assertEqual(b''.join(data), b''.join(got))
        self.assertIsNone(ahead._fd)        # the spool, closed at its end

    def test_spool_stops_at_its_limit_and_the_rest_streams(self):
        data = _chunks(8)
        down = _Download(data)
        ahead = self._ahead(down, limit=3 * MiB)
        ahead.start()
        self._settle(down, 8 * MiB)
        self.assertEqual(3 * MiB, ahead.spooled)
        self.assertEqual(3 * MiB, down.served)
        self.assertEqual(b''.join(data), b''.join(ahead))

    def test_no_room_no_spool(self):
        data = _chunks(3)
        down = _Download(data)
        ahead = self._ahead(down, limit=0)
        ahead.start()
        eventlet.sleep(0.01)
        self.assertEqual(0, down.served)
        self.assertEqual(data, list(ahead))

    def test_download_error_raised_after_the_bytes_before_it(self):
        data = _chunks(5)
        down = _Download(data, fail_after=3)
        ahead = self._ahead(down)
        ahead.start()
        self._settle(down, 3 * MiB)
        eventlet.sleep(0.01)
        got = []
        with self.assertRaises(ConnectionResetError):
            for chunk in ahead:
                got.append(chunk)
        self.assertEqual(b''.join(data[:3]), b''.join(got))

    def test_consumer_takes_over_mid_download(self):
        data = _chunks(20, size=64 * 1024)
        down = _Download(data, pause=0.002)
        ahead = self._ahead(down)
        ahead.start()
        self._settle(down, 5 * 64 * 1024)
        self.assertLess(down.served, 20 * 64 * 1024)
        self.assertEqual(b''.join(data), b''.join(ahead))

    def test_close_while_reading_ahead_leaves_nothing(self):
        data = _chunks(50, size=64 * 1024)
        down = _Download(data, pause=0.002)
        ahead = readahead.ReadAhead(iter(down), self.dir, 1 << 40)
        ahead.start()
        self._settle(down, 64 * 1024)
        ahead.close()
        eventlet.sleep(0.01)
        served = down.served
        eventlet.sleep(0.02)
        self.assertEqual(served, down.served)       # the reading stopped
        self.assertLess(served, 50 * 64 * 1024)
        self.assertTrue(down.closed)                # the download closed
        self.assertEqual(self.fds, set(os.listdir('/proc/self/fd')))
        self.assertEqual([], os.listdir(self.dir))

    def test_room_for_leaves_a_reserve(self):
        self.assertEqual(10, readahead.room_for(self.dir, 10))
        st = os.statvfs(self.dir)
        free = st.f_bavail * st.f_frsize
        # (other writers on this file system move it a little meanwhile)
        self.assertAlmostEqual(max(0, free - readahead.RESERVE),
                               readahead.room_for(self.dir, 1 << 60),
                               delta=256 * MiB)
        self.assertEqual(0, readahead.room_for(
            os.path.join(self.dir, 'missing'), 10))
