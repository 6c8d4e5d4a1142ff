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
"""Partitioned disks with real file systems, built without root.

A boot disk as an installer leaves it: a partition table (a DOS MBR, or a
GPT with its protective MBR, primary and backup headers and CRC32s) and
file systems holding known files:

* GPT: an EFI System partition with a FAT16 file system written here
  (``EFI/BOOT/BOOTX64.EFI`` and a ``grub.cfg``) and a Linux file system
  partition with ext4 (``mkfs.ext4 -d``, e2fsprogs);
* DOS MBR: a bootable Linux partition (type 0x83, ext4) and a Linux swap
  partition (type 0x82, with its ``SWAPSPACE2`` signature).

Formats follow the UEFI 2.10 specification, chapter 5 ("GUID Partition
Table Format": protective MBR, header, entries, backup at the disk's end)
and Microsoft's FAT specification ("FAT: General Overview of On-Disk
Format", BPB fields, FAT16 for 4,085 to 65,524 clusters). The readers here
(:func:`read_mbr`, :func:`read_gpt`, :func:`read_fat_file`) check what the
writers produce; the unit tests also check with util-linux (``partx``,
``blkid``) and e2fsprogs (``debugfs``).

The seed fixes the files and the partition table; ``mkfs.ext4`` and the
swap header still pick their own UUIDs and time stamps, so two disks made
with one seed differ in a few bytes: compute checksums, never hard-code
them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import random
import shutil
import struct
import subprocess
import tempfile
import uuid
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from oslo_log import log as logging

LOG = logging.getLogger(__name__)

SECTOR = 512
MiB = 1024 * 1024
ALIGN = 2048                    # partitions start on 1 MiB boundaries

ESP_TYPE = uuid.UUID('c12a7328-f81f-11d2-ba4b-00a0c93ec93b')
LINUX_FS_TYPE = uuid.UUID('0fc63daf-8483-4772-8e79-3d69d8477de4')
MBR_LINUX = 0x83
MBR_SWAP = 0x82
MBR_GPT_PROTECTIVE = 0xEE

GPT_ENTRIES = 128
GPT_ENTRY_SIZE = 128
GPT_HEADER_SIZE = 92
GPT_ENTRY_SECTORS = GPT_ENTRIES * GPT_ENTRY_SIZE // SECTOR     # 32


class DiskFormatError(ValueError):
    """A partition table or file system does not parse."""


@dataclasses.dataclass(frozen=True)
class Partition:
    number: int
    first_lba: int
    last_lba: int               # inclusive, as in a GPT entry
    fs_type: str                # 'vfat', 'ext4' or 'swap'
    mbr_type: int | None = None
    gpt_type: uuid.UUID | None = None
    name: str = ''
    bootable: bool = False
    files: tuple[tuple[str, str], ...] = ()   # (path, sha256) it holds

    @property
    def offset(self) -> int:
        return self.first_lba * SECTOR

    @property
    def size(self) -> int:
        return (self.last_lba - self.first_lba + 1) * SECTOR


@dataclasses.dataclass(frozen=True)
class DiskLayout:
    scheme: str                 # 'gpt' or 'mbr'
    size: int
    partitions: tuple[Partition, ...]
    disk_id: str                # GPT disk GUID or MBR signature (hex)


# -- file content -------------------------------------------------------------
def _rootfs_files(seed: int) -> dict[str, bytes]:
    """Files of a small Linux root file system, some of them large."""
    rng = random.Random(seed)
    return {
        'etc/os-release': (b'PRETTY_NAME="DPM test image"\nNAME="dpmtest"\n'
                           b'ID=dpmtest\nVERSION_ID="%d"\n' % seed),
        'etc/hostname': b'dpm-guest\n',
        'etc/fstab': (b'LABEL=rootfs / ext4 defaults 0 1\n'
                      b'LABEL=ESP /boot/efi vfat umask=0077 0 1\n'),
        'boot/vmlinuz': rng.randbytes(3 * MiB + 12345),
        'boot/initrd.img': rng.randbytes(2 * MiB),
        'usr/share/doc/README': b''.join(
            b'known text, line %d\n' % i for i in range(2000)),
        'var/lib/zeros.bin': bytes(MiB),
    }


def _esp_files(seed: int) -> dict[str, bytes]:
    rng = random.Random(seed + 1)
    return {
        # an EFI application starts with a PE/COFF 'MZ' header
        'EFI/BOOT/BOOTX64.EFI': b'MZ' + rng.randbytes(200 * 1024),
        'EFI/DEBIAN/GRUB.CFG': (b'search --label rootfs --set root\n'
                                b'linux /boot/vmlinuz root=LABEL=rootfs\n'
                                b'initrd /boot/initrd.img\n'),
    }


def _digests(files: dict[str, bytes]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((p, hashlib.sha256(d).hexdigest())
                        for p, d in files.items()))


# -- ext4 (e2fsprogs) ---------------------------------------------------------
def make_ext4(path: str | os.PathLike[str], size: int,
              files: dict[str, bytes], label: str = 'rootfs') -> None:
    """Write an ext4 file system of ``size`` bytes holding ``files``.

    ``mkfs.ext4 -d`` populates it in a plain file: no root, no loop device.
    """
    with tempfile.TemporaryDirectory(prefix='ext4-src-') as src:
        for rel, data in files.items():
            p = Path(src, rel)
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(data)
        with open(path, 'wb') as f:
            f.truncate(size)
        subprocess.run(['mkfs.ext4', '-q', '-F', '-L', label, '-d', src,
                        str(path)], check=True, capture_output=True)


def read_ext4_file(path: str | os.PathLike[str], name: str) -> bytes:
    """A file's bytes from an ext4 image (``debugfs``, read only)."""
    out = subprocess.run(['debugfs', '-R', f'cat /{name}', str(path)],
                         check=True, capture_output=True)
    return out.stdout


# -- FAT16 (written here) -----------------------------------------------------
_FAT_RESERVED = 4
_FAT_ROOT_ENTRIES = 512
_FAT_EOC = 0xFFFF


def _short_name(name: str) -> bytes:
    base, _, ext = name.upper().partition('.')
    if not (1 <= len(base) <= 8 and len(ext) <= 3) or not all(
            c.isalnum() or c in '_-~' for c in base + ext):
        raise ValueError(f'{name!r} is not an 8.3 name; the FAT writer '
                         'only makes short names')
    return base.ljust(8).encode() + ext.ljust(3).encode()


def _dirent(name11: bytes, attr: int, cluster: int, size: int) -> bytes:
    # 2026-01-01 12:00:00 in FAT date/time encoding
    time_, date = (12 << 11), ((2026 - 1980) << 9) | (1 << 5) | 1
    return struct.pack('<11sBBBHHHHHHHI', name11, attr, 0, 0, time_, date,
                       date, 0, time_, date, cluster, size)


def make_fat16(path: str | os.PathLike[str], size: int,
               files: dict[str, bytes], label: str = 'ESP',
               hidden_sectors: int = 0, serial: int = 0x1234ABCD) -> None:
    """Write a FAT16 file system of ``size`` bytes holding ``files``.

    Short (8.3) names, subdirectories made as needed, one sector per
    cluster, two FATs, a 512-entry root directory with a volume label.
    """
    sectors = size // SECTOR
    # FAT sectors: enough entries for every cluster, FAT16 = 2 bytes each.
    root_sectors = _FAT_ROOT_ENTRIES * 32 // SECTOR
    fat_sectors = 1
    while True:
        clusters = sectors - _FAT_RESERVED - root_sectors - 2 * fat_sectors
        if fat_sectors * SECTOR // 2 >= clusters + 2:
            break
        fat_sectors += 1
    if not 4085 <= clusters <= 65524:
        raise ValueError(f'{size} bytes make {clusters} clusters: not a '
                         'FAT16 size (2.1 to 32 MiB with 512-byte clusters)')
    data_start = _FAT_RESERVED + 2 * fat_sectors + root_sectors
    fat = [0] * (clusters + 2)
    fat[0], fat[1] = 0xFFF8, 0xFFFF
    data: dict[int, bytes] = {}        # cluster -> 512 bytes
    next_cluster = [2]

    def alloc(payload: bytes) -> int:
        n = max(1, -(-len(payload) // SECTOR))
        first = next_cluster[0]
        if first + n > clusters + 2:
            raise ValueError(f'the files do not fit in {size} bytes of FAT')
        for i in range(n):
            c = first + i
            fat[c] = c + 1 if i < n - 1 else _FAT_EOC
            chunk = payload[i * SECTOR:(i + 1) * SECTOR]
            data[c] = chunk.ljust(SECTOR, b'\0')
        next_cluster[0] += n
        return first

    # a tree of directories: dict name -> subtree or bytes
    tree: dict = {}
    for rel, payload in files.items():
        parts = rel.split('/')
        node = tree
        for d in parts[:-1]:
            node = node.setdefault(d, {})
        node[parts[-1]] = payload

    def write_dir(node: dict, parent: int) -> bytes:
        """Entries of a directory (its own cluster allocated by caller)."""
        entries = []
        for name, child in sorted(node.items()):
            if isinstance(child, dict):
                # reserve the directory's cluster(s) first, fill them after
                nbytes = 32 * (len(child) + 2)
                first = alloc(bytes(nbytes))
                body = (_dirent(b'.          ', 0x10, first, 0) +
                        _dirent(b'..         ', 0x10, parent, 0) +
                        write_dir(child, first))
                n = -(-len(body) // SECTOR)
                for i in range(n):
                    data[first + i] = body[i * SECTOR:(i + 1) * SECTOR].ljust(
                        SECTOR, b'\0')
                entries.append(_dirent(_short_name(name), 0x10, first, 0))
            else:
                first = alloc(child) if child else 0
                entries.append(_dirent(_short_name(name), 0x20, first,
                                       len(child)))
        return b''.join(entries)

    root = (_dirent(label.upper().ljust(11)[:11].encode(), 0x08, 0, 0) +
            write_dir(tree, 0))
    if len(root) > root_sectors * SECTOR:
        raise ValueError('too many entries for the FAT16 root directory')

    bpb = struct.pack(
        '<3s8sHBHBHHBHHHII',
        b'\xEB\x3C\x90', b'MSWIN4.1', SECTOR, 1, _FAT_RESERVED, 2,
        _FAT_ROOT_ENTRIES, sectors if sectors < 0x10000 else 0, 0xF8,
        fat_sectors, 63, 255, hidden_sectors,
        sectors if sectors >= 0x10000 else 0)
    ebpb = struct.pack('<BBBI11s8s', 0x80, 0, 0x29, serial,
                       label.upper().ljust(11)[:11].encode(), b'FAT16   ')
    boot = bytearray(SECTOR)
    boot[:len(bpb) + len(ebpb)] = bpb + ebpb
    boot[510:512] = b'\x55\xAA'
    fat_bytes = struct.pack(f'<{len(fat)}H', *fat).ljust(
        fat_sectors * SECTOR, b'\0')
    with open(path, 'wb') as f:
        f.truncate(size)
        f.write(boot)
        for i in range(2):
            f.seek((_FAT_RESERVED + i * fat_sectors) * SECTOR)
            f.write(fat_bytes)
        f.seek((_FAT_RESERVED + 2 * fat_sectors) * SECTOR)
        f.write(root)
        for c, chunk in sorted(data.items()):
            f.seek((data_start + c - 2) * SECTOR)
            f.write(chunk)


def read_fat_file(image: bytes, name: str) -> bytes:
    """A file's bytes from a FAT12/16 file system image (short names)."""
    (bps, spc, reserved, nfats, root_entries, total16, _media, fat_sectors
     ) = struct.unpack_from('<HBHBHHBH', image, 11)
    if image[510:512] != b'\x55\xAA' or bps != SECTOR or nfats < 1:
        raise DiskFormatError('not a FAT boot sector')
    fat_off = reserved * bps
    root_off = fat_off + nfats * fat_sectors * bps
    data_off = root_off + root_entries * 32
    cluster_bytes = spc * bps

    def chain(first: int) -> list[int]:
        out = []
        c = first
        while 2 <= c < 0xFFF8:
            out.append(c)
            c = struct.unpack_from('<H', image, fat_off + 2 * c)[0]
            if len(out) > len(image) // cluster_bytes:
                raise DiskFormatError('FAT chain loops')
        return out

    def read_chain(first: int) -> bytes:
        return b''.join(image[data_off + (c - 2) * cluster_bytes:
                              data_off + (c - 1) * cluster_bytes]
                        for c in chain(first))

    directory = image[root_off:data_off]
    parts = name.split('/')
    for i, part in enumerate(parts):
        want = _short_name(part)
        found = None
        for off in range(0, len(directory), 32):
            ent = directory[off:off + 32]
            if ent[0] == 0:
                break                      # end of directory
            if ent[:11] == want and not ent[11] & 0x08:
                found = ent
                break
        if found is None:
            raise FileNotFoundError(name)
        first, size = struct.unpack_from('<HI', found, 26)
        is_dir = bool(found[11] & 0x10)
        if i < len(parts) - 1:
            if not is_dir:
                raise NotADirectoryError(name)
            directory = read_chain(first)
        else:
            return read_chain(first)[:size]
    raise FileNotFoundError(name)


# -- Linux swap ---------------------------------------------------------------
def make_swap(path: str | os.PathLike[str], size: int,
              label: str = 'swap') -> None:
    """A Linux swap area as ``mkswap`` writes it (version 1 header)."""
    page = 4096
    header = struct.pack('<III16s16s', 1, size // page - 1, 0,
                         uuid.uuid4().bytes, label.encode()[:16])
    with open(path, 'wb') as f:
        f.truncate(size)
        f.seek(1024)
        f.write(header)
        f.seek(page - 10)
        f.write(b'SWAPSPACE2')


# -- partition tables ---------------------------------------------------------
def _chs(lba: int) -> bytes:
    """CHS address in an MBR entry (255 heads, 63 sectors per track)."""
    c, rem = divmod(lba, 255 * 63)
    h, s = divmod(rem, 63)
    if c > 1023:
        return b'\xFE\xFF\xFF'
    return bytes([h, ((c >> 2) & 0xC0) | (s + 1), c & 0xFF])


def mbr_sector(entries: list[tuple[int, int, int, int]],
               signature: int) -> bytes:
    """Sector 0 of a DOS disk; entries are (boot, type, first, count)."""
    sector = bytearray(SECTOR)
    sector[0:3] = b'\xFA\xEB\xFE'      # cli; jmp $ (a boot code stub)
    struct.pack_into('<IH', sector, 440, signature, 0)
    for i, (boot, ptype, first, count) in enumerate(entries):
        if ptype == MBR_GPT_PROTECTIVE:
            # UEFI 2.10 5.2.3: protective MBR, start CHS 0x000200
            start_chs, end_chs = b'\x00\x02\x00', b'\xFF\xFF\xFF'
        else:
            start_chs, end_chs = _chs(first), _chs(first + count - 1)
        struct.pack_into('<B3sB3sII', sector, 446 + 16 * i, boot, start_chs,
                         ptype, end_chs, first, count)
    sector[510:512] = b'\x55\xAA'
    return bytes(sector)


def read_mbr(sector: bytes) -> list[dict]:
    """The used entries of an MBR partition table."""
    if len(sector) < SECTOR or sector[510:512] != b'\x55\xAA':
        raise DiskFormatError('no 0x55AA boot signature in sector 0')
    out = []
    for i in range(4):
        boot, _s, ptype, _e, first, count = struct.unpack_from(
            '<B3sB3sII', sector, 446 + 16 * i)
        if ptype == 0:
            continue
        if boot not in (0, 0x80):
            raise DiskFormatError(f'MBR entry {i + 1} has boot flag {boot}')
        out.append({'number': i + 1, 'bootable': boot == 0x80,
                    'type': ptype, 'first_lba': first, 'sectors': count})
    return out


def _gpt_entry(p: Partition, part_guid: uuid.UUID) -> bytes:
    if p.gpt_type is None:
        raise ValueError(f'partition {p.number} has no GPT type GUID')
    return struct.pack('<16s16sQQQ72s', p.gpt_type.bytes_le,
                       part_guid.bytes_le, p.first_lba, p.last_lba, 0,
                       p.name.encode('utf-16-le')[:72])


def _gpt_header(my_lba: int, alt_lba: int, first_usable: int,
                last_usable: int, disk_guid: uuid.UUID, entries_lba: int,
                entries_crc: int) -> bytes:
    fields = [b'EFI PART', 0x00010000, GPT_HEADER_SIZE, 0, 0, my_lba,
              alt_lba, first_usable, last_usable, disk_guid.bytes_le,
              entries_lba, GPT_ENTRIES, GPT_ENTRY_SIZE, entries_crc]
    fmt = '<8sIIIIQQQQ16sQIII'
    crc = zlib.crc32(struct.pack(fmt, *fields))
    fields[3] = crc
    return struct.pack(fmt, *fields).ljust(SECTOR, b'\0')


def gpt_structures(disk_sectors: int, partitions: list[Partition],
                   disk_guid: uuid.UUID, seed: int = 0
                   ) -> list[tuple[int, bytes]]:
    """Return (LBA, bytes) of every GPT structure of a disk.

    The protective MBR, the primary header and entries, the backup entries
    and the backup header in the last sector (UEFI 2.10 5.3).
    """
    rng = random.Random(f'gpt-partitions-{seed}')
    last = disk_sectors - 1
    entries = b''.join(_gpt_entry(p, uuid.UUID(int=rng.getrandbits(128),
                                               version=4))
                       for p in partitions)
    entries = entries.ljust(GPT_ENTRIES * GPT_ENTRY_SIZE, b'\0')
    ecrc = zlib.crc32(entries)
    first_usable = 2 + GPT_ENTRY_SECTORS
    last_usable = last - 1 - GPT_ENTRY_SECTORS
    pmbr = mbr_sector([(0, MBR_GPT_PROTECTIVE, 1,
                        min(disk_sectors - 1, 0xFFFFFFFF))], 0)
    primary = _gpt_header(1, last, first_usable, last_usable, disk_guid, 2,
                          ecrc)
    backup = _gpt_header(last, 1, first_usable, last_usable, disk_guid,
                         last - GPT_ENTRY_SECTORS, ecrc)
    return [(0, pmbr), (1, primary), (2, entries),
            (last - GPT_ENTRY_SECTORS, entries), (last, backup)]


def read_gpt(read_at: Callable[[int, int], bytes]) -> dict:
    """Parse and check a GPT: both headers, their CRCs, the entries' CRC.

    ``read_at(offset, length)`` returns bytes of the disk.
    """
    def header(lba: int) -> dict:
        raw = read_at(lba * SECTOR, SECTOR)
        (sig, rev, hsize, crc, _r, my, alt, fu, lu, guid, elba, n, esize,
         ecrc) = struct.unpack_from('<8sIIIIQQQQ16sQIII', raw)
        if sig != b'EFI PART':
            raise DiskFormatError(f'no GPT header at LBA {lba}')
        check = bytearray(raw[:hsize])
        check[16:20] = b'\0\0\0\0'
        if zlib.crc32(check) != crc:
            raise DiskFormatError(f'GPT header CRC32 wrong at LBA {lba}')
        if my != lba:
            raise DiskFormatError(f'GPT header at LBA {lba} says {my}')
        entries = read_at(elba * SECTOR, n * esize)
        if zlib.crc32(entries) != ecrc:
            raise DiskFormatError(f'GPT entries CRC32 wrong (header at LBA '
                                  f'{lba})')
        return {'revision': rev, 'alternate_lba': alt, 'first_usable': fu,
                'last_usable': lu, 'disk_guid': uuid.UUID(bytes_le=guid),
                'entries': entries, 'entry_size': esize}

    primary = header(1)
    backup = header(primary['alternate_lba'])
    if backup['entries'] != primary['entries'] or backup[
            'alternate_lba'] != 1:
        raise DiskFormatError('backup GPT differs from the primary')
    parts = []
    es = primary['entry_size']
    for i in range(len(primary['entries']) // es):
        tguid, pguid, first, last, attrs, name = struct.unpack_from(
            '<16s16sQQQ72s', primary['entries'], i * es)
        if tguid == bytes(16):
            continue
        parts.append({'number': i + 1,
                      'type': uuid.UUID(bytes_le=tguid),
                      'guid': uuid.UUID(bytes_le=pguid),
                      'first_lba': first, 'last_lba': last,
                      'attributes': attrs,
                      'name': name.decode('utf-16-le').rstrip('\0')})
    return {'disk_guid': primary['disk_guid'],
            'first_usable': primary['first_usable'],
            'last_usable': primary['last_usable'],
            'backup_lba': primary['alternate_lba'], 'partitions': parts}


# -- whole disks --------------------------------------------------------------
def _copy_into(dst: BinaryIO, offset: int, src_path: str) -> None:
    """Copy a file into the disk at ``offset``, leaving zero runs as holes."""
    with open(src_path, 'rb') as src:
        dst.seek(offset)
        for chunk in iter(lambda: src.read(MiB), b''):
            if chunk.count(0) == len(chunk):
                dst.seek(len(chunk), os.SEEK_CUR)
            else:
                dst.write(chunk)


def make_disk(path: str | os.PathLike[str], size: int = 64 * MiB,
              scheme: str = 'gpt', seed: int = 0) -> DiskLayout:
    """Write a raw, partitioned boot disk of ``size`` bytes to ``path``."""
    if size % MiB or size < 32 * MiB:
        raise ValueError('disk size must be a whole number of MiB, at '
                         'least 32 MiB')
    sectors = size // SECTOR
    rng = random.Random(seed)
    rootfs = _rootfs_files(seed)
    work = tempfile.mkdtemp(prefix='disk-', dir=os.path.dirname(
        os.path.abspath(path)))
    try:
        if scheme == 'gpt':
            esp_first = ALIGN
            esp_last = esp_first + 16 * MiB // SECTOR - 1
            last_usable = sectors - 2 - GPT_ENTRY_SECTORS
            root_first = esp_last + 1
            root_last = (last_usable + 1) // ALIGN * ALIGN - 1
            esp_files = _esp_files(seed)
            parts = [
                Partition(1, esp_first, esp_last, 'vfat', gpt_type=ESP_TYPE,
                          name='EFI System Partition',
                          files=_digests(esp_files)),
                Partition(2, root_first, root_last, 'ext4',
                          gpt_type=LINUX_FS_TYPE, name='rootfs',
                          files=_digests(rootfs)),
            ]
            fs = [os.path.join(work, 'esp'), os.path.join(work, 'root')]
            make_fat16(fs[0], parts[0].size, esp_files,
                       hidden_sectors=esp_first)
            make_ext4(fs[1], parts[1].size, rootfs)
            disk_guid = uuid.UUID(int=rng.getrandbits(128), version=4)
            tables = gpt_structures(sectors, parts, disk_guid, seed)
            disk_id = str(disk_guid)
        elif scheme == 'mbr':
            swap_sectors = 8 * MiB // SECTOR
            root_first = ALIGN
            root_last = sectors - swap_sectors - 1
            parts = [
                Partition(1, root_first, root_last, 'ext4',
                          mbr_type=MBR_LINUX, bootable=True,
                          files=_digests(rootfs)),
                Partition(2, root_last + 1, sectors - 1, 'swap',
                          mbr_type=MBR_SWAP),
            ]
            fs = [os.path.join(work, 'root'), os.path.join(work, 'swap')]
            make_ext4(fs[0], parts[0].size, rootfs)
            make_swap(fs[1], parts[1].size)
            signature = rng.getrandbits(32)
            tables = [(0, mbr_sector(
                [(0x80 if p.bootable else 0, p.mbr_type or 0, p.first_lba,
                  p.last_lba - p.first_lba + 1) for p in parts], signature))]
            disk_id = f'{signature:08x}'
        else:
            raise ValueError(f'unknown partition scheme {scheme!r} '
                             "(use 'gpt' or 'mbr')")
        with open(path, 'wb') as disk:
            disk.truncate(size)
            for p, src in zip(parts, fs, strict=True):
                _copy_into(disk, p.offset, src)
            for lba, blob in tables:
                disk.seek(lba * SECTOR)
                disk.write(blob)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    LOG.debug('Made a %(scheme)s disk of %(size)d bytes at %(path)s',
              {'scheme': scheme, 'size': size, 'path': path})
    return DiskLayout(scheme=scheme, size=size, partitions=tuple(parts),
                      disk_id=disk_id)


def known_files(seed: int = 0) -> dict[str, dict[str, bytes]]:
    """The files :func:`make_disk` puts on each file system, by fs type."""
    return {'ext4': _rootfs_files(seed), 'vfat': _esp_files(seed)}


# -- LUKS ---------------------------------------------------------------------
def make_luks(path: str | os.PathLike[str], size: int = 8 * MiB,
              seed: int = 0) -> None:
    """A LUKS1 container as ``cryptsetup luksFormat`` lays it out.

    The header (cryptsetup's LUKS1 on-disk format specification 1.2.3)
    has aes-xts-plain64, sha256, one enabled key slot and seven disabled
    ones at cryptsetup's offsets, the payload at 2 MiB; key material and
    payload are random bytes (nothing here can be decrypted).
    """
    rng = random.Random(seed)
    key_bytes, stripes = 32, 4000
    slot_sectors = 256          # 4000 stripes x 32 bytes, 4 KiB aligned
    payload = 4096
    slots = b''
    for i in range(8):
        active = 0x00AC71F3 if i == 0 else 0x0000DEAD
        iterations = 100000 if i == 0 else 0
        salt = rng.randbytes(32) if i == 0 else bytes(32)
        slots += struct.pack('>II32sII', active, iterations, salt,
                             8 + i * slot_sectors, stripes)
    header = struct.pack(
        '>6sH32s32s32sII20s32sI40s', b'LUKS\xba\xbe', 1, b'aes',
        b'xts-plain64', b'sha256', payload, key_bytes, rng.randbytes(20),
        rng.randbytes(32), 1000,
        str(uuid.UUID(int=rng.getrandbits(128), version=4)).encode()) + slots
    with open(path, 'wb') as f:
        f.write(header)
        f.seek(8 * SECTOR)
        f.write(rng.randbytes(stripes * key_bytes))
        f.seek(payload * SECTOR)
        f.write(rng.randbytes(size - payload * SECTOR))
