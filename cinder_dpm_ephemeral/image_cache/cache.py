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
"""Golden volumes: one download per image and pool, thin clones after that.

The cache is array-agnostic. A driver gives it a
:class:`~cinder_dpm_ephemeral.image_cache.backend.CloneBackend` (how to
make a golden LUN, write an image into it, thin-clone it, count what
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
import hashlib
import time
from collections.abc import Iterator
from typing import Any

from cinder import context as cinder_context
from cinder import coordination
from cinder import exception
from cinder import objects
from cinder.volume import volume_utils
from oslo_log import log as logging
from oslo_utils import timeutils

from cinder_dpm_ephemeral import cache_stats
from cinder_dpm_ephemeral import exception as dpm_exception
from cinder_dpm_ephemeral.image_cache import accounting
from cinder_dpm_ephemeral.image_cache import backend as cache_backend
from cinder_dpm_ephemeral.image_cache import build
from cinder_dpm_ephemeral.image_cache import detach
from cinder_dpm_ephemeral.image_cache import eviction
from cinder_dpm_ephemeral.image_cache import formats
from cinder_dpm_ephemeral.image_cache import glance_access
from cinder_dpm_ephemeral.image_cache import recovery
from cinder_dpm_ephemeral.image_cache import signature
from cinder_dpm_ephemeral.image_cache import spares
from cinder_dpm_ephemeral.image_cache import writer

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
#: qcow2 streamed: reads qemu-img made before the download had ended
MD_EARLY_READS = 'conversion_early_reads'
ADMIN_MD_GOLDEN = 'dpm_golden_volume_id'

STATE_BUILDING = 'building'
STATE_READY = 'ready'
#: being removed (status ``deleting``) under the image's lock
STATE_REMOVING = 'removing'


def image_version(image_meta: dict[str, Any]) -> str:
    """A short digest that changes whenever the image's bytes change."""
    parts = [str(image_meta.get(k) or '') for k in
             ('os_hash_value', 'checksum', 'size')]
    return hashlib.sha256('|'.join(parts).encode()).hexdigest()[:12]


class GoldenImageCache:
    """The golden-volume cache of one Cinder backend."""

    def __init__(self, backend: cache_backend.CloneBackend,
                 configuration: Any, db: Any) -> None:
        self.backend = backend
        self.configuration = configuration
        self.db = db
        #: set when a golden volume was marked stale or full in this
        #: process; the clone delete path only cleans up when it is set
        #: (the periodic clean-up covers the rest)
        self.cleanup_pending = True
        self.capacity = accounting.CapacityBook(backend.driver)
        #: golden volumes this process is building or removing now
        self.building: set[str] = set()
        #: (when, clones per golden id): the pool stats' last array answer
        self.clone_counts_seen: tuple[float, dict[str, int]] = (
            float('-inf'), {})
        #: the green thread making the last spare LUN (:mod:`.spares`)
        self.spare_maker: Any = None
        #: clone_image calls under way in this process, and when the last
        #: one started (time.monotonic()): a spare is made once there are
        #: none, after a quiet while (:func:`.spares.replenish_soon`)
        self.cloning = 0
        self.clone_started = float('-inf')
        #: golden id -> its build's detach under way (:mod:`.detach`)
        self.detaching: dict[str, writer.Soon] = {}

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
        why_not = self.backend.supports(volume)
        if why_not:
            self._log_once(('type', volume.volume_type_id, why_not),
                           'Volume type %(type)s: %(why)s; volumes of this '
                           'type are created by Cinder\'s own path, not '
                           'cloned from golden volumes.',
                           {'type': volume.volume_type_id, 'why': why_not})
            return None, False
        ictx = self.internal_context()
        if ictx is None:
            self._log_once(('no-internal-tenant',),
                           'Golden image cache disabled: set '
                           'cinder_internal_tenant_project_id and '
                           'cinder_internal_tenant_user_id in cinder.conf.',
                           {})
            return None, False
        image_id = image_meta['id']
        # What Cinder's own path would refuse, refused before anything is
        # downloaded or created.
        formats.check_request(image_meta)
        self._refuse_if_too_big(image_id, image_meta.get('virtual_size'),
                                volume)
        version = image_version(image_meta)
        pool = volume_utils.extract_host(volume.host, 'pool')
        built_ids: list[str] = []
        self.cloning += 1
        self.clone_started = time.monotonic()
        try:
            return self._clone_image(context, ictx, volume, image_meta,
                                     image_service, version, pool,
                                     built_ids)
        finally:
            try:
                # a build's detach runs beside the clone; the volume is
                # available only once it is done (:mod:`.detach`)
                for golden_id in built_ids:
                    detach.wait(self, golden_id)
            finally:
                self.cloning -= 1

    def _clone_image(self, context: Any, ictx: Any, volume: objects.Volume,
                     image_meta: dict[str, Any], image_service: Any,
                     version: str, pool: str | None,
                     built_ids: list[str]) -> tuple[dict | None, bool]:
        """:meth:`clone_image` once it applies.

        Golden volumes built for ``volume`` are added to ``built_ids``.
        """
        image_id = image_meta['id']
        built = False
        for _attempt in range(4):
            golden = self._usable(self._pool_goldens(ictx, volume, image_id),
                                  version)
            if golden is None:
                with self._lock(image_id, pool):
                    # the pool's goldens of this image as they stand
                    # under the lock: the build's generation follows them
                    in_pool = self._pool_goldens(ictx, volume, image_id)
                    golden = self._usable(in_pool, version)
                    if golden is None:
                        try:
                            golden = self._build_golden(
                                context, ictx, volume, image_meta,
                                image_service, version, in_pool)
                            built = True
                            built_ids.append(golden.id)
                            # unused to no clean-up until its first clone
                            self.building.add(golden.id)
                        except exception.OverQuota as exc:
                            LOG.warning(
                                'Golden volume for image %(img)s not made: '
                                'the internal tenant %(proj)s is over its '
                                'quota (%(exc)s); volume %(vol)s takes '
                                'Cinder\'s own path. Raise the internal '
                                'tenant\'s volume and gigabyte quotas.',
                                {'img': image_id, 'proj': ictx.project_id,
                                 'exc': exc, 'vol': volume.id})
                            return None, False
            self._refuse_if_too_big(
                image_id, int(golden.metadata[MD_VIRTUAL]), volume)
            try:
                update = self.backend.thin_clone(golden, volume)
            except Exception as exc:
                if self.backend.is_clone_limit(exc):
                    LOG.info('Golden volume %(g)s of image %(img)s is at '
                             'the array clone limit; using another one.',
                             {'g': golden.id, 'img': image_id})
                    self._set_md(golden, {MD_FULL: 'true'})
                    continue
                if not self._still_usable(golden):
                    # Found without the lock, evicted before the clone:
                    # nothing was made of it; take another golden.
                    LOG.info('Golden volume %(g)s of image %(img)s was '
                             'removed while volume %(vol)s was cloned from '
                             'it; trying again.',
                             {'g': golden.id, 'img': image_id,
                              'vol': volume.id})
                    continue
                raise
            finally:
                if built:
                    self.building.discard(golden.id)
            if (volume.size > golden.size and
                    not self.backend.extension_reads_zeros(golden, volume)):
                # What the array had past the golden's end must not show
                # in the clone's extension.
                if update:
                    volume.update(update)   # saved by the volume manager
                writer.zero_range(self.backend.driver, context, volume,
                                  golden.size * GiB)
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
            cache_stats.notify(context, cache_stats.MISS if built else
                               cache_stats.HIT, image_id, volume.host,
                               golden.id, pool)
            return update, True
        raise dpm_exception.GoldenCacheExhausted(image_id=image_id,
                                                 volume_id=volume.id)

    def _log_once(self, key: tuple, msg: str, args: dict) -> None:
        logged = self.__dict__.setdefault('_logged', set())
        if key not in logged:
            logged.add(key)
            if args:
                LOG.warning(msg, args)
            else:
                LOG.warning(msg)

    @staticmethod
    def _still_usable(golden: objects.Volume) -> bool:
        try:
            golden.refresh()
        except exception.VolumeNotFound:
            return False
        return golden.status == 'available'

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

    @staticmethod
    def pool_of(golden: objects.Volume) -> str | None:
        """The pool a golden volume was built for (metadata, else host)."""
        return (golden.metadata.get(MD_POOL) or
                volume_utils.extract_host(golden.host, 'pool'))

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

    def _pool_goldens(self, ictx: Any, volume: objects.Volume,
                      image_id: str) -> list[objects.Volume]:
        """The image's golden volumes in ``volume``'s pool.

        In a cluster, any service of it may have built them (Cinder gives
        a volume the host of whichever service the scheduler last heard).
        """
        if not volume.cluster_name:
            return self.goldens(ictx, volume.host, image_id)
        return [g for g in self.goldens(ictx, None, image_id)
                if g.cluster_name == volume.cluster_name]

    @staticmethod
    def _usable(goldens: list[objects.Volume],
                version: str) -> objects.Volume | None:
        """The newest ready golden of ``version`` among ``goldens``."""
        best = None
        for g in goldens:
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
                      version: str,
                      in_pool: list[objects.Volume]) -> objects.Volume:
        """Build the image's golden volume in ``volume``'s pool.

        See :func:`.build.build_golden`.
        """
        return build.build_golden(self, context, ictx, volume, image_meta,
                                  image_service, version, in_pool)

    def _new_golden(self, ictx: Any, volume: objects.Volume, size: int,
                    name: str, description: str,
                    metadata: dict[str, str]) -> objects.Volume:
        """A golden volume's row, counted, in ``self.building``."""
        golden = objects.Volume(
            context=ictx, size=size, host=volume.host,
            cluster_name=volume.cluster_name,
            availability_zone=volume.availability_zone,
            volume_type_id=volume.volume_type_id,
            user_id=ictx.user_id, project_id=ictx.project_id,
            status='creating', attach_status='detached',
            display_name=name, display_description=description,
            metadata=metadata)
        # Counted like Cinder's own image-cache volumes (quota of the
        # internal tenant, the pool's allocated capacity) from the moment
        # the row exists.
        reservations = accounting.reserve(ictx, golden)
        try:
            golden.create()
        except Exception:
            accounting.rollback(ictx, reservations)
            raise
        # (a clean-up looking before this still finds the lock taken)
        self.building.add(golden.id)
        accounting.commit(ictx, reservations)
        self.capacity.add(golden)
        return golden

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

    def _destroy(self, golden: objects.Volume) -> bool:
        """Remove a golden volume's LUN and row; False if it was kept.

        The array refuses to delete a LUN that a clone still shares (the
        backends delete without force): a clone that appeared since the
        caller looked keeps its golden, which is then never cloned again
        and removed after its last clone.
        """
        detach.wait(self, golden.id)
        try:
            # a spare attached ahead (spares.py): detached, not just
            # unmapped by the array's delete
            writer.release(self.backend.driver, golden._context, golden)
        except Exception:
            LOG.warning('Golden volume %s: detaching it from this host '
                        'before its removal failed; the array\'s delete '
                        'removes its host mapping.', golden.id,
                        exc_info=True)
        try:
            self.backend.delete_golden_lun(golden)
        except exception.VolumeIsBusy:
            LOG.info('Golden volume %s gained a clone while it was being '
                     'removed; kept until its last clone is deleted.',
                     golden.id)
            golden.status = 'available'
            golden.save()
            self._set_md(golden, {MD_FULL: 'true', MD_STATE: STATE_READY})
            return False
        except Exception:
            LOG.exception('Could not delete the array object of golden '
                          'volume %s; it stays in Cinder in state error '
                          'for an operator to delete.', golden.id)
            golden.status = 'error'
            golden.save()
            return False
        golden.destroy()
        cache_stats.notify(golden._context, cache_stats.EVICT,
                           golden.metadata.get(MD_IMAGE), golden.host,
                           golden.id, golden.metadata.get(MD_POOL))
        accounting.release(golden)
        self.capacity.remove(golden)
        return True

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
            ictx = self.internal_context()
            gctx = (glance_access.service_context(ictx)
                    if ictx is not None else None)
            self.collect_garbage(glance.get_default_image_service(), host,
                                 glance_context=gctx)
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
                        host: str | None = None,
                        glance_context: Any = None) -> list[str]:
        """Remove golden volumes that are stale or evicted and unused.

        Stale: the image is gone from Glance or has other bytes now, or the
        golden was never finished: its build failed, or can never finish
        (its builder died: :mod:`.recovery`). Evicted: over the configured
        count or size, least recently used first. A golden is only removed
        once no clone depends on it; until then it is kept (and not used for
        new clones if stale). Returns the ids of removed golden volumes.

        ``glance_context`` is what Glance is asked with (see
        :mod:`.glance_access`); the internal tenant's context by default.
        """
        ictx = self.internal_context()
        if ictx is None:
            return []
        gctx = glance_context or ictx
        goldens = self.goldens(ictx, None)
        if host is not None:
            # this backend's, or its cluster's (any service of it)
            mine = (volume_utils.extract_host(host),
                    getattr(self.backend.driver, 'cluster_name', None))
            goldens = [g for g in goldens if
                       volume_utils.extract_host(g.host) == mine[0] or
                       (mine[1] and g.cluster_name and volume_utils.
                        extract_host(g.cluster_name) == mine[1])]
        doomed: list[objects.Volume] = []
        live: list[objects.Volume] = []
        current: dict[str, str | None] = {}
        removed = []
        spare_luns = []
        for g in goldens:
            md = g.metadata
            if g.status in ('creating', 'deleting') and \
                    g.id not in self.building:
                # A build or removal of a service that died?
                why = (recovery.dead_build(self, g) if g.status ==
                       'creating' else 'its removal was interrupted'
                       if md.get(MD_STATE) == STATE_REMOVING else None)
                if why and recovery.remove_dead(self, g, why):
                    removed.append(g.id)
                continue
            if g.status == 'available' and md.get(detach.MD_DETACH_PENDING):
                try:
                    detach.redo(self, g)
                except Exception:
                    LOG.exception('Golden volume %s: removing the host '
                                  'mapping its build left failed; the next '
                                  'clean-up tries again.', g.id)
            if spares.is_spare(g) and g.status == 'available':
                spare_luns.append(g)
                continue
            if md.get(MD_STATE) != STATE_READY:
                # (not while this process finishes it: 'available' first)
                if g.id not in self.building:
                    doomed.append(g)
                continue
            img = md.get(MD_IMAGE, '')
            if md.get(MD_STALE) == 'true':
                doomed.append(g)
                continue
            if image_service is not None and img not in current:
                try:
                    current[img] = image_version(
                        image_service.show(gctx, img))
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
        doomed += eviction.victims(self, live, max_count, max_gb)
        try:
            removed += spares.collect(self, spare_luns)
        except Exception:
            LOG.exception('Surplus spare golden LUNs not removed; the next '
                          'clean-up tries again.')
        for g in doomed:
            try:
                if self.remove_unused(g):
                    removed.append(g.id)
            except Exception:
                # one golden volume (removed meanwhile by a concurrent
                # clean-up, or its array call failed) must not keep the
                # others from being looked at; the next clean-up retries
                LOG.exception('Golden volume %s: removal failed; the next '
                              'clean-up tries again.', g.id)
                self.cleanup_pending = True
        return removed

    def remove_unused(self, golden: objects.Volume) -> bool:
        """Remove ``golden`` unless a clone shares it; True if removed.

        Under the image's lock, so that no golden volume is built or
        removed twice at once; a clone made without the lock in the
        meantime is caught by the array itself (see :meth:`_destroy`).
        """
        md = golden.metadata
        with self._lock(md.get(MD_IMAGE, ''), md.get(MD_POOL) or None):
            if spares.is_spare(golden) and golden.status == 'available':
                # (only if no build takes it meanwhile)
                return spares.remove(self, golden)
            if not self._still_usable(golden) and golden.status != 'error':
                return False            # gone, or another service has it
            if self.backend.dependents(golden):
                # Still cloned: keep it, but never clone it again; look
                # again when a clone is deleted.
                if golden.metadata.get(MD_FULL) != 'true':
                    self._set_md(golden, {MD_FULL: 'true'})
                self.cleanup_pending = True
                return False
            LOG.info('Removing golden volume %(g)s of image %(img)s.',
                     {'g': golden.id, 'img': md.get(MD_IMAGE)})
            # marked so that a removal cut short (the service killed) is
            # finished by the next clean-up (recovery.py)
            golden.status = 'deleting'
            golden.metadata = {**golden.metadata, MD_STATE: STATE_REMOVING}
            golden.save()
            return self._destroy(golden)


TOUCH_EVERY = 60


_now = recovery.now_text
