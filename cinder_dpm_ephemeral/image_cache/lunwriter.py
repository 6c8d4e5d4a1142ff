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
"""Writing a golden LUN beside the download, with its writeback started.

A golden build used to do everything in one green thread, one step after
the other: read a chunk of the download, inspect it, write it into the
LUN's page cache, and at the end ``fsync``, which is when the LUN's bytes
actually left for the array. :class:`LunWriter` changes two things:

* each write runs in a native thread (eventlet's ``tpool`` in the volume
  service), up to :data:`DEPTH` of them at once, while the green thread
  reads and inspects the next bytes: ``pwritev`` releases the GIL, so the
  copies into the page cache and the download's work overlap, on as many
  cores as there are;
* right after each write, the writeback of that range is started
  (Linux ``sync_file_range(SYNC_FILE_RANGE_WRITE)``, which does not wait
  for it): the array receives the image while it downloads, and a
  build's LUN pages do not pile up dirty in the host's memory until the
  final ``fsync`` (``sync_file_range(2)``; the same technique as
  PostgreSQL's ``*_flush_after``). ``fsync`` still decides durability;
* every :data:`FLUSH_EVERY` bytes written, a flush (``fdatasync``) is
  started in a native thread, one at a time, while the writes go on. A
  device's cache flush costs in proportion to what it holds since the
  last one (on the virtual disk the benchmarks ran on, about 0.7 s for
  a 1 GiB image's bytes, and nothing when it holds none): flushed as the
  image arrives, the final ``fsync`` is left only the last part to
  flush (doc/benchmarks.md, "Flush-behind"). On an array's LUN the
  flush is SCSI SYNCHRONIZE CACHE, which a battery-backed cache answers
  at once;
* after each of those flushes, and after the final ``fsync``, the pages
  written so far are dropped from the page cache (:data:`DROP_BEHIND`,
  ``posix_fadvise(DONTNEED)``, which keeps a page still dirty): the build
  never reads them back, the volume host keeps no golden image in its
  memory, and the next writes reuse that memory instead of fresh pages
  (doc/benchmarks.md, "Drop-behind");
* with ``direct=True`` the LUN is written past the host's page cache
  (``O_DIRECT``, as Cinder's own ``qemu-img convert -t none`` writes a
  volume): writes that follow each other are gathered for one
  page-aligned buffer of up to :data:`DIRECT_UNIT` bytes, and a native
  thread copies them into it (without the GIL) and writes it, while the
  next gathers. The
  golden's bytes never occupy the host's memory, so a build neither
  evicts what the host keeps cached nor pays for new page-cache pages
  (on the virtual machine the benchmarks ran on, a page the host had
  taken back cost four times the write itself: doc/benchmarks.md,
  "Past the page cache"). A device or file system that refuses
  ``O_DIRECT`` is written through the page cache as before.

A write's buffers must not change until it is done: callers hand over
``bytes`` (immutable) or a copy. Writes under way at once never overlap:
a write over a range still being written waits for every write before
it, so the last write to a byte is the one that stays.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import mmap
import os
import threading
from collections import deque
from collections.abc import Callable
from collections.abc import Sequence
from typing import Any

from oslo_log import log as logging

LOG = logging.getLogger(__name__)

#: sync_file_range(2) flag: start writeback of dirty pages in the range
SYNC_FILE_RANGE_WRITE = 2
_IOV_MAX = 1024
#: writes under way at once beside the caller (a golden build's units
#: are at most 4 MiB: 16 MiB of buffers held at most)
DEPTH = 4
#: bytes written between the flushes started beside the writes (0: none
#: before the final ``fsync``)
FLUSH_EVERY = 128 * 1024 * 1024
#: after each flush, and after the final ``fsync``, the LUN's pages
#: written so far are dropped from the page cache (``posix_fadvise``
#: ``DONTNEED``): they are clean by then, the build never reads them
#: back, and the next writes reuse their memory, recently touched,
#: instead of fresh pages
DROP_BEHIND = True
#: direct writes start and end on multiples of this (a device's logical
#: block is 512 or 4096 bytes, a file system's block 4096 at most here)
DIRECT_ALIGN = 4096
#: bytes gathered into one direct write at most (the raw stream's unit)
DIRECT_UNIT = 4 * 1024 * 1024
#: bytes read (and zeroed) at a time by :func:`zero_where_needed`
ZERO_UNIT = 4 * 1024 * 1024
_ZERO = bytes(ZERO_UNIT)


def is_zero(data: bytes | memoryview) -> bool:
    """Whether ``data`` (bytes or a view of them) is all zeros."""
    if len(data) <= ZERO_UNIT:
        return _ZERO.startswith(data)
    view = memoryview(data)
    return all(_ZERO.startswith(view[off:off + ZERO_UNIT])
               for off in range(0, len(view), ZERO_UNIT))


def libc_function(name: str, *argtypes: Any) -> Any | None:
    """The C library's ``name`` (an int-returning call), or None.

    A ctypes call releases the GIL while it runs.
    """
    try:
        fn = getattr(ctypes.CDLL(ctypes.util.find_library('c'),
                                 use_errno=True), name)
    except (OSError, AttributeError, TypeError):
        return None
    fn.argtypes = argtypes
    fn.restype = ctypes.c_int
    return fn


def _load_sync_file_range() -> Callable[[int, int, int], bool] | None:
    fn = libc_function('sync_file_range', ctypes.c_int, ctypes.c_int64,
                       ctypes.c_int64, ctypes.c_uint)
    if fn is None:
        return None

    def start_writeback(fd: int, offset: int, length: int) -> bool:
        # Only a hint: on failure (a file system or device that does not
        # support it) fsync at the end writes everything anyway.
        return fn(fd, offset, length, SYNC_FILE_RANGE_WRITE) == 0
    return start_writeback


_start_writeback = _load_sync_file_range()


def _green() -> bool:
    try:
        from eventlet import patcher
    except ImportError:         # pragma: no cover - cinder needs eventlet
        return False
    return bool(patcher.is_monkey_patched('thread'))


class _Native:
    """``fn(*args)`` in a native thread; :meth:`wait` returns or raises.

    Under eventlet, through ``tpool`` (the caller's green thread waits
    cooperatively); otherwise a thread of its own.
    """

    def __init__(self, fn: Callable[..., None], *args: Any) -> None:
        self._error: BaseException | None = None
        if _green():
            import eventlet
            from eventlet import tpool
            self._gt: Any = eventlet.spawn(tpool.execute, fn, *args)
            self._thread = None
        else:
            self._gt = None
            self._thread = threading.Thread(target=self._run,
                                            args=(fn, args), daemon=True)
            self._thread.start()

    def _run(self, fn: Callable[..., None], args: tuple) -> None:
        try:
            fn(*args)
        except BaseException as exc:     # raised by wait(), in the caller
            self._error = exc

    def done(self) -> bool:
        """Whether it has ended (:meth:`wait` would not block)."""
        if self._gt is not None:
            return bool(self._gt.dead)
        assert self._thread is not None
        return not self._thread.is_alive()

    def wait(self) -> None:
        if self._gt is not None:
            self._gt.wait()
            return
        assert self._thread is not None
        self._thread.join()
        if self._error is not None:
            raise self._error


def pwritev_all(fd: int, buffers: Sequence[bytes | memoryview],
                offset: int) -> int:
    """Write ``buffers`` at ``offset`` whole (short writes resumed)."""
    views = [memoryview(b) for b in buffers if len(b)]
    total = 0
    while views:
        n = os.pwritev(fd, views[:_IOV_MAX], offset)
        if n <= 0:
            raise OSError(f'pwritev wrote {n} bytes at {offset}')
        offset += n
        total += n
        while views and n >= len(views[0]):
            n -= len(views[0])
            views.pop(0)
        if n:
            views[0] = views[0][n:]
    return total


class _PyBuffer(ctypes.Structure):
    """CPython's ``Py_buffer`` (the buffer protocol's view of an object)."""

    _fields_ = [('buf', ctypes.c_void_p), ('obj', ctypes.c_void_p),
                ('len', ctypes.c_ssize_t), ('itemsize', ctypes.c_ssize_t),
                ('readonly', ctypes.c_int), ('ndim', ctypes.c_int),
                ('format', ctypes.c_char_p), ('shape', ctypes.c_void_p),
                ('strides', ctypes.c_void_p),
                ('suboffsets', ctypes.c_void_p),
                ('internal', ctypes.c_void_p)]


_get_buffer = ctypes.pythonapi.PyObject_GetBuffer
_get_buffer.argtypes = (ctypes.py_object, ctypes.POINTER(_PyBuffer),
                        ctypes.c_int)
_get_buffer.restype = ctypes.c_int
_release_buffer = ctypes.pythonapi.PyBuffer_Release
_release_buffer.argtypes = (ctypes.POINTER(_PyBuffer),)
_release_buffer.restype = None


def _copy_into(address: int, parts: Sequence[bytes | memoryview]) -> int:
    """Copy ``parts`` one after the other to memory at ``address``.

    Each copy runs without the GIL (``ctypes.memmove`` releases it), so a
    native thread copies while the caller's thread downloads and inspects.
    Each part is pinned by the buffer protocol while it is copied; the
    caller keeps them unchanged until then. Returns the bytes copied.
    """
    pos = 0
    for part in parts:
        pb = _PyBuffer()
        _get_buffer(part, ctypes.byref(pb), 0)      # contiguous bytes
        try:
            ctypes.memmove(address + pos, pb.buf, pb.len)
            pos += pb.len
        finally:
            _release_buffer(ctypes.byref(pb))
    return pos


def open_direct(fd: int) -> int | None:
    """``fd``'s file or device opened again for ``O_DIRECT`` writes.

    None where the platform, the file system or the device refuses it.
    """
    flag = getattr(os, 'O_DIRECT', 0)
    if not flag:
        return None
    try:
        return os.open(f'/proc/self/fd/{fd}',
                       os.O_WRONLY | flag | os.O_CLOEXEC)
    except OSError as exc:
        LOG.info('The LUN cannot be written past the page cache '
                 '(O_DIRECT: %s); writing it through the page cache.', exc)
        return None


def _drop(fd: int, upto: int) -> None:
    """Drop ``[0, upto)``'s clean pages from the page cache (a hint).

    Dirty pages are not dropped (their writeback is started), so nothing
    written is ever lost.
    """
    if upto <= 0:
        return
    try:
        os.posix_fadvise(fd, 0, upto, os.POSIX_FADV_DONTNEED)
    except OSError:
        pass        # a device or file system that ignores the hint


def zero_where_needed(fd: int, offset: int, length: int,
                      pause: Callable[[], Any] | None = None) -> int:
    """Make ``[offset, offset + length)`` read zeros; the bytes written.

    For a LUN that does not read zeros where it was never written. Each
    unit is read first and written only where it is not zeros already: a
    read is cheaper than a write, and a thin LUN stays thin. ``pause``,
    if given, is called after each unit (to let other green threads run).
    """
    written = 0
    end = offset + length
    for off in range(offset, end, ZERO_UNIT):
        n = min(ZERO_UNIT, end - off)
        if not is_zero(os.pread(fd, n, off)):
            pwritev_all(fd, [_ZERO[:n]], off)
            written += n
        if pause is not None:
            pause()
    return written


class LunWriter:
    """Writes to an open LUN, each beside the caller's next work.

    :meth:`write` starts the write and returns; with :data:`DEPTH` writes
    under way it first waits for the oldest (their buffers are the
    caller's until then). :meth:`wait` waits for them all, :meth:`finish`
    too and then ``fsync``s; :meth:`close` (always, e.g. in ``finally``)
    waits for them all without raising. A write's error is raised by the
    first call that finds it ended (at the latest :meth:`wait`).
    ``beside=False``: each write done in :meth:`write` itself, no
    writeback started (the way builds wrote before;
    ``dpm_ephemeral_write_behind``). ``direct=True``: written past the
    page cache where the LUN allows it (the module's docstring); a write
    may wait in the gathering buffer until the next write that does not
    follow it, or :meth:`wait`, and its buffers are copied into the
    aligned one by the native thread that writes it. :attr:`fd` stays a
    descriptor through the page cache, for the caller's own reads and
    writes after a :meth:`wait`.
    """

    def __init__(self, fd: int, beside: bool = True,
                 depth: int | None = None, direct: bool = False) -> None:
        self.fd = fd
        self.beside = beside
        self.depth = max(1, DEPTH if depth is None else depth)
        self._writeback = _start_writeback if beside else None
        #: writes under way, oldest first: (offset, length, native, the
        #: gathering buffer it writes from or None)
        self._pending: deque[tuple[int, int, _Native,
                                   mmap.mmap | None]] = deque()
        #: writes made, writebacks started, flushes started beside them
        self.writes = 0
        self.writebacks = 0
        self.flushes = 0
        #: lengths of the writes made past the page cache (appended by
        #: the native threads: list.append is atomic)
        self._direct_done: list[int] = []
        self._flush: _Native | None = None
        self._unflushed = 0
        #: where the furthest write started so far ends
        self._end = 0
        #: the O_DIRECT descriptor, None when not wanted or refused
        self.direct_fd = open_direct(fd) if direct else None
        self._refused = False
        #: a refusal seen by a native thread, not logged yet
        self._refusal = ''
        #: page-aligned buffers: free ones; all made (at most depth + 1)
        self._free: list[mmap.mmap] = []
        self._buffers: list[mmap.mmap] = []
        self._anchors: dict[int, ctypes.c_char] = {}
        #: writes that follow each other, not started yet:
        #: [offset, buffer, length, the caller's views]
        self._gather: list[Any] | None = None

    @property
    def direct_writes(self) -> int:
        """Writes made past the page cache (of :attr:`writes`)."""
        return len(self._direct_done)

    @property
    def direct(self) -> bool:
        """Whether writes go past the page cache (not refused so far)."""
        return self.direct_fd is not None and not self._refused

    def _do(self, buffers: Sequence[bytes | memoryview],
            offset: int) -> None:
        n = pwritev_all(self.fd, buffers, offset)
        if self._writeback is not None and self._writeback(self.fd, offset,
                                                           n):
            self.writebacks += 1

    def write(self, offset: int,
              buffers: Sequence[bytes | memoryview]) -> None:
        """Write ``buffers`` (one after the other) at ``offset``."""
        self._reap()
        length = sum(len(b) for b in buffers)
        if not length:
            return
        if self.direct:
            self._gathered(offset, buffers)
            return
        self._submit_gather()
        self._start(offset, length, self._do, list(buffers), None)

    def _start(self, offset: int, length: int, fn: Callable[..., None],
               data: Any, buf: mmap.mmap | None) -> None:
        if any(o < offset + length and offset < o + n
               for o, n, _, _ in self._pending):
            self._wait_all()    # the last write to a byte stays
        while len(self._pending) >= self.depth:
            self._wait_oldest()
        self.writes += 1
        self._end = max(self._end, offset + length)
        if self.beside:
            self._pending.append(
                (offset, length, _Native(fn, data, offset), buf))
            self._flush_behind(length)
        else:
            try:
                fn(data, offset)
            finally:
                if buf is not None:
                    self._free.append(buf)

    # -- past the page cache ------------------------------------------------
    def _gathered(self, offset: int,
                  buffers: Sequence[bytes | memoryview]) -> None:
        """Add the write to the gathering buffer; start the full ones.

        Nothing is copied here: the native thread that writes a buffer
        first copies the caller's bytes into it, without the GIL
        (:func:`_copy_into`).
        """
        for b in buffers:
            view = memoryview(b).cast('B')
            while len(view):
                g = self._gather
                if g is not None and offset != g[0] + g[2]:
                    self._submit_gather()       # a write elsewhere
                    g = None
                if g is None:
                    g = self._gather = [offset, self._take_buffer(), 0, []]
                n = min(len(view), DIRECT_UNIT - g[2])
                g[3].append(view[:n])
                g[2] += n
                offset += n
                view = view[n:]
                if g[2] == DIRECT_UNIT:
                    self._submit_gather()

    def _take_buffer(self) -> mmap.mmap:
        if not self._free and len(self._buffers) <= self.depth:
            buf = mmap.mmap(-1, DIRECT_UNIT)    # page-aligned
            self._buffers.append(buf)
            # where it starts in memory (held until close)
            self._anchors[id(buf)] = ctypes.c_char.from_buffer(buf)
            return buf
        while not self._free:
            self._wait_oldest()     # its buffer comes back
        return self._free.pop()

    def _submit_gather(self) -> None:
        g, self._gather = self._gather, None
        if g is None:
            return
        offset, buf, length, parts = g
        # (an image's last bytes, or a file system's odd write: through
        # the page cache)
        aligned = not (offset % DIRECT_ALIGN or length % DIRECT_ALIGN)
        self._start(offset, length, self._do_gathered,
                    (buf, length, aligned, parts), buf)

    def _do_gathered(self, data: tuple[mmap.mmap, int, bool,
                                       list[memoryview]],
                     offset: int) -> None:
        buf, length, aligned, parts = data
        if aligned and not self._refused:
            _copy_into(ctypes.addressof(self._anchors[id(buf)]), parts)
            with memoryview(buf) as whole, whole[:length] as view:
                try:
                    self._pwrite_direct(view, offset)
                    self._direct_done.append(length)
                    return
                except OSError as exc:
                    if exc.errno != errno.EINVAL:
                        raise
                    # refused after all: through the page cache (logged
                    # by the caller's thread: a native thread must not
                    # take the service's green logging locks)
                    self._refused = True
                    self._refusal = str(exc)
        self._do(parts, offset)

    def _pwrite_direct(self, view: memoryview, offset: int) -> None:
        assert self.direct_fd is not None
        done = 0
        while done < len(view):
            n = os.pwritev(self.direct_fd, [view[done:]], offset + done)
            if n <= 0:
                raise OSError(f'pwritev wrote {n} bytes at {offset + done}')
            done += n

    def _flush_behind(self, length: int) -> None:
        """Start a flush once :data:`FLUSH_EVERY` bytes are unflushed."""
        self._unflushed += length
        if not FLUSH_EVERY or self._unflushed < FLUSH_EVERY:
            return
        if self._flush is not None:
            if not self._flush.done():
                return          # one at a time; the next one takes these
            self._wait_flush()
        self._unflushed = 0
        self.flushes += 1
        self._flush = _Native(self._flush_and_drop, self._end)

    def _flush_and_drop(self, upto: int) -> None:
        os.fdatasync(self.fd)
        if DROP_BEHIND:
            _drop(self.fd, upto)

    def _wait_flush(self) -> None:
        # Forgotten only once ended (with or without an error): a wait cut
        # short leaves it for close() to wait for.
        flush = self._flush
        if flush is None:
            return
        try:
            flush.wait()
        except Exception:
            self._flush = None
            raise
        self._flush = None

    def _reap(self) -> None:
        """Forget the writes already ended; raise the first one's error."""
        while self._pending and self._pending[0][2].done():
            self._wait_oldest()

    def _wait_oldest(self) -> None:
        # Removed only once ended (with or without an error): a wait cut
        # short leaves it for close() to wait for.
        native = self._pending[0][2]
        try:
            native.wait()
        except Exception:
            self._forget_oldest()
            raise
        self._forget_oldest()

    def _forget_oldest(self) -> None:
        buf = self._pending.popleft()[3]
        if buf is not None:
            self._free.append(buf)
        if self._refusal:
            LOG.info('The LUN refused a write past the page cache (%s); '
                     'writing the rest through it.', self._refusal)
            self._refusal = ''

    def wait(self) -> None:
        """Wait for every write under way; raise the first error.

        A write still gathering is started first. A wait cut short (the
        green thread killed) leaves the writes pending: :meth:`close`
        still waits for them before the caller may close the LUN's
        descriptor.
        """
        self._submit_gather()
        self._wait_all()

    def _wait_all(self) -> None:
        error: Exception | None = None
        while self._pending:
            try:
                self._wait_oldest()
            except Exception as exc:
                if error is None:
                    error = exc
        if error is not None:
            raise error

    def finish(self) -> None:
        """Wait for every write and flush, then ``fsync``: all durable."""
        self.wait()
        self._wait_flush()
        os.fsync(self.fd)
        if DROP_BEHIND:
            _drop(self.fd, self._end)

    def close(self) -> None:
        """Wait for what is still under way; errors are logged only.

        Nothing of it may outlive the LUN's descriptor, which the caller
        closes next. A write still gathering is dropped, not written.
        """
        g, self._gather = self._gather, None
        if g is not None:
            self._free.append(g[1])
        try:
            self._wait_all()
        except Exception:
            LOG.debug('A write to the LUN failed while giving up on it.',
                      exc_info=True)
        try:
            self._wait_flush()
        except Exception:
            LOG.debug('A flush of the LUN failed while giving up on it.',
                      exc_info=True)
        if self._pending:
            return      # cut short again: left to the process's end
        if self.direct_fd is not None:
            os.close(self.direct_fd)
            self.direct_fd = None
        self._anchors.clear()
        for buf in self._buffers:
            with contextlib.suppress(BufferError):
                buf.close()
        self._buffers, self._free, self._gather = [], [], None
