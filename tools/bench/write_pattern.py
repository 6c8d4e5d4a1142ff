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
"""A probe: is the cold build's write pattern what makes it slower?

``python -m tools.bench.write_pattern [--size-mib 1024] [--repeats 3]``
makes the cold benchmark's realistic raw disk (tools/bench/cold.py) and
copies it, side by side and interleaved, into an existing sparse file of
its size followed by ``fsync``, as the reference and a golden build do:

* ``qemu_img``: the cold benchmark's reference, ``qemu-img convert -n``
  (``storage.raw_reference_seconds``, the very function);
* ``python_<unit>``: plain Python, reading 1 MiB chunks (glanceclient's
  size) and writing each ``unit`` that is not all zeros, skipping the
  others (``image_cache/writer.py`` writes 4 MiB units this way);
* ``flush_apart``: ``python_4MiB``, with every byte sent to the device
  (``sync_file_range`` with ``WAIT_BEFORE | WRITE | WAIT_AFTER``) before
  the ``fsync``: ``parts`` says how long the writes, the sending and the
  ``fsync`` left after it (the device's cache flush, the journal) took;
* ``direct``: ``python_4MiB`` with ``O_DIRECT`` (what Cinder's own
  ``qemu-img convert -t none`` does on a block device): each unit copied
  into one page-aligned buffer and written from it, past the page cache;
  ``direct_parts`` says how long the writes and the ``fsync`` took;
* ``direct_4``, ``direct_8``, ``direct_16``: ``direct`` with 4, 8 or 16
  writes under way at once, each from a page-aligned buffer of its own,
  in plain threads (``direct_parts``: ``d4_write``, ``d4_fsync``, ...).

* ``lunwriter`` and ``lunwriter_flush_behind``: the golden build's own
  writer (``image_cache/lunwriter.py``, :class:`LunWriter`, in plain
  threads here as outside eventlet), 4 MiB units that are not all
  zeros, each write beside the next read with its writeback started;
  without, then with the flushes started every ``FLUSH_EVERY`` bytes
  beside the writes. ``lunwriter_parts`` says how long the writes took
  (to the last write's end) and ``finish`` (the flush under way, then the
  final ``fsync``).
* ``lunwriter_direct``: ``lunwriter_flush_behind`` with ``direct=True``,
  the golden build's writes past the page cache (``O_DIRECT``, gathered
  into aligned 4 MiB buffers: ``lunwriter_parts`` ``direct_*``).

* ``raw_stream``: the golden build's whole raw stream,
  ``writer.write_raw_stream`` itself (oslo.utils' format inspector over
  every chunk, the 4 MiB units, the zero check, :class:`LunWriter` with
  its flushes, ``fsync``, the inspector's final checks), fed the Glance
  stand-in's own 1 MiB chunks (``testing/glance.py``) and writing into
  the file as the LUN it attached; only the array is left out (no LUN
  made, no attach: ``raw_stream`` hands the function the file's path as
  the attached device, with os-brick's properties given);
* ``raw_stream_python``: what of that is Python's per-byte work alone:
  the same chunks through the same inspector and zero check, nothing
  written.

No Cinder, no array, no network: what is left is the disk, the write
pattern and, for ``raw_stream``, the build's own per-byte work.
``--ways a,b`` runs only those, in that order. ``--settle S`` pauses S
seconds before each copy, after its destination is made (an idle
machine's page cache: ``tools/bench/first_touch.py``). Results:
``doc/results/write-pattern.json`` (``--out`` to change).
"""

from __future__ import annotations

import argparse
import filecmp
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from typing import Any

MiB = 1024 * 1024


def _fresh(dst: str, size: int) -> None:
    if os.path.exists(dst):
        os.unlink(dst)
    with open(dst, 'wb') as f:
        f.truncate(size)
    os.sync()


def qemu_img(img: str, dst: str) -> tuple[float, None]:
    """The cold benchmark's own reference copy, into a file beside dst."""
    from tools.bench import storage
    return storage.raw_reference_seconds(img, 'raw', os.path.dirname(dst),
                                         os.path.getsize(img)), None


def python_units(img: str, dst: str, unit: int) -> tuple[float, int]:
    zero = bytes(unit)
    written = 0
    t = time.monotonic()
    with open(img, 'rb') as src, open(dst, 'r+b') as out:
        while chunk := src.read(MiB):
            for off in range(0, len(chunk), unit):
                part = chunk[off:off + unit]
                if part != zero[:len(part)]:
                    out.write(part)
                    written += len(part)
                else:
                    out.seek(len(part), os.SEEK_CUR)
        out.flush()
        os.fsync(out.fileno())
    return time.monotonic() - t, written


def flush_apart(img: str, dst: str,
                parts: dict[str, list[float]]) -> tuple[float, int]:
    import ctypes
    import ctypes.util
    libc = ctypes.CDLL(ctypes.util.find_library('c'), use_errno=True)
    libc.sync_file_range.argtypes = (ctypes.c_int, ctypes.c_int64,
                                     ctypes.c_int64, ctypes.c_uint)
    zero = bytes(4 * MiB)
    written = 0
    t = time.monotonic()
    fd = os.open(dst, os.O_WRONLY)
    try:
        with open(img, 'rb') as src:
            offset = 0
            while chunk := src.read(4 * MiB):
                if chunk != zero[:len(chunk)]:
                    os.pwrite(fd, chunk, offset)
                    written += len(chunk)
                offset += len(chunk)
        t1 = time.monotonic()
        # WAIT_BEFORE | WRITE | WAIT_AFTER: every dirty page on the device
        if libc.sync_file_range(fd, 0, 0, 7) != 0:
            raise OSError(ctypes.get_errno(), 'sync_file_range')
        t2 = time.monotonic()
        os.fsync(fd)
        t3 = time.monotonic()
    finally:
        os.close(fd)
    for k, v in (('write', t1 - t), ('to_device', t2 - t1),
                 ('fsync', t3 - t2)):
        parts.setdefault(k, []).append(v)
    return t3 - t, written


def direct(img: str, dst: str,
           parts: dict[str, list[float]]) -> tuple[float, int]:
    import mmap
    unit = 4 * MiB
    zero = bytes(unit)
    buf = mmap.mmap(-1, unit)       # page-aligned, as O_DIRECT needs
    written = 0
    t = time.monotonic()
    fd = os.open(dst, os.O_WRONLY | os.O_DIRECT)
    try:
        with open(img, 'rb') as src:
            offset = 0
            while chunk := src.read(unit):
                if chunk != zero[:len(chunk)]:
                    # (a multiple of 1 MiB, --size-mib: aligned for O_DIRECT)
                    buf[:len(chunk)] = chunk
                    os.pwritev(fd, [memoryview(buf)[:len(chunk)]], offset)
                    written += len(chunk)
                offset += len(chunk)
        t1 = time.monotonic()
        os.fsync(fd)
        t2 = time.monotonic()
    finally:
        os.close(fd)
        buf.close()
    for k, v in (('write', t1 - t), ('fsync', t2 - t1)):
        parts.setdefault(k, []).append(v)
    return t2 - t, written


def direct_parallel(img: str, dst: str, depth: int,
                    parts: dict[str, list[float]]) -> tuple[float, int]:
    """``direct`` with ``depth`` writes in flight (native threads)."""
    import concurrent.futures
    import mmap
    import queue
    unit = 4 * MiB
    zero = bytes(unit)
    free: queue.Queue = queue.Queue()
    bufs = [mmap.mmap(-1, unit) for _ in range(depth)]
    for b in bufs:
        free.put(b)
    written = 0
    t = time.monotonic()
    fd = os.open(dst, os.O_WRONLY | os.O_DIRECT)

    def put(buf: Any, n: int, offset: int) -> None:
        try:
            os.pwritev(fd, [memoryview(buf)[:n]], offset)
        finally:
            free.put(buf)
    try:
        with concurrent.futures.ThreadPoolExecutor(depth) as pool, \
                open(img, 'rb') as src:
            futures = []
            offset = 0
            while chunk := src.read(unit):
                if chunk != zero[:len(chunk)]:
                    buf = free.get()
                    buf[:len(chunk)] = chunk
                    futures.append(pool.submit(put, buf, len(chunk), offset))
                    written += len(chunk)
                offset += len(chunk)
            for f in futures:
                f.result()
        t1 = time.monotonic()
        os.fsync(fd)
        t2 = time.monotonic()
    finally:
        os.close(fd)
        for b in bufs:
            b.close()
    for k, v in ((f'd{depth}_write', t1 - t), (f'd{depth}_fsync', t2 - t1)):
        parts.setdefault(k, []).append(v)
    return t2 - t, written


def lunwriter_units(img: str, dst: str, flush_every: int,
                    parts: dict[str, list[float]],
                    direct: bool = False,
                    drop: bool = True) -> tuple[float, int]:
    from cinder_dpm_ephemeral.image_cache import lunwriter
    unit = 4 * MiB
    zero = bytes(unit)
    written = 0
    saved = lunwriter.FLUSH_EVERY, lunwriter.DROP_BEHIND
    lunwriter.FLUSH_EVERY, lunwriter.DROP_BEHIND = flush_every, drop
    t = time.monotonic()
    fd = os.open(dst, os.O_RDWR)
    lun = lunwriter.LunWriter(fd, direct=direct)
    try:
        with open(img, 'rb') as src:
            offset = 0
            while chunk := src.read(unit):
                if chunk != zero[:len(chunk)]:
                    lun.write(offset, [chunk])
                    written += len(chunk)
                offset += len(chunk)
        lun.wait()
        t1 = time.monotonic()
        lun.finish()
        t2 = time.monotonic()
    finally:
        lun.close()
        os.close(fd)
        lunwriter.FLUSH_EVERY, lunwriter.DROP_BEHIND = saved
    key = ('direct_' if direct else '') + ('' if drop else 'no_drop_') + (
        'flush_behind_' if flush_every else '')
    for k, v in ((key + 'write', t1 - t), (key + 'finish', t2 - t1)):
        parts.setdefault(k, []).append(v)
    parts.setdefault(key + 'flushes', []).append(lun.flushes)
    return t2 - t, written


class _FileLun:
    """The array's attach, left out: the LUN is the file at ``path``."""

    def __init__(self, path: str) -> None:
        self.path = path

    def _attach_volume(self, context: Any, volume: Any,
                       properties: dict) -> tuple[dict, Any]:
        return {'device': {'path': self.path}}, volume

    def _detach_volume(self, *args: Any, **kwargs: Any) -> None:
        pass


_stores: dict[str, tuple[Any, str]] = {}


def _stand_in_chunks(img: str) -> Any:
    """The image's bytes as the Glance stand-in serves them (lazily).

    The image is registered (its checksums computed) once per file, not
    while a copy is timed; the file is read as the returned chunks are.
    """
    from cinder_dpm_ephemeral.testing import glance
    if img not in _stores:
        store = glance.ImageStore(tempfile.mkdtemp(prefix='write-pattern-'))
        _stores[img] = store, store.add(img, 'raw')['id']
        shutil.rmtree(store.root, ignore_errors=True)
    store, image_id = _stores[img]
    return store.chunks(image_id)


def raw_stream(img: str, dst: str) -> tuple[float, int]:
    from cinder_dpm_ephemeral.image_cache import formats
    from cinder_dpm_ephemeral.image_cache import writer
    size = os.path.getsize(img)
    chunks = _stand_in_chunks(img)
    t = time.monotonic()
    inspector = formats.StreamInspector(chunks, 'probe', 'raw')
    writer.write_raw_stream(_FileLun(dst), None, None, inspector, size,
                            reads_zeros=True, connector={})
    took = time.monotonic() - t
    if not filecmp.cmp(img, dst, shallow=False):
        raise SystemExit(f'raw_stream: {dst} differs from the image')
    # what it wrote: the blocks the sparse file has now
    return took, os.stat(dst).st_blocks * 512


def raw_stream_python(img: str, dst: str) -> tuple[float, int]:
    from cinder_dpm_ephemeral.image_cache import formats
    from cinder_dpm_ephemeral.image_cache import lunwriter
    chunks = _stand_in_chunks(img)
    t = time.monotonic()
    inspector = formats.StreamInspector(chunks, 'probe', 'raw')
    for chunk in inspector:
        lunwriter.is_zero(chunk)        # the check each unit gets
    inspector.finish()
    return time.monotonic() - t, 0


def _parts(parts: dict[str, list[float]]) -> dict[str, Any]:
    return {k: {'median': statistics.median(v), 'min': min(v), 'max': max(v)}
            for k, v in parts.items()}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog='python -m tools.bench.'
                                          'write_pattern')
    parser.add_argument('--size-mib', type=int, default=1024)
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--out', default=os.path.join(
        'doc', 'results', 'write-pattern.json'))
    parser.add_argument('--ways', default=None,
                        help='comma-separated ways to run (default: all)')
    parser.add_argument('--settle', type=float, default=0.0,
                        help='seconds of pause before each copy (after '
                             'its destination is made)')
    args = parser.parse_args(argv)
    from cinder_dpm_ephemeral.image_cache import lunwriter
    from tools.bench import cold
    size = args.size_mib * MiB
    work = tempfile.mkdtemp(prefix='write-pattern-')
    ways: dict[str, Any] = {
        'qemu_img': qemu_img,
        'python_4MiB': lambda i, d: python_units(i, d, 4 * MiB),
        'python_1MiB': lambda i, d: python_units(i, d, MiB),
        'python_64KiB': lambda i, d: python_units(i, d, 64 * 1024),
        'flush_apart': lambda i, d: flush_apart(i, d, parts),
        'direct': lambda i, d: direct(i, d, direct_parts),
        'direct_4': lambda i, d: direct_parallel(i, d, 4, direct_parts),
        'direct_8': lambda i, d: direct_parallel(i, d, 8, direct_parts),
        'direct_16': lambda i, d: direct_parallel(i, d, 16, direct_parts),
        'lunwriter': lambda i, d: lunwriter_units(i, d, 0, lun_parts),
        'lunwriter_flush_behind': lambda i, d: lunwriter_units(
            i, d, lunwriter.FLUSH_EVERY, lun_parts),
        'lunwriter_no_drop': lambda i, d: lunwriter_units(
            i, d, lunwriter.FLUSH_EVERY, lun_parts, drop=False),
        'lunwriter_direct': lambda i, d: lunwriter_units(
            i, d, lunwriter.FLUSH_EVERY, lun_parts, direct=True),
        'raw_stream': raw_stream,
        'raw_stream_python': raw_stream_python,
    }
    if args.ways:
        chosen = args.ways.split(',')
        unknown = sorted(set(chosen) - set(ways))
        if unknown:
            parser.error(f'unknown ways {unknown}; known: {sorted(ways)}')
        ways = {k: ways[k] for k in chosen}
    parts: dict[str, list[float]] = {}
    direct_parts: dict[str, list[float]] = {}
    lun_parts: dict[str, list[float]] = {}
    runs: dict[str, list[float]] = {k: [] for k in ways}
    written: dict[str, int | None] = {}
    results: dict[str, Any] = {
        'started': time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime()),
        'load_average': os.getloadavg(), 'code': cold.code_version()}
    try:
        made, info = cold.images_for(work, size, 0.8, 7)
        results['image'] = info
        img = made['raw'].path
        dst = os.path.join(work, 'dst')
        for _ in range(args.repeats):
            for name, way in ways.items():
                _fresh(dst, size)
                time.sleep(args.settle)
                seconds, written[name] = way(img, dst)
                runs[name].append(seconds)
                print(f'{name}: {seconds:.3f} s', flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    results['seconds'] = {k: {'median': statistics.median(v),
                              'min': min(v), 'max': max(v), 'runs': v}
                          for k, v in runs.items()}
    results['bytes_written'] = written
    # flush_apart's steps: writes, every page sent, fsync after that
    results['flush_apart_parts'] = _parts(parts)
    # direct's steps: the O_DIRECT writes, the fsync after them
    results['direct_parts'] = _parts(direct_parts)
    # the golden build's writer: writes, then finish() (flush and fsync);
    # flush_behind_*: the same with its flushes beside the writes
    results['lunwriter_parts'] = _parts(lun_parts)
    results['lunwriter_flush_every'] = lunwriter.FLUSH_EVERY
    results['load_average_end'] = os.getloadavg()
    with open(args.out, 'w') as f:
        json.dump(results, f, indent=2)
    print(json.dumps({k: round(v['median'], 3)
                      for k, v in results['seconds'].items()}))
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
