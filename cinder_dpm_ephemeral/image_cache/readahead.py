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
"""The image download, carried on while the golden LUN is made.

A golden build streams the image onto its LUN in one pass, so it cannot
write a byte before the array has made the LUN and the host has attached
it: on SVC a ``mkvdisk``, a host mapping and an FC scan; on PowerFlex an
``addVolume``, a mapping and the SDC's device. Without help the download
waits for them. :class:`ReadAhead` lets it go on: from :meth:`start` a
green thread reads the download into a spool file (in
``image_conversion_dir``, with no name: nothing is left behind whatever
happens) until the build begins to consume it; the build then reads the
spooled bytes back (from the page cache, as a rule) and the rest from the
download itself. Bytes, order and checks are those of the download: the
format inspectors sit above this and see each byte once, in order.

The spool holds at most ``limit`` bytes (the image's size, less when the
directory has less room to spare); past it the download waits, as it
would have without a spool. What the build has read back is dropped from
the spool as it goes (``fallocate(PUNCH_HOLE)`` every :data:`DROP_EVERY`
bytes): a spooled page that was handed back is never needed again, and
dropping it before it is written back frees its memory for the LUN's own
pages, instead of holding a second copy of the image in the page cache
until the build ends.
"""

from __future__ import annotations

import ctypes
import os
import tempfile
from collections.abc import Callable
from collections.abc import Iterable, Iterator
from typing import Any

import eventlet
from oslo_log import log as logging

from cinder_dpm_ephemeral.image_cache import lunwriter

LOG = logging.getLogger(__name__)

#: What the spool hands back at a time (glanceclient's own chunk size).
CHUNK = 1024 * 1024
#: Room left free in image_conversion_dir beside a spool.
RESERVE = 1024 * 1024 * 1024
#: Bytes handed back, at least, between two drops from the spool (0:
#: none dropped before the spool is closed).
DROP_EVERY = 8 * CHUNK
_FALLOC_FL_KEEP_SIZE = 0x01
_FALLOC_FL_PUNCH_HOLE = 0x02


def _load_punch_hole() -> Callable[[int, int, int], bool] | None:
    fn = lunwriter.libc_function('fallocate', ctypes.c_int, ctypes.c_int,
                                 ctypes.c_int64, ctypes.c_int64)
    if fn is None:
        return None

    def punch_hole(fd: int, offset: int, length: int) -> bool:
        # Only a hint: where the file system refuses, the spool keeps its
        # pages until it is closed, as it did before.
        return fn(fd, _FALLOC_FL_PUNCH_HOLE | _FALLOC_FL_KEEP_SIZE, offset,
                  length) == 0
    return punch_hole


_punch_hole = _load_punch_hole()


def room_for(directory: str, wanted: int) -> int:
    """How much of ``wanted`` bytes may be spooled into ``directory``."""
    try:
        st = os.statvfs(directory)
    except OSError:
        return 0
    return max(0, min(wanted, st.f_bavail * st.f_frsize - RESERVE))


class ReadAhead:
    """An iterator of download chunks that can read ahead into a spool.

    Until :meth:`start` it passes chunks through. After it, the download
    is read by a green thread into the spool; the first ``next()`` stops
    that thread (after the chunk it is reading) and hands back the spool's
    bytes, then the download's. A download error met while reading ahead
    is raised where the consumer reaches it. :meth:`close` ends it all.
    """

    def __init__(self, chunks: Iterable[bytes], directory: str,
                 limit: int) -> None:
        self._source = chunks
        self._chunks: Iterator[bytes] = iter(chunks)
        self._directory = directory
        self._limit = limit
        self._fd: int | None = None
        self._filler: Any = None
        self._stop = False
        self._error: BaseException | None = None
        self._ended = False
        #: bytes spooled, and how many of them were handed back so far
        self.spooled = 0
        self._replayed = 0
        #: bytes handed back and dropped from the spool since
        self.dropped = 0

    def start(self) -> None:
        """Read ahead from now on (no-op without room for a spool)."""
        if self._filler is not None or self._limit <= 0:
            return
        # O_TMPFILE where the file system has it: no name, ever.
        spool = tempfile.TemporaryFile(dir=self._directory, buffering=0)
        self._fd = os.dup(spool.fileno())
        spool.close()
        self._filler = eventlet.spawn(self._fill)

    def _fill(self) -> None:
        assert self._fd is not None
        try:
            while not self._stop and self.spooled < self._limit:
                try:
                    chunk = next(self._chunks)
                except StopIteration:
                    self._ended = True
                    return
                view = memoryview(chunk)
                while view:
                    n = os.pwrite(self._fd, view, self.spooled)
                    self.spooled += n
                    view = view[n:]
                # A download from a near store rarely waits on its socket
                # (and one from a file never): let the LUN's creation and
                # attach, which this runs beside, go on between chunks.
                eventlet.sleep(0)
        except Exception as exc:    # raised to the consumer, in its turn
            self._error = exc

    def __iter__(self) -> ReadAhead:
        return self

    def __next__(self) -> bytes:
        if self._filler is not None:
            self._stop = True
            filler, self._filler = self._filler, None
            filler.wait()
            LOG.debug('Read %d bytes of the image ahead while the golden '
                      'LUN was made.', self.spooled)
        if self._replayed < self.spooled:
            assert self._fd is not None
            data = os.pread(self._fd, min(CHUNK,
                                          self.spooled - self._replayed),
                            self._replayed)
            if not data:
                raise OSError(f'read-ahead spool ended at {self._replayed}'
                              f' of {self.spooled} bytes')
            self._replayed += len(data)
            if self._replayed == self.spooled:
                self._release()
            elif DROP_EVERY and self._replayed - self.dropped >= DROP_EVERY:
                self._drop()
            return data
        if self._error is not None:
            error, self._error = self._error, None
            raise error
        if self._ended:
            raise StopIteration
        return next(self._chunks)

    def _drop(self) -> None:
        """Drop what was handed back from the spool (its pages freed)."""
        assert self._fd is not None
        if _punch_hole is not None and _punch_hole(
                self._fd, self.dropped, self._replayed - self.dropped):
            self.dropped = self._replayed

    def _release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def close(self) -> None:
        """Stop reading ahead, free the spool, close the download."""
        if self._filler is not None:
            self._filler.kill()
            self._filler = None
        self._release()
        close = getattr(self._source, 'close', None)
        if close is not None:
            try:
                close()
            except Exception:
                LOG.debug('Closing an image download failed.', exc_info=True)
