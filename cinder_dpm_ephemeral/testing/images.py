"""Disk images with known content, made with the real qemu-img."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import random
import subprocess
from pathlib import Path

MiB = 1024 * 1024


@dataclasses.dataclass(frozen=True)
class TestImage:
    path: str            # the image file as Glance would store it
    disk_format: str     # 'raw' or 'qcow2'
    virtual_size: int    # bytes the guest sees
    file_size: int       # bytes Glance serves
    raw_sha256: str      # checksum of the virtual (raw) content

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
