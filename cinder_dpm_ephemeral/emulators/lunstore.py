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
"""LUN data for the array emulators: sparse files with copy-on-write clones.

Both emulators (SVC and PowerFlex) keep the bytes of their volumes here, one
sparse file per LUN under ``<state_dir>/luns``. The store is shared between
processes: the emulator process owns the array metadata, while a Cinder
volume service in emulation mode opens LUN files directly (os-brick's LOCAL
connector) to copy images. Every operation therefore takes an exclusive
``flock`` on ``<state_dir>/luns/.lock`` and re-reads ``index.json``.

Clones are copy-on-write, like on the real arrays: :meth:`LunStore.clone`
records only that the new LUN shares the bytes of its base (no data is
copied, it costs the same for 1 MiB and 1 TiB). Bytes move only when they
must, and each such copy is counted:

* before a LUN is opened for I/O, or deleted, every LUN still sharing its
  bytes gets its own copy (``materialized_bytes``), so a clone always keeps
  its point-in-time content;
* a LUN opened for I/O gets its own file first.

``materialized_bytes`` is an emulation artefact (a real array shares blocks
without copying); what the emulated array itself copies, such as FlashCopy
background copy, is counted by the array layers through :meth:`count`. A
LUN created with a ``cow_counter`` (its clones inherit it) also adds to
that counter the bytes it gives its own copy when it is opened for I/O
while sharing them: the copy-on-write the real array does for the blocks a
writer changes. The emulator cannot see which blocks a writer touches
through the file, so it counts every shared byte (an upper bound).

Old data on new LUNs: a LUN created in a ``pool`` with ``reads_zeros``
False (a fully allocated SVC vdisk made with ``-nofmtdisk``, a PowerFlex
volume in a pool without zero padding) starts with the bytes that LUNs
deleted from that pool left on its physical extents, and reads them back
wherever it was never written. The store keeps, per pool, a sparse
*residue* file: a deleted LUN's data is laid over it at the same offsets.
Which physical extent a real array reuses is its own business; the store
gives every such new LUN the residue at its own offsets, the worst case
(the deleted data always shows through where nothing was written).

Write errors (fault campaigns, :meth:`LunStore.set_write_faults`): a
share of the opens for I/O hand out ``/dev/full`` instead of the LUN's
file, so every write fails (``ENOSPC``), as writes to a LUN whose paths
all failed or whose thin pool ran out of space fail on a host (the
kernel returns an I/O error to the writer; ``/dev/full`` is the
standard device that fails every write).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import random
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cinder_dpm_ephemeral.emulators import files

_LUN_ID = re.compile(r'^[A-Za-z0-9_.:-]{1,128}$')
_CHUNK = 8 * 1024 * 1024
#: counter of the bytes copied into pool residues (emulation artefact)
RESIDUE_COUNTER = 'residue_bytes'
#: what an open for I/O hands out when a write error is injected
FAILING_DEVICE = '/dev/full'
WRITE_FAULT_COUNTER = 'injected_write_errors'


class LunStoreError(Exception):
    """A LUN store operation failed."""


class LunNotFound(LunStoreError):
    def __init__(self, lun_id: str) -> None:
        super().__init__(f'LUN {lun_id} does not exist in the LUN store')
        self.lun_id = lun_id


def _data_extents(fd: int, start: int, end: int) -> Iterator[tuple[int, int]]:
    """``(offset, end)`` of the data extents of ``fd`` in ``[start, end)``."""
    offset = start
    while offset < end:
        try:
            data = os.lseek(fd, offset, os.SEEK_DATA)
        except OSError as exc:
            if exc.errno == errno.ENXIO:
                return
            raise
        if data >= end:
            return
        hole = min(os.lseek(fd, data, os.SEEK_HOLE), end)
        yield data, hole
        offset = hole


def overlay(src: Path, dst: Path, start: int, end: int) -> int:
    """Copy the data extents of ``src`` in ``[start, end)`` onto ``dst``.

    Same offsets in both files; ``dst`` is created if missing and never
    shortened. Returns the number of bytes copied.
    """
    copied = 0
    try:
        fin = os.open(src, os.O_RDONLY)
    except FileNotFoundError:
        return 0
    try:
        fout = os.open(dst, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            end = min(end, os.fstat(fin).st_size)
            for data, hole in _data_extents(fin, start, end):
                pos = data
                while pos < hole:
                    n = os.copy_file_range(fin, fout,
                                           min(_CHUNK, hole - pos), pos, pos)
                    if n <= 0:
                        raise LunStoreError(f'short copy from {src} at {pos}')
                    pos += n
                copied += hole - data
        finally:
            os.close(fout)
    finally:
        os.close(fin)
    return copied


def _new_lun_file(path: Path) -> Any:
    """Create (or empty) a LUN data file, readable and writable by root only.

    A LUN on a volume host is a block device that only root may open
    (``brw-rw---- root disk``); the emulated LUN files are the same, so a
    volume service that is not root must reach them the way Cinder reaches
    devices: through its root helper.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    return os.fdopen(fd, 'r+b')


def _open_lock(path: Path) -> Any:
    """The store's lock file, read-only for a process that cannot write it.

    ``flock`` works on a file open for reading too.
    """
    try:
        return open(path, 'a+')
    except PermissionError:
        return open(path)


def sparse_copy(src: Path, dst: Path, size: int) -> int:
    """Copy ``src`` into a new sparse file ``dst`` of ``size`` bytes.

    Only the data extents of ``src`` (SEEK_DATA/SEEK_HOLE) are copied.
    Returns the number of bytes copied.
    """
    copied = 0
    tmp = dst.with_name(dst.name + '.tmp')
    with open(src, 'rb') as fin, _new_lun_file(tmp) as fout:
        limit = min(os.fstat(fin.fileno()).st_size, size)
        for data, hole in _data_extents(fin.fileno(), 0, limit):
            pos = data
            while pos < hole:
                n = os.copy_file_range(fin.fileno(), fout.fileno(),
                                       min(_CHUNK, hole - pos), pos, pos)
                if n <= 0:
                    raise LunStoreError(f'short copy from {src} at {pos}')
                pos += n
            copied += hole - data
        fout.truncate(size)
    os.replace(tmp, dst)
    return copied


class LunStore:
    """Sparse-file LUNs with copy-on-write clones, safe across processes."""

    def __init__(self, state_dir: str | os.PathLike[str]) -> None:
        self.root = Path(state_dir) / 'luns'
        self.root.mkdir(parents=True, exist_ok=True)
        self._index_path = self.root / 'index.json'
        self._lock_path = self.root / '.lock'
        self._thread_lock = threading.RLock()

    # -- locking and index ---------------------------------------------------
    @contextlib.contextmanager
    def _locked(self) -> Iterator[dict[str, Any]]:
        with self._thread_lock, _open_lock(self._lock_path) as lockf:
            fcntl.flock(lockf.fileno(), fcntl.LOCK_EX)
            try:
                index = self._load()
                before = json.dumps(index, sort_keys=True)
                yield index
                if json.dumps(index, sort_keys=True) != before:
                    self._save(index)
            finally:
                fcntl.flock(lockf.fileno(), fcntl.LOCK_UN)

    def _load(self) -> dict[str, Any]:
        try:
            with open(self._index_path) as f:
                index = json.load(f)
        except FileNotFoundError:
            index = {}
        index.setdefault('luns', {})
        index.setdefault('counters', {})
        return index

    def _save(self, index: dict[str, Any]) -> None:
        files.write_text_atomic(self._index_path,
                                json.dumps(index, sort_keys=True))

    def _file(self, lun_id: str) -> Path:
        if not _LUN_ID.match(lun_id):
            raise LunStoreError(f'invalid LUN id {lun_id!r}')
        return self.root / f'{lun_id}.lun'

    @staticmethod
    def _get(index: dict[str, Any], lun_id: str) -> dict[str, Any]:
        try:
            return index['luns'][lun_id]
        except KeyError:
            raise LunNotFound(lun_id)

    def _data_file(self, index: dict[str, Any], lun_id: str) -> Path:
        """The file that currently holds the bytes of ``lun_id``."""
        seen = set()
        cur = lun_id
        while True:
            meta = self._get(index, cur)
            if meta.get('base') is None:
                return self._file(cur)
            if cur in seen:
                raise LunStoreError(f'clone loop at LUN {cur}')
            seen.add(cur)
            cur = meta['base']

    def _materialize(self, index: dict[str, Any], lun_id: str) -> int:
        """Give ``lun_id`` its own file; returns the bytes copied."""
        meta = self._get(index, lun_id)
        if meta.get('base') is None:
            return 0
        src = self._data_file(index, lun_id)
        n = sparse_copy(src, self._file(lun_id), meta['size'])
        meta['base'] = None
        self._add(index, 'materialized_bytes', n)
        return n

    def _detach_dependents(self, index: dict[str, Any], lun_id: str) -> int:
        moved = 0
        for dep_id, dep in list(index['luns'].items()):
            if dep.get('base') == lun_id:
                moved += self._materialize(index, dep_id)
        return moved

    @staticmethod
    def _add(index: dict[str, Any], name: str, amount: int) -> None:
        if amount:
            index['counters'][name] = (index['counters'].get(name, 0)
                                       + amount)

    # -- pool residue (old data on physical extents) --------------------------
    def _residue(self, pool: str) -> Path:
        if not _LUN_ID.match(pool):
            raise LunStoreError(f'invalid pool key {pool!r}')
        return self.root / f'.residue-{pool}'

    def _release(self, index: dict[str, Any], lun_id: str) -> None:
        """The extents of a LUN being deleted keep its data (residue)."""
        meta = index['luns'][lun_id]
        pool = meta.get('pool')
        if pool is None or meta.get('base') is not None:
            return      # no pool known, or nothing of its own written
        n = overlay(self._file(lun_id), self._residue(pool), 0,
                    int(meta['size']))
        self._add(index, RESIDUE_COUNTER, n)

    def _fill_stale(self, index: dict[str, Any], lun_id: str, start: int,
                    end: int) -> None:
        """``[start, end)`` of ``lun_id`` gets its pool's residue."""
        pool = index['luns'][lun_id].get('pool')
        if pool is None or start >= end:
            return
        n = overlay(self._residue(pool), self._file(lun_id), start, end)
        self._add(index, RESIDUE_COUNTER, n)

    # -- public API -----------------------------------------------------------
    def create(self, lun_id: str, size: int, pool: str | None = None,
               reads_zeros: bool = True,
               cow_counter: str | None = None) -> None:
        """Create a LUN of ``size`` bytes (a sparse file).

        It reads zeros, unless ``reads_zeros`` is False: then it reads the
        residue of ``pool`` (old data of deleted LUNs) wherever it is not
        written. ``pool`` also names where its extents go when it is
        deleted. ``cow_counter``: the array counter its copy-on-write
        copies add to (see the module docstring).
        """
        with self._locked() as index:
            if lun_id in index['luns']:
                raise LunStoreError(f'LUN {lun_id} already exists')
            path = self._file(lun_id)
            with _new_lun_file(path) as f:
                f.truncate(size)
            meta: dict[str, Any] = {'size': size, 'base': None}
            if pool is not None:
                meta['pool'] = pool
            if cow_counter is not None:
                meta['cow_counter'] = cow_counter
            index['luns'][lun_id] = meta
            if not reads_zeros:
                self._fill_stale(index, lun_id, 0, size)
                with open(path, 'r+b') as f:
                    f.truncate(size)

    def clone(self, src_id: str, dst_id: str, size: int | None = None) -> None:
        """Make ``dst_id`` a copy-on-write clone of ``src_id`` (no copy)."""
        with self._locked() as index:
            src = self._get(index, src_id)
            if dst_id in index['luns']:
                raise LunStoreError(f'LUN {dst_id} already exists')
            meta = {'size': src['size'] if size is None else size,
                    'base': src_id}
            for key in ('pool', 'cow_counter'):
                if key in src:
                    meta[key] = src[key]
            index['luns'][dst_id] = meta

    def copy_data(self, src_id: str, dst_id: str) -> int:
        """Give ``dst_id`` the current content of ``src_id`` (CoW, no copy).

        Used when an existing target LUN receives a point-in-time copy of a
        source (FlashCopy start). Returns the logical size shared.
        """
        with self._locked() as index:
            self._get(index, src_id)
            dst = self._get(index, dst_id)
            self._detach_dependents(index, dst_id)
            with contextlib.suppress(FileNotFoundError):
                self._file(dst_id).unlink()
            dst['base'] = src_id
            return dst['size']

    def delete(self, lun_id: str) -> None:
        """Delete a LUN; clones that share its bytes keep their content.

        Its data stays on the pool's extents (see :meth:`create`).
        """
        with self._locked() as index:
            if lun_id not in index['luns']:
                return
            self._detach_dependents(index, lun_id)
            self._release(index, lun_id)
            del index['luns'][lun_id]
            with contextlib.suppress(FileNotFoundError):
                self._file(lun_id).unlink()

    def resize(self, lun_id: str, size: int,
               reads_zeros: bool = True) -> None:
        """Change a LUN's size.

        New space reads zeros unless ``reads_zeros`` is False: then it
        reads the pool's residue (see :meth:`create`).
        """
        with self._locked() as index:
            meta = self._get(index, lun_id)
            old = int(meta['size'])
            if size < old or (size > old and not reads_zeros
                              and meta.get('pool') is not None):
                self._detach_dependents(index, lun_id)
                self._materialize(index, lun_id)
            meta['size'] = size
            if meta.get('base') is None:
                with open(self._file(lun_id), 'r+b') as f:
                    f.truncate(size)
                if size > old and not reads_zeros:
                    self._fill_stale(index, lun_id, old, size)
                    with open(self._file(lun_id), 'r+b') as f:
                        f.truncate(size)

    def open_path(self, lun_id: str) -> str:
        """Path of a file holding only this LUN's bytes, ready for I/O.

        Clones sharing the LUN's bytes get their own copies first, so writes
        through the returned path never change another LUN. Those copies
        count as the array's copy-on-write when the LUN has a
        ``cow_counter``.
        """
        with self._locked() as index:
            moved = self._detach_dependents(index, lun_id)
            moved += self._materialize(index, lun_id)
            counter = index['luns'][lun_id].get('cow_counter')
            if counter:
                self._add(index, counter, moved)
            if self._write_fault(index):
                self._add(index, WRITE_FAULT_COUNTER, 1)
                return FAILING_DEVICE
            return str(self._file(lun_id))

    def set_write_faults(self, rate: float, seed: int | None = None) -> None:
        """Make a share ``rate`` of :meth:`open_path` calls fail writes.

        Kept in the index, so the volume service's process (which opens
        LUNs) sees what the emulator's control pipe set. 0 stops it.
        """
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f'write fault rate {rate} is not in [0, 1]')
        with self._locked() as index:
            index['write_faults'] = {'rate': rate, 'seed': seed or 0,
                                     'opens': 0}

    @staticmethod
    def _write_fault(index: dict[str, Any]) -> bool:
        faults = index.get('write_faults')
        if not faults or not faults.get('rate'):
            return False
        faults['opens'] += 1
        draw = random.Random(f'{faults["seed"]}-{faults["opens"]}').random()
        return draw < faults['rate']

    def allocated(self, lun_id: str) -> list[tuple[int, int]]:
        """``(offset, end)`` byte ranges of the LUN that hold data.

        The data extents of the file holding its bytes (its own, or its
        base's for a clone that shares them): what a thin-provisioned LUN
        has allocated. Copies nothing.
        """
        with self._locked() as index:
            meta = self._get(index, lun_id)
            path = self._data_file(index, lun_id)
            try:
                fd = os.open(path, os.O_RDONLY)
            except FileNotFoundError:
                return []
            try:
                end = min(int(meta['size']), os.fstat(fd).st_size)
                return list(_data_extents(fd, 0, end))
            finally:
                os.close(fd)

    def write(self, lun_id: str, offset: int, data: bytes) -> int:
        """Write ``data`` at ``offset`` of the LUN (a host's write).

        Like :meth:`open_path` the LUN gets its own file first, but nothing
        is added to its ``cow_counter``: the array layer that calls this
        counts what the write costs it (e.g. FlashCopy grain splits).
        Returns the bytes written.
        """
        with self._locked() as index:
            meta = self._get(index, lun_id)
            if offset < 0 or offset + len(data) > int(meta['size']):
                raise LunStoreError(
                    f'write of {len(data)} bytes at {offset} is outside '
                    f'LUN {lun_id} ({meta["size"]} bytes)')
            self._detach_dependents(index, lun_id)
            self._materialize(index, lun_id)
            fd = os.open(self._file(lun_id), os.O_WRONLY)
            try:
                return os.pwrite(fd, data, offset)
            finally:
                os.close(fd)

    def read(self, lun_id: str, offset: int, length: int) -> bytes:
        """``length`` bytes of the LUN from ``offset``; copies nothing."""
        with self._locked() as index:
            meta = self._get(index, lun_id)
            length = max(0, min(length, int(meta['size']) - offset))
            with open(self._data_file(index, lun_id), 'rb') as f:
                f.seek(offset)
                data = f.read(length)
            return data + bytes(length - len(data))

    def fix_size(self, lun_id: str) -> None:
        """Restore a LUN file's length after a tool recreated it.

        ``qemu-img convert`` into a regular file recreates it at the image's
        size; a real LUN keeps its size, so the emulated one must too.
        """
        with self._locked() as index:
            meta = self._get(index, lun_id)
            if meta.get('base') is None:
                with open(self._file(lun_id), 'r+b') as f:
                    f.truncate(meta['size'])

    def size(self, lun_id: str) -> int:
        with self._locked() as index:
            return int(self._get(index, lun_id)['size'])

    def exists(self, lun_id: str) -> bool:
        with self._locked() as index:
            return lun_id in index['luns']

    def list(self) -> dict[str, dict[str, Any]]:
        with self._locked() as index:
            return {k: dict(v) for k, v in index['luns'].items()}

    def sha256(self, lun_id: str, length: int | None = None) -> str:
        """Checksum of the LUN's first ``length`` bytes (default: all)."""
        with self._locked() as index:
            meta = self._get(index, lun_id)
            path = self._data_file(index, lun_id)
            total = meta['size'] if length is None else length
            h = hashlib.sha256()
            with open(path, 'rb') as f:
                remaining = total
                while remaining > 0:
                    buf = f.read(min(_CHUNK, remaining))
                    if not buf:
                        break
                    h.update(buf)
                    remaining -= len(buf)
                # bytes past the data file's end read as zeros
                zero = b'\0' * _CHUNK
                while remaining > 0:
                    n = min(_CHUNK, remaining)
                    h.update(zero[:n])
                    remaining -= n
            return h.hexdigest()

    def count(self, name: str, amount: int) -> None:
        with self._locked() as index:
            self._add(index, name, amount)

    def counters(self) -> dict[str, int]:
        with self._locked() as index:
            return dict(index['counters'])
