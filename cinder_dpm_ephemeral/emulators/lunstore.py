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
background copy, is counted by the array layers through :meth:`count`.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cinder_dpm_ephemeral.emulators import files

_LUN_ID = re.compile(r'^[A-Za-z0-9_.:-]{1,128}$')
_CHUNK = 8 * 1024 * 1024


class LunStoreError(Exception):
    """A LUN store operation failed."""


class LunNotFound(LunStoreError):
    def __init__(self, lun_id: str) -> None:
        super().__init__(f'LUN {lun_id} does not exist in the LUN store')
        self.lun_id = lun_id


def sparse_copy(src: Path, dst: Path, size: int) -> int:
    """Copy ``src`` into a new sparse file ``dst`` of ``size`` bytes.

    Only the data extents of ``src`` (SEEK_DATA/SEEK_HOLE) are copied.
    Returns the number of bytes copied.
    """
    copied = 0
    tmp = dst.with_name(dst.name + '.tmp')
    with open(src, 'rb') as fin, open(tmp, 'wb') as fout:
        src_size = os.fstat(fin.fileno()).st_size
        limit = min(src_size, size)
        offset = 0
        while offset < limit:
            try:
                data = os.lseek(fin.fileno(), offset, os.SEEK_DATA)
            except OSError as exc:
                if exc.errno == errno.ENXIO:
                    break
                raise
            if data >= limit:
                break
            hole = min(os.lseek(fin.fileno(), data, os.SEEK_HOLE), limit)
            pos = data
            while pos < hole:
                n = os.copy_file_range(fin.fileno(), fout.fileno(),
                                       min(_CHUNK, hole - pos), pos, pos)
                if n <= 0:
                    raise LunStoreError(f'short copy from {src} at {pos}')
                pos += n
            copied += hole - data
            offset = hole
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
        with self._thread_lock, open(self._lock_path, 'a+') as lockf:
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

    def _materialize(self, index: dict[str, Any], lun_id: str) -> None:
        meta = self._get(index, lun_id)
        if meta.get('base') is None:
            return
        src = self._data_file(index, lun_id)
        n = sparse_copy(src, self._file(lun_id), meta['size'])
        meta['base'] = None
        index['counters']['materialized_bytes'] = (
            index['counters'].get('materialized_bytes', 0) + n)

    def _detach_dependents(self, index: dict[str, Any], lun_id: str) -> None:
        for dep_id, dep in list(index['luns'].items()):
            if dep.get('base') == lun_id:
                self._materialize(index, dep_id)

    # -- public API -----------------------------------------------------------
    def create(self, lun_id: str, size: int) -> None:
        """Create an all-zero LUN of ``size`` bytes (a sparse file)."""
        with self._locked() as index:
            if lun_id in index['luns']:
                raise LunStoreError(f'LUN {lun_id} already exists')
            path = self._file(lun_id)
            with open(path, 'wb') as f:
                f.truncate(size)
            index['luns'][lun_id] = {'size': size, 'base': None}

    def clone(self, src_id: str, dst_id: str, size: int | None = None) -> None:
        """Make ``dst_id`` a copy-on-write clone of ``src_id`` (no copy)."""
        with self._locked() as index:
            src = self._get(index, src_id)
            if dst_id in index['luns']:
                raise LunStoreError(f'LUN {dst_id} already exists')
            index['luns'][dst_id] = {
                'size': src['size'] if size is None else size,
                'base': src_id,
            }

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
        """Delete a LUN; clones that share its bytes keep their content."""
        with self._locked() as index:
            if lun_id not in index['luns']:
                return
            self._detach_dependents(index, lun_id)
            del index['luns'][lun_id]
            with contextlib.suppress(FileNotFoundError):
                self._file(lun_id).unlink()

    def resize(self, lun_id: str, size: int) -> None:
        with self._locked() as index:
            meta = self._get(index, lun_id)
            if size < meta['size']:
                self._detach_dependents(index, lun_id)
                self._materialize(index, lun_id)
            meta['size'] = size
            if meta.get('base') is None:
                with open(self._file(lun_id), 'r+b') as f:
                    f.truncate(size)

    def open_path(self, lun_id: str) -> str:
        """Path of a file holding only this LUN's bytes, ready for I/O.

        Clones sharing the LUN's bytes get their own copies first, so writes
        through the returned path never change another LUN.
        """
        with self._locked() as index:
            self._detach_dependents(index, lun_id)
            self._materialize(index, lun_id)
            return str(self._file(lun_id))

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
            index['counters'][name] = index['counters'].get(name, 0) + amount

    def counters(self) -> dict[str, int]:
        with self._locked() as index:
            return dict(index['counters'])
