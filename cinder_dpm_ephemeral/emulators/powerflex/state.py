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
"""The emulated PowerFlex system: domains, pools, volumes, vTrees, SDCs.

One :class:`PowerFlexArray` holds the whole system and persists it to
``<state_dir>/powerflex-state.json`` (written atomically after every
change). The bytes of every volume live in the shared
:class:`~cinder_dpm_ephemeral.emulators.lunstore.LunStore`, one LUN per
volume whose id is the volume id.

What is modelled as on a real (medium granularity, mirrored) system:

* sizes in KiB, allocated in 8 GiB units: every size is rounded up to a
  multiple of 8 GiB, so a 1 GiB request yields an 8 GiB volume;
* a snapshot is a volume of type ``Snapshot`` in the vTree of its source
  (``vtreeId``), with ``ancestorVolumeId`` naming its source; it costs
  nothing at creation (a copy-on-write LUN clone, no bytes copied);
* at most :data:`MAX_SNAPS_IN_VTREE` (126) snapshots per vTree;
* volume names unique in the system, at most 31 characters (why the
  driver base64-encodes Cinder ids); ``mappedSdcInfo`` is ``null`` for an
  unmapped volume and a list of mappings otherwise;
* zero padding per storage pool (``zeroPaddingEnabled``, ``PoolSpec.
  zero_padding``): "zero padding ensures that every read from an area not
  previously written returns zeros" (Dell PowerFlex Technical Overview,
  storage pools; the in-tree driver refuses such pools unless
  ``powerflex_allow_non_padded_volumes``, because "existing data [can be]
  read off of a newly created volume"). In a pool without it, every
  volume, thin or thick, and every extension reads the old data of
  deleted volumes where it was never written (the LUN store's pool
  residue). A real thin volume leaks only inside partly written 1 MiB
  allocation units; the emulator shows the worse case everywhere;
* bytes the system copies are counted (:data:`COPY_COUNTER`).

Capacity, kept simple: each pool has a net (usable, after mirroring)
capacity. A thick volume reserves its whole size; a thin volume or a
snapshot consumes what its own LUN file holds (allocated blocks, rounded up
to 1 MiB), i.e. nothing until written. Thin volumes are not limited by an
over-provisioning ratio. Statistics report raw figures (twice the net ones,
as the two mirror copies do) where the real system does.
"""

from __future__ import annotations

import copy
import json
import os
import secrets
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cinder_dpm_ephemeral.emulators import files
from cinder_dpm_ephemeral.emulators import lunstore
from cinder_dpm_ephemeral.emulators.powerflex import errors, writes

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB
GRANULARITY_KB = 8 * GiB // KiB
MAX_SNAPS_IN_VTREE = 126
STATE_FILE = 'powerflex-state.json'
MAX_NAME_LEN = errors.MAX_NAME_LEN
#: bytes the system copies: the copy-on-write of blocks shared in a vTree
#: when a volume or snapshot sharing them is written (the LUN store counts
#: it when such a LUN is opened for I/O). Creating or removing a snapshot
#: moves none; this driver has no full-copy clone.
COPY_COUNTER = 'array_copied_bytes'
REMOVE_MODES = ('ONLY_ME', 'INCLUDING_DESCENDANTS', 'DESCENDANTS_ONLY',
                'WHOLE_VTREE')


@dataclass(frozen=True)
class PoolSpec:
    """A storage pool to create at first start: ``domain:name``."""

    domain: str
    name: str
    capacity_gb: int = 1024
    zero_padding: bool = True
    data_layout: str = 'MediumGranularity'


@dataclass(frozen=True)
class SdcSpec:
    """A data client (one per compute host), found by its ``guid``."""

    guid: str
    ip: str = '127.0.0.1'
    name: str | None = None


def _pool_key(pool_id: str) -> str:
    """The LUN store's name for the devices of a storage pool."""
    return f'sp-{pool_id}'


def round_kb(size_kb: int) -> int:
    """Round a size in KiB up to the 8 GiB allocation unit (at least one)."""
    units = max(1, -(-int(size_kb) // GRANULARITY_KB))
    return units * GRANULARITY_KB


def _pool_spec(item: PoolSpec | str | Mapping[str, Any]) -> PoolSpec:
    if isinstance(item, PoolSpec):
        return item
    if isinstance(item, str):
        domain, _, name = item.partition(':')
        if not name:
            raise ValueError(f'pool {item!r} is not "domain:pool"')
        return PoolSpec(domain, name)
    return PoolSpec(**dict(item))


def _sdc_spec(item: SdcSpec | str | Mapping[str, Any]) -> SdcSpec:
    if isinstance(item, SdcSpec):
        return item
    if isinstance(item, str):
        return SdcSpec(item)
    return SdcSpec(**dict(item))


class PowerFlexArray:
    """The system's objects and the operations the gateway exposes."""

    def __init__(self, state_dir: str | os.PathLike[str],
                 pools: Iterable[PoolSpec | str | Mapping[str, Any]] = (),
                 sdcs: Iterable[SdcSpec | str | Mapping[str, Any]] = (),
                 system_name: str = 'powerflex-emulator') -> None:
        self.state_dir = Path(state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.state_path = self.state_dir / STATE_FILE
        self.luns = lunstore.LunStore(self.state_dir)
        self.lock = threading.RLock()
        # The real limit; tests lower it to reach it quickly.
        self.vtree_snapshot_limit = MAX_SNAPS_IN_VTREE
        self.s = self._load()
        if not self.s['system']:
            self.s['system'] = {'id': self._new_id(), 'name': system_name}
        for p in pools:
            self._ensure_pool(_pool_spec(p))
        for c in sdcs:
            self._ensure_sdc(_sdc_spec(c))
        self._save()

    # -- persistence ----------------------------------------------------------
    def _load(self) -> dict[str, Any]:
        try:
            with open(self.state_path) as f:
                s = json.load(f)
        except FileNotFoundError:
            s = {}
        for key in ('domains', 'pools', 'volumes', 'vtrees', 'sdcs',
                    'snapshot_groups'):
            s.setdefault(key, {})
        s.setdefault('system', {})
        s.setdefault('seq', 0)
        return s

    def _save(self) -> None:
        files.write_text_atomic(
            self.state_path,
            json.dumps(self.s, sort_keys=True, separators=(',', ':')),
            fsync=True)

    def _new_id(self) -> str:
        """A 16 hex digit id, like the system's own (random + sequence)."""
        self.s['seq'] = int(self.s.get('seq', 0)) + 1
        return f'{secrets.token_hex(4)}{self.s["seq"]:08x}'

    def _ensure_pool(self, spec: PoolSpec) -> None:
        dom = self._domain_by_name(spec.domain)
        if dom is None:
            dom = {'id': self._new_id(), 'name': spec.domain}
            self.s['domains'][dom['id']] = dom
        for pool in self.s['pools'].values():
            if (pool['protectionDomainId'] == dom['id']
                    and pool['name'] == spec.name):
                return
        pid = self._new_id()
        self.s['pools'][pid] = {
            'id': pid, 'name': spec.name, 'protectionDomainId': dom['id'],
            'capacityKb': int(spec.capacity_gb) * GiB // KiB,
            'zeroPaddingEnabled': bool(spec.zero_padding),
            'dataLayout': spec.data_layout,
        }

    def _ensure_sdc(self, spec: SdcSpec) -> None:
        for sdc in self.s['sdcs'].values():
            if sdc['sdcGuid'].lower() == spec.guid.lower():
                return
        sid = self._new_id()
        self.s['sdcs'][sid] = {'id': sid, 'sdcGuid': spec.guid,
                               'sdcIp': spec.ip, 'name': spec.name}

    # -- lookups --------------------------------------------------------------
    def _domain_by_name(self, name: str) -> dict[str, Any] | None:
        for dom in self.s['domains'].values():
            if dom['name'] == name:
                return dom
        return None

    def _volume(self, vol_id: str) -> dict[str, Any]:
        try:
            return self.s['volumes'][vol_id]
        except (KeyError, TypeError):
            raise errors.volume_not_found()

    def _pool(self, pool_id: str) -> dict[str, Any]:
        try:
            return self.s['pools'][pool_id]
        except (KeyError, TypeError):
            raise errors.pool_not_found()

    def _sdc(self, sdc_id: str) -> dict[str, Any]:
        try:
            return self.s['sdcs'][sdc_id]
        except (KeyError, TypeError):
            raise errors.sdc_not_found()

    def _check_name_free(self, name: str, skip: str | None = None) -> None:
        if len(name) > MAX_NAME_LEN:
            raise errors.name_too_long()
        for vol in self.s['volumes'].values():
            if vol['name'] == name and vol['id'] != skip:
                raise errors.name_in_use()

    def _vtree_members(self, vtree_id: str) -> list[dict[str, Any]]:
        return [v for v in self.s['volumes'].values()
                if v['vtreeId'] == vtree_id]

    # -- capacity -------------------------------------------------------------
    def _written_kb(self, vol_id: str, luns: Mapping[str, Any]) -> int:
        """KiB held by the volume's own LUN file (0 while it shares)."""
        meta = luns.get(vol_id)
        if meta is None or meta.get('base') is not None:
            return 0
        try:
            st = os.stat(self.luns.root / f'{vol_id}.lun')
        except FileNotFoundError:
            return 0
        allocated = st.st_blocks * 512
        return -(-allocated // MiB) * MiB // KiB

    def _pool_usage(self, pool_id: str) -> dict[str, int]:
        luns = self.luns.list()
        thick = thin_alloc = thin_used = snap_used = 0
        n_vols = n_snaps = 0
        vtrees = set()
        for v in self.s['volumes'].values():
            if v['storagePoolId'] != pool_id:
                continue
            vtrees.add(v['vtreeId'])
            if v['volumeType'] == 'ThickProvisioned':
                thick += v['sizeInKb']
                n_vols += 1
            elif v['volumeType'] == 'ThinProvisioned':
                thin_alloc += v['sizeInKb']
                thin_used += self._written_kb(v['id'], luns)
                n_vols += 1
            else:
                snap_used += self._written_kb(v['id'], luns)
                n_snaps += 1
        return {'thick': thick, 'thin_alloc': thin_alloc,
                'thin_used': thin_used, 'snap_used': snap_used,
                'used': thick + thin_used + snap_used,
                'volumes': n_vols, 'snapshots': n_snaps,
                'vtrees': len(vtrees)}

    def _free_kb(self, pool_id: str) -> int:
        pool = self._pool(pool_id)
        return pool['capacityKb'] - self._pool_usage(pool_id)['used']

    def pool_statistics(self, pool_id: str) -> dict[str, Any]:
        """The pool's Statistics relationship (raw = 2 x net figures)."""
        with self.lock:
            pool = self._pool(pool_id)
            u = self._pool_usage(pool_id)
            cap = pool['capacityKb']
            free = max(0, cap - u['used'])
            return {
                'capacityLimitInKb': 2 * cap,
                'maxCapacityInKb': 2 * cap,
                'spareCapacityInKb': 0,
                'capacityInUseInKb': 2 * u['used'],
                'unusedCapacityInKb': 2 * free,
                'netCapacityInUseInKb': u['used'],
                'netUnusedCapacityInKb': free,
                'capacityAvailableForVolumeAllocationInKb':
                    free // GRANULARITY_KB * GRANULARITY_KB,
                'thickCapacityInUseInKb': 2 * u['thick'],
                'thinCapacityAllocatedInKb': 2 * u['thin_alloc'],
                'thinCapacityInUseInKb': 2 * u['thin_used'],
                'snapCapacityInUseInKb': 2 * u['snap_used'],
                'snapshotCapacityInKb': 2 * u['snap_used'],
                'netThickInUseInKb': u['thick'],
                'netThinAllocatedInKb': u['thin_alloc'],
                'numOfVolumes': u['volumes'] + u['snapshots'],
                'numOfSnapshots': u['snapshots'],
                'numOfVtrees': u['vtrees'],
            }

    # -- read views -----------------------------------------------------------
    def system(self) -> dict[str, Any]:
        with self.lock:
            sys_ = self.s['system']
            return {'id': sys_['id'], 'name': sys_['name'],
                    'systemVersionName': 'DellEMC PowerFlex Version',
                    'mdmManagementPort': 6611,
                    'restrictedSdcModeEnabled': False,
                    'systemNqn': ('nqn.1988-11.com.dell:powerflex:00:'
                                  + sys_['id']),
                    'links': self._links('System', sys_['id'])}

    @staticmethod
    def _links(kind: str, oid: str) -> list[dict[str, str]]:
        return [{'rel': 'self', 'href': f'/api/instances/{kind}::{oid}'}]

    def domain_id_by_name(self, name: str) -> str:
        with self.lock:
            dom = self._domain_by_name(name)
            if dom is None:
                raise errors.domain_not_found()
            return dom['id']

    def domain(self, domain_id: str) -> dict[str, Any]:
        with self.lock:
            try:
                dom = self.s['domains'][domain_id]
            except KeyError:
                raise errors.domain_not_found()
            return {'id': dom['id'], 'name': dom['name'],
                    'systemId': self.s['system']['id'],
                    'protectionDomainState': 'Active',
                    'links': self._links('ProtectionDomain', dom['id'])}

    def domains(self, ids: Iterable[str] | None = None) -> list[dict]:
        with self.lock:
            wanted = list(self.s['domains']) if ids is None else list(ids)
            return [self.domain(i) for i in wanted]

    def pool_id_by_name(self, domain_id: str, name: str) -> str:
        with self.lock:
            for pool in self.s['pools'].values():
                if (pool['protectionDomainId'] == domain_id
                        and pool['name'] == name):
                    return pool['id']
            raise errors.pool_not_found()

    def pool(self, pool_id: str) -> dict[str, Any]:
        with self.lock:
            p = self._pool(pool_id)
            return {'id': p['id'], 'name': p['name'],
                    'protectionDomainId': p['protectionDomainId'],
                    'zeroPaddingEnabled': p['zeroPaddingEnabled'],
                    'dataLayout': p['dataLayout'],
                    'useRmcache': False, 'useRfcache': False,
                    'sparePercentage': 0,
                    'capacityAlertHighThreshold': 80,
                    'capacityAlertCriticalThreshold': 90,
                    'links': self._links('StoragePool', p['id'])}

    def pools(self) -> list[dict[str, Any]]:
        with self.lock:
            return [self.pool(i) for i in self.s['pools']]

    def volume(self, vol_id: str) -> dict[str, Any]:
        with self.lock:
            return self._render_volume(self._volume(vol_id))

    def _render_volume(self, v: dict[str, Any]) -> dict[str, Any]:
        mapped = None
        if v['mappings']:
            mapped = []
            for m in v['mappings']:
                sdc = self.s['sdcs'].get(m['sdcId'], {})
                mapped.append({
                    'sdcId': m['sdcId'], 'sdcIp': sdc.get('sdcIp'),
                    'sdcName': sdc.get('name'),
                    'limitIops': m['limitIops'],
                    'limitBwInMbps': m['limitBwInMbps'],
                    'accessMode': m['accessMode'],
                    'isDirectBufferMapping': False, 'hostType': 'SdcHost',
                    'nqn': None})
        out = {k: v[k] for k in (
            'id', 'name', 'sizeInKb', 'storagePoolId', 'vtreeId',
            'ancestorVolumeId', 'volumeType', 'creationTime',
            'consistencyGroupId', 'compressionMethod')}
        out.update({
            'mappedSdcInfo': mapped,
            'dataLayout': self.s['pools'][v['storagePoolId']]['dataLayout'],
            'useRmcache': False, 'isObfuscated': False,
            'notGenuineSnapshot': False, 'accessModeLimit': 'ReadWrite',
            'volumeReplicationState': 'UnmarkedForReplication',
            'managedBy': 'ScaleIO',
            'links': self._links('Volume', v['id']) + [
                {'rel': '/api/parent/relationship/vtreeId',
                 'href': f'/api/instances/VTree::{v["vtreeId"]}'},
                {'rel': '/api/parent/relationship/storagePoolId',
                 'href': '/api/instances/StoragePool::'
                         + v['storagePoolId']}],
        })
        return out

    def volumes(self, pool_id: str | None = None,
                sdc_id: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            out = []
            for v in self.s['volumes'].values():
                if pool_id is not None and v['storagePoolId'] != pool_id:
                    continue
                if sdc_id is not None and not any(
                        m['sdcId'] == sdc_id for m in v['mappings']):
                    continue
                out.append(self._render_volume(v))
            return out

    def volume_id_by_name(self, name: str) -> str:
        with self.lock:
            for v in self.s['volumes'].values():
                if v['name'] == name:
                    return v['id']
            raise errors.volume_not_found()

    def vtree(self, vtree_id: str) -> dict[str, Any]:
        with self.lock:
            t = self.s['vtrees'].get(vtree_id)
            if t is None:
                raise errors.PowerFlexError('Could not find the VTree',
                                            errors.VOLUME_NOT_FOUND)
            return {'id': t['id'], 'name': t.get('name'),
                    'rootVolumes': [t['rootVolumeId']],
                    'baseVolumeId': t['rootVolumeId'],
                    'storagePoolId': t['storagePoolId'],
                    'dataLayout':
                        self.s['pools'][t['storagePoolId']]['dataLayout'],
                    'vtreeMigrationInfo': {
                        'migrationStatus': 'NotInMigration',
                        'migrationPauseReason': None,
                        'sourceStoragePoolId': t['storagePoolId'],
                        'destinationStoragePoolId': None,
                        'migrationQueuePosition': 0},
                    'links': self._links('VTree', t['id'])}

    def vtree_statistics(self, vtree_id: str) -> dict[str, Any]:
        with self.lock:
            self.vtree(vtree_id)
            members = self._vtree_members(vtree_id)
            luns = self.luns.list()
            return {
                'numOfVolumes': len(members),
                'numOfSnapshots': sum(1 for v in members
                                      if v['volumeType'] == 'Snapshot'),
                'baseNetCapacityInUseInKb': sum(
                    self._written_kb(v['id'], luns) for v in members),
                'netProvisionedAddressesInKb': max(
                    (v['sizeInKb'] for v in members), default=0),
            }

    def sdcs(self) -> list[dict[str, Any]]:
        with self.lock:
            return [self.sdc(i) for i in self.s['sdcs']]

    def sdc(self, sdc_id: str) -> dict[str, Any]:
        with self.lock:
            c = self._sdc(sdc_id)
            return {'id': c['id'], 'sdcGuid': c['sdcGuid'],
                    'sdcIp': c['sdcIp'], 'sdcIps': [c['sdcIp']],
                    'name': c['name'], 'sdcApproved': True,
                    'mdmConnectionState': 'Connected', 'osType': 'Linux',
                    'hostType': 'SdcHost', 'sdcType': 'AppSdc',
                    'systemId': self.s['system']['id'],
                    'links': self._links('Sdc', c['id'])}

    # -- volume lifecycle -----------------------------------------------------
    def create_volume(self, name: str, size_kb: int, pool_id: str,
                      domain_id: str | None = None,
                      volume_type: str = 'ThinProvisioned',
                      compression: str | None = None) -> str:
        if volume_type not in ('ThinProvisioned', 'ThickProvisioned'):
            raise errors.bad_request(f'Invalid volumeType {volume_type}')
        if size_kb <= 0:
            raise errors.bad_request('volumeSizeInKb must be positive')
        with self.lock:
            pool = self._pool(pool_id)
            if domain_id and pool['protectionDomainId'] != domain_id:
                raise errors.pool_not_found()
            if not name:
                name = None
            else:
                self._check_name_free(name)
            if (volume_type == 'ThickProvisioned'
                    and pool['dataLayout'] == 'FineGranularity'):
                raise errors.thick_in_fine_granularity()
            size = round_kb(size_kb)
            if (volume_type == 'ThickProvisioned'
                    and size > self._free_kb(pool_id)):
                raise errors.insufficient_capacity()
            vol_id = self._new_id()
            vtree_id = self._new_id()
            # Only an unpadded pool ever shows old data: only there does
            # the store keep what deleted volumes leave behind.
            padded = pool['zeroPaddingEnabled']
            self.luns.create(vol_id, size * KiB,
                             pool=None if padded else _pool_key(pool_id),
                             reads_zeros=padded, cow_counter=COPY_COUNTER)
            self.s['vtrees'][vtree_id] = {
                'id': vtree_id, 'rootVolumeId': vol_id, 'name': name,
                'storagePoolId': pool_id}
            self.s['volumes'][vol_id] = {
                'id': vol_id, 'name': name, 'sizeInKb': size,
                'storagePoolId': pool_id, 'vtreeId': vtree_id,
                'ancestorVolumeId': None, 'volumeType': volume_type,
                'creationTime': int(time.time()),
                'consistencyGroupId': None,
                'compressionMethod': (compression or 'None')
                if pool['dataLayout'] == 'FineGranularity'
                else 'NotApplicable',
                'mappings': []}
            self._save()
            return vol_id

    def snapshot_volumes(self, defs: list[Mapping[str, Any]]
                         ) -> dict[str, Any]:
        """Snapshot every ``{volumeId, snapshotName}`` at one instant.

        All or nothing: every definition is checked (source exists, name
        free, vTree below its snapshot limit) before anything is made.
        """
        if not defs:
            raise errors.bad_request('snapshotDefs must not be empty')
        with self.lock:
            per_tree: dict[str, int] = {}
            names: set[str] = set()
            for d in defs:
                src = self._volume(str(d.get('volumeId')))
                name = d.get('snapshotName') or None
                if name is not None:
                    if name in names:
                        raise errors.name_in_use()
                    self._check_name_free(name)
                    names.add(name)
                tree = src['vtreeId']
                per_tree[tree] = per_tree.get(tree, 0) + 1
                snaps = sum(1 for v in self._vtree_members(tree)
                            if v['volumeType'] == 'Snapshot')
                if snaps + per_tree[tree] > self.vtree_snapshot_limit:
                    raise errors.too_many_snapshots(src['id'])
            group_id = self._new_id()
            ids = []
            now = int(time.time())
            for d in defs:
                src = self._volume(str(d['volumeId']))
                snap_id = self._new_id()
                self.luns.clone(src['id'], snap_id)
                writes.snapshot_taken(src)
                self.s['volumes'][snap_id] = {
                    'id': snap_id, 'name': d.get('snapshotName') or None,
                    'sizeInKb': src['sizeInKb'],
                    'storagePoolId': src['storagePoolId'],
                    'vtreeId': src['vtreeId'],
                    'ancestorVolumeId': src['id'],
                    'volumeType': 'Snapshot', 'creationTime': now,
                    'consistencyGroupId': group_id,
                    'compressionMethod': src['compressionMethod'],
                    'mappings': []}
                ids.append(snap_id)
            self.s['snapshot_groups'][group_id] = ids
            self._save()
            return {'volumeIdList': ids, 'snapshotGroupId': group_id}

    def set_volume_size(self, vol_id: str, size_gb: int) -> None:
        with self.lock:
            v = self._volume(vol_id)
            new = round_kb(int(size_gb) * GiB // KiB)
            if new < v['sizeInKb']:
                raise errors.size_decrease()
            if new == v['sizeInKb']:
                return
            if (v['volumeType'] == 'ThickProvisioned'
                    and new - v['sizeInKb']
                    > self._free_kb(v['storagePoolId'])):
                raise errors.insufficient_capacity()
            pool = self._pool(v['storagePoolId'])
            self.luns.resize(vol_id, new * KiB,
                             reads_zeros=pool['zeroPaddingEnabled'])
            v['sizeInKb'] = new
            self._save()

    def set_volume_name(self, vol_id: str, name: str) -> None:
        with self.lock:
            v = self._volume(vol_id)
            if not name:
                raise errors.bad_request('newName must not be empty')
            self._check_name_free(name, skip=vol_id)
            v['name'] = name
            self._save()

    def _descendants(self, vol_id: str) -> list[str]:
        out: list[str] = []
        todo = [vol_id]
        while todo:
            cur = todo.pop()
            for v in self.s['volumes'].values():
                if v['ancestorVolumeId'] == cur:
                    out.append(v['id'])
                    todo.append(v['id'])
        return out

    def remove_volume(self, vol_id: str, mode: str = 'ONLY_ME') -> list[str]:
        """Remove a volume (and, by ``mode``, its relatives); their LUNs."""
        if mode not in REMOVE_MODES:
            raise errors.bad_request(f'Invalid removeMode {mode}')
        with self.lock:
            v = self._volume(vol_id)
            if mode == 'ONLY_ME':
                doomed = [vol_id]
            elif mode == 'INCLUDING_DESCENDANTS':
                doomed = [vol_id] + self._descendants(vol_id)
            elif mode == 'DESCENDANTS_ONLY':
                doomed = self._descendants(vol_id)
            else:
                doomed = [m['id'] for m in self._vtree_members(v['vtreeId'])]
            for d in doomed:
                if self.s['volumes'][d]['mappings']:
                    raise errors.volume_is_mapped()
            for d in doomed:
                gone = self.s['volumes'].pop(d)
                # Children of a removed volume now descend from its parent.
                for other in self.s['volumes'].values():
                    if other['ancestorVolumeId'] == d:
                        other['ancestorVolumeId'] = gone['ancestorVolumeId']
                self.luns.delete(d)
            tree = v['vtreeId']
            members = self._vtree_members(tree)
            if not members:
                self.s['vtrees'].pop(tree, None)
            elif self.s['vtrees'][tree]['rootVolumeId'] in doomed:
                self.s['vtrees'][tree]['rootVolumeId'] = members[0]['id']
            for gid, ids in list(self.s['snapshot_groups'].items()):
                left = [i for i in ids if i in self.s['volumes']]
                if left:
                    self.s['snapshot_groups'][gid] = left
                else:
                    del self.s['snapshot_groups'][gid]
            self._save()
            return doomed

    def overwrite_volume_content(self, vol_id: str, src_id: str) -> None:
        """Revert ``vol_id`` to ``src_id`` (same vTree), copy-on-write."""
        with self.lock:
            v = self._volume(vol_id)
            src = self._volume(src_id)
            if v['vtreeId'] != src['vtreeId']:
                raise errors.not_same_vtree()
            if src['sizeInKb'] > v['sizeInKb']:
                raise errors.size_decrease()
            self.luns.copy_data(src_id, vol_id)
            self._save()

    # -- mapping --------------------------------------------------------------
    def add_mapped_sdc(self, vol_id: str, sdc_id: str,
                       allow_multiple: bool = False,
                       access_mode: str = 'ReadWrite') -> None:
        with self.lock:
            v = self._volume(vol_id)
            self._sdc(sdc_id)
            if any(m['sdcId'] == sdc_id for m in v['mappings']):
                raise errors.already_mapped()
            if v['mappings'] and not allow_multiple:
                raise errors.multi_map_not_allowed()
            v['mappings'].append({'sdcId': sdc_id, 'limitIops': 0,
                                  'limitBwInMbps': 0,
                                  'accessMode': access_mode})
            self._save()

    def remove_mapped_sdc(self, vol_id: str, sdc_id: str | None = None,
                          all_sdcs: bool = False) -> None:
        with self.lock:
            v = self._volume(vol_id)
            if all_sdcs:
                if not v['mappings']:
                    raise errors.not_mapped()
                v['mappings'] = []
            else:
                self._sdc(str(sdc_id))
                left = [m for m in v['mappings'] if m['sdcId'] != sdc_id]
                if len(left) == len(v['mappings']):
                    raise errors.not_mapped()
                v['mappings'] = left
            self._save()

    def set_mapped_sdc_limits(self, vol_id: str, sdc_id: str,
                              bandwidth_kbps: int | None = None,
                              iops: int | None = None) -> None:
        with self.lock:
            v = self._volume(vol_id)
            for m in v['mappings']:
                if m['sdcId'] == sdc_id:
                    if bandwidth_kbps is not None:
                        m['limitBwInMbps'] = int(bandwidth_kbps) // 1024
                    if iops is not None:
                        m['limitIops'] = int(iops)
                    self._save()
                    return
            raise errors.not_mapped()

    # -- for tests and operators ----------------------------------------------
    def inventory(self) -> dict[str, Any]:
        """Everything the system holds (sorted by id), for leak checks."""
        with self.lock:
            luns = self.luns.list()
            pools = []
            for p in sorted(self.s['pools'].values(),
                            key=lambda x: x['id']):
                u = self._pool_usage(p['id'])
                pools.append({
                    'id': p['id'], 'name': p['name'],
                    'domain': self.s['domains'][p['protectionDomainId']]
                    ['name'],
                    'capacity_kb': p['capacityKb'], 'used_kb': u['used'],
                    'free_kb': p['capacityKb'] - u['used'],
                    'thick_kb': u['thick'], 'thin_allocated_kb':
                        u['thin_alloc']})
            vols = []
            for v in sorted(self.s['volumes'].values(),
                            key=lambda x: x['id']):
                vols.append({
                    'id': v['id'], 'name': v['name'],
                    'type': v['volumeType'], 'size_kb': v['sizeInKb'],
                    'pool_id': v['storagePoolId'], 'vtree_id': v['vtreeId'],
                    'ancestor_id': v['ancestorVolumeId'],
                    'snapshot_group_id': v['consistencyGroupId'],
                    'mapped_sdcs': [m['sdcId'] for m in v['mappings']],
                    'mappings': copy.deepcopy(v['mappings']),
                    'lun_bytes': luns.get(v['id'], {}).get('size'),
                    'own_bytes': int(v.get('own_bytes', 0))})
            return {
                'system': dict(self.s['system']),
                'domains': [dict(self.s['domains'][k])
                            for k in sorted(self.s['domains'])],
                'pools': pools,
                'volumes': vols,
                'vtrees': {t: sorted(m['id'] for m in
                                     self._vtree_members(t))
                           for t in self.s['vtrees']},
                'sdcs': [dict(self.s['sdcs'][k])
                         for k in sorted(self.s['sdcs'])],
                'luns': sorted(luns),
                'lun_counters': self.luns.counters(),
            }


def volume_seen_by(state_dir: str | os.PathLike[str], sdc_guid: str,
                   volume_id: str) -> bool:
    """Whether the SDC ``sdc_guid`` shows volume ``volume_id`` as a device.

    A real SDC makes a block device (``/dev/disk/by-id/emc-vol-<system>-
    <volume id>``, where os-brick's ScaleIO connector looks for it) for the
    volumes mapped to it, and none for any other. Read from the state the
    emulator saved before it answered the mapping call.
    """
    try:
        with open(Path(state_dir) / STATE_FILE) as f:
            s = json.load(f)
    except FileNotFoundError:
        return False
    sdcs = {k for k, v in s.get('sdcs', {}).items()
            if str(v.get('sdcGuid', '')).lower() == sdc_guid.lower()}
    volume = s.get('volumes', {}).get(volume_id) or {}
    return any(m.get('sdcId') in sdcs for m in volume.get('mappings', ()))
