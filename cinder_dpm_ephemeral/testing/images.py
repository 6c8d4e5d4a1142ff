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
"""Disk images with known content, made with the real qemu-img.

Two kinds, shared by the tests, the demo and the benchmarks:

* :func:`make_image`: raw or qcow2 images of seeded random data, patterns
  and holes, any size (cheap; the benchmarks' and cache tests' images);
* :func:`make_disk_image`: a realistic boot disk (:mod:`.disks`: a GPT with
  an EFI System partition and an ext4 root, or a DOS MBR with ext4 and
  swap) in every disk format Glance offers: ``raw``, ``qcow2`` (plain and
  with compressed clusters), ``vmdk`` (streamOptimized), ``vhd`` (exact
  size, and qemu-img's default CHS-rounded size), ``vhdx``,
  ``iso`` (an ISO 9660 file system, pycdlib) and a gzip
  ``container_format: compressed`` raw disk.

:func:`reference_raw` says what a volume made from any image must hold:
``qemu-img convert -O raw`` of it (after gunzip for compressed containers),
computed with the real qemu-img.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import json
import os
import random
import shutil
import subprocess
import tempfile
from pathlib import Path

from cinder_dpm_ephemeral.testing import disks

MiB = 1024 * 1024

#: Glance disk_format -> qemu-img format name (Cinder's QEMU_IMG_FORMAT_MAP)
QEMU_FORMATS = {'raw': 'raw', 'qcow2': 'qcow2', 'vmdk': 'vmdk',
                'vhd': 'vpc', 'vhdx': 'vhdx', 'iso': 'raw'}

#: variant -> (Glance disk_format, container_format, qemu-img convert args)
VARIANTS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    'raw': ('raw', 'bare', ()),
    'qcow2': ('qcow2', 'bare', ('-O', 'qcow2')),
    'qcow2-compressed': ('qcow2', 'bare', ('-O', 'qcow2', '-c')),
    'vmdk': ('vmdk', 'bare',
             ('-O', 'vmdk', '-o', 'subformat=streamOptimized')),
    # force_size: the virtual size stays the raw disk's (not rounded up to
    # a CHS geometry), as Azure and Hyper-V images are made
    'vhd': ('vhd', 'bare', ('-O', 'vpc', '-o', 'force_size=on')),
    # qemu-img's default: the size rounded up to a CHS geometry (the
    # virtual size grows by up to a cylinder of zeros)
    'vhd-geometry': ('vhd', 'bare', ('-O', 'vpc')),
    'vhdx': ('vhdx', 'bare', ('-O', 'vhdx')),
    'iso': ('iso', 'bare', ()),
    'raw-gzip': ('raw', 'compressed', ()),
}


@dataclasses.dataclass(frozen=True)
class TestImage:
    path: str            # the image file as Glance would store it
    disk_format: str     # Glance disk_format ('raw', 'qcow2', 'vhd', ...)
    virtual_size: int    # bytes the guest sees
    file_size: int       # bytes Glance serves
    raw_sha256: str      # checksum of the virtual (raw) content
    container_format: str = 'bare'
    variant: str = ''    # key of VARIANTS for realistic disks
    layout: disks.DiskLayout | None = None   # partitions, for disks

    __test__ = False     # not a test class, whatever test runners think


def write_raw_content(path: str | os.PathLike[str], size: int,
                      seed: int = 0, data_size: int | None = None) -> str:
    """Write ``size`` bytes of non-trivial disk content; return its sha256.

    The content mixes random data, repeated patterns and zero runs (which a
    sparse copy or qcow2 skips), like a real root file system. It is
    generated in 1 MiB chunks, never held in memory whole. Past
    ``data_size`` (default: all of it) the disk is empty (zeros, a hole).
    """
    data_size = size if data_size is None else data_size
    rng = random.Random(seed)
    h = hashlib.sha256()
    with open(path, 'wb') as f:
        remaining = size
        block = 0
        while remaining > 0:
            n = min(MiB, remaining)
            kind = block % 4
            if kind == 3 or block * MiB >= data_size:
                data = bytes(n)                       # a hole
                f.seek(n, os.SEEK_CUR)
            elif kind == 2:
                pattern = f'block {block:08d} seed {seed} '.encode()
                data = (pattern * (n // len(pattern) + 1))[:n]
                f.write(data)
            else:
                data = rng.randbytes(n)
                f.write(data)
            h.update(data)
            remaining -= n
            block += 1
        f.truncate(size)
    return h.hexdigest()


def make_image(directory: str | os.PathLike[str], size: int,
               disk_format: str = 'qcow2', seed: int = 0,
               name: str = 'image', data_size: int | None = None
               ) -> TestImage:
    """Create a raw or qcow2 image of ``size`` virtual bytes."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    raw = directory / f'{name}.raw'
    digest = write_raw_content(raw, size, seed, data_size)
    if disk_format == 'raw':
        path = raw
    elif disk_format == 'qcow2':
        path = directory / f'{name}.qcow2'
        subprocess.run(['qemu-img', 'convert', '-q', '-f', 'raw', '-O',
                        'qcow2', str(raw), str(path)], check=True)
        raw.unlink()
    else:
        raise ValueError(f'unsupported disk format {disk_format!r}')
    return TestImage(path=str(path), disk_format=disk_format,
                     virtual_size=size, file_size=path.stat().st_size,
                     raw_sha256=digest)


# -- realistic disks in every Glance format -----------------------------------
def _sha256_file(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(4 * MiB), b''):
            h.update(chunk)
    return h.hexdigest()


def iso_files(seed: int = 0) -> dict[str, bytes]:
    """The files :func:`make_iso` writes (ISO 9660 path -> bytes)."""
    rng = random.Random(f'iso-{seed}')
    return {
        'README.TXT': b'DPM test installer medium, seed %d\n' % seed,
        'BOOT/VMLINUZ': rng.randbytes(2 * MiB + 777),
        'BOOT/INITRD.IMG': rng.randbytes(MiB),
        'INSTALL/PRESEED.CFG': b'd-i debian-installer/locale string en_US\n',
    }


def make_iso(path: str | os.PathLike[str], seed: int = 0,
             label: str = 'DPMTEST') -> None:
    """An ISO 9660 image (Rock Ridge and Joliet names) of known files."""
    import pycdlib

    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=3, vol_ident=label, joliet=3,
            rock_ridge='1.09')
    made: set[str] = set()
    try:
        for rel, data in sorted(iso_files(seed).items()):
            parts = rel.split('/')
            for i in range(1, len(parts)):
                d = '/' + '/'.join(parts[:i])
                if d not in made:
                    iso.add_directory(d, rr_name=parts[i - 1].lower(),
                                      joliet_path=d.lower())
                    made.add(d)
            iso.add_fp(io.BytesIO(data), len(data), f'/{rel};1',
                       rr_name=parts[-1].lower(),
                       joliet_path='/' + rel.lower())
        iso.write(str(path))
    finally:
        iso.close()


def read_iso_file(path: str | os.PathLike[str], name: str) -> bytes:
    """A file's bytes from an ISO 9660 image (its ISO 9660 name)."""
    import pycdlib

    iso = pycdlib.PyCdlib()
    iso.open(str(path))
    try:
        out = io.BytesIO()
        iso.get_file_from_iso_fp(out, iso_path=f'/{name};1')
        return out.getvalue()
    finally:
        iso.close()


def convert_raw(raw: str | os.PathLike[str], variant: str,
                dest: str | os.PathLike[str]) -> None:
    """Write the raw disk ``raw`` as ``variant`` (a key of VARIANTS)."""
    try:
        _disk_format, _container, args = VARIANTS[variant]
    except KeyError:
        raise ValueError(f'unknown image variant {variant!r}; one of '
                         f'{", ".join(VARIANTS)}') from None
    if variant == 'raw':
        shutil.copyfile(raw, dest)
    elif variant == 'raw-gzip':
        with open(raw, 'rb') as src, gzip.open(dest, 'wb',
                                               compresslevel=1) as dst:
            shutil.copyfileobj(src, dst, 4 * MiB)
    elif variant == 'iso':
        raise ValueError('an iso is a file system of its own; use '
                         'make_iso() or make_disk_image(variant="iso")')
    else:
        subprocess.run(['qemu-img', 'convert', '-q', '-f', 'raw', *args,
                        str(raw), str(dest)], check=True,
                       capture_output=True)


def make_disk_image(directory: str | os.PathLike[str], variant: str = 'qcow2',
                    scheme: str = 'gpt', size: int = 64 * MiB, seed: int = 0,
                    name: str | None = None) -> TestImage:
    """A realistic boot disk image in the Glance format ``variant``.

    ``scheme`` is the partition table ('gpt' or 'mbr'); ``size`` the
    virtual size. ``variant='iso'`` makes an ISO 9660 medium instead (its
    virtual size is its file size). ``raw_sha256`` is the checksum of the
    raw disk the image was made from (what a volume must hold).
    """
    if variant not in VARIANTS:
        raise ValueError(f'unknown image variant {variant!r}; one of '
                         f'{", ".join(VARIANTS)}')
    disk_format, container, _args = VARIANTS[variant]
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    name = name or f'{scheme}-{variant}'
    ext = {'raw-gzip': 'raw.gz',
           'qcow2-compressed': 'qcow2'}.get(variant, variant)
    path = directory / f'{name}.{ext}'
    if variant == 'iso':
        make_iso(path, seed)
        size = path.stat().st_size
        return TestImage(path=str(path), disk_format=disk_format,
                         virtual_size=size, file_size=size,
                         raw_sha256=_sha256_file(path), variant=variant)
    raw = directory / f'{name}.disk'
    layout = disks.make_disk(raw, size, scheme, seed)
    digest = _sha256_file(raw)
    if variant == 'raw':
        raw.rename(path)
    else:
        try:
            convert_raw(raw, variant, path)
        finally:
            raw.unlink()
        if container == 'bare':
            virtual = int(qemu_info(path, QEMU_FORMATS[disk_format])[
                'virtual-size'])
            if virtual != size:
                # the format rounded the disk up (zeros at the end)
                digest, size = reference_raw(path, disk_format)
    return TestImage(path=str(path), disk_format=disk_format,
                     virtual_size=size, file_size=path.stat().st_size,
                     raw_sha256=digest, container_format=container,
                     variant=variant, layout=layout)


def qemu_info(path: str | os.PathLike[str],
              qemu_format: str | None = None) -> dict:
    """``qemu-img info --output=json`` of ``path``."""
    cmd = ['qemu-img', 'info', '--output=json']
    if qemu_format:
        cmd += ['-f', qemu_format]
    out = subprocess.run(cmd + [str(path)], check=True, capture_output=True,
                         text=True)
    return json.loads(out.stdout)


def is_gzip(path: str | os.PathLike[str]) -> bool:
    with open(path, 'rb') as f:
        return f.read(2) == b'\x1f\x8b'


def is_iso9660(path: str | os.PathLike[str]) -> bool:
    """An ISO 9660 or UDF volume descriptor at 32 KiB (ECMA-119 8.1)."""
    with open(path, 'rb') as f:
        f.seek(32 * 1024 + 1)
        return f.read(5) in (b'CD001', b'NSR02', b'NSR03')


def detect_disk_format(path: str | os.PathLike[str]) -> tuple[str, str]:
    """(Glance disk_format, container_format) of an image file.

    What qemu-img calls it, in Glance's words (``vpc`` is ``vhd``); a raw
    file with an ISO 9660 descriptor is an ``iso``; a gzip file is a
    compressed container around whatever it holds.
    """
    if is_gzip(path):
        with tempfile.TemporaryDirectory(prefix='detect-') as tmp:
            inner = os.path.join(tmp, 'inner')
            with gzip.open(path, 'rb') as src, open(inner, 'wb') as dst:
                shutil.copyfileobj(src, dst, 4 * MiB)
            return detect_disk_format(inner)[0], 'compressed'
    fmt = qemu_info(path)['format']
    if fmt == 'raw' and is_iso9660(path):
        return 'iso', 'bare'
    glance = {v: k for k, v in QEMU_FORMATS.items() if k != 'iso'}
    if fmt not in glance:
        raise ValueError(f'{path}: qemu-img says {fmt!r}, which is not a '
                         f'Glance disk format Cinder converts '
                         f'({", ".join(sorted(QEMU_FORMATS))})')
    return glance[fmt], 'bare'


def reference_raw(path: str | os.PathLike[str], disk_format: str,
                  container_format: str = 'bare',
                  work_dir: str | os.PathLike[str] | None = None
                  ) -> tuple[str, int]:
    """(sha256, size) of ``qemu-img convert -O raw`` of an image.

    What Cinder writes on a volume from it: a compressed container is
    gunzipped first (Cinder's gzip accelerator), an ``iso`` is read as raw
    (Cinder's QEMU_IMG_FORMAT_MAP). Runs the real qemu-img.
    """
    try:
        qfmt = QEMU_FORMATS[disk_format]
    except KeyError:
        raise ValueError(f'unknown disk format {disk_format!r}') from None
    with tempfile.TemporaryDirectory(prefix='reference-',
                                     dir=work_dir) as tmp:
        src = str(path)
        if container_format == 'compressed':
            src = os.path.join(tmp, 'gunzipped')
            with gzip.open(path, 'rb') as fin, open(src, 'wb') as fout:
                shutil.copyfileobj(fin, fout, 4 * MiB)
        out = os.path.join(tmp, 'raw')
        subprocess.run(['qemu-img', 'convert', '-q', '-f', qfmt, '-O', 'raw',
                        src, out], check=True, capture_output=True)
        return _sha256_file(out), os.path.getsize(out)
