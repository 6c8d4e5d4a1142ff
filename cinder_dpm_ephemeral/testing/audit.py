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
"""Cinder's database against an emulated array: what is stuck, what leaked.

Used by the fault campaign (``./run faults``) and its functional test.
Run it with faults off and after the clean-ups had their chance:

* **stuck**: a volume (golden volumes included) still in a transitional
  state (``creating``, ``downloading``, ``deleting``, ``attaching``...),
  or an attachment still ``attaching``/``detaching``;
* **leaked**: an array object no Cinder row owns: a LUN (SVC vdisk,
  PowerFlex volume or snapshot) with no live volume behind it, a
  FlashCopy map whose target or source is not such a LUN, a host
  mapping or SDC mapping of a volume with no attachment (but a spare
  LUN's, attached ahead to its volume service and recorded so in its
  metadata: ``image_cache/spares.py``), an SVC host
  with no mapping left, and golden volumes no one needs (not ready,
  in error, or more than the cache's count limit once unused).
"""

from __future__ import annotations

from typing import Any

from cinder import context as cinder_context
from cinder import objects

from cinder_dpm_ephemeral.image_cache import cache
from cinder_dpm_ephemeral.image_cache import detach
from cinder_dpm_ephemeral.image_cache import spares

#: states a volume or attachment must never be left in
TRANSITIONAL = frozenset((
    'creating', 'downloading', 'deleting', 'attaching', 'detaching',
    'extending', 'reserved', 'uploading', 'retyping', 'backing-up',
    'restoring-backup', 'maintenance', 'awaiting-transfer'))


def cinder_view(ctx: Any = None) -> dict[str, Any]:
    """Live volumes (every project) and attachments, from Cinder's DB."""
    ctx = ctx or cinder_context.get_admin_context()
    vols = objects.VolumeList.get_all(ctx)
    attachments: dict[str, list[Any]] = {}
    for v in vols:
        for a in v.volume_attachment or []:
            attachments.setdefault(v.id, []).append(a)
    return {'volumes': {v.id: v for v in vols}, 'attachments': attachments}


def stuck(view: dict[str, Any]) -> list[str]:
    """Volumes and attachments left in a transitional state."""
    out = []
    for v in view['volumes'].values():
        if v.status in TRANSITIONAL or v.attach_status in TRANSITIONAL:
            out.append(f'volume {v.id} {v.status}/{v.attach_status}')
    for vid, atts in view['attachments'].items():
        for a in atts:
            if a.attach_status in TRANSITIONAL:
                out.append(f'attachment {a.id} of {vid} {a.attach_status}')
    return out


def _is_golden(v: Any) -> bool:
    return (v.metadata or {}).get(cache.MD_GOLDEN) == 'true'


def unneeded_goldens(view: dict[str, Any], dependents: dict[str, int],
                     max_count: int) -> list[str]:
    """Golden volumes no one needs (after a clean-up has run).

    Not ready or in error (a failed build the clean-up should have
    removed), or beyond ``max_count`` among those with no clone
    (``dependents``: golden id -> clones on the array).
    """
    out, idle = [], []
    for v in view['volumes'].values():
        if not _is_golden(v):
            continue
        ready = (v.metadata.get(cache.MD_STATE) == cache.STATE_READY and
                 v.status == 'available')
        if spares.is_spare(v) and v.status == 'available':
            continue    # a LUN made ahead (dpm_ephemeral_spare_golden_luns)
        if not ready:
            out.append(f'golden {v.id} {v.status}/'
                       f'{v.metadata.get(cache.MD_STATE)}')
        elif not dependents.get(v.id):
            idle.append(v.id)
    if max_count and len(idle) > max_count:
        out += [f'golden {g} over the count limit' for g in
                sorted(idle)[max_count:]]
    return out


def attached_ahead(view: dict[str, Any]) -> set[str]:
    """Spare LUNs mapped on purpose: attached ahead, the mapping recorded.

    ``detach_pending`` names the volume service that attached the spare
    and removes the mapping (when a build takes the spare, when it is
    removed, or after a restart of that service).
    """
    return {vid for vid, v in view['volumes'].items()
            if _is_golden(v) and spares.is_spare(v) and
            v.status == 'available' and
            v.metadata.get(detach.MD_DETACH_PENDING)}


def svc_hosts(inv: dict[str, Any]) -> list[str]:
    """The SVC's host objects, but the volume host's own while idle.

    The driver keeps the volume host's host object between golden builds
    (svc/host_maps.py): with nothing mapped to it, it is not a leak.
    """
    kept = {w.upper() for w in inv.get('volume_host_wwpns') or ()}
    mapped = {m['host_name'] for m in inv['host_mappings']}
    return [h['name'] for h in inv['hosts']
            if h['name'] in mapped or not kept or
            {w.upper() for w in h['wwpns']} != kept]


def svc_leaks(inv: dict[str, Any], view: dict[str, Any],
              max_count: int) -> dict[str, list[str]]:
    """Leaked SVC objects (see the module doc)."""
    vols = view['volumes']
    owned = {f'volume-{vid}' for vid in vols}
    vdisks = {v['name'] for v in inv['vdisks']}
    leaks: dict[str, list[str]] = {
        'luns': sorted(n for n in vdisks if n not in owned)}
    leaks['fcmaps'] = sorted(
        f"{m['name']} {m['source']}->{m['target']}" for m in inv['fcmaps']
        if m['source'] not in owned or m['target'] not in owned)
    attached = {f'volume-{vid}' for vid, atts in view['attachments'].items()
                if atts}
    attached |= {f'volume-{vid}' for vid in attached_ahead(view)}
    leaks['host_mappings'] = sorted(
        f"{m['host_name']}:{m['vdisk_name']}" for m in inv['host_mappings']
        if m['vdisk_name'] not in attached)
    mapped_hosts = {m['host_name'] for m in inv['host_mappings']}
    leaks['hosts'] = sorted(h for h in svc_hosts(inv)
                            if h not in mapped_hosts)
    sources: dict[str, int] = {}
    for m in inv['fcmaps']:
        sources[m['source']] = sources.get(m['source'], 0) + 1
    deps = {vid: sources.get(f'volume-{vid}', 0) for vid in vols}
    leaks['goldens'] = unneeded_goldens(view, deps, max_count)
    return leaks


def powerflex_leaks(inv: dict[str, Any], view: dict[str, Any],
                    max_count: int) -> dict[str, list[str]]:
    """Leaked PowerFlex objects (see the module doc)."""
    vols = view['volumes']
    by_provider = {v.provider_id: vid for vid, v in vols.items()
                   if v.provider_id}
    leaks: dict[str, list[str]] = {'luns': [], 'snapshots': []}
    for v in inv['volumes']:
        if v['id'] in by_provider:
            continue
        kind = 'snapshots' if v['ancestor_id'] else 'luns'
        leaks[kind].append(f"{v['id']} {v['name']}")
    attached = {vols[vid].provider_id for vid, atts in
                view['attachments'].items() if atts}
    attached |= {vols[vid].provider_id for vid in attached_ahead(view)}
    leaks['sdc_mappings'] = sorted(
        f"{v['id']}:{sdc}" for v in inv['volumes']
        for sdc in v['mapped_sdcs'] if v['id'] not in attached)
    snaps: dict[str, int] = {}
    for v in inv['volumes']:
        if v['ancestor_id']:
            snaps[v['ancestor_id']] = snaps.get(v['ancestor_id'], 0) + 1
    deps = {vid: snaps.get(v.provider_id, 0) for vid, v in vols.items()}
    leaks['goldens'] = unneeded_goldens(view, deps, max_count)
    return leaks


def audit(kind: str, inv: dict[str, Any], max_count: int = 0,
          ctx: Any = None) -> dict[str, Any]:
    """``{'stuck': [...], 'leaked': {kind: [...]}}`` for array ``kind``."""
    view = cinder_view(ctx)
    leaks = (svc_leaks if kind == 'svc' else powerflex_leaks)(
        inv, view, max_count)
    return {'stuck': stuck(view), 'leaked': leaks}


def count(result: dict[str, Any]) -> tuple[int, int]:
    """(stuck, leaked) totals of an :func:`audit` result."""
    return (len(result['stuck']),
            sum(len(v) for v in result['leaked'].values()))
