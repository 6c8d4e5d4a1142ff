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
"""The realistic test images: partition tables, file systems, formats.

Checked with tools that did not make them where there are some: util-linux
(``partx``, ``blkid``), e2fsprogs (``debugfs``), qemu-img, pycdlib, and the
format inspectors of oslo.utils and Cinder.
"""

import hashlib
import os
import shutil
import struct
import subprocess
import tempfile
import time
import uuid

import fixtures
import testtools

from cinder_dpm_ephemeral.testing import disks
from cinder_dpm_ephemeral.testing import glance
from cinder_dpm_ephemeral.testing import images

MiB = 1024 * 1024
SEED = 7

_BUILT: dict = {}


def _built():
    """One GPT and one MBR disk per test process (each takes a second)."""
    if not _BUILT:
        d = tempfile.mkdtemp(prefix='test-images-')
        _BUILT['dir'] = d
        for scheme in ('gpt', 'mbr'):
            img = images.make_disk_image(d, 'raw', scheme, 64 * MiB, SEED)
            _BUILT[scheme] = img
    return _BUILT


def tearDownModule():
    if _BUILT:
        shutil.rmtree(_BUILT['dir'], ignore_errors=True)
        _BUILT.clear()


def _blkid(path):
    out = subprocess.run(['blkid', '-p', '-o', 'export', path],
                         capture_output=True, text=True, check=True).stdout
    return dict(line.split('=', 1) for line in out.splitlines() if line)


def _read_at(path):
    def read(offset, length):
        with open(path, 'rb') as f:
            f.seek(offset)
            return f.read(length)
    return read


def _sha256(data):
    return hashlib.sha256(data).hexdigest()


class _Base(testtools.TestCase):
    def setUp(self):
        super().setUp()
        self.dir = self.useFixture(fixtures.TempDir()).path

    def extract(self, image, partition):
        path = os.path.join(self.dir, f'part{partition.number}')
        with open(image.path, 'rb') as src, open(path, 'wb') as dst:
            src.seek(partition.offset)
            dst.write(src.read(partition.size))
        return path


class GPTDiskTest(_Base):
    def setUp(self):
        super().setUp()
        self.image = _built()['gpt']
        self.layout = self.image.layout

    def test_headers_and_entries_parse_with_valid_crcs(self):
        gpt = disks.read_gpt(_read_at(self.image.path))
        sectors = self.image.virtual_size // disks.SECTOR
        self.assertEqual(sectors - 1, gpt['backup_lba'])
        self.assertEqual(34, gpt['first_usable'])
        self.assertEqual(sectors - 34, gpt['last_usable'])
        self.assertEqual(uuid.UUID(self.layout.disk_id), gpt['disk_guid'])
        self.assertEqual(
            [(1, disks.ESP_TYPE, 2048, 34815, 'EFI System Partition'),
             (2, disks.LINUX_FS_TYPE, 34816, 129023, 'rootfs')],
            [(p['number'], p['type'], p['first_lba'], p['last_lba'],
              p['name']) for p in gpt['partitions']])
        guids = {p['guid'] for p in gpt['partitions']} | {gpt['disk_guid']}
        self.assertEqual(3, len(guids))

    def test_protective_mbr_as_uefi_specifies(self):
        mbr = disks.read_mbr(_read_at(self.image.path)(0, 512))
        self.assertEqual([{'number': 1, 'bootable': False, 'type': 0xEE,
                           'first_lba': 1,
                           'sectors': self.image.virtual_size // 512 - 1}],
                         mbr)

    def test_corrupt_entry_or_header_is_caught_by_the_crc(self):
        # an entry, the primary header, the backup header
        for offset in (2 * 512 + 40, 512 + 60,
                       self.image.virtual_size - 512 + 60):
            path = os.path.join(self.dir, 'bad.raw')
            shutil.copyfile(self.image.path, path)
            with open(path, 'r+b') as f:
                f.seek(offset)
                byte = f.read(1)
                f.seek(offset)
                f.write(bytes([byte[0] ^ 0xFF]))
            self.assertRaises(disks.DiskFormatError, disks.read_gpt,
                              _read_at(path))

    def test_util_linux_sees_the_same_partitions(self):
        self.assertEqual({'PTTYPE': 'gpt', 'PTUUID': self.layout.disk_id},
                         {k: v for k, v in _blkid(self.image.path).items()
                          if k.startswith('PT')})
        out = subprocess.run(
            ['partx', '--raw', '--noheadings', '-o',
             'NR,START,END,NAME', self.image.path],
            capture_output=True, text=True, check=True).stdout
        self.assertEqual(['1 2048 34815 EFI\\x20System\\x20Partition',
                          '2 34816 129023 rootfs'], out.split('\n')[:2])

    def test_esp_is_fat16_holding_the_boot_loader(self):
        esp = self.layout.partitions[0]
        path = self.extract(self.image, esp)
        info = _blkid(path)
        self.assertEqual(('vfat', 'FAT16', 'ESP'),
                         (info['TYPE'], info['VERSION'], info['LABEL']))
        with open(path, 'rb') as f:
            data = f.read()
        files = disks.known_files(SEED)['vfat']
        self.assertEqual(dict(esp.files),
                         {k: _sha256(v) for k, v in files.items()})
        for name, digest in esp.files:
            self.assertEqual(digest, _sha256(disks.read_fat_file(data, name)))
        self.assertEqual(b'MZ', disks.read_fat_file(
            data, 'EFI/BOOT/BOOTX64.EFI')[:2])
        self.assertRaises(FileNotFoundError, disks.read_fat_file, data,
                          'EFI/BOOT/NOPE.EFI')

    def test_root_partition_is_ext4_holding_the_known_files(self):
        root = self.layout.partitions[1]
        path = self.extract(self.image, root)
        info = _blkid(path)
        self.assertEqual(('ext4', 'rootfs'), (info['TYPE'], info['LABEL']))
        self.assertEqual(7, len(root.files))
        for name, digest in root.files:
            self.assertEqual(digest,
                             _sha256(disks.read_ext4_file(path, name)), name)

    def test_inspectors_name_it_as_issue_9_says(self):
        # oslo.utils (Glance, Nova, our cache's stream check) calls any
        # disk whose sector 0 ends in 0x55AA 'gpt'; Cinder's own inspector
        # (its fallback path) calls it 'raw'; qemu-img 'raw'.
        from oslo_utils.imageutils import format_inspector as oslo_fi

        from cinder.image import format_inspector as cinder_fi
        self.assertEqual('gpt', str(oslo_fi.detect_file_format(
            self.image.path)))
        self.assertEqual('raw', str(cinder_fi.detect_file_format(
            self.image.path)))
        self.assertEqual('raw', images.qemu_info(self.image.path)['format'])


class MBRDiskTest(_Base):
    def setUp(self):
        super().setUp()
        self.image = _built()['mbr']
        self.layout = self.image.layout

    def test_table_parses(self):
        sectors = self.image.virtual_size // 512
        self.assertEqual(
            [{'number': 1, 'bootable': True, 'type': 0x83, 'first_lba': 2048,
              'sectors': sectors - 16384 - 2048},
             {'number': 2, 'bootable': False, 'type': 0x82,
              'first_lba': sectors - 16384, 'sectors': 16384}],
            disks.read_mbr(_read_at(self.image.path)(0, 512)))
        self.assertEqual(f'{self.layout.disk_id}',
                         _read_at(self.image.path)(440, 4)[::-1].hex())

    def test_util_linux_sees_a_dos_disk_with_ext4_and_swap(self):
        info = _blkid(self.image.path)
        self.assertEqual(('dos', self.layout.disk_id),
                         (info['PTTYPE'], info['PTUUID']))
        out = subprocess.run(
            ['partx', '--raw', '--noheadings', '-o',
             'NR,START,SECTORS', self.image.path],
            capture_output=True, text=True, check=True).stdout.split()
        self.assertEqual(
            [str(v) for p in self.layout.partitions
             for v in (p.number, p.first_lba, p.last_lba - p.first_lba + 1)],
            out)
        root, swap = self.layout.partitions
        self.assertEqual('ext4', _blkid(self.extract(self.image, root))
                         ['TYPE'])
        self.assertEqual('swap', _blkid(self.extract(self.image, swap))
                         ['TYPE'])

    def test_root_partition_holds_the_known_files(self):
        root = self.layout.partitions[0]
        path = self.extract(self.image, root)
        for name, digest in root.files:
            self.assertEqual(digest,
                             _sha256(disks.read_ext4_file(path, name)), name)

    def test_oslo_inspector_calls_an_mbr_disk_gpt_too(self):
        from oslo_utils.imageutils import format_inspector as oslo_fi
        inspector = oslo_fi.detect_file_format(self.image.path)
        self.assertEqual('gpt', str(inspector))
        inspector.safety_check()     # a sane table: no safety violation


def _qcow2_compressed_clusters(path):
    """Count L2 entries with the 'compressed' bit (qcow2 spec, bit 62)."""
    with open(path, 'rb') as f:
        hdr = f.read(48)
        cluster_bits, = struct.unpack_from('>I', hdr, 20)
        l1_size, l1_offset = struct.unpack_from('>IQ', hdr, 36)
        f.seek(l1_offset)
        l1 = struct.unpack(f'>{l1_size}Q', f.read(8 * l1_size))
        n = 0
        per_l2 = (1 << cluster_bits) // 8
        for entry in l1:
            l2_offset = entry & 0x00FFFFFFFFFFFE00
            if not l2_offset:
                continue
            f.seek(l2_offset)
            for e in struct.unpack(f'>{per_l2}Q', f.read(8 * per_l2)):
                n += bool(e >> 62 & 1)
    return n


class FormatsTest(_Base):
    """Every Glance format of the GPT disk converts back to its bytes."""

    def test_every_variant_converts_back_to_the_raw_disk(self):
        raw = _built()['gpt']
        expected = {
            'qcow2': ('qcow2', 'bare', 'qcow2'),
            'qcow2-compressed': ('qcow2', 'bare', 'qcow2'),
            'vmdk': ('vmdk', 'bare', 'vmdk'),
            'vhd': ('vhd', 'bare', 'vpc'),
            'vhdx': ('vhdx', 'bare', 'vhdx'),
            'raw-gzip': ('raw', 'compressed', None),
        }
        made = {}
        for variant, (fmt, container, qemu_fmt) in expected.items():
            path = os.path.join(self.dir, variant)
            images.convert_raw(raw.path, variant, path)
            made[variant] = path
            self.assertEqual((fmt, container),
                             images.detect_disk_format(path), variant)
            if qemu_fmt:
                info = images.qemu_info(path)
                self.assertEqual(qemu_fmt, info['format'], variant)
                self.assertEqual(raw.virtual_size, info['virtual-size'],
                                 variant)
            self.assertEqual((raw.raw_sha256, raw.virtual_size),
                             images.reference_raw(path, fmt, container),
                             variant)
        self.assertLess(os.path.getsize(made['qcow2']), raw.virtual_size)
        info = images.qemu_info(made['vmdk'])
        self.assertEqual('streamOptimized',
                         info['format-specific']['data']['create-type'])
        self.assertEqual(0, _qcow2_compressed_clusters(made['qcow2']))
        self.assertGreater(_qcow2_compressed_clusters(
            made['qcow2-compressed']), 10)

    def test_make_disk_image_records_what_it_made(self):
        img = images.make_disk_image(self.dir, 'vmdk', 'mbr', 48 * MiB, 3)
        self.assertEqual(('vmdk', 'bare', 48 * MiB),
                         (img.disk_format, img.container_format,
                          img.virtual_size))
        self.assertEqual('mbr', img.layout.scheme)
        self.assertEqual((img.raw_sha256, 48 * MiB),
                         images.reference_raw(img.path, 'vmdk'))
        self.assertEqual(os.path.getsize(img.path), img.file_size)
        self.assertEqual(['mbr-vmdk.vmdk'], os.listdir(self.dir))

    def test_vhd_with_chs_geometry_is_bigger_by_zeros(self):
        raw = _built()['gpt']
        path = os.path.join(self.dir, 'chs.vhd')
        images.convert_raw(raw.path, 'vhd-geometry', path)
        virtual = images.qemu_info(path)['virtual-size']
        self.assertGreater(virtual, raw.virtual_size)
        with open(raw.path, 'rb') as f:
            padded = f.read() + bytes(virtual - raw.virtual_size)
        self.assertEqual((_sha256(padded), virtual),
                         images.reference_raw(path, 'vhd'))
        img = images.make_disk_image(self.dir, 'vhd-geometry', 'gpt',
                                     48 * MiB, 3)
        self.assertEqual((img.raw_sha256, img.virtual_size),
                         images.reference_raw(img.path, 'vhd'))
        self.assertGreater(img.virtual_size, 48 * MiB)

    def test_iso_holds_its_files_and_cinder_reads_it_as_raw(self):
        img = images.make_disk_image(self.dir, 'iso', seed=SEED)
        self.assertEqual(('iso', 'bare'), images.detect_disk_format(img.path))
        self.assertEqual(0, img.file_size % 2048)
        for name, data in images.iso_files(SEED).items():
            self.assertEqual(data, images.read_iso_file(img.path, name))
        with open(img.path, 'rb') as f:
            self.assertEqual(img.raw_sha256, _sha256(f.read()))
        self.assertEqual((img.raw_sha256, img.file_size),
                         images.reference_raw(img.path, 'iso'))

    def test_make_image_keeps_its_api(self):
        img = images.make_image(self.dir, 4 * MiB, 'qcow2', seed=1)
        self.assertEqual(('qcow2', 'bare', 4 * MiB),
                         (img.disk_format, img.container_format,
                          img.virtual_size))
        self.assertEqual((img.raw_sha256, 4 * MiB),
                         images.reference_raw(img.path, 'qcow2'))

    def test_unknown_variant_named_in_the_error(self):
        e = self.assertRaises(ValueError, images.make_disk_image, self.dir,
                              'qed')
        self.assertIn("'qed'", str(e))
        self.assertIn('vhdx', str(e))


class LuksTest(_Base):
    def test_luks_header_is_what_qemu_and_oslo_recognise(self):
        path = os.path.join(self.dir, 'luks.img')
        disks.make_luks(path, 8 * MiB)
        from oslo_utils.imageutils import format_inspector as oslo_fi
        self.assertEqual('luks', str(oslo_fi.detect_file_format(path)))
        info = images.qemu_info(path, 'luks')
        self.assertEqual('luks', info['format'])
        self.assertEqual(6 * MiB, info['virtual-size'])
        slots = info['format-specific']['data']['slots']
        self.assertEqual([True] + [False] * 7, [s['active'] for s in slots])


class GlanceMetadataTest(_Base):
    def test_metadata_as_glance_records_it(self):
        store = glance.ImageStore(os.path.join(self.dir, 'glance'),
                                  record_virtual_size=True)
        raw = _built()['gpt']
        qcow2 = images.make_disk_image(self.dir, 'qcow2', 'gpt', 32 * MiB)
        gz = images.make_disk_image(self.dir, 'raw-gzip', 'gpt', 32 * MiB)
        with open(qcow2.path, 'rb') as f:
            data = f.read()
        m = store.add(qcow2.path, 'qcow2')
        self.assertEqual(
            ('qcow2', 'bare', len(data), 32 * MiB,
             hashlib.md5(data, usedforsecurity=False).hexdigest(), 'sha512',
             hashlib.sha512(data).hexdigest()),
            (m['disk_format'], m['container_format'], m['size'],
             m['virtual_size'], m['checksum'], m['os_hash_algo'],
             m['os_hash_value']))
        m = store.add(raw.path, 'raw')
        self.assertEqual((raw.virtual_size, raw.virtual_size),
                         (m['size'], m['virtual_size']))
        m = store.add(gz.path, 'raw', container_format='compressed')
        self.assertEqual(('compressed', gz.file_size, None),
                         (m['container_format'], m['size'],
                          m['virtual_size']))
        # a qcow2 labelled vhd: Glance's inspection finds no vhd size
        m = store.add(qcow2.path, 'vhd')
        self.assertIsNone(m['virtual_size'])
        # a store that disagrees with its bytes, for negative tests
        m = store.add(raw.path, 'raw', size=raw.virtual_size - 512)
        self.assertEqual(raw.virtual_size - 512, m['size'])
        self.assertEqual(raw.virtual_size, sum(
            len(c) for c in store.chunks(m['id'])))
        # off by default: as Cinder's fake and images from older Glance
        store.record_virtual_size = False
        self.assertIsNone(store.add(qcow2.path, 'qcow2')['virtual_size'])
        self.assertEqual(32 * MiB, store.add(
            qcow2.path, 'qcow2', virtual_size='compute')['virtual_size'])

    def _store_with(self, mib):
        """A Glance stand-in holding one raw image of ``mib`` MiB."""
        store = glance.ImageStore(os.path.join(self.dir, 'glance'))
        path = os.path.join(self.dir, f'{mib}-mib')
        with open(path, 'wb') as f:
            f.write(os.urandom(mib * MiB))
        return store, store.add(path, 'raw')

    def test_downloads_paced_at_the_link_rate(self):
        store, m = self._store_with(8)
        fast = time.monotonic()
        data = b''.join(store.chunks(m['id']))
        fast = time.monotonic() - fast
        store.rate = 40e6           # 40 MB/s: 8 MiB in 0.21 s
        paced = time.monotonic()
        self.assertEqual(data, b''.join(store.chunks(m['id'])))
        paced = time.monotonic() - paced
        self.assertGreaterEqual(paced, 8 * MiB / 40e6)
        self.assertLess(fast, paced)

    def test_a_paced_link_carries_only_its_buffers_ahead(self):
        # A reader away for a while finds at most the socket buffers'
        # worth waiting, not everything the link could have carried.
        store, m = self._store_with(12)
        store.rate = 40e6
        chunks = store.chunks(m['id'])
        next(chunks)
        time.sleep(12 * MiB / 40e6)     # long enough to carry it all
        t = time.monotonic()
        for _ in chunks:
            pass
        took = time.monotonic() - t
        # 11 MiB left, the link's 4 MiB buffer came at once
        self.assertGreaterEqual(took, (11 * MiB - store.link_buffer) / 40e6
                                - 0.02)
