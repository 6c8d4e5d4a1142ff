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
"""``cache warm IMAGE``: a golden volume filled before a boot storm.

The cache's own create path (:meth:`GoldenImageCache.clone_image`) runs for
a placeholder volume of the internal tenant on the chosen pool: the golden
volume is built under the image's lock exactly as the first boot would
build it, the placeholder is a thin clone of it, and the placeholder is
then deleted. The download is counted as it streams, for the progress line.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any, TextIO

from cinder import context as cinder_context
from cinder.db import api as db_api
from cinder.image import glance
from cinder import objects
from oslo_log import log as logging

from cinder_dpm_ephemeral.image_cache import glance_access

LOG = logging.getLogger(__name__)

GiB = 1024 ** 3
MiB = 1024 ** 2


class WarmError(Exception):
    """A warm that cannot start; the message names the fix."""


class Progress:
    """``<done> of <total> MiB, <rate> MiB/s`` on one refreshed line."""

    def __init__(self, total: int, out: TextIO = sys.stderr,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.total = total
        self.done = 0
        self.out = out
        self.clock = clock
        self.start = clock()
        self.last = 0.0

    def add(self, n: int) -> None:
        self.done += n
        now = self.clock()
        if now - self.last >= 0.5:
            self.last = now
            self.show()

    def rate(self) -> float:
        return self.done / max(self.clock() - self.start, 1e-6)

    def show(self, end: str = '') -> None:
        width = 30
        filled = int(width * self.done / self.total) if self.total else 0
        self.out.write('\r[%s%s] %d of %d MiB, %.1f MiB/s%s' % (
            '#' * min(filled, width), '.' * max(width - filled, 0),
            self.done // MiB, self.total // MiB, self.rate() / MiB, end))
        self.out.flush()


class _CountingImageService:
    """Cinder's image service, with the download counted as it streams.

    Glance is asked with ``glance_context`` (Cinder's service user), not
    the context the cache passes (the internal tenant's, which cannot see
    a tenant's private image and holds no token in this command).
    """

    def __init__(self, service: Any, progress: Progress,
                 glance_context: Any) -> None:
        self._service = service
        self._progress = progress
        self._gctx = glance_context

    def __getattr__(self, name: str) -> Any:
        return getattr(self._service, name)

    def show(self, context: Any, image_id: str, *args: Any,
             **kwargs: Any) -> Any:
        return self._service.show(self._gctx, image_id, *args, **kwargs)

    def download(self, context: Any, image_id: str, *args: Any,
                 **kwargs: Any) -> Iterator[bytes]:
        for chunk in self._service.download(self._gctx, image_id, *args,
                                            **kwargs):
            self._progress.add(len(chunk))
            yield chunk


def _service_host(backend: str) -> str:
    """The host of the volume service that serves ``backend``."""
    ctx = cinder_context.get_admin_context()
    hosts = sorted(s['host'] for s in db_api.service_get_all(
        ctx, topic='cinder-volume')
        if s['host'].partition('@')[2] == backend)
    if not hosts:
        raise WarmError('no cinder-volume service serves backend %s: start '
                        'it first' % backend)
    return hosts[0]


def warm(backend: str, driver: Any, image_id: str, pool: str | None,
         out: TextIO = sys.stderr) -> dict[str, Any]:
    ictx = cinder_context.get_internal_tenant_context()
    if ictx is None:
        raise WarmError('set cinder_internal_tenant_project_id and '
                        'cinder_internal_tenant_user_id in cinder.conf')
    service = glance.get_default_image_service()
    # Glance is asked, and the image downloaded, as Cinder's service user
    # ([glance] credentials): a private image of a tenant is not visible
    # to the internal tenant itself.
    gctx = glance_access.service_context(ictx)
    image_meta = service.show(gctx, image_id)
    if pool is None:
        stats = driver.get_volume_stats(refresh=True)
        pool = stats['pools'][0]['pool_name']
    virtual = int(image_meta.get('virtual_size') or image_meta['size'])
    progress = Progress(int(image_meta.get('size') or virtual), out)
    volume = objects.Volume(
        context=ictx, user_id=ictx.user_id, project_id=ictx.project_id,
        size=max(1, math.ceil(virtual / GiB)), status='creating',
        attach_status='detached', availability_zone='nova',
        display_name='dpm-warm-%s' % image_id,
        host='%s#%s' % (_service_host(backend), pool))
    volume.create()
    try:
        update, done = driver.image_cache.clone_image(
            ictx, volume, image_meta, _CountingImageService(service,
                                                            progress, gctx))
        if not done:
            raise WarmError('the golden cache does not apply to backend %s '
                            '(dpm_ephemeral_image_cache_enabled, the '
                            'internal tenant: run doctor)' % backend)
        if update:
            volume.update(update)
            volume.save()
    finally:
        try:
            driver.delete_volume(volume)
        finally:
            volume.destroy()
    progress.show('\n')
    return {'backend': backend, 'pool': pool, 'image': image_id,
            'downloaded_bytes': progress.done,
            'rate_mib_s': round(progress.rate() / MiB, 1)}
