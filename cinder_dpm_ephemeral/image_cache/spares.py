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
"""Golden LUNs made ahead, so that a build writes its first byte at once.

A golden build cannot write before the array has made its LUN: on SVC the
in-tree ``create_volume`` runs ``mkvdisk`` (and ``lsiogrp`` before it
when the volume type allows several I/O groups), on PowerFlex an
``addVolume``. With
``dpm_ephemeral_spare_golden_luns`` set to N > 0, each build that ends
well leaves behind, made in the background, a golden volume with no image
yet of the same size and volume type in the same pool (metadata ``state``
``spare``, name ``dpm-golden-spare``). The next build there of an image of
that size takes it instead of making a LUN. A pool keeps at most N spares,
one per volume type and size, the least recently wanted removed first.

A spare is a golden volume like the others, so nothing about it can leak
unseen: a row of Cinder's internal tenant, counted in its quota and in the
pool's allocated capacity from the moment it exists, made with the
builder's metadata (:mod:`.recovery` removes one whose making died with
its service), listed by ``cinder-dpm-manage cache list``, removed by the
periodic clean-up once surplus (the option lowered, or set to 0). What
the array says of it (whether it reads zeros) is asked once, when it is
made, and kept in its metadata.

A spare is taken with one conditional update of its row (``available``
and still named ``dpm-golden-spare`` -> ``creating``): two builds, or a
build and a removal, in one service or in a cluster, never both get it.
The spare's lock (the image lock named for no image, in its pool) is held
while spares are made or removed, never while a build takes one.

A spare is also attached to the volume host once made
(:data:`ATTACH_AHEAD`), so that a build on it neither waits for the array
to map it nor for the host to find its device: the build writes at once
and detaches it as its own (:func:`.writer.hold`). That it is mapped is
recorded first, as a build's detach still owed (:mod:`.detach`'s
``detach_pending``, naming this service): a restart loses the attachment,
not the array's mapping, and the service's periodic clean-up (its first
run is at start-up) removes the mapping. A spare removed is detached
first (:meth:`.ImageCache._destroy`). In a cluster, a spare attached by
one volume service is taken and removed by that service only.
"""

from __future__ import annotations

import time
from typing import Any

import eventlet
from cinder import exception
from cinder import objects
from cinder.volume import volume_utils
from oslo_log import log as logging

from cinder_dpm_ephemeral.image_cache import detach
from cinder_dpm_ephemeral.image_cache import recovery
from cinder_dpm_ephemeral.image_cache import writer

LOG = logging.getLogger(__name__)

SPARE_NAME = 'dpm-golden-spare'
STATE_SPARE = 'spare'
#: 'true' or 'false': whether the spare's LUN reads zeros where unwritten
MD_READS_ZEROS = 'reads_zeros'
#: spares attached to the volume host once made (the build then writes
#: at once); ``--ab image_cache.spares.ATTACH_AHEAD=0`` measures it
ATTACH_AHEAD = True
#: most seconds a spare's making waits for the clones under way in this
#: process (a boot storm's) to be made first (0: it does not wait)
AFTER_CLONES_WAIT = 60.0
#: ... and until no clone has started for this many seconds: Nova sends a
#: storm's volume creates spread over a second or so
AFTER_CLONES_QUIET = 1.0


def wanted(cache: Any) -> int:
    """Spares a pool keeps (0: none)."""
    return int(cache.configuration.safe_get(
        'dpm_ephemeral_spare_golden_luns') or 0)


def is_spare(golden: objects.Volume) -> bool:
    return golden.metadata.get('state') == STATE_SPARE


def pool_spares(cache: Any, ictx: Any,
                volume: objects.Volume) -> list[objects.Volume]:
    """The spares in ``volume``'s pool (of its cluster, in a cluster)."""
    pool = volume_utils.extract_host(volume.host, 'pool')
    out = []
    for g in cache.goldens(ictx, None if volume.cluster_name
                           else volume.host):
        if not is_spare(g):
            continue
        if volume.cluster_name and (
                g.cluster_name != volume.cluster_name or
                volume_utils.extract_host(g.host, 'pool') != pool):
            continue
        out.append(g)
    return out


def claim(cache: Any, ictx: Any, volume: objects.Volume, size: int,
          metadata: dict[str, str], name: str,
          description: str) -> objects.Volume | None:
    """Take a spare of ``size`` GiB for a build of ``volume``'s image.

    Returns it renamed, ``creating``, with ``metadata`` (the build's), and
    in ``cache.building``; None if there is none to take.
    """
    if not wanted(cache):
        return None
    for g in pool_spares(cache, ictx, volume):
        if (g.size != size or g.volume_type_id != volume.volume_type_id or
                g.status != 'available' or _attached_elsewhere(cache, g)):
            continue
        # (the periodic clean-up leaves it alone from now on)
        cache.building.add(g.id)
        if not g.conditional_update(
                {'status': 'creating', 'display_name': name,
                 'display_description': description},
                {'status': 'available', 'display_name': SPARE_NAME}):
            cache.building.discard(g.id)
            continue        # taken or being removed meanwhile
        cache._set_md(g, metadata)
        if g.metadata.get(detach.MD_DETACH_PENDING):
            # (this service's: _attached_elsewhere) the build owns the
            # attachment, or the mapping a restart left, now: it detaches
            # it (or, if it dies, the golden's removal takes the mapping
            # with it)
            detach.forget(cache, g._context, g.id)
        LOG.info('Golden volume %(g)s: spare LUN of %(size)d GiB taken for '
                 'image %(img)s%(att)s.',
                 {'g': g.id, 'size': size, 'img': metadata.get('image_id'),
                  'att': ', already attached' if writer.is_held(g.id)
                  else ''})
        return g
    return None


def _attached_elsewhere(cache: Any, spare: objects.Volume) -> bool:
    """Whether another volume service of the cluster attached the spare.

    Such a spare serves that service's builds, and is removed by it: its
    attachment lives in that service's process (:func:`_attach_ahead`).
    """
    owner = spare.metadata.get(detach.MD_DETACH_PENDING)
    return bool(owner) and owner != str(cache.backend.driver.host)


def reads_zeros(golden: objects.Volume) -> bool | None:
    """What the array said of a spare's LUN when it was made, if known."""
    value = golden.metadata.get(MD_READS_ZEROS)
    return None if value is None else value == 'true'


def replenish_soon(cache: Any, ictx: Any, volume: objects.Volume,
                   size: int) -> None:
    """Make a spare like the golden just built, in a green thread.

    It is made once the clones under way in this process are made (the
    build's own, and a boot storm's) and none has started for
    :data:`AFTER_CLONES_QUIET` seconds, at most :data:`AFTER_CLONES_WAIT`
    seconds later: the spare is for the next cold build, and its array
    commands would otherwise run beside theirs.
    """
    if not wanted(cache):
        return

    def run() -> None:
        try:
            _after_clones(cache)
            replenish(cache, ictx, volume, size)
        except Exception:
            LOG.exception('Spare golden LUN of %(size)d GiB in %(host)s not '
                          'made; the next build makes its LUN itself.',
                          {'size': size, 'host': volume.host})
    cache.spare_maker = eventlet.spawn(run)


def _after_clones(cache: Any) -> None:
    deadline = time.monotonic() + AFTER_CLONES_WAIT
    while time.monotonic() < deadline:
        quiet = time.monotonic() - cache.clone_started
        if not cache.cloning and quiet >= AFTER_CLONES_QUIET:
            return
        eventlet.sleep(0.05 if cache.cloning else
                       min(0.05, AFTER_CLONES_QUIET - quiet))


def wait_made(cache: Any) -> None:
    """Wait for the spare :func:`replenish_soon` started last, if any."""
    if cache.spare_maker is not None:
        cache.spare_maker.wait()


def replenish(cache: Any, ictx: Any, volume: objects.Volume,
              size: int) -> objects.Volume | None:
    """Have a spare of ``size`` GiB of ``volume``'s type in its pool.

    Returns the spare made, or None if one was there already (or the
    internal tenant's quota refused it). Surplus spares of the pool (the
    least recently wanted first) are removed to keep at most
    :func:`wanted`.
    """
    n = wanted(cache)
    if not n:
        return None
    pool = volume_utils.extract_host(volume.host, 'pool')
    with cache._lock('', pool):
        spares = sorted(pool_spares(cache, ictx, volume),
                        key=lambda g: g.metadata.get('last_used', ''))
        for g in spares:
            if (g.size == size and
                    g.volume_type_id == volume.volume_type_id and
                    g.status in ('available', 'creating')):
                cache._set_md(g, {'last_used': recovery.now_text()})
                return None
        for g in spares[:max(0, len(spares) - (n - 1))]:
            remove(cache, g)
        return _make(cache, ictx, volume, size, pool)


def _make(cache: Any, ictx: Any, volume: objects.Volume, size: int,
          pool: str | None) -> objects.Volume | None:
    try:
        # a row, counted, in cache.building (as a golden build's)
        spare = cache._new_golden(
            ictx, volume, size, SPARE_NAME,
            'Golden volume made ahead, with no image yet, for the next '
            'image build of its size (managed by cinder-dpm-ephemeral)',
            {'dpm_ephemeral_golden': 'true', 'state': STATE_SPARE,
             'pool': pool or '', 'last_used': recovery.now_text(),
             **recovery.builder_metadata(cache.backend.driver)})
    except exception.OverQuota as exc:
        LOG.warning('Spare golden LUN not made: the internal tenant %(p)s '
                    'is over its quota (%(exc)s).',
                    {'p': ictx.project_id, 'exc': exc})
        return None
    try:
        try:
            update = cache.backend.create_golden_lun(spare)
            if update:
                spare.update(update)
                spare.save()
            zeros = cache.backend.reads_zeros(spare)
        except Exception:
            LOG.exception('Making spare golden LUN %s failed; removing it.',
                          spare.id)
            cache._destroy(spare)
            raise
        cache._set_md(spare, {MD_READS_ZEROS: str(bool(zeros)).lower()})
        if ATTACH_AHEAD:
            _attach_ahead(cache, spare)
        spare.status = 'available'
        spare.save()
    finally:
        cache.building.discard(spare.id)
    LOG.info('Spare golden LUN %(g)s of %(size)d GiB made in %(host)s.',
             {'g': spare.id, 'size': size, 'host': volume.host})
    return spare


def _attach_ahead(cache: Any, spare: objects.Volume) -> None:
    """Attach the spare to this host for the build that takes it.

    Recorded first as a detach this service owes, dropped again when the
    attach fails (the attach undoes its own mapping then). A spare that
    could not be attached is still a spare: the build attaches it.
    """
    driver = cache.backend.driver
    cache._set_md(spare, detach.owed_by(cache))
    try:
        writer.hold(driver, spare._context, spare)
    except Exception:
        LOG.warning('Spare golden LUN %s could not be attached ahead; the '
                    'build that takes it attaches it.', spare.id,
                    exc_info=True)
        detach.forget(cache, spare._context, spare.id)


def remove(cache: Any, spare: objects.Volume) -> bool:
    """Remove a spare no build has taken; False if one took it first.

    The caller holds the spare's lock.
    """
    try:
        spare.refresh()
    except exception.VolumeNotFound:
        return False
    if (not is_spare(spare) or spare.status != 'available' or
            _attached_elsewhere(cache, spare)):
        return False
    # marked first: a removal cut short is finished by the next clean-up
    cache._set_md(spare, {'state': 'removing'})
    if not spare.conditional_update(
            {'status': 'deleting'},
            {'status': 'available', 'display_name': SPARE_NAME}):
        return False        # a build took it; its metadata is the build's
    LOG.info('Removing spare golden LUN %(g)s (%(size)d GiB).',
             {'g': spare.id, 'size': spare.size})
    return bool(cache._destroy(spare))


def collect(cache: Any, spares: list[objects.Volume]) -> list[str]:
    """Remove surplus spares (of ``spares``, all available); their ids."""
    n = wanted(cache)
    by_pool: dict[tuple, list[objects.Volume]] = {}
    for g in spares:
        by_pool.setdefault((g.cluster_name or g.host,), []).append(g)
    removed = []
    for group in by_pool.values():
        group.sort(key=lambda g: g.metadata.get('last_used', ''))
        for g in group[:max(0, len(group) - n)]:
            pool = volume_utils.extract_host(g.host, 'pool')
            with cache._lock('', pool):
                if remove(cache, g):
                    removed.append(g.id)
    return removed
