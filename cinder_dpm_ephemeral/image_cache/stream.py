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
"""qcow2 images converted while they download (one pass).

A qcow2 file cannot be converted from a pipe by ``qemu-img``: it seeks
(header, L1 and L2 tables, then the data clusters). Stock Cinder therefore
downloads the whole file and converts it afterwards: two passes, one after
the other. Here the image is converted as it downloads, in one of two ways
(:func:`convert_qcow2_to_device`):

* **in file order** (the usual case, :class:`_FileOrder`): once the
  golden LUN is attached, the download is read chunk by chunk and each
  part is used as it passes: the L1 table, then each L2 table are parsed,
  each run of data clusters (contiguous in the file and on the disk, up to
  4 MiB) is written to the LUN at its guest offset straight from the
  download's buffer, compressed clusters are inflated (zlib), zero and
  unallocated clusters are left alone on a LUN that reads zeros and zeroed
  on any other. ``qemu-img`` writes each L2 table just before the
  clusters it maps, so a data cluster is written the moment it arrives:
  each byte is copied once, no second process reads it back through a
  socket, and nothing waits for the end of the download. What no table
  claims yet when it passes (and every table) is kept in a temporary file
  in ``image_conversion_dir``; a cluster whose L2 table comes later is
  read back from there.
* **by qemu-img** through a read-only NBD export of that temporary file
  (:mod:`cinder_dpm_ephemeral.image_cache.nbd`, reads wait for bytes not
  downloaded yet), as Cinder would convert it, otherwise: what the file
  order pass does not read itself (internal snapshots, extended L2
  entries, zstd compression, encryption, a corrupt header, any table or
  cluster entry out of the ordinary: reserved bits, unaligned or past the
  end of the file, version 2 zero flags, a cluster used twice, more than
  :data:`MAX_PENDING` clusters mapped ahead of the download), and every
  image while a volume copy bandwidth limit (``volume_copy_bps_limit``,
  applied to a ``qemu-img`` child) is set. Images that say so in their
  header are downloaded into the file from the start; when the file order
  pass meets something mid-way, it writes what it had put on the LUN back
  into the file, the rest of the download follows, and ``qemu-img``
  rewrites the whole image. ``qemu-img convert`` (7.2) reads every L2
  table before it copies anything, so its copy starts once the download
  has reached the last one (about halfway through a 1 GiB image).

Checks, in this order, before ``qemu-img`` ever opens the data:

* the first 512 bytes must be a qcow2 header that passes oslo.utils' format
  inspector safety checks (no backing file, no external data file, no
  unknown incompatible features): the properties ``qemu-img`` would act on;
* the virtual size from that header is what the caller checks against the
  requested volume size (before any LUN exists);

and once the download has ended, before the result is used:

* the whole stream went through oslo.utils' inspector for every format, as
  Cinder's own ``qemu-img info`` guard does: it must be qcow2 and only qcow2
  and pass the safety checks;
* the byte count must equal the size Glance announced.
"""

from __future__ import annotations

import array
import bisect
import heapq
import os
import struct
import zlib
from collections.abc import Iterator
from typing import Any

import eventlet
from cinder import exception
from cinder.volume import throttling
from cinder import utils
from oslo_concurrency import processutils
from oslo_log import log as logging
from oslo_utils.imageutils import format_inspector

from cinder_dpm_ephemeral.image_cache import formats
from cinder_dpm_ephemeral.image_cache import lunwriter
from cinder_dpm_ephemeral.image_cache import nbd

LOG = logging.getLogger(__name__)

_REPORT_UNIT = 4 * 1024 * 1024
_HEADER = 512
MiB = 1024 * 1024
#: largest run of contiguous clusters read and written at once
RUN = 4 * MiB
#: clusters mapped but not landed yet, past which qemu-img converts
MAX_PENDING = 1 << 19
#: guest clusters tracked for a LUN that does not read zeros (1 byte each)
MAX_TRACKED = 1 << 26
#: a download chunk that finds nothing left over is the file-order
#: conversion's window itself, not a copy (False: every chunk copied into
#: the window, the way before; ``./run bench cold --ab
#: image_cache.stream.CHUNKS_IN_PLACE=false`` measures the two)
CHUNKS_IN_PLACE = True


class StreamedQcow2:
    """One qcow2 image being downloaded into ``path`` and exported by NBD.

    :meth:`open` reads and checks the header and starts the background
    download, :attr:`uri` is what ``qemu-img`` reads, :meth:`finish` waits
    for the download and runs the whole-stream checks; :meth:`close` stops
    the download and the export whatever happened.
    """

    def __init__(self, chunks: Any, image_id: str, size: int, path: str,
                 socket_dir: str) -> None:
        self.image_id = image_id
        self.size = size
        self.path = path
        self._socket_dir = socket_dir
        self._source = chunks
        self._wrapper = format_inspector.InspectWrapper(iter(chunks))
        self._export: nbd.GrowingFileExport | None = None
        self._writer: Any = None
        self._file: Any = None
        self.uri = ''
        self.virtual_size = 0
        self.bytes_read = 0
        self._chunks: Iterator[bytes] = iter(())
        self._head = b''
        self._layout: _Layout | None = None
        #: what the file-order conversion did (see export_stats)
        self.in_order: dict[str, Any] = {}
        #: LUN writes under way at once beside the download, 0: none
        #: (lunwriter; the backend options dpm_ephemeral_write_behind and
        #: dpm_ephemeral_write_behind_depth)
        self.write_behind = lunwriter.DEPTH
        #: the LUN written past the page cache where it allows it
        #: (lunwriter; the backend option dpm_ephemeral_direct_io)
        self.direct = False

    # -- life cycle ---------------------------------------------------------
    def open(self) -> None:
        """Read and check the header; start the download if qemu-img reads.

        In file order, the rest is downloaded by :meth:`convert_in_order`
        (onto the LUN, which does not exist yet).
        """
        # read back by the file-order pass, hence w+
        self._file = open(self.path, 'w+b', buffering=0)
        header = format_inspector.QcowInspector()
        head = bytearray()
        chunks = iter(self._wrapper)
        while len(head) < _HEADER:
            try:
                chunk = next(chunks)
            except StopIteration:
                break
            head += chunk
            header.eat_chunk(chunk)
        if not header.complete or not header.format_match:
            self._refuse('it is labelled qcow2 but does not start with a '
                         'qcow2 header')
        try:
            header.safety_check()
        except format_inspector.SafetyCheckFailed as exc:
            # Before qemu-img opens anything: the same checks Cinder's
            # qemu_img_info runs on the whole file (stricter in time, as
            # strict in what is refused).
            self._refuse(f'qcow2 header {formats.safety_reason(exc)}')
        self.virtual_size = int(header.virtual_size)
        self._chunks = chunks
        self._head = bytes(head)
        self.bytes_read = len(head)
        try:
            self._layout = _Layout(self._head, self.size, self.virtual_size)
        except NotInOrder as exc:
            self.in_order['qemu_img'] = str(exc)
        self._export = nbd.GrowingFileExport(self.path, self.size,
                                             self._socket_dir)
        self.uri = self._export.start()
        _ACTIVE[self.uri] = self
        if self._layout is None:
            self.resume(self._head, 0)

    @property
    def in_file_order(self) -> bool:
        """Whether the file-order pass is to read the rest (after open)."""
        return self._layout is not None and self._writer is None

    def resume(self, pending: bytes | memoryview, offset: int) -> None:
        """Download the rest into the file, for qemu-img through NBD.

        ``pending`` (what was read but not written yet) goes to the file
        at ``offset``; the file then holds ``[0, bytes_read)``.
        """
        os.pwrite(self._file.fileno(), pending, offset)
        self._file.seek(self.bytes_read)
        assert self._export is not None
        self._export.grown(self.bytes_read)
        self._writer = eventlet.spawn(self._download_quietly, self._chunks)

    def _download_quietly(self, chunks: Iterator[bytes]
                          ) -> Exception | None:
        """:meth:`_download`, its error returned instead of raised.

        Raised, eventlet prints it as an unhandled greenthread error at
        once, even though :meth:`finish` or :meth:`raise_download_error`
        re-raise it where it is handled.
        """
        try:
            self._download(chunks)
        except Exception as exc:
            return exc
        return None

    def _download(self, chunks: Iterator[bytes]) -> None:
        export = self._export
        assert export is not None
        reported = self.bytes_read
        try:
            for chunk in chunks:
                # Written as they come (no copy into a buffer first);
                # the export hears of them every few MiB.
                _write_all(self._file, chunk)
                self.bytes_read += len(chunk)
                if self.bytes_read > self.size:
                    raise exception.ImageUnacceptable(
                        image_id=self.image_id,
                        reason=(f'Glance announced {self.size} bytes but '
                                f'sent more'))
                if self.bytes_read - reported >= _REPORT_UNIT:
                    export.grown(self.bytes_read)
                    reported = self.bytes_read
                    # A download from a local store never blocks on the
                    # network: let the golden LUN's creation and the
                    # conversion proceed meanwhile.
                    eventlet.sleep(0)
            self._file.close()
        except BaseException as exc:
            export.fail(f'download of image {self.image_id} failed: '
                        f'{type(exc).__name__}')
            raise
        if self.bytes_read != self.size:
            export.fail('short download')
            raise exception.ImageUnacceptable(
                image_id=self.image_id,
                reason=(f'Glance announced {self.size} bytes but sent '
                        f'{self.bytes_read}'))
        export.finish()

    def convert_in_order(self, dest: str, reads_zeros: bool) -> None:
        """Download the image onto ``dest`` in file order (module doc).

        Raises :class:`NotInOrder` when ``qemu-img`` is to convert it; the
        download then goes on into the file, which by then holds whatever
        this pass read, and the NBD export serves it.
        """
        if self._layout is None or self._writer is not None:
            raise NotInOrder(self.in_order.get('qemu_img', 'download '
                                               'under way'))
        with utils.temporary_chown(dest):
            fd = os.open(dest, os.O_RDWR | os.O_CLOEXEC)
            lun = lunwriter.LunWriter(fd, beside=self.write_behind > 0,
                                      depth=self.write_behind,
                                      direct=self.direct)
            try:
                conversion = _FileOrder(self, self._layout, lun, reads_zeros)
                try:
                    conversion.run()
                except NotInOrder:
                    conversion.hand_over()
                    raise
                # Durable before the golden volume is declared ready.
                lun.finish()
            finally:
                lun.close()
                os.close(fd)

    @property
    def export_stats(self) -> dict[str, float]:
        """Reads made before the download had ended (``early_reads``).

        Those of the file-order conversion plus those ``qemu-img`` made
        through the NBD export, with the export's other counters.
        """
        stats = dict(self._export.stats) if self._export is not None else {}
        stats['early_reads'] = (stats.get('early_reads', 0) +
                                self.in_order.get('early_reads', 0))
        return stats

    def raise_download_error(self) -> None:
        """Re-raise the download's own error if it has failed already.

        A failed download makes ``qemu-img`` fail on a read; its error is
        the consequence, the download's is the cause worth reporting.
        """
        if self._writer is not None and self._writer.dead:
            writer, self._writer = self._writer, None
            error = writer.wait()
            if error is not None:
                raise error

    def finish(self) -> None:
        """Wait for the download's end and check the whole stream."""
        if self._writer is not None:
            writer, self._writer = self._writer, None
            error = writer.wait()
            if error is not None:
                raise error
        if self.bytes_read != self.size:
            self._refuse(f'{self.bytes_read} of {self.size} bytes read')
        try:
            fmt = self._wrapper.format
            if fmt is None or fmt.NAME != 'qcow2':
                raise format_inspector.ImageFormatError(
                    f'content is {getattr(fmt, "NAME", "unknown")}')
            fmt.safety_check()
        except format_inspector.SafetyCheckFailed as exc:
            self._refuse(f'labelled qcow2, {formats.safety_reason(exc)}')
        except format_inspector.ImageFormatError as exc:
            self._refuse(f'labelled qcow2, refused after download: {exc}')

    def close(self) -> None:
        _ACTIVE.pop(self.uri, None)
        if self._writer is not None:
            self._writer.kill()
            self._writer = None
        if self._export is not None:
            self._export.close()
            self._export = None
        if self._file is not None and not self._file.closed:
            self._file.close()
        close = getattr(self._source, 'close', None)
        if close is not None:
            try:
                close()
            except Exception:
                LOG.debug('Closing the download of image %s failed.',
                          self.image_id, exc_info=True)

    def _refuse(self, reason: str) -> None:
        raise exception.ImageUnacceptable(image_id=self.image_id,
                                          reason=reason)


def _write_all(f: Any, data: bytes | bytearray) -> None:
    view = memoryview(data)
    while view:
        view = view[f.write(view):]


#: conversions under way, by the URI handed to the writer
_ACTIVE: dict[str, StreamedQcow2] = {}


class NotInOrder(Exception):
    """This image is converted by ``qemu-img``; the message says why."""


# qcow2 (QEMU's docs/interop/qcow2.txt): the version 2 header, then the
# version 3 fields (incompatible features at 72, header length at 100,
# compression type at 104).
_HEADER_V2 = struct.Struct('>IIQIIQIIQQIIQ')
_MAGIC = 0x514649FB
_INCOMPAT_DIRTY = 1 << 0
_INCOMPAT_COMPRESSION = 1 << 3
_OFFSET_MASK = 0x00FFFFFFFFFFFE00       # bits 9-55: host offset
_COPIED = 1 << 63
_COMPRESSED = 1 << 62
_ZERO_FLAG = 1 << 0
_L1_RESERVED = 0xFFFFFFFFFFFFFFFF & ~(_OFFSET_MASK | _COPIED)
_L2_RESERVED = 0xFFFFFFFFFFFFFFFF & ~(_OFFSET_MASK | _COPIED | _ZERO_FLAG)
_MAX_L1_ENTRIES = 32 * MiB // 8         # QEMU's QCOW_MAX_L1_SIZE
# kinds of work, in the order they sort at one host offset
_L1, _L2, _DATA, _DEFLATED = range(4)


class _Layout:
    """What the file-order conversion needs from a qcow2 header.

    Raises :class:`NotInOrder` for anything it leaves to ``qemu-img``.
    """

    def __init__(self, head: bytes, file_size: int,
                 virtual_size: int) -> None:
        if len(head) < _HEADER_V2.size:
            raise NotInOrder('header shorter than a qcow2 header')
        (magic, version, backing, _backing_size, bits, size, crypt,
         l1_size, l1_offset, _rt_offset, _rt_clusters, snapshots,
         _snapshots_offset) = _HEADER_V2.unpack_from(head)
        incompatible = compression = 0
        if version >= 3 and len(head) >= 104:
            (incompatible,) = struct.unpack_from('>Q', head, 72)
            (length,) = struct.unpack_from('>I', head, 100)
            if length > 104 and len(head) > 104:
                compression = head[104]
        if magic != _MAGIC or version not in (2, 3) or backing:
            raise NotInOrder('not a plain qcow2 v2 or v3 header')
        if not 9 <= bits <= 21:
            raise NotInOrder(f'cluster bits {bits}')
        if crypt:
            raise NotInOrder('encrypted')
        if snapshots:
            raise NotInOrder('internal snapshots')
        if incompatible & ~(_INCOMPAT_DIRTY | _INCOMPAT_COMPRESSION):
            raise NotInOrder(f'incompatible features {incompatible:#x}')
        if compression:
            raise NotInOrder(f'compression type {compression} (not zlib)')
        if size != virtual_size:
            raise NotInOrder('virtual size differs from the one checked')
        self.version = version
        self.cluster_bits = bits
        self.cluster_size = 1 << bits
        self.l2_entries = self.cluster_size // 8
        self.file_size = file_size
        self.virtual_size = size
        self.l1_offset = l1_offset
        self.l1_size = l1_size
        span = self.cluster_size * self.l2_entries
        if not -(-size // span) <= l1_size <= _MAX_L1_ENTRIES:
            raise NotInOrder(f'L1 table of {l1_size} entries')
        if l1_offset % self.cluster_size or (
                l1_offset + 8 * l1_size > file_size):
            raise NotInOrder('L1 table outside the file')
        self.guest_clusters = -(-size // self.cluster_size)


class _FileOrder:
    """One conversion in file order (see the module's docstring).

    The download is read chunk by chunk into a window. Work items ``(host
    offset, kind, length, guest offset)`` wait in a heap ordered by host
    offset: the L1 table, the L2 tables it names, the data clusters each
    L2 table maps. Each is handled once its bytes have arrived: runs of
    data clusters are written from the window to the LUN (and remembered:
    ``runs``), tables and compressed clusters are also kept in the
    download file, and bytes no item claims when they pass are kept there
    too, in case a later L2 table maps them. The file thus holds every
    byte read except the runs on the LUN, from which :meth:`hand_over`
    restores them when ``qemu-img`` has to take over.
    """

    def __init__(self, source: StreamedQcow2, layout: _Layout,
                 lun: lunwriter.LunWriter, reads_zeros: bool) -> None:
        self.source = source
        self.layout = layout
        self.lun = lun
        self.fd = lun.fd
        self.spill = source._file.fileno()
        self.heap: list[tuple[int, int, int, int]] = []
        if not reads_zeros and layout.guest_clusters > MAX_TRACKED:
            raise NotInOrder(f'{layout.guest_clusters} clusters to track')
        # guest clusters written, for a LUN that does not read zeros
        self.written = (None if reads_zeros
                        else bytearray(layout.guest_clusters))
        # the download's bytes [start, pos) not handled yet (during
        # _handle, perhaps a download chunk itself: bytes)
        self.window: bytearray | bytes = bytearray(source._head)
        self.start = 0
        self.pos = len(self.window)
        # [0, done): in the download file, or in a run on the LUN
        self.done = 0
        self.runs_host = array.array('q')
        self.runs_guest = array.array('q')
        self.runs_length = array.array('q')
        self.stats = source.in_order
        self.stats.update(early_reads=0, items=0, bytes_written=0,
                          deflated_clusters=0, read_back=0,
                          chunks_in_place=0)

    def run(self) -> None:
        src = self.source
        lay = self.layout
        self._push(lay.l1_offset, _L1, 8 * lay.l1_size, 0)
        self._handle()
        for chunk in src._chunks:
            self.pos += len(chunk)
            src.bytes_read = self.pos
            if self.pos > src.size:
                raise exception.ImageUnacceptable(
                    image_id=src.image_id,
                    reason=(f'Glance announced {src.size} bytes but '
                            f'sent more'))
            if (CHUNKS_IN_PLACE and not self.window and
                    isinstance(chunk, bytes)):
                # Nothing left over: the chunk itself is the window, not
                # a copy of it; the runs written from it are views of
                # immutable bytes, handed to the LUN's writes as they are.
                self.window = chunk
                self.stats['chunks_in_place'] += 1
            else:
                self.window += chunk
            self._handle()
            # A local store never blocks on the network: let the rest of
            # the service run between chunks.
            eventlet.sleep(0)
        if self.pos != src.size:
            raise exception.ImageUnacceptable(
                image_id=src.image_id,
                reason=(f'Glance announced {src.size} bytes but sent '
                        f'{self.pos}'))
        if self.heap:
            raise NotInOrder('tables or clusters past the end of the file')
        if self.written is not None:
            self._zero_unwritten()

    def _push(self, host: int, kind: int, length: int, guest: int) -> None:
        heapq.heappush(self.heap, (host, kind, length, guest))
        if len(self.heap) > MAX_PENDING:
            raise NotInOrder(f'more than {MAX_PENDING} clusters mapped '
                             f'ahead of the download')

    def _handle(self) -> None:
        """Handle every item whose bytes have arrived; keep the rest."""
        heap = self.heap
        cs = self.layout.cluster_size
        ended = self.pos >= self.source.size
        with memoryview(self.window) as view:
            while heap and heap[0][0] + heap[0][2] <= self.pos:
                host, kind, length, guest = heapq.heappop(heap)
                self.stats['items'] += 1
                if not ended:
                    self.stats['early_reads'] += 1
                if host < self.done:
                    # Behind: a cluster mapped after it passed.
                    self._item(kind, host, self._behind(host, length),
                               guest)
                    continue
                self._keep(view, self.done, host)
                if kind != _DATA:
                    self._keep(view, host, host + length)
                    data = bytes(view[host - self.start:
                                      host + length - self.start])
                    self._item(kind, host, data, guest)
                    continue
                n = length
                # Clusters contiguous in the file and on the disk: one run.
                while (n < RUN and heap and heap[0][0] == host + n and
                       heap[0][1] == _DATA and heap[0][3] == guest + n and
                       host + n + cs <= self.pos):
                    heapq.heappop(heap)
                    n += cs
                self.runs_host.append(host)
                self.runs_guest.append(guest)
                self.runs_length.append(n)
                self.done = host + n
                self._put(guest, view[host - self.start:
                                      host + n - self.start])
            # What no item claims is kept in the file, then let go.
            upto = min(heap[0][0], self.pos) if heap else self.pos
            if upto > self.done:
                self._keep(view, self.done, upto)
        if isinstance(self.window, bytes):
            # what is left of a chunk, into a buffer of its own
            self.window = bytearray(self.window[self.done - self.start:])
        else:
            del self.window[:self.done - self.start]
        self.start = self.done

    def _keep(self, view: memoryview, begin: int, end: int) -> None:
        """Write download bytes [begin, end) into the download file."""
        if end > begin:
            _pwrite_all(self.spill, view[begin - self.start:
                                         end - self.start], begin)
            self.done = max(self.done, end)

    def _behind(self, host: int, length: int) -> bytes:
        """Bytes that have passed: from the download file (and window)."""
        end = host + length
        i = bisect.bisect_left(self.runs_host, end) - 1
        if i >= 0 and self.runs_host[i] + self.runs_length[i] > host:
            # on the LUN only: a cluster two guest clusters share
            raise NotInOrder(f'cluster at {host} mapped twice')
        self.stats['read_back'] += length
        data = b''
        if host < self.start:
            # what has left the window is in the file
            n = min(end, self.start) - host
            data = os.pread(self.spill, n, host)
            if len(data) != n:
                raise NotInOrder(f'{n} bytes at {host} not in the file')
        if end > self.start:
            data += bytes(self.window[max(host, self.start) - self.start:
                                      end - self.start])
        return data

    def _item(self, kind: int, host: int, data: bytes, guest: int) -> None:
        if kind == _DATA:
            self._put(guest, data)
        elif kind == _DEFLATED:
            self._deflated(host, data, guest)
        elif kind == _L1:
            self._l1(data)
        else:
            self._l2(data, guest)

    def hand_over(self) -> None:
        """Give qemu-img the whole file: runs back from the LUN, the rest."""
        self.lun.wait()
        for host, guest, n in zip(self.runs_host, self.runs_guest,
                                  self.runs_length, strict=True):
            _pwrite_all(self.spill, os.pread(self.fd, n, guest), host)
        src = self.source
        src.bytes_read = self.pos
        src.resume(bytes(self.window[self.done - self.start:]), self.done)

    def _l1(self, table: bytes) -> None:
        lay = self.layout
        span = lay.cluster_size * lay.l2_entries
        for i, entry in enumerate(struct.unpack(f'>{lay.l1_size}Q', table)):
            if i * span >= lay.virtual_size:
                break
            if entry & _L1_RESERVED:
                raise NotInOrder(f'L1 entry {i} has reserved bits set')
            offset = entry & _OFFSET_MASK
            if offset:
                self._cluster(offset, f'L2 table {i}')
                self._push(offset, _L2, lay.cluster_size, i * span)

    def _cluster(self, offset: int, what: str) -> None:
        lay = self.layout
        if offset % lay.cluster_size or (
                offset + lay.cluster_size > lay.file_size):
            raise NotInOrder(f'{what} at {offset}: unaligned or past the '
                             f'end of the file')

    def _l2(self, table: bytes, guest0: int) -> None:
        lay = self.layout
        cs = lay.cluster_size
        x = 62 - (lay.cluster_bits - 8)
        for j, entry in enumerate(struct.unpack(f'>{lay.l2_entries}Q',
                                                table)):
            if not entry:
                continue                    # unallocated: zeros
            guest = guest0 + j * cs
            if guest >= lay.virtual_size:
                break
            if entry & _COMPRESSED:
                if entry & _COPIED:
                    raise NotInOrder('compressed cluster marked copied')
                host = entry & ((1 << x) - 1)
                # further 512-byte sectors after the first
                sectors = 1 + ((entry >> x) &
                               ((1 << (lay.cluster_bits - 8)) - 1))
                length = min(sectors * 512 - (host & 511),
                             lay.file_size - host)
                if length <= 0:
                    raise NotInOrder('compressed cluster past the end')
                self._push(host, _DEFLATED, length, guest)
                continue
            if entry & _L2_RESERVED:
                raise NotInOrder('L2 entry has reserved bits set')
            if entry & _ZERO_FLAG:
                if lay.version < 3:
                    raise NotInOrder('zero cluster in a version 2 image')
                continue                    # reads as zeros
            offset = entry & _OFFSET_MASK
            if offset:
                self._cluster(offset, 'data cluster')
                self._push(offset, _DATA, cs, guest)

    def _deflated(self, host: int, data: bytes, guest: int) -> None:
        cs = self.layout.cluster_size
        try:
            out = zlib.decompressobj(-12).decompress(data, cs)
        except zlib.error as exc:
            raise NotInOrder(f'compressed cluster at {host}: {exc}')
        if len(out) != cs:
            raise NotInOrder(f'compressed cluster at {host} inflates to '
                             f'{len(out)} bytes')
        self.stats['deflated_clusters'] += 1
        self._put(guest, out)

    def _put(self, guest: int, data: bytes | memoryview) -> None:
        lay = self.layout
        data = data[:lay.virtual_size - guest]
        if self.written is not None:
            first = guest >> lay.cluster_bits
            last = -(-(guest + len(data)) >> lay.cluster_bits)
            self.written[first:last] = b'\x01' * (last - first)
        elif lunwriter.is_zero(data):
            return          # the LUN reads zeros there already
        if (isinstance(data, memoryview) and not data.readonly and
                self.lun.beside):
            # a view of the window, which changes before the write is done
            data = bytes(data)
        self.lun.write(guest, [data])
        self.stats['bytes_written'] += len(data)

    def _zero_unwritten(self) -> None:
        """Zero what no cluster wrote, where the LUN does not read zeros."""
        self.lun.wait()
        lay = self.layout
        written = self.written
        assert written is not None
        pos = 0
        while True:
            start = written.find(0, pos)
            if start < 0:
                return
            end = written.find(1, start)
            end = len(written) if end < 0 else end
            first = start << lay.cluster_bits
            last = min(end << lay.cluster_bits, lay.virtual_size)
            lunwriter.zero_where_needed(self.fd, first, last - first,
                                        pause=eventlet.sleep)
            pos = end


def _pwrite_all(fd: int, data: bytes | memoryview, offset: int) -> None:
    view = memoryview(data)
    while view:
        n = os.pwrite(fd, view, offset)
        view = view[n:]
        offset += n


def _qemu_img_needed() -> str | None:
    """Why every conversion must be ``qemu-img``'s now, or None."""
    throttle = throttling.Throttle.get_default()
    if type(throttle) is not throttling.Throttle or throttle.prefix:
        return 'a volume copy bandwidth limit applies to qemu-img'
    return None


def convert_qcow2_to_device(source: str, dest: str,
                            reads_zeros: bool = False) -> None:
    """Convert a qcow2 ``source`` (a path or an NBD URI) onto ``dest``.

    The URI of a :class:`StreamedQcow2` under way is converted in file
    order, as it downloads (the module's docstring), unless that image or
    a volume copy bandwidth limit calls for ``qemu-img``. Anything else,
    and those, by ``qemu-img convert``, as Cinder's own conversion: the
    format is never probed (``-f qcow2``), ``qemu-img`` runs as root
    through Cinder's root helper (the LUN is a root-owned device on a real
    host), the volume copy throttle (``volume_copy_bps_limit``) applies,
    and block devices are written with ``-t none`` (O_DIRECT) so that every
    byte is on the LUN before it is detached. The LUN exists already
    (``-n``: never recreated), and unless it is known to read zeros, zero
    clusters are written too (``-S 0``).
    """
    streamed = _ACTIVE.get(source)
    if streamed is not None:
        why = _qemu_img_needed()
        if why is None:
            try:
                streamed.convert_in_order(dest, reads_zeros)
                return
            except NotInOrder as exc:
                why = str(exc)
        streamed.in_order['qemu_img'] = why
        LOG.info('Image %(image)s: converted by qemu-img, not in file '
                 'order: %(why)s.', {'image': streamed.image_id, 'why': why})
    cmd = ['qemu-img', 'convert', '-f', 'qcow2', '-O', 'raw', '-n']
    if not reads_zeros:
        cmd += ['-S', '0']
    if utils.is_blk_device(dest):
        cmd += ['-t', 'none']
    cmd += [source, dest]
    throttle = throttling.Throttle.get_default()
    with throttle.subcommand(source, dest) as throttle_cmd:
        try:
            utils.execute(*(list(throttle_cmd['prefix']) + cmd),
                          run_as_root=True)
        except processutils.ProcessExecutionError as exc:
            raise exception.ImageCopyFailure(
                reason=f'qemu-img convert failed: {exc.stderr.strip()}')
    # Durable before the golden volume is declared ready (a no-op for the
    # O_DIRECT writes to a block device, needed for a file).
    with utils.temporary_chown(dest):
        fd = os.open(dest, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def socket_dir(preferred: str) -> str:
    """A directory short enough for a unix socket path (108 bytes)."""
    if len(os.path.join(preferred, 'nbd-0123456789abcdef.sock')) < 100:
        return preferred
    import tempfile
    return tempfile.gettempdir()
