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
"""Building one golden volume: the image from Glance onto a new LUN.

What :meth:`GoldenImageCache._build_golden` runs, under the image's lock:
the image's head checked (signature, format, virtual size against the
volume) before any LUN exists; the golden's row and LUN made (or a spare
LUN taken, :mod:`.spares`); the image streamed onto it (raw in one pass,
qcow2 converted while it downloads, :mod:`.stream`; other formats
downloaded, checked and converted as Cinder does), with the download read
ahead while the LUN is made (:mod:`.readahead`); the golden marked ready,
its detach run beside the first clone (:mod:`.detach`). The service's
long-lived objects are kept out of the garbage collector's way meanwhile
(:mod:`.collector`). A build that fails removes what it made. The cache
itself (:mod:`.cache`) decides when to build, clones, and cleans up.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from typing import Any

from cinder import objects
from cinder.image import image_utils
from cinder.volume import volume_utils
from oslo_log import log as logging
from oslo_utils import timeutils

from cinder_dpm_ephemeral.image_cache import cache as gcache
from cinder_dpm_ephemeral.image_cache import checks
from cinder_dpm_ephemeral.image_cache import collector
from cinder_dpm_ephemeral.image_cache import detach
from cinder_dpm_ephemeral.image_cache import formats
from cinder_dpm_ephemeral.image_cache import readahead
from cinder_dpm_ephemeral.image_cache import recovery
from cinder_dpm_ephemeral.image_cache import signature
from cinder_dpm_ephemeral.image_cache import spares
from cinder_dpm_ephemeral.image_cache import stream
from cinder_dpm_ephemeral.image_cache import writer

LOG = logging.getLogger(__name__)


def write_behind(cache: Any) -> int:
    """LUN writes under way at once beside the download (0: none)."""
    if not cache.configuration.safe_get('dpm_ephemeral_write_behind'):
        return 0
    return int(cache.configuration.safe_get(
        'dpm_ephemeral_write_behind_depth') or 1)


def direct_io(cache: Any) -> bool:
    """Whether golden LUNs are written past the page cache."""
    return bool(cache.configuration.safe_get('dpm_ephemeral_direct_io'))


def build_golden(cache: Any, context: Any, ictx: Any,
                 volume: objects.Volume, image_meta: dict[str, Any],
                 image_service: Any, version: str,
                 in_pool: list[objects.Volume]) -> objects.Volume:
    """Build the image's golden volume in ``volume``'s pool.

    ``in_pool``: the image's golden volumes in that pool, as found
    under the build's lock (the new one's generation is past theirs).
    The service's long-lived objects are out of the garbage collector's
    way meanwhile (:mod:`.collector`).
    """
    with collector.set_aside():
        return _build(cache, context, ictx, volume, image_meta,
                      image_service, version, in_pool)


def _build(cache: Any, context: Any, ictx: Any, volume: objects.Volume,
           image_meta: dict[str, Any], image_service: Any, version: str,
           in_pool: list[objects.Volume]) -> objects.Volume:
    image_id = image_meta['id']
    # A signed image is verified as it streams (Cinder's rules; refused
    # here, before anything is downloaded or created, if its signature
    # properties are incomplete or its certificate cannot be had).
    verifier = signature.verifier_for(context, image_meta)
    conv_dir = checks.conversion_dir()
    os.makedirs(conv_dir, exist_ok=True)
    tmp = ''   # a download file, for what cannot stream onto the LUN

    def temp_file() -> str:
        nonlocal tmp
        fd, tmp = tempfile.mkstemp(prefix=f'dpm-golden-{image_id}-',
                                   dir=conv_dir)
        os.close(fd)
        return tmp
    streamed: stream.StreamedQcow2 | None = None

    ahead: readahead.ReadAhead | None = None

    def download() -> Any:
        nonlocal ahead
        chunks = image_service.download(context, image_id)
        if verifier is not None:
            chunks = signature.verified(chunks, verifier, image_id)
        if not cache.configuration.safe_get('dpm_ephemeral_read_ahead'):
            return chunks
        # read on while the LUN is made (started below, once the
        # head is checked and the image fits the volume)
        ahead = readahead.ReadAhead(chunks, conv_dir, readahead.room_for(
            conv_dir, int(image_meta.get('size') or 0)))
        return ahead

    golden: objects.Volume | None = None
    try:
        start = timeutils.utcnow()
        # os-brick's connector properties (this process's recent
        # answer, or asked while the image's head is checked and the
        # array makes, or a spare gives, the LUN)
        connector = writer.connector_soon(cache.backend.driver)
        raw_stream: formats.StreamInspector | None = None
        overlap: dict[str, str] = {}
        if formats.streams_as_raw(image_meta):
            # Raw (or iso): the virtual size is the file size, and the
            # bytes go straight onto the LUN in one pass. The first
            # bytes are inspected now, before any LUN exists.
            virtual = int(image_meta['size'])
            fmt = 'raw'
            raw_stream = formats.StreamInspector(
                download(), image_id, image_meta['disk_format'])
            raw_stream.head()
        elif (image_meta.get('disk_format') == 'qcow2' and
              image_meta.get('size') and
              image_meta.get('container_format') != 'compressed' and
              cache.configuration.safe_get(
                  'dpm_ephemeral_overlap_qcow2_conversion')):
            # qcow2: converted while it downloads (header checked
            # first, the whole stream once it has ended).
            streamed = stream.StreamedQcow2(
                download(), image_id,
                int(image_meta['size']), temp_file(),
                stream.socket_dir(conv_dir))
            streamed.open()
            streamed.write_behind = write_behind(cache)
            streamed.direct = direct_io(cache)
            virtual = streamed.virtual_size
            fmt = 'qcow2'
        else:
            # One download to a file, Cinder's own checks (gzip
            # container, no backing files, no data files, the label
            # against the content), then one conversion onto the LUN.
            image_utils.fetch(context, image_service, image_id,
                              temp_file(), None, None)
            if verifier is not None:
                image_utils.verify_glance_image_signature(
                    context, image_service, image_id, tmp)
            info = formats.check_downloaded(tmp, image_meta)
            fmt = info.file_format
            virtual = int(info.virtual_size)
        # Refuse before any LUN exists.
        cache._refuse_if_too_big(image_id, virtual, volume)
        if ahead is not None and (raw_stream is not None or (
                streamed is not None and streamed.in_file_order)):
            ahead.start()
        generation = 1 + max(
            [int(g.metadata.get(gcache.MD_GENERATION, 0)) for g in in_pool]
            or [0])
        size = cache.backend.golden_size_gb(virtual)
        name = f'dpm-golden-{image_id}'
        description = (f'Golden volume of image {image_id} for DPM '
                       f'boot volumes (managed by cinder-dpm-ephemeral)')
        metadata = {gcache.MD_GOLDEN: 'true', gcache.MD_IMAGE: image_id,
                    gcache.MD_VERSION: version,
                    gcache.MD_VIRTUAL: str(virtual),
                    gcache.MD_POOL: volume_utils.extract_host(
                        volume.host, 'pool') or '',
                    gcache.MD_GENERATION: str(generation),
                    gcache.MD_STATE: gcache.STATE_BUILDING,
                    gcache.MD_LAST_USED: recovery.now_text(),
                    # who builds it, since when (recovery.py)
                    **recovery.builder_metadata(cache.backend.driver)}
        # a LUN made ahead, if the pool has one of this size and type
        golden = spares.claim(cache, ictx, volume, size, metadata, name,
                              description)
        spare = golden is not None
        if golden is None:
            golden = cache._new_golden(ictx, volume, size, name,
                                       description, metadata)
        # the write's detach, once the golden is ready (:mod:`.detach`)
        later: list[Any] | None = [] if detach.wanted(cache) else None
        try:
            zeros = spares.reads_zeros(golden) if spare else None
            if not spare:
                update = cache.backend.create_golden_lun(golden)
                if update:
                    golden.update(update)
                    golden.save()
            if zeros is None:
                # asked of the array while the LUN is attached
                zeros = writer.Soon(cache.backend.reads_zeros, golden)
            if raw_stream is not None:
                writer.write_raw_stream(
                    cache.backend.driver, context, golden, raw_stream,
                    virtual, zeros, connector,
                    write_behind=write_behind(cache),
                    detach_later=later, direct=direct_io(cache))
            elif streamed is not None:
                try:
                    cache.backend.write_image(context, golden,
                                              streamed.uri, fmt, zeros,
                                              connector=connector,
                                              detach_later=later)
                except Exception:
                    streamed.raise_download_error()
                    raise
                streamed.finish()
                overlap = {gcache.MD_EARLY_READS: str(
                    streamed.export_stats.get('early_reads', 0))}
            else:
                cache.backend.write_image(context, golden, tmp, fmt,
                                          zeros, info=info,
                                          connector=connector,
                                          detach_later=later)
        except Exception:
            LOG.exception('Building golden volume %(g)s for image '
                          '%(img)s failed; removing it.',
                          {'g': golden.id, 'img': image_id})
            detach.run_now(golden, later or [])
            cache._destroy(golden)
            raise
        try:
            golden.status = 'available'
            golden.save()
            seconds = timeutils.delta_seconds(start, timeutils.utcnow())
            cache._set_md(golden, {gcache.MD_STATE: gcache.STATE_READY,
                                   gcache.MD_BUILD_SECONDS: '%.3f' % seconds,
                                   gcache.MD_SIGNATURE_VERIFIED: str(
                                       verifier is not None).lower(),
                                   **overlap,
                                   **(detach.owed_by(cache) if later
                                      else {})})
        finally:
            # recorded as owed: beside the first clone; else here
            ready = golden.metadata.get(gcache.MD_STATE) == gcache.STATE_READY
            if later and ready:
                detach.start(cache, golden, later)
            detach.run_now(golden, later or [])
        # Older content versions of this image are never cloned again;
        # collect_garbage removes them once no clone depends on them.
        for old in cache.goldens(ictx, None, image_id):
            if (old.metadata.get(gcache.MD_VERSION) != version and
                    old.metadata.get(gcache.MD_STALE) != 'true'):
                cache._set_md(old, {gcache.MD_STALE: 'true',
                                    gcache.MD_FULL: 'true'})
        LOG.info('Golden volume %(g)s of image %(img)s (generation '
                 '%(gen)d, %(size)d GiB%(spare)s) ready in %(sec).1f s.',
                 {'g': golden.id, 'img': image_id, 'gen': generation,
                  'size': golden.size, 'sec': seconds,
                  'spare': ', on a spare LUN' if spare else ''})
        # a LUN of this size and type made ahead for the next build
        spares.replenish_soon(cache, ictx, volume, golden.size)
        return golden
    finally:
        # (no id yet when the internal tenant's quota refused it)
        if golden is not None and golden.obj_attr_is_set('id'):
            cache.building.discard(golden.id)
        if streamed is not None:
            streamed.close()
        if ahead is not None:
            ahead.close()
        if tmp:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
