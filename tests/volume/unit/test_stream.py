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
"""qcow2 converted in file order as it downloads, against real qemu-img.

Every image here is made by the real ``qemu-img`` (plain, compressed, zero
clusters, internal snapshots, metadata preallocation) or edited from one
(an L2 table moved behind its clusters, a cluster used twice); each is
streamed through :class:`stream.StreamedQcow2` in uneven chunks and
written onto a LUN file by :func:`stream.convert_qcow2_to_device`, and the
LUN must hold what ``qemu-img convert -O raw`` makes of the same file.
Which way it went (file order, or qemu-img after a hand-over) is asserted
from the conversion's own record.
"""

import contextlib
import hashlib
import io
import os
import struct
import subprocess

import fixtures
import testtools
from cinder import exception

from cinder_dpm_ephemeral.image_cache import stream
from cinder_dpm_ephemeral.testing import images

MiB = 1024 * 1024
CLUSTER = 64 * 1024
GARBAGE = b'\xa5'


def _sha256(path, size):
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        while size > 0:
            block = f.read(min(size, MiB))
            if not block:
                break
            digest.update(block)
            size -= len(block)
    return digest.hexdigest()


def _chunks(path, size=MiB + 12345, limit=None):
    """The file in uneven chunks (items straddle chunk boundaries)."""
    sent = 0
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(size), b''):
            if limit is not None:
                block = block[:max(0, limit - sent)]
                if not block:
                    return
            sent += len(block)
            yield block


def _header(path):
    with open(path, 'rb') as f:
        head = f.read(104)
    (_magic, _version, _bf, _bfs, bits, size, _crypt, l1_size,
     l1_offset) = struct.unpack_from('>IIQIIQIIQ', head)
    return bits, size, l1_size, l1_offset


class StreamTest(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.dir = self.useFixture(fixtures.TempDir()).path

    def _image(self, mib=24, seed=3, name='plain', *qemu_args):
        image = images.make_image(self.dir, mib * MiB, 'qcow2', seed=seed,
                                  name=name)
        if qemu_args:
            out = os.path.join(self.dir, f'{name}-x.qcow2')
            subprocess.run(['qemu-img', 'convert', '-q', '-f', 'qcow2',
                            '-O', 'qcow2', *qemu_args, image.path, out],
                           check=True)
            return out
        return image.path

    def _convert(self, path, reads_zeros=True, chunks=None, size=None):
        """Stream ``path`` onto a new LUN file; (lun, streamed)."""
        size = os.path.getsize(path) if size is None else size
        s = stream.StreamedQcow2(chunks or _chunks(path), 'img', size,
                                 os.path.join(self.dir, 'download'),
                                 self.dir)
        self.addCleanup(s.close)
        s.open()
        lun = os.path.join(self.dir, 'lun')
        with open(lun, 'wb') as f:
            # a LUN larger than the image, holding someone's old data
            f.write(GARBAGE * (s.virtual_size + MiB))
        try:
            stream.convert_qcow2_to_device(s.uri, lun,
                                           reads_zeros=reads_zeros)
        except Exception:
            # as the cache does: the download's error is the cause
            s.raise_download_error()
            raise
        s.finish()
        return lun, s

    def _assert_converted(self, path, lun, streamed, reads_zeros):
        digest, size = images.reference_raw(path, 'qcow2',
                                            work_dir=self.dir)
        with open(lun, 'rb') as f:
            f.seek(size)
            # nothing is written past the image's virtual size
            self.assertEqual(GARBAGE * MiB, f.read(MiB))
        if reads_zeros:
            # Where the image has zeros the LUN was left alone: compare
            # with the garbage turned back into zeros.
            zeroed = os.path.join(self.dir, 'zeroed')
            with open(lun, 'rb') as fin, open(zeroed, 'wb') as fout:
                for block in iter(lambda: fin.read(CLUSTER), b''):
                    fout.write(bytes(len(block)) if block == GARBAGE *
                               len(block) else block)
            lun = zeroed
        self.assertEqual(digest, _sha256(lun, size))
        self.assertEqual(streamed.size, streamed.bytes_read)

    def _check(self, path, reads_zeros=True, qemu_img=None):
        lun, s = self._convert(path, reads_zeros)
        self._assert_converted(path, lun, s, reads_zeros)
        if qemu_img is None:
            self.assertNotIn('qemu_img', s.in_order)
            self.assertGreater(s.in_order['bytes_written'], 0)
        else:
            self.assertIn(qemu_img, s.in_order['qemu_img'])
        return s

    # -- file order ---------------------------------------------------------
    def test_plain_image_in_file_order(self):
        s = self._check(self._image())
        self.assertEqual(0, s.in_order['read_back'])
        # everything was written before the stream had ended but the end
        self.assertGreater(s.export_stats['early_reads'], 0)
        # nothing went through the NBD export
        self.assertEqual(0, s.export_stats['reads'])

    def test_chunks_that_end_on_cluster_boundaries_are_not_copied(self):
        # Download chunks of 1 MiB (as the read-ahead and glanceclient's
        # own size give them) end where clusters end: nothing is left
        # over, and each chunk is the window itself, its runs written
        # from views of it. (The uneven chunks of the other tests take
        # the copying way.)
        path = self._image()
        for reads_zeros in (True, False):
            with self.subTest(reads_zeros=reads_zeros):
                lun, s = self._convert(path, reads_zeros,
                                       chunks=_chunks(path, size=MiB))
                self._assert_converted(path, lun, s, reads_zeros)
                self.assertNotIn('qemu_img', s.in_order)
                chunks = -(-os.path.getsize(path) // MiB)
                # all but the head's and perhaps the last
                self.assertGreaterEqual(s.in_order['chunks_in_place'],
                                        chunks - 2)
        # switched off (the way before), every chunk is copied
        self.useFixture(fixtures.MockPatchObject(stream, 'CHUNKS_IN_PLACE',
                                                 False))
        lun, s = self._convert(path, chunks=_chunks(path, size=MiB))
        self._assert_converted(path, lun, s, True)
        self.assertEqual(0, s.in_order['chunks_in_place'])

    def test_plain_image_on_lun_that_does_not_read_zeros(self):
        self._check(self._image(), reads_zeros=False)

    def test_compressed_clusters_inflated(self):
        path = self._image(16, 4, 'comp', '-c')
        s = self._check(path, reads_zeros=False)
        self.assertGreater(s.in_order['deflated_clusters'], 0)

    def test_zero_clusters(self):
        path = self._image(8, 5, 'zero')
        subprocess.run(['qemu-io', '-f', 'qcow2', '-c',
                        'write -z 1M 2M', path], check=True,
                       capture_output=True)
        self._check(path, reads_zeros=False)
        self._check(path, reads_zeros=True)

    def test_l2_table_after_its_clusters(self):
        # Move the first L2 table to the end of the file: its clusters
        # pass before it and are read back from the download file.
        path = self._image(8, 6, 'moved')
        _bits, _size, _l1_size, l1_offset = _header(path)
        with open(path, 'r+b') as f:
            f.seek(l1_offset)
            (entry,) = struct.unpack('>Q', f.read(8))
            old = entry & 0x00FFFFFFFFFFFE00
            f.seek(old)
            table = f.read(CLUSTER)
            end = f.seek(0, os.SEEK_END)
            new = -(-end // CLUSTER) * CLUSTER
            f.seek(new)
            f.write(table)
            f.seek(l1_offset)
            f.write(struct.pack('>Q', (entry & ~0x00FFFFFFFFFFFE00) | new))
        s = self._check(path, reads_zeros=False)
        self.assertGreater(s.in_order['read_back'], 0)

    # -- left to qemu-img ---------------------------------------------------
    def test_internal_snapshot_converted_by_qemu_img(self):
        path = self._image(8, 7, 'snap')
        subprocess.run(['qemu-img', 'snapshot', '-c', 'one', path],
                       check=True)
        subprocess.run(['qemu-io', '-f', 'qcow2', '-c',
                        'write -P 0x33 0 1M', path], check=True,
                       capture_output=True)
        s = self._check(path, reads_zeros=False,
                        qemu_img='internal snapshots')
        self.assertGreater(s.export_stats['reads'], 0)

    def test_cluster_used_twice_handed_over_mid_stream(self):
        # Two guest clusters share one host cluster: found once the first
        # is on the LUN; what was written goes back into the file and
        # qemu-img converts the whole image.
        path = self._image(8, 8, 'shared')
        _bits, _size, _l1, l1_offset = _header(path)
        with open(path, 'r+b') as f:
            f.seek(l1_offset)
            (l1e,) = struct.unpack('>Q', f.read(8))
            l2 = l1e & 0x00FFFFFFFFFFFE00
            f.seek(l2)
            entries = list(struct.unpack(f'>{CLUSTER // 8}Q',
                                         f.read(CLUSTER)))
            data = [i for i, e in enumerate(entries) if e]
            entries[data[-1]] = entries[data[0]]
            f.seek(l2)
            f.write(struct.pack(f'>{CLUSTER // 8}Q', *entries))
        s = self._check(path, reads_zeros=False, qemu_img='mapped twice')
        self.assertGreater(s.in_order['bytes_written'], 0)

    def test_too_many_pending_clusters_handed_over(self):
        # metadata preallocation: every L2 table first, every cluster
        # mapped ahead of the download
        path = self._image(8, 9, 'prealloc', '-o', 'preallocation=metadata')
        self.useFixture(fixtures.MonkeyPatch(
            'cinder_dpm_ephemeral.image_cache.stream.MAX_PENDING', 16))
        self._check(path, reads_zeros=True, qemu_img='ahead of')

    # -- the stream's length --------------------------------------------------
    def test_short_stream_refused(self):
        path = self._image(8, 10, 'short')
        size = os.path.getsize(path)
        self.assertRaises(exception.ImageUnacceptable, self._convert, path,
                          chunks=_chunks(path, limit=size // 2), size=size)

    def test_broken_download_reported_once_as_the_cause(self):
        # Handed over to qemu-img (metadata preallocation), then the
        # connection to Glance breaks: the download's own error is what
        # the caller gets, and nothing prints it as an unhandled
        # greenthread error on the way.
        path = self._image(8, 12, 'broken', '-o', 'preallocation=metadata')
        self.useFixture(fixtures.MonkeyPatch(
            'cinder_dpm_ephemeral.image_cache.stream.MAX_PENDING', 16))

        def breaking():
            chunks = _chunks(path)
            yield next(chunks)
            raise ConnectionResetError(104, 'Connection reset by peer')

        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            exc = self.assertRaises(
                (ConnectionResetError, exception.ImageUnacceptable),
                self._convert, path, chunks=breaking())
        self.assertIn('Connection reset', str(exc))
        self.assertNotIn('Traceback', err.getvalue())

    def test_long_stream_refused(self):
        path = self._image(8, 11, 'long')
        size = os.path.getsize(path)
        self.assertRaises(exception.ImageUnacceptable, self._convert, path,
                          size=size - CLUSTER)
