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

"""Zero padding and bytes copied, through Cinder's in-tree PowerFlex driver.

A pool without zero padding gives new volumes extents that still hold the
data of deleted ones; the in-tree driver knows it (it refuses such pools
unless ``powerflex_allow_non_padded_volumes``). Snapshots move no bytes;
writing a volume that shares blocks with snapshots does (copy-on-write).
"""

from __future__ import annotations

from cinder import exception

from cinder_dpm_ephemeral.emulators.powerflex import state
from tests.volume.unit.emulators_powerflex import base

MiB = 1024 * 1024
GiB = 1024 * MiB
PATTERN = b'deleted-volume:)' * 4096          # 64 KiB


class _Helpers:
    gw: object

    def write(self, provider_id: str, offset: int, data: bytes) -> None:
        with open(self.gw.array.luns.open_path(provider_id), 'r+b') as f:
            f.seek(offset)
            f.write(data)

    def read(self, provider_id: str, offset: int, length: int) -> bytes:
        return self.gw.array.luns.read(provider_id, offset, length)

    def leave_old_data(self) -> None:
        """A volume written with :data:`PATTERN` at 3 MiB, then deleted."""
        old = self.create_volume()
        self.write(old.provider_id, 3 * MiB, PATTERN)
        self.driver.delete_volume(old)

    def copied(self) -> int:
        return self.inventory()['lun_counters'].get(state.COPY_COUNTER, 0)


class NoZeroPaddingTest(_Helpers, base.PowerFlexEmulatorTestCase):
    POOL_ZERO_PADDING = False

    def setUp(self) -> None:
        super().setUp()
        self.driver = self.make_driver(
            powerflex_allow_non_padded_volumes=True)

    def test_pool_says_so_and_in_tree_driver_refuses_by_default(self) -> None:
        pool_id = self.inventory()['pools'][0]['id']
        self.assertFalse(self.gw.array.pool(pool_id)['zeroPaddingEnabled'])
        strict = self.make_driver(powerflex_allow_non_padded_volumes=False)
        self.assertRaises(exception.VolumeBackendAPIException,
                          strict.create_volume, self.new_volume())

    def test_new_volumes_read_deleted_data_where_unwritten(self) -> None:
        self.leave_old_data()
        for thick in (False, True):
            vol = self.create_volume(thick=thick)
            self.assertEqual(PATTERN, self.read(vol.provider_id, 3 * MiB,
                                                len(PATTERN)))

    def test_extension_reads_deleted_data(self) -> None:
        small = self.create_volume(size=8)
        old = self.create_volume(size=16)
        self.write(old.provider_id, 8 * GiB + 3 * MiB, PATTERN)
        self.driver.delete_volume(old)
        self.assertEqual(bytes(64), self.read(small.provider_id, 3 * MiB,
                                              64))
        self.driver.extend_volume(small, 16)
        self.assertEqual(PATTERN, self.read(small.provider_id,
                                            8 * GiB + 3 * MiB,
                                            len(PATTERN)))


class ZeroPaddingTest(_Helpers, base.PowerFlexEmulatorTestCase):

    def test_pool_says_so(self) -> None:
        pool_id = self.inventory()['pools'][0]['id']
        self.assertTrue(self.gw.array.pool(pool_id)['zeroPaddingEnabled'])

    def test_new_volumes_read_zeros(self) -> None:
        self.leave_old_data()
        for thick in (False, True):
            vol = self.create_volume(thick=thick)
            self.assertEqual(bytes(len(PATTERN)),
                             self.read(vol.provider_id, 3 * MiB,
                                       len(PATTERN)))


class BytesCopiedTest(_Helpers, base.PowerFlexEmulatorTestCase):

    def test_snapshots_and_removals_copy_nothing(self) -> None:
        vol = self.create_volume()
        self.write(vol.provider_id, 0, b'x' * (2 * MiB))
        snap = self.create_snapshot(vol)
        clone = self.new_volume()
        self.apply(clone, self.driver.create_cloned_volume(clone, vol))
        self.driver.delete_snapshot(snap)
        self.driver.delete_volume(clone)
        self.assertEqual(0, self.copied())

    def test_writing_a_shared_volume_counts_copy_on_write(self) -> None:
        vol = self.create_volume()
        self.write(vol.provider_id, 0, b'x' * (2 * MiB))
        clone = self.new_volume()
        self.apply(clone, self.driver.create_cloned_volume(clone, vol))
        self.write(clone.provider_id, 0, b'y')
        self.assertEqual(2 * MiB, self.copied())
