"""Golden volumes: one download per image and pool, thin clones after that.

The cache is array-agnostic. A driver gives it a :class:`CloneBackend` (how
to make a golden LUN, write an image into it, thin-clone it, count what
depends on it) and calls :meth:`GoldenImageCache.clone_image` from its
``clone_image``; Cinder's volume manager tries that first for every volume
created from an image.

Golden volumes are ordinary Cinder volumes owned by Cinder's internal tenant
(``cinder_internal_tenant_project_id`` / ``_user_id``): tenants never see
them, operators do (``openstack volume list --all-projects``, name
``dpm-golden-<image id>``), and every array object the cache creates belongs
to a Cinder volume row, so nothing can leak unseen. Their volume metadata
records the image, its content version, the pool, the generation, the state
(``building`` or ``ready``) and when a clone last used them. Which volumes
depend on a golden is asked of the array itself (FlashCopy maps, vTree
snapshots), the only source that cannot drift.

Concurrency: the first creates of a new image in a pool take a coordination
lock named after the image and pool (tooz, as Cinder's own locks: file
locks on one host, a DLM across hosts), so a storm of creates downloads and
converts the image once; later creates only clone, with no lock held.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import os
import tempfile
from collections.abc import Iterator
from typing import Any, Protocol

from cinder import context as cinder_context
from cinder import coordination
from cinder import exception
from cinder import objects
from cinder.image import image_utils
from cinder.volume import volume_utils
from oslo_log import log as logging
from oslo_utils import timeutils

from cinder_dpm_ephemeral import exception as dpm_exception
from cinder_dpm_ephemeral.image_cache import signature
from cinder_dpm_ephemeral.image_cache import stream

LOG = logging.getLogger(__name__)

GiB = 1024 ** 3

MD_GOLDEN = 'dpm_ephemeral_golden'
MD_IMAGE = 'image_id'
MD_VERSION = 'image_version'
MD_VIRTUAL = 'image_virtual_size'
MD_POOL = 'pool'
MD_GENERATION = 'generation'
MD_STATE = 'state'
MD_LAST_USED = 'last_used'
MD_FULL = 'full'
MD_STALE = 'stale'
#: seconds from the start of the download to the image on the golden LUN
MD_BUILD_SECONDS = 'build_seconds'
#: 'true' when the image's Glance signature was verified as it streamed
MD_SIGNATURE_VERIFIED = 'signature_verified'
ADMIN_MD_GOLDEN = 'dpm_golden_volume_id'

STATE_BUILDING = 'building'
STATE_READY = 'ready'


class CloneBackend(Protocol):
    """What the cache needs from an array driver."""

    #: most thin clones one golden volume may have (array limit)
    max_clones_per_golden: int
    #: the Cinder volume driver (attaches volumes for image writes)
    driver: Any

    def golden_size_gb(self, virtual_size: int) -> int:
        """Size of a golden LUN for an image of ``virtual_size`` bytes."""

    def create_golden_lun(self, golden: objects.Volume) -> dict | None:
        """Create the array object for ``golden``; returns a model update."""

    def write_image(self, context: Any, golden: objects.Volume,
                    image_file: str, image_format: str) -> None:
        """Convert ``image_file`` into the golden LUN (raw)."""

    def thin_clone(self, golden: objects.Volume,
                   volume: objects.Volume) -> dict | None:
        """Array-side thin clone of ``golden`` as ``volume``, at its size."""

    def dependents(self, golden: objects.Volume) -> int:
        """Array objects that still share data with ``golden``."""

    def delete_golden_lun(self, golden: objects.Volume) -> None:
        """Delete the array object of ``golden`` (no dependents left)."""

    def is_clone_limit(self, error: Exception) -> bool:
        """Whether ``error`` says ``golden`` cannot take another clone."""

    def delete_clone(self, volume: objects.Volume) -> bool:
        """Delete a thin clone the array's quick way; False: not handled."""


@contextlib.contextmanager
def attached(driver: Any, context: Any, volume: Any) -> Iterator[str]:
    """Attach ``volume`` the driver's own way; yield its device path.

    The driver's ``_attach_volume`` decides how (os-brick over the array's
    protocol, or the emulator's LUN file); it is detached on the way out.
    """
    properties = volume_utils.brick_get_connector_properties(
        driver.configuration.use_multipath_for_image_xfer,
        driver.configuration.enforce_multipath_for_image_xfer)
    attach_info, volume = driver._attach_volume(context, volume, properties)
    try:
        yield attach_info['device']['path']
    finally:
        driver._detach_volume(context, attach_info, volume, properties,
                              force=True)


def write_image_through_attach(driver: Any, context: Any, golden: Any,
                               image_file: str, image_format: str) -> None:
    """Convert an image onto a volume (``qemu-img convert`` streams).

    ``image_file`` is a downloaded file, checked by Cinder's own
    ``convert_image``, or the NBD URI of a qcow2 still downloading (see
    :mod:`.stream`, which has checked its header already).
    """
    with attached(driver, context, golden) as path:
        if image_file.startswith('nbd+unix://'):
            stream.convert_qcow2_to_device(image_file, path)
            return
        image_utils.convert_image(
            image_file, path, 'raw', src_format=image_format,
            run_as_root=False, image_id=golden.metadata.get(MD_IMAGE))


def write_raw_stream_through_attach(driver: Any, context: Any, golden: Any,
                                    chunks: Any, image_id: str) -> int:
    """Stream a raw image from Glance straight onto a volume (one pass).

    The stream is inspected as it passes (oslo.utils' format inspector):
    anything that is not plain raw data (a qcow2 or VMDK header behind a
    ``raw`` label, say) is refused. Zero blocks are skipped, so the LUN
    stays thin. Returns the bytes read.
    """
    from oslo_utils.imageutils import format_inspector

    total = 0
    with attached(driver, context, golden) as path:
        wrapper = format_inspector.InspectWrapper(iter(chunks))
        with open(path, 'r+b') as dev:
            buf = bytearray()
            for chunk in wrapper:
                total += len(chunk)
                if not buf and len(chunk) >= _WRITE_UNIT:
                    _write_sparse(dev, chunk)     # no copy of big chunks
                    continue
                buf += chunk
                if len(buf) >= _WRITE_UNIT:
                    _write_sparse(dev, buf)
                    buf.clear()
            if buf:
                _write_sparse(dev, buf)
            dev.flush()
            os.fsync(dev.fileno())
        wrapper.close()
        try:
            fmt = wrapper.format
            fmt.safety_check()
        except Exception as exc:
            raise exception.ImageUnacceptable(
                image_id=image_id,
                reason=f'labelled raw but its content is not: {exc}')
        if fmt is None or fmt.NAME != 'raw':
            raise exception.ImageUnacceptable(
                image_id=image_id,
                reason=(f'labelled raw but its content is '
                        f'{getattr(fmt, "NAME", "unknown")}'))
    return total


_WRITE_UNIT = 4 * 1024 * 1024
_ZERO = bytes(_WRITE_UNIT)


def _write_sparse(dev: Any, data: bytes | bytearray) -> None:
    """Write ``data``, seeking over whole zero units (the LUN stays thin)."""
    if len(data) <= _WRITE_UNIT:
        if data == _ZERO[:len(data)]:
            dev.seek(len(data), os.SEEK_CUR)
        else:
            dev.write(data)
        return
    for off in range(0, len(data), _WRITE_UNIT):
        _write_sparse(dev, data[off:off + _WRITE_UNIT])


def image_version(image_meta: dict[str, Any]) -> str:
    """A short digest that changes whenever the image's bytes change."""
    parts = [str(image_meta.get(k) or '') for k in
             ('os_hash_value', 'checksum', 'size')]
    return hashlib.sha256('|'.join(parts).encode()).hexdigest()[:12]


class GoldenImageCache:
    """The golden-volume cache of one Cinder backend."""

    def __init__(self, backend: CloneBackend, configuration: Any,
                 db: Any) -> None:
        self.backend = backend
        self.configuration = configuration
        self.db = db
        #: set when a golden volume was marked stale or full in this
        #: process; the clone delete path only cleans up when it is set
        #: (the periodic clean-up covers the rest)
        self.cleanup_pending = True

    # -- configuration --------------------------------------------------------
    @property
    def enabled(self) -> bool:
        return bool(self.configuration.safe_get(
            'dpm_ephemeral_image_cache_enabled'))

    @staticmethod
    def internal_context() -> cinder_context.RequestContext | None:
        return cinder_context.get_internal_tenant_context()

    # -- the create path ------------------------------------------------------
    def clone_image(self, context: Any, volume: objects.Volume,
                    image_meta: dict[str, Any],
                    image_service: Any) -> tuple[dict | None, bool]:
        """Make ``volume`` a thin clone of the image's golden volume.

        Returns ``(model_update, True)`` when done, ``(None, False)`` when
        the cache does not apply (Cinder then falls back to its own path).
        """
        if not self.enabled or volume.encryption_key_id:
            return None, False
        ictx = self.internal_context()
        if ictx is None:
            LOG.warning('Golden image cache disabled for volume %s: set '
                        'cinder_internal_tenant_project_id and '
                        'cinder_internal_tenant_user_id in cinder.conf.',
                        volume.id)
            return None, False
        image_id = image_meta['id']
        self._refuse_if_too_big(image_id, image_meta.get('virtual_size'),
                                volume)
        version = image_version(image_meta)
        pool = volume_utils.extract_host(volume.host, 'pool')
        for _attempt in range(4):
            golden = self._find_usable(ictx, volume.host, image_id, version)
            if golden is None:
                with self._lock(image_id, pool):
                    golden = self._find_usable(ictx, volume.host, image_id,
                                               version)
                    if golden is None:
                        golden = self._build_golden(
                            context, ictx, volume, image_meta, image_service,
                            version)
            self._refuse_if_too_big(
                image_id, int(golden.metadata[MD_VIRTUAL]), volume)
            try:
                update = self.backend.thin_clone(golden, volume)
            except Exception as exc:
                if not self.backend.is_clone_limit(exc):
                    raise
                LOG.info('Golden volume %(g)s of image %(img)s is at the '
                         'array clone limit; using another one.',
                         {'g': golden.id, 'img': image_id})
                self._set_md(golden, {MD_FULL: 'true'})
                continue
            self.db.volume_admin_metadata_update(
                context.elevated(), volume.id, {ADMIN_MD_GOLDEN: golden.id},
                False)
            if (signature.enabled() and
                    golden.metadata.get(MD_SIGNATURE_VERIFIED) == 'true'):
                # as Cinder records it for a volume it downloaded itself
                # (its own image-cache clones record nothing)
                self.db.volume_glance_metadata_bulk_create(
                    context, volume.id, {'signature_verified': True})
            self._touch(golden)
            LOG.info('Volume %(vol)s is a thin clone of golden volume '
                     '%(g)s (image %(img)s).',
                     {'vol': volume.id, 'g': golden.id, 'img': image_id})
            return update, True
        raise dpm_exception.GoldenCacheExhausted(image_id=image_id,
                                                 volume_id=volume.id)

    @staticmethod
    def _refuse_if_too_big(image_id: str, virtual_size: Any,
                           volume: objects.Volume) -> None:
        if virtual_size and int(virtual_size) > volume.size * GiB:
            raise exception.ImageUnacceptable(
                image_id=image_id,
                reason=(f'its virtual size is {int(virtual_size)} bytes '
                        f'({-(-int(virtual_size) // GiB)} GiB), larger than '
                        f'the requested volume size of {volume.size} GiB; '
                        f'request at least '
                        f'{-(-int(virtual_size) // GiB)} GiB'))

    @contextlib.contextmanager
    def _lock(self, image_id: str, pool: str | None) -> Iterator[None]:
        name = f'dpm-golden-{image_id}-{pool or "default"}'
        lock = coordination.COORDINATOR.get_lock(name)
        with lock:
            yield

    def goldens(self, ictx: Any, host: str | None = None,
                image_id: str | None = None) -> list[objects.Volume]:
        """Golden volumes of this backend (host ``backend@name#pool``)."""
        filters: dict[str, Any] = {'metadata': {MD_GOLDEN: 'true'},
                                   'project_id': ictx.project_id}
        if image_id:
            filters['metadata'][MD_IMAGE] = image_id
        vols = objects.VolumeList.get_all(ictx.elevated(), filters=filters)
        out = []
        for v in vols:
            if host is not None and v.host != host:
                continue
            out.append(v)
        return out

    def _find_usable(self, ictx: Any, host: str, image_id: str,
                     version: str) -> objects.Volume | None:
        best = None
        for g in self.goldens(ictx, host, image_id):
            md = g.metadata
            if (md.get(MD_VERSION) != version or
                    md.get(MD_STATE) != STATE_READY or
                    md.get(MD_FULL) == 'true' or g.status != 'available'):
                continue
            if best is None or (int(md.get(MD_GENERATION, 0)) >
                                int(best.metadata.get(MD_GENERATION, 0))):
                best = g
        return best

    def _build_golden(self, context: Any, ictx: Any, volume: objects.Volume,
                      image_meta: dict[str, Any], image_service: Any,
                      version: str) -> objects.Volume:
        image_id = image_meta['id']
        # A signed image is verified as it streams (Cinder's rules; refused
        # here, before anything is downloaded or created, if its signature
        # properties are incomplete or its certificate cannot be had).
        verifier = signature.verifier_for(context, image_meta)
        conv_dir = (self.configuration.safe_get('image_conversion_dir') or
                    tempfile.gettempdir())
        os.makedirs(conv_dir, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f'dpm-golden-{image_id}-',
                                   dir=conv_dir)
        os.close(fd)
        streamed: stream.StreamedQcow2 | None = None

        def download() -> Any:
            chunks = image_service.download(context, image_id)
            if verifier is None:
                return chunks
            return signature.verified(chunks, verifier, image_id)

        try:
            start = timeutils.utcnow()
            stream_raw = (image_meta.get('disk_format') == 'raw' and
                          image_meta.get('size'))
            if stream_raw:
                # Raw: the virtual size is the file size, and the bytes can
                # go straight onto the LUN in one pass.
                virtual = int(image_meta['size'])
                fmt = 'raw'
            elif (image_meta.get('disk_format') == 'qcow2' and
                  image_meta.get('size') and
                  self.configuration.safe_get(
                      'dpm_ephemeral_overlap_qcow2_conversion')):
                # qcow2: converted while it downloads (header checked
                # first, the whole stream once it has ended).
                streamed = stream.StreamedQcow2(
                    download(), image_id,
                    int(image_meta['size']), tmp,
                    stream.socket_dir(conv_dir))
                streamed.open()
                virtual = streamed.virtual_size
                fmt = 'qcow2'
            else:
                # One download, streamed to a file, with Cinder's own
                # format checks (no backing files, no data files, ...),
                # then one conversion onto the LUN.
                image_utils.fetch_verify_image(context, image_service,
                                               image_id, tmp)
                if verifier is not None:
                    image_utils.verify_glance_image_signature(
                        context, image_service, image_id, tmp)
                info = image_utils.qemu_img_info(tmp, run_as_root=False)
                fmt = info.file_format
                image_utils.check_image_format(
                    tmp, src_format=image_utils.fixup_disk_format(
                        image_meta.get('disk_format')) if image_meta.get(
                        'disk_format') not in (None, 'iso') else None,
                    image_id=image_id, data=info, run_as_root=False)
                virtual = int(info.virtual_size)
            # Refuse before any LUN exists.
            self._refuse_if_too_big(image_id, virtual, volume)
            generation = 1 + max(
                [int(g.metadata.get(MD_GENERATION, 0))
                 for g in self.goldens(ictx, volume.host, image_id)] or [0])
            golden = objects.Volume(
                context=ictx,
                size=self.backend.golden_size_gb(virtual),
                host=volume.host,
                cluster_name=volume.cluster_name,
                availability_zone=volume.availability_zone,
                volume_type_id=volume.volume_type_id,
                user_id=ictx.user_id,
                project_id=ictx.project_id,
                status='creating',
                attach_status='detached',
                display_name=f'dpm-golden-{image_id}',
                display_description=(f'Golden volume of image {image_id} '
                                     f'for DPM boot volumes (managed by '
                                     f'cinder-dpm-ephemeral)'),
                metadata={MD_GOLDEN: 'true', MD_IMAGE: image_id,
                          MD_VERSION: version, MD_VIRTUAL: str(virtual),
                          MD_POOL: volume_utils.extract_host(
                              volume.host, 'pool') or '',
                          MD_GENERATION: str(generation),
                          MD_STATE: STATE_BUILDING,
                          MD_LAST_USED: _now()})
            golden.create()
            try:
                update = self.backend.create_golden_lun(golden)
                if update:
                    golden.update(update)
                    golden.save()
                if stream_raw:
                    write_raw_stream_through_attach(
                        self.backend.driver, context, golden, download(),
                        image_id)
                elif streamed is not None:
                    try:
                        self.backend.write_image(context, golden,
                                                 streamed.uri, fmt)
                    except Exception:
                        streamed.raise_download_error()
                        raise
                    streamed.finish()
                else:
                    self.backend.write_image(context, golden, tmp, fmt)
            except Exception:
                LOG.exception('Building golden volume %(g)s for image '
                              '%(img)s failed; removing it.',
                              {'g': golden.id, 'img': image_id})
                self._destroy(golden)
                raise
            golden.status = 'available'
            golden.save()
            seconds = timeutils.delta_seconds(start, timeutils.utcnow())
            self._set_md(golden, {MD_STATE: STATE_READY,
                                  MD_BUILD_SECONDS: '%.3f' % seconds,
                                  MD_SIGNATURE_VERIFIED: str(
                                      verifier is not None).lower()})
            # Older content versions of this image are never cloned again;
            # collect_garbage removes them once no clone depends on them.
            for old in self.goldens(ictx, None, image_id):
                if (old.metadata.get(MD_VERSION) != version and
                        old.metadata.get(MD_STALE) != 'true'):
                    self._set_md(old, {MD_STALE: 'true', MD_FULL: 'true'})
            LOG.info('Golden volume %(g)s of image %(img)s (generation '
                     '%(gen)d, %(size)d GiB) ready in %(sec).1f s.',
                     {'g': golden.id, 'img': image_id, 'gen': generation,
                      'size': golden.size, 'sec': seconds})
            return golden
        finally:
            if streamed is not None:
                streamed.close()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    def _touch(self, golden: objects.Volume) -> None:
        """Record a use for LRU eviction (at most once a minute)."""
        last = golden.metadata.get(MD_LAST_USED, '')
        if last < _now(-TOUCH_EVERY):
            self._set_md(golden, {MD_LAST_USED: _now()})

    def _set_md(self, golden: objects.Volume, values: dict[str, str]) -> None:
        if values.get(MD_FULL) == 'true' or values.get(MD_STALE) == 'true':
            # A golden that may be removed once unused: let the clone
            # delete path look (it skips the database query otherwise).
            self.cleanup_pending = True
        self.db.volume_metadata_update(golden._context, golden.id, values,
                                       False)
        golden.refresh()

    def _destroy(self, golden: objects.Volume) -> None:
        try:
            self.backend.delete_golden_lun(golden)
        except Exception:
            LOG.exception('Could not delete the array object of golden '
                          'volume %s; it stays in Cinder in state error '
                          'for an operator to delete.', golden.id)
            golden.status = 'error'
            golden.save()
            return
        golden.destroy()

    def after_clone_deleted(self, host: str) -> None:
        """Clean up now if a golden volume may have lost its last clone.

        A cheap no-op unless a golden volume is waiting for that.
        """
        if not self.cleanup_pending:
            return
        self.cleanup_pending = False
        self.collect_garbage(None, host)

    def periodic(self, host: str, interval: float) -> None:
        """Run :meth:`collect_garbage` at most every ``interval`` seconds.

        Called from the driver's stats update (every
        ``backend_stats_polling_interval``). Glance is asked whether images
        still exist and are unchanged; if it cannot be asked, only stale,
        unfinished and over-limit golden volumes are handled.
        """
        now = timeutils.utcnow_ts()
        if now - getattr(self, '_last_gc', 0) < interval:
            return
        self._last_gc = now
        try:
            from cinder.image import glance
            self.collect_garbage(glance.get_default_image_service(), host)
        except Exception:
            LOG.exception('Golden image cache clean-up failed; will retry.')

    # -- removal --------------------------------------------------------------
    def is_golden(self, volume: objects.Volume) -> bool:
        return volume.metadata.get(MD_GOLDEN) == 'true'

    def check_deletable(self, volume: objects.Volume) -> None:
        """Refuse to delete a golden volume that clones still depend on."""
        if not self.is_golden(volume):
            return
        n = self.backend.dependents(volume)
        if n:
            raise exception.VolumeIsBusy(
                volume_name=f'{volume.name} (golden volume of image '
                            f'{volume.metadata.get(MD_IMAGE)}, still '
                            f'cloned by {n} volume(s))')

    def collect_garbage(self, image_service: Any = None,
                        host: str | None = None) -> list[str]:
        """Remove golden volumes that are stale or evicted and unused.

        Stale: the image is gone from Glance or has other bytes now, or the
        golden was never finished. Evicted: over the configured count or
        size, least recently used first. A golden is only removed once no
        clone depends on it; until then it is kept (and not used for new
        clones if stale). Returns the ids of removed golden volumes.
        """
        ictx = self.internal_context()
        if ictx is None:
            return []
        goldens = self.goldens(ictx, None)
        if host is not None:
            goldens = [g for g in goldens
                       if volume_utils.extract_host(g.host) ==
                       volume_utils.extract_host(host)]
        doomed: list[objects.Volume] = []
        live: list[objects.Volume] = []
        current: dict[str, str | None] = {}
        for g in goldens:
            md = g.metadata
            if md.get(MD_STATE) != STATE_READY:
                if g.status == 'creating':
                    continue  # being built right now
                doomed.append(g)
                continue
            img = md.get(MD_IMAGE, '')
            if md.get(MD_STALE) == 'true':
                doomed.append(g)
                continue
            if image_service is not None and img not in current:
                try:
                    current[img] = image_version(
                        image_service.show(ictx, img))
                except exception.ImageNotFound:
                    current[img] = None
                except Exception:  # Glance down: decide nothing now
                    LOG.warning('Cannot check image %s in Glance; keeping '
                                'its golden volumes for now.', img)
                    current[img] = md.get(MD_VERSION)
            if img in current and current[img] != md.get(MD_VERSION):
                self._set_md(g, {MD_STALE: 'true', MD_FULL: 'true'})
                doomed.append(g)
            else:
                live.append(g)
        max_count = self.configuration.safe_get(
            'dpm_ephemeral_image_cache_max_count') or 0
        max_gb = self.configuration.safe_get(
            'dpm_ephemeral_image_cache_max_size_gb') or 0
        live.sort(key=lambda g: g.metadata.get(MD_LAST_USED, ''))
        while live and ((max_count and len(live) > max_count) or
                        (max_gb and sum(g.size for g in live) > max_gb)):
            doomed.append(live.pop(0))
        removed = []
        for g in doomed:
            if self.backend.dependents(g):
                # Still cloned: keep it, but never clone it again; look
                # again when a clone is deleted.
                if g.metadata.get(MD_FULL) != 'true':
                    self._set_md(g, {MD_FULL: 'true'})
                self.cleanup_pending = True
                continue
            LOG.info('Removing golden volume %(g)s of image %(img)s.',
                     {'g': g.id, 'img': g.metadata.get(MD_IMAGE)})
            g.status = 'deleting'
            g.save()
            self._destroy(g)
            removed.append(g.id)
        return removed


TOUCH_EVERY = 60


def _now(offset_seconds: float = 0) -> str:
    t = timeutils.utcnow() + datetime.timedelta(seconds=offset_seconds)
    return t.strftime('%Y-%m-%dT%H:%M:%S.%f')
