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
"""Golden caches, backend status, orphans and project default types."""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from typing import Any

from cinder import context as cinder_context
from cinder.db import api as db_api
from cinder import exception
from cinder import objects
from cinder.volume import volume_utils
from oslo_log import log as logging

from cinder_dpm_ephemeral.image_cache import cache
from cinder_dpm_ephemeral.ops import backend as be

LOG = logging.getLogger(__name__)

_CINDER_NAME = re.compile(r'^(volume|snapshot)-([0-9a-f-]{36})$')


def _on(volume: Any, backend: str) -> bool:
    """Whether ``volume`` is on ``backend`` (any volume host serving it).

    The volume service's host name may differ from this one's
    (``backend_host``, a cluster): the backend section's name decides.
    """
    host = volume_utils.extract_host(volume.host, 'backend') or ''
    return host.partition('@')[2] == backend


def _goldens(backend: str) -> list[Any]:
    ctx = cinder_context.get_admin_context()
    vols = objects.VolumeList.get_all(
        ctx, filters={'metadata': {cache.MD_GOLDEN: 'true'}})
    return [v for v in vols if _on(v, backend)]


def cache_list(drivers: dict[str, Any]) -> list[dict[str, Any]]:
    """Every golden volume of our backends, with its clones on the array."""
    rows = []
    for name in be.backends():
        conf = be.backend_conf(name)
        if not be.array_kind(conf):
            continue
        driver = drivers.get(name)
        limit = None
        if driver is not None:
            limit = driver.image_cache.backend.max_clones_per_golden
        goldens = _goldens(name)
        counts: dict[str, int] = {}
        if driver is not None and goldens:
            try:
                counts = driver.image_cache.backend.clone_counts(goldens)
            except Exception as exc:
                LOG.warning('Clones of the golden volumes of %s not '
                            'counted: %s', name, exc)
        for g in goldens:
            md = g.metadata
            clones: int | None = counts.get(g.id)
            rows.append({
                'backend': name,
                'pool': cache.GoldenImageCache.pool_of(g),
                'golden_volume': g.id, 'image': md.get(cache.MD_IMAGE),
                'size_gb': g.size, 'state': md.get(cache.MD_STATE),
                'status': g.status, 'clones': clones,
                'clone_limit': limit,
                'last_used': md.get(cache.MD_LAST_USED),
            })
    return rows


def cache_evict(drivers: dict[str, Any],
                image_id: str | None = None) -> list[dict[str, Any]]:
    """Remove golden volumes no clone shares; retire the others.

    A golden volume that clones still share is kept but never cloned
    again (the cache removes it after its last clone); it is the cache's
    own removal, under the image's lock, with its quota given back.
    """
    rows = []
    for name, driver in drivers.items():
        goldens = [g for g in _goldens(name) if not image_id or
                   g.metadata.get(cache.MD_IMAGE) == image_id]
        # what the report shows, asked of the array once for all of them
        # (the removal asks again for each, under the image's lock)
        counts = (driver.image_cache.backend.clone_counts(goldens)
                  if goldens else {})
        for g in goldens:
            md = g.metadata
            # The cache's own removal (lock, array check, quota, notify)
            removed = driver.image_cache.remove_unused(g)
            rows.append({'backend': name, 'golden_volume': g.id,
                         'image': md.get(cache.MD_IMAGE),
                         'clones': int(counts.get(g.id, 0)),
                         'result': 'removed' if removed else
                         'kept until its last clone is deleted; never '
                         'cloned again'})
    return rows


def status(drivers: dict[str, Any]) -> list[dict[str, Any]]:
    ctx = cinder_context.get_admin_context()
    out = []
    for name in be.backends():
        conf = be.backend_conf(name)
        if not be.array_kind(conf):
            continue
        vols = [v for v in objects.VolumeList.get_all(ctx) if _on(v, name)]
        goldens = _goldens(name)
        out.append({
            'backend': name, 'array': be.array_kind(conf),
            'reachable': name in drivers,
            'volumes': len(vols) - len(goldens),
            'golden_volumes': len(goldens),
            'golden_gb': sum(g.size for g in goldens),
        })
    return out


def _known(ctx: Any, kind: str, uuid: str) -> bool:
    try:
        if kind == 'volume':
            db_api.volume_get(ctx, uuid)
        else:
            db_api.snapshot_get(ctx, uuid)
        return True
    except (exception.VolumeNotFound, exception.SnapshotNotFound):
        return False


def _svc_orphans(name: str, driver: Any) -> list[dict[str, Any]]:
    """vdisks named like Cinder's whose volume/snapshot Cinder lacks."""
    ctx = cinder_context.get_admin_context()
    ssh = driver._helpers.ssh
    pool = driver.configuration.storwize_svc_volpool_name[0]
    out = []
    for vdisk in ssh.lsvdisks_from_filter('mdisk_grp_name', pool):
        m = _CINDER_NAME.match(vdisk['name'])
        if not m or _known(ctx, m.group(1), m.group(2)):
            continue
        maps = ssh.lsvdiskfcmappings(vdisk['name'])
        hosts = ssh.lsvdiskhostmap(vdisk['name'])
        out.append({'backend': name, 'kind': 'vdisk',
                    'name': vdisk['name'], 'pool': pool,
                    'fcmaps': [fm['fc_map_name'] for fm in maps],
                    'host_mappings': [h['host_name'] for h in hosts]})
    return out


def _powerflex_cinder_id(name: str) -> str | None:
    """The Cinder id behind a PowerFlex volume name, or None.

    Cinder's PowerFlex driver names a volume (and a snapshot) after its id
    in base64 of the 16 uuid bytes, to fit PowerFlex's 31 characters;
    names that do not decode so are not Cinder's and never touched.
    """
    try:
        raw = base64.b64decode(name, validate=True)
    except (binascii.Error, ValueError):
        return None
    if len(raw) != 16 or base64.b64encode(raw).decode() != name:
        return None
    return str(uuid.UUID(bytes=raw))


def _pool_orphans(ctx: Any, vols: list[dict[str, Any]]
                  ) -> list[tuple[dict[str, Any], bool]]:
    """Orphans among one pool's ``vols``, deepest first, and removability."""
    by_id = {v['id']: v for v in vols}
    known = {}
    for v in vols:
        cid = _powerflex_cinder_id(v.get('name') or '')
        known[v['id']] = (cid is None or _known(ctx, 'volume', cid) or
                          _known(ctx, 'snapshot', cid))
    children: dict[str, list[str]] = {}
    for v in vols:
        if v.get('ancestorVolumeId'):
            children.setdefault(v['ancestorVolumeId'], []).append(v['id'])

    def depth(vid: str) -> int:
        d = 0
        while by_id.get(vid, {}).get('ancestorVolumeId') in by_id:
            vid = by_id[vid]['ancestorVolumeId']
            d += 1
        return d

    def known_below(vid: str) -> bool:
        return any(known[c] or known_below(c) for c in children.get(vid, []))

    # deepest first, so that a vTree of orphans goes leaf by leaf
    return [(v, not known_below(v['id']))
            for v in sorted(vols, key=lambda v: -depth(v['id']))
            if not known[v['id']]]


def _powerflex_orphans(name: str, driver: Any) -> list[dict[str, Any]]:
    """Volumes and vTree snapshots named by Cinder that Cinder lacks.

    An orphan that still has a descendant Cinder knows (a golden volume
    whose row was lost while clones share its data) is reported but never
    removable: removing it would take data a known volume reads.
    """
    ctx = cinder_context.get_admin_context()
    client = driver.primary_client
    out = []
    for spec in driver.storage_pools or []:
        domain, _sep, pool = spec.partition(':')
        pool_id = client.get_storage_pool_id(domain, pool)
        r, vols = client.execute_powerflex_get_request(
            '/instances/StoragePool::%(pool_id)s/relationships/Volume',
            pool_id=pool_id)
        if r.status_code != 200 or not isinstance(vols, list):
            raise RuntimeError('PowerFlex gateway did not list the volumes '
                               'of pool %s: %s' % (spec, vols))
        for v, removable in _pool_orphans(ctx, vols):
            out.append({'backend': name, 'kind': 'volume',
                        'name': v['name'], 'id': v['id'], 'pool': spec,
                        'vtree': v.get('vtreeId'),
                        'ancestor': v.get('ancestorVolumeId'),
                        'sdc_mappings': [m.get('sdcId') for m in
                                         v.get('mappedSdcInfo') or []],
                        'removable': removable})
    return out


def _remove_svc_orphan(driver: Any, orphan: dict[str, Any]) -> None:
    # -force removes its FlashCopy maps and host mappings too
    driver._helpers.ssh.rmvdisk(orphan['name'], force_unmap=True,
                                force_delete=True)


def _remove_powerflex_orphan(driver: Any, orphan: dict[str, Any]) -> None:
    # unmaps it from every SDC first, then removes this volume only
    driver.primary_client.remove_volume(orphan['id'])


_ORPHANS = {be.SVC: (_svc_orphans, _remove_svc_orphan),
            be.POWERFLEX: (_powerflex_orphans, _remove_powerflex_orphan)}


def reconcile(drivers: dict[str, Any], apply: bool) -> list[dict[str, Any]]:
    """Array objects Cinder does not know; removed only with ``apply``."""
    found = []
    for name, driver in drivers.items():
        kind = be.array_kind(driver.configuration)
        if kind not in _ORPHANS:
            continue
        list_orphans, remove = _ORPHANS[kind]
        for orphan in list_orphans(name, driver):
            orphan.setdefault('removable', True)
            orphan['removed'] = False
            if apply and orphan['removable']:
                remove(driver, orphan)
                orphan['removed'] = True
                LOG.info('Removed orphan %(kind)s %(name)s of backend '
                         '%(be)s.', {'kind': orphan['kind'],
                                     'name': orphan['name'], 'be': name})
            elif apply:
                LOG.warning('Orphan %(kind)s %(name)s of backend %(be)s '
                            'kept: volumes Cinder knows still share its '
                            'data.', {'kind': orphan['kind'],
                                      'name': orphan['name'], 'be': name})
            found.append(orphan)
    return found


def set_default_type(type_name: str, projects: list[str]) -> list[dict]:
    """Make ``type_name`` the default volume type of ``projects``."""
    ctx = cinder_context.get_admin_context()
    vtype = db_api.volume_type_get_by_name(ctx, type_name)
    out = []
    for project in projects:
        db_api.project_default_volume_type_set(ctx, vtype['id'], project)
        out.append({'project': project, 'volume_type': type_name,
                    'volume_type_id': vtype['id']})
    return out
