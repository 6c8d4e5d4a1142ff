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
"""A file-backed stand-in for Glance, for tests, the demo and benchmarks.

Cinder reaches Glance through ``cinder.image.glance.get_remote_image_service``
and ``get_default_image_service``; :func:`install` points both at an
:class:`ImageStore`. Unlike Cinder's own fake (one shared object holding every
image in memory), the store keeps image bytes in files and streams them in
chunks, hands out a new service object per call (as production does, so
concurrent fetches do not share temporary-image state), and counts every byte
served per image, so a test or benchmark can say exactly how often an image
was downloaded.

Download faults (:meth:`ImageStore.set_faults`, for fault campaigns), as
Cinder sees them from glanceclient: ``truncated`` (the connection ends
early; glanceclient's integrity check then raises ``IOError(EPIPE,
'Corrupt image download...')`` at the end of the stream, as its
``utils.integrity_iter`` does when the checksum of what arrived differs),
``reset`` (the connection is reset mid-stream: ``ConnectionResetError``)
and ``short_reads`` (the bytes arrive in chunks of odd, small sizes, as
reads from a socket return whatever has arrived; the data is intact).
"""

from __future__ import annotations

import copy
import datetime
import errno
import hashlib
import json
import os
import random
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

#: what Cinder's Glance client hands the volume service at a time:
#: glanceclient reads an image's data in 1 MiB chunks
#: (glanceclient/common/http.py, CHUNKSIZE)
_CHUNK = 1024 * 1024
DOWNLOAD_FAULT_MODES = ('truncated', 'reset', 'short_reads')


class ImageStore:
    """Images with real bytes on disk, and a count of bytes served."""

    def __init__(self, root: str | os.PathLike[str],
                 record_virtual_size: bool = False) -> None:
        #: record ``virtual_size`` as Glance's upload inspection does (off:
        #: None, as images uploaded before Glance computed it have, and as
        #: Cinder's own fake has; then Cinder's API cannot refuse a too
        #: big image early and the volume service has to)
        self.record_virtual_size = record_virtual_size
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._images: dict[str, dict[str, Any]] = {}
        self._files: dict[str, Path] = {}
        self.bytes_served: dict[str, int] = {}
        self.downloads: dict[str, int] = {}
        self._fault_rate = 0.0
        self._fault_rng = random.Random(0)
        #: download faults injected so far, per mode
        self.faults_injected = {m: 0 for m in DOWNLOAD_FAULT_MODES}
        #: bytes per second each download is paced at, as a network link
        #: would carry it (None: as fast as the file is read)
        self.rate: float | None = None
        #: what the link carries while nobody reads: TCP's socket buffers
        #: on both ends (Linux autotunes them to a few MiB each)
        self.link_buffer = 4 * _CHUNK

    def set_faults(self, rate: float, seed: int | None = None) -> None:
        """Fail (or fragment) a share ``rate`` of downloads; 0: none."""
        with self._lock:
            self._fault_rate = rate
            self._fault_rng = random.Random(seed)

    def add(self, path: str | os.PathLike[str], disk_format: str,
            image_id: str | None = None, name: str | None = None,
            min_disk: int = 0, properties: dict[str, Any] | None = None,
            copy_file: bool = False, container_format: str = 'bare',
            size: int | None = None,
            virtual_size: int | None | str = 'default') -> dict[str, Any]:
        """Register an image whose bytes are the file at ``path``.

        The metadata is what Glance records on upload: ``size``,
        ``checksum`` (md5), ``os_hash_algo``/``os_hash_value`` (sha512) of
        the bytes, and, with :attr:`record_virtual_size` or
        ``virtual_size='compute'``, ``virtual_size`` as Glance's format
        inspection gives it for the *declared* ``disk_format`` (the file
        size for ``raw`` and ``iso``; None for a ``compressed`` container
        or a file qemu-img cannot read as that format). ``size`` and
        ``virtual_size`` may be given to make a store that disagrees with
        its bytes.
        """
        image_id = image_id or str(uuid.uuid4())
        src = Path(path)
        if copy_file:
            dst = self.root / image_id
            shutil.copyfile(src, dst)
            src = dst
        md5 = hashlib.md5(usedforsecurity=False)
        sha512 = hashlib.sha512()
        with open(src, 'rb') as f:
            for chunk in iter(lambda: f.read(_CHUNK), b''):
                md5.update(chunk)
                sha512.update(chunk)
        file_size = src.stat().st_size
        if virtual_size == 'default':
            virtual_size = 'compute' if self.record_virtual_size else None
        if virtual_size == 'compute':
            virtual_size = _virtual_size(src, disk_format, container_format,
                                         file_size)
        now = datetime.datetime.now(datetime.UTC).replace(
            microsecond=0)
        meta = {
            'id': image_id,
            'name': name or f'image-{image_id[:8]}',
            'status': 'active',
            'visibility': 'public',
            'protected': False,
            'owner': None,
            'container_format': container_format,
            'disk_format': disk_format,
            'size': file_size if size is None else size,
            'virtual_size': virtual_size,
            'checksum': md5.hexdigest(),
            'os_hash_algo': 'sha512',
            'os_hash_value': sha512.hexdigest(),
            'min_disk': min_disk,
            'min_ram': 0,
            'created_at': now,
            'updated_at': now,
            'deleted': False,
            'deleted_at': None,
            'properties': dict(properties or {}),
        }
        with self._lock:
            self._images[image_id] = meta
            self._files[image_id] = src
            self.bytes_served.setdefault(image_id, 0)
            self.downloads.setdefault(image_id, 0)
        return copy.deepcopy(meta)

    def replace(self, image_id: str, path: str | os.PathLike[str]) -> None:
        """Give an image new bytes (as an operator re-uploading would)."""
        with self._lock:
            meta = self._images[image_id]
        new = self.add(path, meta['disk_format'], image_id=image_id,
                       name=meta['name'], min_disk=meta['min_disk'],
                       properties=meta['properties'],
                       container_format=meta['container_format'])
        del new

    def remove(self, image_id: str) -> None:
        with self._lock:
            self._images.pop(image_id, None)
            self._files.pop(image_id, None)

    def meta(self, image_id: str) -> dict[str, Any]:
        from cinder import exception
        with self._lock:
            try:
                return copy.deepcopy(self._images[image_id])
            except KeyError:
                raise exception.ImageNotFound(image_id=image_id)

    def chunks(self, image_id: str) -> Iterator[bytes]:
        from cinder import exception
        with self._lock:
            path = self._files.get(image_id)
            if path is None:
                raise exception.ImageNotFound(image_id=image_id)
            self.downloads[image_id] += 1
            fault, cut = None, 0
            if (self._fault_rate and
                    self._fault_rng.random() < self._fault_rate):
                fault = self._fault_rng.choice(DOWNLOAD_FAULT_MODES)
                self.faults_injected[fault] += 1
                cut = self._fault_rng.randrange(max(1, path.stat().st_size))
            rng = random.Random(cut)
        sent = 0
        rate = self.rate
        carried = time.monotonic()  # when the link has carried what was sent
        with open(path, 'rb') as f:
            while True:
                size = (rng.randrange(1, 256 * 1024)
                        if fault == 'short_reads' else _CHUNK)
                if fault in ('truncated', 'reset'):
                    size = min(size, cut - sent)
                chunk = f.read(size) if size > 0 else b''
                if not chunk:
                    break
                sent += len(chunk)
                with self._lock:
                    self.bytes_served[image_id] += len(chunk)
                if rate:
                    # Not before the link would have carried it (a green
                    # sleep under eventlet, as a socket read would wait).
                    # While the reader was away the link filled the socket
                    # buffers and then stopped: no more than those is
                    # carried ahead of the reader.
                    now = time.monotonic()
                    carried = (max(carried, now - self.link_buffer / rate)
                               + len(chunk) / rate)
                    if carried > now:
                        time.sleep(carried - now)
                yield chunk
        if fault == 'truncated':
            raise OSError(errno.EPIPE, f'Corrupt image download. Size was '
                                       f'{sent} expected '
                                       f'{path.stat().st_size}')
        if fault == 'reset':
            raise ConnectionResetError(errno.ECONNRESET,
                                       'Connection reset by peer')

    def total_bytes_served(self) -> int:
        with self._lock:
            return sum(self.bytes_served.values())

    def service(self) -> ImageService:
        return ImageService(self)


class ImageService:
    """The subset of ``cinder.image.glance.GlanceImageService`` Cinder uses."""

    def __init__(self, store: ImageStore) -> None:
        self._store = store
        self.temp_images = None

    def show(self, context: Any, image_id: str) -> dict[str, Any]:
        return self._store.meta(str(image_id))

    def detail(self, context: Any, **kwargs: Any) -> list[dict[str, Any]]:
        with self._store._lock:
            ids = list(self._store._images)
        return [self._store.meta(i) for i in ids]

    def download(self, context: Any, image_id: str,
                 data: Any = None) -> Iterator[bytes] | None:
        if data is None:
            return self._store.chunks(str(image_id))
        for chunk in self._store.chunks(str(image_id)):
            data.write(chunk)
        return None

    def get_location(self, context: Any,
                     image_id: str) -> tuple[str | None, Any]:
        self._store.meta(str(image_id))
        return None, None

    def add_location(self, context: Any, image_id: str, url: str,
                     metadata: Any) -> bool:
        return True

    def get_stores(self, context: Any) -> dict[str, Any]:
        return {'stores': []}

    def update(self, context: Any, image_id: str, metadata: dict[str, Any],
               data: Any = None, **kwargs: Any) -> dict[str, Any]:
        with self._store._lock:
            image = self._store._images[str(image_id)]
            props = metadata.pop('properties', None)
            if props:
                image['properties'].update(props)
            image.update(metadata)
            return copy.deepcopy(image)

    def delete(self, context: Any, image_id: str) -> bool:
        self._store.remove(str(image_id))
        return True


#: Glance disk_format -> qemu-img format (Cinder's QEMU_IMG_FORMAT_MAP)
_QEMU_FORMATS = {'vhd': 'vpc', 'ploop': 'parallels'}


def _virtual_size(path: Path, disk_format: str, container_format: str,
                  file_size: int) -> int | None:
    """The virtual size Glance's upload inspection would record."""
    if container_format == 'compressed':
        return None
    if disk_format in ('raw', 'iso'):
        return file_size
    try:
        out = subprocess.run(
            ['qemu-img', 'info', '--output=json', '-f',
             _QEMU_FORMATS.get(disk_format, disk_format), str(path)],
            check=True, capture_output=True, text=True)
        return int(json.loads(out.stdout)['virtual-size'])
    except (OSError, subprocess.CalledProcessError, ValueError, KeyError):
        return None


def install(testcase: Any, store: ImageStore) -> None:
    """Make Cinder's Glance accessors answer from ``store``.

    ``testcase`` needs ``mock_object`` (Cinder's TestCase has it).
    """
    import cinder.image.glance as glance

    testcase.mock_object(glance, 'get_remote_image_service',
                         lambda ctx, href: (store.service(),
                                            str(href).rsplit('/', 1)[-1]))
    testcase.mock_object(glance, 'get_default_image_service',
                         store.service)
