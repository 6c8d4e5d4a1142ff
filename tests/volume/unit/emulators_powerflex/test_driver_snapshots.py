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
"""Snapshots, clones and vTrees through Cinder's in-tree PowerFlex driver."""

from __future__ import annotations

import datetime

from cinder.tests.unit import utils as test_utils
from cinder.db import api as db
from cinder import exception
from cinder.volume.drivers.dell_emc.powerflex import rest_client

from cinder_dpm_ephemeral.emulators.powerflex import state
from tests.volume.unit.emulators_powerflex import base

GiB = base.GiB
KIB_GIB = base.KiB_PER_GiB
MiB = 1024 * 1024


class SnapshotTest(base.PowerFlexEmulatorTestCase):

    def _write(self, provider_id: str, offset: int, data: bytes) -> None:
        path = self.gw.array.luns.open_path(provider_id)
        with open(path, 'r+b') as f:
            f.seek(offset)
            f.write(data)

    def test_snapshot_joins_the_vtree_and_copies_nothing(self) -> None:
        vol = self.create_volume(size=16, thick=True)
        used = self.pool_usage()['used_kb']
        snap = self.create_snapshot(vol)
        src = self.array_volume(vol.provider_id)
        av = self.array_volume(snap.provider_id)
        self.assertEqual('Snapshot', av['type'])
        self.assertEqual(vol.provider_id, av['ancestor_id'])
        self.assertEqual(src['vtree_id'], av['vtree_id'])
        self.assertEqual(16 * KIB_GIB, av['size_kb'])
        self.assertEqual(16 * GiB, av['lun_bytes'])
        self.assertEqual(
            {src['vtree_id']: sorted([vol.provider_id, snap.provider_id])},
            self.inventory()['vtrees'])
        self.assertEqual({}, {k: v for k, v in
                              self.inventory()['lun_counters'].items() if v})
        self.assertEqual(used, self.pool_usage()['used_kb'])
        self.assertIsNotNone(av['snapshot_group_id'])

    def test_snapshot_keeps_its_point_in_time(self) -> None:
        vol = self.create_volume(size=8)
        self._write(vol.provider_id, 4096, b'before' * 100)
        luns = self.gw.array.luns
        before = luns.sha256(vol.provider_id, MiB)
        snap = self.create_snapshot(vol)
        self._write(vol.provider_id, 4096, b'after!' * 100)
        self.assertEqual(before, luns.sha256(snap.provider_id, MiB))
        self.assertNotEqual(before, luns.sha256(vol.provider_id, MiB))

    def test_volume_from_snapshot_is_extended_when_larger(self) -> None:
        vol = self.create_volume(size=8)
        snap = self.create_snapshot(vol)
        new = self.new_volume(size=12)
        update = self.driver.create_volume_from_snapshot(new, snap)
        self.assertEqual(16, update['size'])
        self.apply(new, update)
        av = self.array_volume(new.provider_id)
        self.assertEqual('Snapshot', av['type'])
        self.assertEqual(snap.provider_id, av['ancestor_id'])
        self.assertEqual(16 * KIB_GIB, av['size_kb'])
        self.assertEqual(16 * GiB, av['lun_bytes'])
        self.assertEqual(8 * KIB_GIB,
                         self.array_volume(snap.provider_id)['size_kb'])

    def test_clone_is_a_snapshot_of_the_source(self) -> None:
        src = self.create_volume(size=8)
        self._write(src.provider_id, 0, b'gold' * 1024)
        clone = self.new_volume(size=8)
        self.apply(clone, self.driver.create_cloned_volume(clone, src))
        av = self.array_volume(clone.provider_id)
        self.assertEqual(src.provider_id, av['ancestor_id'])
        self.assertEqual(self.array_volume(src.provider_id)['vtree_id'],
                         av['vtree_id'])
        luns = self.gw.array.luns
        self.assertEqual(luns.sha256(src.provider_id, MiB),
                         luns.sha256(clone.provider_id, MiB))

    def test_deleting_the_source_keeps_its_clone(self) -> None:
        src = self.create_volume(size=8)
        self._write(src.provider_id, 0, b'keep' * 1024)
        digest = self.gw.array.luns.sha256(src.provider_id, MiB)
        clone = self.new_volume(size=8)
        self.apply(clone, self.driver.create_cloned_volume(clone, src))
        self.driver.delete_volume(src)
        av = self.array_volume(clone.provider_id)
        self.assertIsNone(av['ancestor_id'])
        self.assertEqual({av['vtree_id']: [clone.provider_id]},
                         self.inventory()['vtrees'])
        self.assertEqual(digest,
                         self.gw.array.luns.sha256(clone.provider_id, MiB))
        self.driver.delete_volume(clone)
        self.assertArrayEmpty()

    def test_delete_snapshot_leaves_the_volume(self) -> None:
        vol = self.create_volume(size=8)
        snap = self.create_snapshot(vol)
        self.driver.delete_snapshot(snap)
        self.assertIsNone(self.array_volume(snap.provider_id))
        self.assertEqual([vol.provider_id],
                         [v['id'] for v in self.inventory()['volumes']])
        # Deleting it again (already gone) succeeds too.
        self.driver.delete_snapshot(snap)
        self.driver.delete_volume(vol)
        self.assertArrayEmpty()

    def test_revert_to_snapshot_restores_content(self) -> None:
        vol = self.create_volume(size=8)
        self._write(vol.provider_id, 0, b'v1' * 4096)
        snap = self.create_snapshot(vol)
        digest = self.gw.array.luns.sha256(snap.provider_id, MiB)
        self._write(vol.provider_id, 0, b'v2' * 4096)
        vol.size = 8
        snap.volume_size = 8
        self.driver.revert_to_snapshot(self.ctxt, vol, snap)
        self.assertEqual(
            digest, self.gw.array.luns.sha256(vol.provider_id, MiB))


class VTreeLimitTest(base.PowerFlexEmulatorTestCase):

    def test_126_snapshots_per_vtree(self) -> None:
        vol = self.create_volume(size=8)
        snaps = [self.create_snapshot(vol)
                 for _ in range(state.MAX_SNAPS_IN_VTREE)]
        self.assertEqual(rest_client.MAX_SNAPS_IN_VTREE, len(snaps))
        before = self.inventory()
        (members,) = before['vtrees'].values()
        self.assertEqual(state.MAX_SNAPS_IN_VTREE + 1, len(members))

        extra = test_utils.create_snapshot(self.ctxt, vol.id,
                                           testcase_instance=self)
        self.assertRaises(exception.SnapshotLimitReached,
                          self.driver.create_snapshot, extra)
        clone = self.new_volume(size=8)
        self.assertRaises(exception.SnapshotLimitReached,
                          self.driver.create_cloned_volume, clone, vol)
        after = self.inventory()
        self.assertEqual(before['volumes'], after['volumes'])
        self.assertEqual(before['luns'], after['luns'])

        # Room again once a snapshot is gone.
        self.driver.delete_snapshot(snaps[0])
        self.apply(extra, self.driver.create_snapshot(extra))
        self.assertIsNotNone(self.array_volume(extra.provider_id))

    def test_image_cache_vtree_size_limit(self) -> None:
        drv = self.make_driver(powerflex_max_image_cache_vtree_size=3)
        src = self.create_volume(size=8)
        db.image_volume_cache_create(
            self.ctxt, src.host, None, 'c0ffee00-0000-4000-8000-000000000001',
            datetime.datetime.now(datetime.UTC), src.id, src.size)
        for _ in range(2):
            clone = self.new_volume(size=8)
            self.apply(clone, drv.create_cloned_volume(clone, src))
        clone = self.new_volume(size=8)
        self.assertRaises(exception.SnapshotLimitReached,
                          drv.create_cloned_volume, clone, src)
        self.assertEqual(3, self.gw.api.calls['queryVTreeStatistics'])
        (members,) = self.inventory()['vtrees'].values()
        self.assertEqual(3, len(members))
