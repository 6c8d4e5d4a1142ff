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
"""Golden LUN writes beside the download, their writeback started."""

import os
import random
import subprocess
import sys
import tempfile
import textwrap
import time
import unittest

import eventlet

from cinder_dpm_ephemeral.image_cache import lunwriter
from cinder_dpm_ephemeral.testing import pagecache
from cinder_dpm_ephemeral.testing.pagecache import resident_pages

MiB = 1024 * 1024


def sparse_file(test, size):
    """A sparse file of ``size`` bytes, removed after ``test``."""
    fd, path = tempfile.mkstemp(prefix='lunwriter-')
    os.close(fd)
    test.addCleanup(os.unlink, path)
    with open(path, 'wb') as f:
        f.truncate(size)
    return path


class LunWriterTest(unittest.TestCase):

    def setUp(self):
        self.path = sparse_file(self, 64 * MiB)

    def _open(self, flags=os.O_RDWR):
        fd = os.open(self.path, flags)
        self.addCleanup(os.close, fd)
        return fd

    def _write_all(self, beside):
        rng = random.Random(5)
        want = bytearray(64 * MiB)
        lun = lunwriter.LunWriter(self._open(), beside=beside)
        # units of several buffers, out of order, odd sizes
        for offset in rng.sample(range(0, 60 * MiB, 4 * MiB), 12):
            bufs = [rng.randbytes(rng.randint(1, 300_000))
                    for _ in range(rng.randint(1, 20))]
            data = b''.join(bufs)
            want[offset:offset + len(data)] = data
            lun.write(offset, bufs)
        lun.finish()
        lun.close()
        with open(self.path, 'rb') as f:
            self.assertEqual(bytes(want), f.read())
        return lun

    def test_writes_land_where_asked_beside_or_not(self):
        for beside in (True, False):
            with self.subTest(beside=beside):
                lun = self._write_all(beside)
                self.assertEqual(12, lun.writes)
                # each write's writeback started as it ended (a file
                # system that refuses sync_file_range would give 0)
                self.assertEqual(12 if beside else 0, lun.writebacks)

    def test_more_buffers_than_one_call_takes(self):
        bufs = [bytes([i % 251 + 1]) * 100 for i in range(2500)]
        self.assertEqual(250_000,
                         lunwriter.pwritev_all(self._open(), bufs, 4096))
        with open(self.path, 'rb') as f:
            f.seek(4096)
            self.assertEqual(b''.join(bufs), f.read(250_000))

    def _held_writes(self):
        """os.pwritev held until ``release`` is set (native events).

        Returns (entered, release, finished): ``entered`` is set when a
        write starts, ``finished`` lists the bytes of each write done.
        """
        native = eventlet.patcher.original('threading')
        entered, release = native.Event(), native.Event()
        finished = []
        real = os.pwritev

        def held_pwritev(fd, buffers, offset):
            entered.set()
            release.wait(5)
            n = real(fd, buffers, offset)
            finished.append(n)
            return n
        self.addCleanup(setattr, os, 'pwritev', real)
        os.pwritev = held_pwritev
        return entered, release, finished

    def test_the_caller_goes_on_while_a_write_is_under_way(self):
        # The write runs in a native thread: write() returns while it is
        # still under way, other green threads run meanwhile, and only
        # wait() waits for it. (With beside=False write() would not return
        # before the write has ended: 'finished' would not be empty.)
        entered, release, finished = self._held_writes()
        lun = lunwriter.LunWriter(self._open())
        lun.write(0, [b'x' * 4096])
        self.assertEqual([], finished)
        ran = []
        eventlet.spawn(ran.append, 'other green work').wait()
        deadline = time.monotonic() + 10
        while not entered.is_set() and time.monotonic() < deadline:
            eventlet.sleep(0.01)
        self.assertTrue(entered.is_set())
        self.assertEqual(['other green work'], ran)
        self.assertEqual([], finished)
        release.set()
        lun.finish()
        self.assertEqual([4096], finished)
        with open(self.path, 'rb') as f:
            self.assertEqual(b'x' * 4096, f.read(4096))

    def test_close_waits_for_a_write_whose_waiter_was_killed(self):
        # A build's green thread killed while it waits for a write: the
        # write goes on in its native thread, and close() (before the
        # descriptor is closed) must still wait for it to end.
        entered, release, finished = self._held_writes()
        lun = lunwriter.LunWriter(self._open())

        def build():
            lun.write(0, [b'k' * 4096])
            lun.wait()
        gt = eventlet.spawn(build)
        deadline = time.monotonic() + 10
        while not entered.is_set() and time.monotonic() < deadline:
            eventlet.sleep(0.01)
        gt.kill()
        self.assertEqual([], finished)
        eventlet.patcher.original('threading').Timer(
            0.2, release.set).start()
        lun.close()
        self.assertEqual([4096], finished)

    def _until_ended(self, lun):
        deadline = time.monotonic() + 10
        while not all(native.done() for _, _, native, _ in lun._pending):
            self.assertLess(time.monotonic(), deadline)
            eventlet.sleep(0.01)

    def test_a_failed_write_is_raised_by_the_next_call_after_it(self):
        lun = lunwriter.LunWriter(self._open(os.O_RDONLY))
        lun.write(0, [b'y' * 4096])        # EBADF, in the writer's thread
        self._until_ended(lun)
        with self.assertRaises(OSError):
            lun.write(4096, [b'z' * 4096])
        lun.close()                         # nothing left to raise

    def test_wait_raises_a_failed_write_after_the_others_ended(self):
        # The first of three writes fails: wait() raises its error, and
        # only once every write has ended (the caller then closes the
        # descriptor they write to).
        entered, release, finished = self._held_writes()
        lun = lunwriter.LunWriter(self._open(os.O_RDONLY))
        for i in range(3):
            lun.write(i * 4096, [b'w' * 4096])
        natives = [native for _, _, native, _ in lun._pending]
        self.assertEqual(3, len(natives))
        eventlet.patcher.original('threading').Timer(
            0.2, release.set).start()
        with self.assertRaises(OSError):
            lun.wait()
        self.assertEqual([], list(lun._pending))
        self.assertTrue(all(native.done() for native in natives))

    def test_up_to_depth_writes_are_under_way_at_once(self):
        # 'depth' writes start without waiting for one another; the next
        # write() waits for the oldest (builds use DEPTH, more than one).
        # With one write at a time, the second write() would block until
        # 'release': 'started' would stop at 1 and the wait time out.
        native = eventlet.patcher.original('threading')
        release = native.Event()
        lock = native.Lock()
        started = []
        real = os.pwritev

        def held_pwritev(fd, buffers, offset):
            with lock:
                started.append(offset)
            release.wait(5)
            return real(fd, buffers, offset)
        self.addCleanup(setattr, os, 'pwritev', real)
        os.pwritev = held_pwritev
        self.assertGreater(lunwriter.DEPTH, 1)
        depth = 3
        lun = lunwriter.LunWriter(self._open(), depth=depth)
        t0 = time.monotonic()
        for i in range(depth):
            lun.write(i * MiB, [bytes([i + 1]) * 4096])
        deadline = time.monotonic() + 10
        while len(started) < depth:
            self.assertLess(time.monotonic(), deadline, started)
            eventlet.sleep(0.01)
        self.assertLess(time.monotonic() - t0, 4)   # nothing waited
        native.Timer(0.3, release.set).start()
        lun.write(depth * MiB, [b'\xff' * 4096])    # waits
        self.assertTrue(release.is_set())
        lun.finish()
        with open(self.path, 'rb') as f:
            for i in range(depth + 1):
                f.seek(i * MiB)
                self.assertEqual(bytes([i + 1 if i < depth
                                        else 255]) * 4096, f.read(4096))

    def test_a_write_over_one_under_way_waits_for_it(self):
        # Two writes to one range: the second starts only after the first
        # ended, so the second's bytes are the ones that stay.
        entered, release, finished = self._held_writes()
        lun = lunwriter.LunWriter(self._open())
        lun.write(0, [b'a' * 8192])
        eventlet.patcher.original('threading').Timer(
            0.2, release.set).start()
        lun.write(4096, [b'b' * 8192])      # overlaps: waits for 'a'
        self.assertEqual([8192], finished)
        lun.finish()
        self.assertEqual([8192, 8192], finished)
        with open(self.path, 'rb') as f:
            self.assertEqual(b'a' * 4096 + b'b' * 8192, f.read(12288))

    def test_close_after_a_failure_does_not_raise(self):
        lun = lunwriter.LunWriter(self._open(os.O_RDONLY))
        lun.write(0, [b'y' * 4096])
        lun.close()

    def test_is_zero_looks_at_every_byte_past_one_zero_unit(self):
        # a byte set in the last zero unit of a buffer longer than one,
        # as bytes and as a view; the same buffer cleared again is zeros
        data = bytearray(2 * lunwriter.ZERO_UNIT + 5)
        self.assertTrue(lunwriter.is_zero(data))
        for at in (0, lunwriter.ZERO_UNIT - 1, len(data) - 1):
            data[at] = 1
            self.assertFalse(lunwriter.is_zero(data), at)
            self.assertFalse(lunwriter.is_zero(memoryview(data)), at)
            data[at] = 0
        self.assertTrue(lunwriter.is_zero(memoryview(data)[3:]))
        self.assertTrue(lunwriter.is_zero(b''))

    def test_writeback_is_started_on_a_file(self):
        # sync_file_range(2) itself, on a file (accepted) and on a pipe
        # (ESPIPE): a hint, whose failure never fails a write.
        self.assertIsNotNone(lunwriter._start_writeback)
        fd = self._open()
        os.pwrite(fd, b'd' * MiB, 0)
        self.assertTrue(lunwriter._start_writeback(fd, 0, MiB))
        r, w = os.pipe()
        self.addCleanup(os.close, r)
        self.addCleanup(os.close, w)
        self.assertFalse(lunwriter._start_writeback(w, 0, MiB))

    def test_writes_without_eventlet_use_a_thread_of_their_own(self):
        script = textwrap.dedent(f'''
            import os, threading
            from cinder_dpm_ephemeral.image_cache import lunwriter
            assert not lunwriter._green()
            seen = []
            real = os.pwritev
            def pwritev(fd, bufs, off):
                seen.append(threading.current_thread().name)
                return real(fd, bufs, off)
            os.pwritev = pwritev
            fd = os.open({self.path!r}, os.O_RDWR)
            lun = lunwriter.LunWriter(fd)
            lun.write(0, [b'q' * 8192])
            lun.finish()
            assert seen and seen[0] != 'MainThread', seen
            assert os.pread(fd, 8192, 0) == b'q' * 8192
            print('ok')
        ''')
        out = subprocess.run([sys.executable, '-c', script], check=True,
                             capture_output=True, text=True, timeout=60)
        self.assertEqual('ok', out.stdout.strip())


class FlushBehindTest(unittest.TestCase):
    """Every FLUSH_EVERY bytes a flush starts beside the writes."""

    def setUp(self):
        self.path = sparse_file(self, 32 * MiB)
        self.fd = os.open(self.path, os.O_RDWR)
        self.addCleanup(os.close, self.fd)
        native = eventlet.patcher.original('threading')
        self.caller = native.get_ident()
        #: (thread id, fd) of each fdatasync
        self.flushed = []
        self.release = native.Event()
        self.release.set()
        self.fail_with = None
        real = os.fdatasync

        def spy(fd):
            self.flushed.append((native.get_ident(), fd))
            self.release.wait(10)
            if self.fail_with is not None:
                raise self.fail_with
            return real(fd)
        self.addCleanup(setattr, os, 'fdatasync', real)
        os.fdatasync = spy
        self.addCleanup(setattr, lunwriter, 'FLUSH_EVERY',
                        lunwriter.FLUSH_EVERY)
        lunwriter.FLUSH_EVERY = 4 * MiB

    def _write(self, lun, n_mib):
        rng = random.Random(9)
        want = bytearray(32 * MiB)
        for i in range(n_mib):
            data = rng.randbytes(MiB)
            want[i * MiB:(i + 1) * MiB] = data
            lun.write(i * MiB, [data])
        return bytes(want)

    def test_flushes_beside_the_writes_and_all_durable_after_finish(self):
        lun = lunwriter.LunWriter(self.fd)
        want = self._write(lun, 16)
        lun.finish()
        lun.close()
        # 16 MiB, a flush every 4 MiB at most, one at a time
        self.assertGreaterEqual(lun.flushes, 1)
        self.assertLessEqual(lun.flushes, 4)
        self.assertEqual(lun.flushes, len(self.flushed))
        self.assertTrue(all(fd == self.fd for _, fd in self.flushed))
        self.assertNotIn(self.caller, [t for t, _ in self.flushed])
        with open(self.path, 'rb') as f:
            self.assertEqual(want, f.read())

    def test_none_with_flush_every_zero_or_one_write_at_a_time(self):
        lunwriter.FLUSH_EVERY = 0
        lun = lunwriter.LunWriter(self.fd)
        self._write(lun, 16)
        lun.finish()
        lunwriter.FLUSH_EVERY = 4 * MiB
        lun2 = lunwriter.LunWriter(self.fd, beside=False)
        self._write(lun2, 16)
        lun2.finish()
        self.assertEqual((0, 0, []), (lun.flushes, lun2.flushes,
                                      self.flushed))

    def test_close_waits_for_a_flush_under_way(self):
        # The caller closes the LUN's descriptor right after close(): a
        # flush still running then would flush whatever file gets that
        # descriptor number next.
        lun = self._flush_held()
        self.assertEqual(1, lun.flushes)
        self.assertFalse(lun._flush.done())
        self._close_after_release(lun)

    def test_close_waits_for_a_flush_whose_waiter_was_killed(self):
        # The build's green thread killed while finish() waits for the
        # flush: the flush goes on in its native thread, and close()
        # must still wait for it before the descriptor is closed.
        lun = self._flush_held()
        gt = eventlet.spawn(lun.finish)
        eventlet.sleep(0.1)
        gt.kill()
        self.assertFalse(self.release.is_set())
        self.assertIsNotNone(lun._flush)
        self._close_after_release(lun)

    def _flush_held(self):
        """A writer whose one flush is under way until self.release."""
        self.release.clear()
        lun = lunwriter.LunWriter(self.fd)
        self._write(lun, 5)
        lun.wait()
        self.assertIsNotNone(lun._flush)
        return lun

    def _close_after_release(self, lun):
        """close() returns only after the flush was released."""
        eventlet.patcher.original('threading').Timer(
            0.3, self.release.set).start()
        lun.close()
        self.assertTrue(self.release.is_set())
        self.assertIsNone(lun._flush)

    def test_a_failed_flush_fails_the_build(self):
        self.fail_with = OSError(5, 'Input/output error')
        lun = lunwriter.LunWriter(self.fd)
        self._write(lun, 5)
        with self.assertRaises(OSError) as ctx:
            lun.finish()
        self.assertEqual(5, ctx.exception.errno)
        lun.close()


def uncached_file(test):
    """A 32 MiB sparse file opened for writes, none of it in the cache."""
    path = sparse_file(test, 32 * MiB)
    fd = os.open(path, os.O_RDWR)
    test.addCleanup(os.close, fd)
    pagecache.drop(path)
    return path, fd


class DirectTest(unittest.TestCase):
    """direct=True: past the page cache, gathered into aligned buffers."""

    def setUp(self):
        self.path, self.fd = uncached_file(self)

    def _read(self):
        with open(self.path, 'rb') as f:
            return f.read()

    def test_the_written_bytes_stay_out_of_the_page_cache(self):
        # (DROP_BEHIND off: through the page cache the pages stay)
        self.addCleanup(setattr, lunwriter, 'DROP_BEHIND',
                        lunwriter.DROP_BEHIND)
        lunwriter.DROP_BEHIND = False
        rng = random.Random(3)
        data = rng.randbytes(16 * MiB)
        for direct in (False, True):
            with self.subTest(direct=direct):
                pagecache.drop(self.path)
                lun = lunwriter.LunWriter(self.fd, direct=direct)
                self.assertEqual(direct, lun.direct)
                for off in range(0, 16 * MiB, MiB):
                    lun.write(off, [data[off:off + MiB]])
                lun.finish()
                lun.close()
                # 4096 pages written: all cached through the page cache,
                # none past it
                cached = resident_pages(self.path)
                if direct:
                    self.assertEqual(4, lun.direct_writes)
                    self.assertEqual(0, cached)
                else:
                    self.assertEqual(0, lun.direct_writes)
                    self.assertGreaterEqual(cached, 4000)
                self.assertEqual(data, self._read()[:16 * MiB])

    def test_writes_that_follow_each_other_are_gathered(self):
        # 64 KiB writes (a qcow2 image's clusters): one write per 4 MiB
        rng = random.Random(4)
        data = rng.randbytes(8 * MiB)
        lun = lunwriter.LunWriter(self.fd, direct=True)
        for off in range(0, 8 * MiB, 64 * 1024):
            lun.write(off, [memoryview(data)[off:off + 64 * 1024]])
        lun.finish()
        lun.close()
        self.assertEqual((2, 2), (lun.writes, lun.direct_writes))
        self.assertEqual(data, self._read()[:8 * MiB])

    def test_odd_offsets_and_lengths_through_the_page_cache(self):
        # an image's last bytes (not a whole block), a write at an odd
        # offset: written, through the page cache, where asked
        rng = random.Random(6)
        want = bytearray(32 * MiB)
        lun = lunwriter.LunWriter(self.fd, direct=True)
        for off, n in ((0, 4 * MiB + 1000), (9 * MiB + 7, 123_457),
                       (12 * MiB, 3 * MiB)):
            data = rng.randbytes(n)
            want[off:off + n] = data
            lun.write(off, [data[:n // 2], data[n // 2:]])
        lun.finish()
        lun.close()
        # [0, 4 MiB) and [12, 15 MiB) past it; the tail and the odd one not
        self.assertEqual(2, lun.direct_writes)
        self.assertEqual(4, lun.writes)
        self.assertEqual(bytes(want), self._read())

    def test_the_last_write_to_a_byte_stays(self):
        rng = random.Random(8)
        want = bytearray(32 * MiB)
        lun = lunwriter.LunWriter(self.fd, direct=True)
        # out of order, overlapping, odd sizes; each gathered, then
        # written over, before or after its own write started
        for _ in range(60):
            off = rng.randrange(0, 28 * MiB)
            n = rng.randint(1, 3 * MiB)
            if rng.random() < 0.5:      # whole blocks: past the cache
                off -= off % 4096
                n += -n % 4096
            data = rng.randbytes(n)
            want[off:off + len(data)] = data
            lun.write(off, [data])
        lun.finish()
        lun.close()
        self.assertGreater(lun.direct_writes, 0)
        self.assertEqual(bytes(want), self._read())

    def test_a_refused_direct_write_goes_through_the_page_cache(self):
        # A device or file system that takes the O_DIRECT open but
        # refuses the write (EINVAL): that write and the rest are made
        # through the page cache, nothing lost.
        real = os.pwritev
        refused = []

        def pwritev(fd, buffers, offset):
            if fd == lun.direct_fd:
                refused.append(offset)
                raise OSError(22, 'Invalid argument')
            return real(fd, buffers, offset)
        self.addCleanup(setattr, os, 'pwritev', real)
        os.pwritev = pwritev
        data = random.Random(2).randbytes(12 * MiB)
        lun = lunwriter.LunWriter(self.fd, direct=True)
        for off in range(0, 12 * MiB, MiB):
            lun.write(off, [data[off:off + MiB]])
        lun.finish()
        self.assertFalse(lun.direct)
        self.assertEqual(0, lun.direct_writes)
        self.assertGreaterEqual(len(refused), 1)
        lun.close()
        self.assertEqual(data, self._read()[:12 * MiB])

    def test_other_errors_fail_the_build(self):
        real = os.pwritev

        def pwritev(fd, buffers, offset):
            if fd == lun.direct_fd:
                raise OSError(5, 'Input/output error')
            return real(fd, buffers, offset)
        self.addCleanup(setattr, os, 'pwritev', real)
        os.pwritev = pwritev
        lun = lunwriter.LunWriter(self.fd, direct=True)
        lun.write(0, [b'e' * (4 * MiB)])
        with self.assertRaises(OSError) as ctx:
            lun.finish()
        self.assertEqual(5, ctx.exception.errno)
        lun.close()

    def test_close_drops_a_gathering_write_and_its_descriptor(self):
        lun = lunwriter.LunWriter(self.fd, direct=True)
        direct_fd = lun.direct_fd
        lun.write(0, [b'g' * MiB])      # gathering: not written yet
        lun.close()
        self.assertEqual(b'\0' * MiB, self._read()[:MiB])
        self.assertIsNone(lun.direct_fd)
        with self.assertRaises(OSError):
            os.fstat(direct_fd)

    def test_no_o_direct_where_the_open_is_refused(self):
        # A file system that refuses O_DIRECT at open (EINVAL, as ext4
        # with data=journal does): written through the page cache
        real = os.open

        def refusing_open(path, flags, *args, **kwargs):
            if flags & os.O_DIRECT:
                raise OSError(22, 'Invalid argument')
            return real(path, flags, *args, **kwargs)
        self.addCleanup(setattr, os, 'open', real)
        os.open = refusing_open
        data = random.Random(1).randbytes(4 * MiB)
        lun = lunwriter.LunWriter(self.fd, direct=True)
        self.assertIsNone(lun.direct_fd)
        self.assertFalse(lun.direct)
        lun.write(0, [data])
        lun.finish()
        lun.close()
        self.assertEqual((1, 0), (lun.writes, lun.direct_writes))
        self.assertEqual(data, self._read()[:4 * MiB])


class DropBehindTest(unittest.TestCase):
    """DROP_BEHIND: a build's LUN pages leave the page cache once flushed."""

    def setUp(self):
        self.path, self.fd = uncached_file(self)
        self.addCleanup(setattr, lunwriter, 'FLUSH_EVERY',
                        lunwriter.FLUSH_EVERY)
        self.addCleanup(setattr, lunwriter, 'DROP_BEHIND',
                        lunwriter.DROP_BEHIND)
        lunwriter.FLUSH_EVERY = 4 * MiB

    def _build(self, data):
        lun = lunwriter.LunWriter(self.fd)
        for off in range(0, len(data), MiB):
            lun.write(off, [data[off:off + MiB]])
        lun.finish()
        lun.close()
        return lun

    def test_pages_dropped_after_the_build_and_nothing_lost(self):
        data = random.Random(12).randbytes(16 * MiB)
        for drop in (False, True):
            with self.subTest(drop=drop):
                lunwriter.DROP_BEHIND = drop
                pagecache.drop(self.path)
                lun = self._build(data)
                self.assertGreaterEqual(lun.flushes, 1)
                cached = resident_pages(self.path)
                if drop:
                    self.assertEqual(0, cached)
                else:
                    self.assertGreaterEqual(cached, 4000)
                with open(self.path, 'rb') as f:
                    self.assertEqual(data, f.read(16 * MiB))

    def test_a_flush_drops_what_it_flushed_not_what_is_still_dirty(self):
        lunwriter.DROP_BEHIND = True
        clean = random.Random(13).randbytes(8 * MiB)
        os.pwrite(self.fd, clean, 0)
        lun = lunwriter.LunWriter(self.fd)
        lun._flush_and_drop(8 * MiB)     # what the flush thread runs
        self.assertEqual(0, resident_pages(self.path))
        # written after the flush and not yet flushed: dirty, so kept
        dirty = random.Random(14).randbytes(4 * MiB)
        os.pwrite(self.fd, dirty, 8 * MiB)
        lunwriter._drop(self.fd, 12 * MiB)
        with open(self.path, 'rb') as f:
            self.assertEqual(clean + dirty, f.read(12 * MiB))
        lun.close()
