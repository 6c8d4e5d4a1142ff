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
"""PowerFlex snapshots as the golden image cache's clone interface.

A clone is a snapshot of the golden volume in the golden's vTree: no data
moves, the array only records which blocks are shared. A vTree holds at
most 126 snapshots; past that the array refuses (error 182) and the cache
makes another golden volume.
"""

from __future__ import annotations

import math
from typing import Any

from cinder import exception
from oslo_log import log as logging

from cinder_dpm_ephemeral.image_cache import driver as cache_driver

LOG = logging.getLogger(__name__)

GiB = 1024 ** 3
GRANULARITY_GB = 8
VTREE_SNAPSHOT_LIMIT = 126
ERR_TOO_MANY_SNAPS = 182


class PowerFlexClones(cache_driver.ArrayClones):
    """:class:`cinder_dpm_ephemeral.image_cache.backend.CloneBackend`."""

    max_clones_per_golden = VTREE_SNAPSHOT_LIMIT

    def _granular(self) -> bool:
        return not self.driver._get_client().check_powerflex_ec_version()

    def golden_size_gb(self, virtual_size: int) -> int:
        gb = max(1, math.ceil(virtual_size / GiB))
        if self._granular():
            gb = math.ceil(gb / GRANULARITY_GB) * GRANULARITY_GB
        return gb

    def thin_clone(self, golden: Any, volume: Any) -> dict | None:
        if (self._granular() and volume.size % GRANULARITY_GB and
                not self.driver.configuration.safe_get(
                    'powerflex_round_volume_capacity')):
            lower = volume.size - volume.size % GRANULARITY_GB
            raise exception.InvalidInput(reason=(
                f'PowerFlex allocates volumes in {GRANULARITY_GB} GiB units '
                f'and powerflex_round_volume_capacity is False: a '
                f'{volume.size} GiB volume cannot be created; request '
                f'{lower + GRANULARITY_GB} GiB'
                + (f' or {lower} GiB' if lower else '') +
                ' (any multiple of 8)'))
        # A snapshot in the golden's vTree, extended (rounded up to the
        # allocation unit) when the volume is larger; the model update
        # records the size the array really gave.
        return self.driver._create_volume_from_source(volume, golden)

    def supports(self, volume: Any) -> str | None:
        """Why a snapshot of a golden volume cannot be ``volume``, or None.

        A clone is what the in-tree driver makes for a volume from a
        source (``_create_volume_from_source``: a snapshot in the source's
        vTree, extended; compression is the vTree's), and it gets its QoS
        limits (``powerflex:iops_limit``...) the in-tree way, from the
        type, when it is mapped (``setMappedSdcLimits``). Replication
        needs a replicated source vTree (a golden is not replicated).
        """
        why = super().supports(volume)
        if why:
            return why
        if self.driver._is_failed_over:
            return 'the backend is failed over to its replication target'
        if volume.is_replicated():
            return ('replicated volume types are not cloned from golden '
                    'volumes')
        return None

    def reads_zeros(self, golden: Any) -> bool:
        """Whether the golden volume reads zeros where never written.

        Asks the array for the volume's storage pool: with zero padding
        ("every read from an area not previously written returns zeros")
        or fine granularity (zero-padded by nature) it does; a medium
        granularity pool without zero padding may return old data.
        """
        client = self.driver._get_client()
        info = client.query_volume(golden.provider_id)
        pool_id = info['storagePoolId']
        r, pool = client.execute_powerflex_get_request(
            '/instances/StoragePool::%(pool_id)s', pool_id=pool_id)
        if r.status_code != 200 or not isinstance(pool, dict):
            raise exception.VolumeBackendAPIException(data=(
                f'Golden volume {golden.id}: cannot read storage pool '
                f'{pool_id} to tell whether it reads zeros: {pool}'))
        return bool(pool.get('zeroPaddingEnabled') or
                    pool.get('dataLayout') == 'FineGranularity')

    def dependents(self, golden: Any) -> int:
        client = self.driver._get_client()
        try:
            info = client.query_volume(golden.provider_id)
        except exception.VolumeBackendAPIException:
            return 0
        stats = client.query_vtree_statistics(info['vtreeId'])
        return max(0, int(stats.get('numOfVolumes', 1)) - 1)

    def clone_counts(self, goldens: list[Any]) -> dict[str, int]:
        """Snapshots in each golden volume's vTree, in 1 + pools calls.

        ``queryBySelectedIds`` gives the goldens' vTree and storage pool
        ids in one request; each pool's volumes (``GET
        /api/instances/StoragePool::<id>/relationships/Volume``, PowerFlex
        REST API reference) are counted by vTree, as
        :meth:`dependents` counts one vTree. A snapshot lives in its
        source's pool. Without an answer for every golden volume (one
        removed meanwhile), each is asked on its own.
        """
        counts = {g.id: 0 for g in goldens}
        by_provider = {g.provider_id: g.id for g in goldens if g.provider_id}
        if not by_provider:
            return counts
        client = self.driver._get_client()
        r, vols = client.execute_powerflex_post_request(
            '/types/Volume/instances/action/queryBySelectedIds',
            {'ids': list(by_provider)})
        if r.status_code != 200 or not isinstance(vols, list) or \
                {v.get('id') for v in vols} != set(by_provider):
            return super().clone_counts(goldens)
        trees: dict[str, list[str]] = {}
        pools = set()
        for v in vols:
            trees.setdefault(v['vtreeId'], []).append(by_provider[v['id']])
            pools.add(v['storagePoolId'])
        members: dict[str, int] = {}
        for pool_id in sorted(pools):
            r, pool_vols = client.execute_powerflex_get_request(
                '/instances/StoragePool::%(pool_id)s/relationships/Volume',
                pool_id=pool_id)
            if r.status_code != 200 or not isinstance(pool_vols, list):
                raise exception.VolumeBackendAPIException(data=(
                    f'Cannot list the volumes of storage pool {pool_id}: '
                    f'{pool_vols}'))
            for v in pool_vols:
                tree = v.get('vtreeId')
                if tree in trees:
                    members[tree] = members.get(tree, 0) + 1
        for tree, golden_ids in trees.items():
            for golden_id in golden_ids:
                counts[golden_id] = max(0, members.get(tree, 1) - 1)
        return counts

    def delete_golden_lun(self, golden: Any) -> None:
        # Also without a provider_id: a golden whose create answer was
        # lost is found by name (PowerFlexEphemeralDriver.delete_volume).
        self.driver.delete_volume(golden)

    def is_clone_limit(self, error: Exception) -> bool:
        if isinstance(error, exception.SnapshotLimitReached):
            return True
        text = str(error)
        return ('Too many snapshots' in text or
                f'"rc": {ERR_TOO_MANY_SNAPS}' in text or
                f"'rc': {ERR_TOO_MANY_SNAPS}" in text)
