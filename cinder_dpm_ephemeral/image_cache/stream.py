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
"""qcow2 images converted while they download (one pass, overlapped).

A qcow2 file cannot be converted from a pipe: ``qemu-img`` seeks (header,
L1 and L2 tables, then the data clusters). Stock Cinder therefore downloads
the whole file and converts it afterwards: two passes, one after the other.
Here the download is written to the same temporary file, and ``qemu-img
convert`` reads that file through a read-only NBD export
(:mod:`cinder_dpm_ephemeral.image_cache.nbd`) whose reads wait for bytes not
downloaded yet, so conversion starts before the download ends.

How much they overlap depends on the image. ``qemu-img convert`` (7.2) first
asks the allocation status of the whole image, which reads every L2 table,
and only then copies data, in guest order. ``qemu-img`` writes each L2 table
just before the clusters it maps (one L2 table per 512 MiB of virtual size
with 64 KiB clusters), so the copy starts once the download has reached the
last L2 table: at once for images up to 512 MiB virtual, about halfway
through for a 1 GiB image (measured: first data read when 407 of 806 MB had
arrived), and near the end for large images, where this does little more
than the two passes it replaces. Any layout converts correctly.

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

import os
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
from cinder_dpm_ephemeral.image_cache import nbd

LOG = logging.getLogger(__name__)

_REPORT_UNIT = 4 * 1024 * 1024
_HEADER = 512


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

    # -- life cycle ---------------------------------------------------------
    def open(self) -> None:
        """Read and check the header, then download the rest behind it."""
        self._file = open(self.path, 'wb', buffering=0)
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
        _write_all(self._file, head)
        self.bytes_read = len(head)
        self._export = nbd.GrowingFileExport(self.path, self.size,
                                             self._socket_dir)
        self.uri = self._export.start()
        self._export.grown(self.bytes_read)
        self._writer = eventlet.spawn(self._download, chunks)

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

    @property
    def export_stats(self) -> dict[str, float]:
        """What the NBD export served (``early_reads``: before the end)."""
        if self._export is None:
            return {}
        return dict(self._export.stats)

    def raise_download_error(self) -> None:
        """Re-raise the download's own error if it has failed already.

        A failed download makes ``qemu-img`` fail on a read; its error is
        the consequence, the download's is the cause worth reporting.
        """
        if self._writer is not None and self._writer.dead:
            writer, self._writer = self._writer, None
            writer.wait()

    def finish(self) -> None:
        """Wait for the download's end and check the whole stream."""
        self._writer.wait()
        self._writer = None
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


def convert_qcow2_to_device(source: str, dest: str,
                            reads_zeros: bool = False) -> None:
    """``qemu-img convert`` of a qcow2 ``source`` (a path or an NBD URI).

    As Cinder's own conversion: the format is never probed (``-f qcow2``),
    ``qemu-img`` runs as root through Cinder's root helper (the LUN is a
    root-owned device on a real host), the volume copy throttle
    (``volume_copy_bps_limit``) applies, and block devices are written with
    ``-t none`` (O_DIRECT) so that every byte is on the LUN before it is
    detached. The LUN exists already (``-n``: never recreated), and unless
    it is known to read zeros, zero clusters are written too (``-S 0``).
    """
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
