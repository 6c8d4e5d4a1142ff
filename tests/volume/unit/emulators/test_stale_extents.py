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

"""Old data on new LUNs, and copy-on-write counting, in the LUN store and
the emulated SVC: what a LUN that is not known to read zeros shows where it
was never written."""

from __future__ import annotations

import fixtures
import testtools

from cinder_dpm_ephemeral.emulators import lunstore
from tests.volume.unit.emulators import svc_base

MiB = 1024 * 1024
PATTERN = b'OLD-TENANT-DATA!' * 4096          # 64 KiB, easy to spot


def write(store: lunstore.LunStore, lun: str, offset: int,
          data: bytes) -> None:
    with open(store.open_path(lun), 'r+b') as f:
        f.seek(offset)
        f.write(data)


class ResidueTest(testtools.TestCase):
    """The store's pool residue: deleted data on reused extents."""

    def setUp(self) -> None:
        super().setUp()
        self.store = lunstore.LunStore(self.useFixture(
            fixtures.TempDir()).path)
        self.store.create('old', 8 * MiB, pool='p1')
        write(self.store, 'old', 2 * MiB, PATTERN)
        self.store.delete('old')

    def test_non_zeroing_lun_reads_deleted_data_where_unwritten(self) -> None:
        self.store.create('new', 8 * MiB, pool='p1', reads_zeros=False)
        self.assertEqual(PATTERN, self.store.read('new', 2 * MiB,
                                                  len(PATTERN)))
        # what is written replaces it; the rest still shows it
        write(self.store, 'new', 2 * MiB, b'\1' * 4096)
        self.assertEqual(b'\1' * 4096 + PATTERN[4096:],
                         self.store.read('new', 2 * MiB, len(PATTERN)))
        self.assertEqual(8 * MiB, self.store.size('new'))

    def test_zeroing_lun_and_other_pool_read_zeros(self) -> None:
        self.store.create('zero', 8 * MiB, pool='p1')
        self.store.create('elsewhere', 8 * MiB, pool='p2',
                          reads_zeros=False)
        for lun in ('zero', 'elsewhere'):
            self.assertEqual(bytes(len(PATTERN)),
                             self.store.read(lun, 2 * MiB, len(PATTERN)))

    def test_extension_of_non_zeroing_lun_reads_deleted_data(self) -> None:
        self.store.create('small', MiB, pool='p1')
        self.store.resize('small', 4 * MiB)
        self.assertEqual(bytes(64), self.store.read('small', 2 * MiB, 64))
        self.store.resize('small', 6 * MiB, reads_zeros=False)
        # the first extension read zeros and keeps them (it is not
        # re-extended); the second is on old extents
        self.assertEqual(bytes(64), self.store.read('small', 2 * MiB, 64))
        self.store.create('big', MiB, pool='p1')
        self.store.resize('big', 8 * MiB, reads_zeros=False)
        self.assertEqual(PATTERN, self.store.read('big', 2 * MiB,
                                                  len(PATTERN)))

    def test_extension_of_a_clone_keeps_shared_part(self) -> None:
        self.store.create('gold', MiB, pool='p1')
        write(self.store, 'gold', 0, b'G' * 4096)
        self.store.clone('gold', 'snap')
        self.store.resize('snap', 4 * MiB, reads_zeros=False)
        self.assertEqual(b'G' * 4096, self.store.read('snap', 0, 4096))
        self.assertEqual(PATTERN, self.store.read('snap', 2 * MiB,
                                                  len(PATTERN)))
        self.assertEqual(b'G' * 4096, self.store.read('gold', 0, 4096))


class CopyOnWriteCounterTest(testtools.TestCase):

    def setUp(self) -> None:
        super().setUp()
        self.store = lunstore.LunStore(self.useFixture(
            fixtures.TempDir()).path)
        self.store.create('gold', 16 * MiB, cow_counter='copied')
        write(self.store, 'gold', 0, b'x' * (3 * MiB))

    def copied(self) -> int:
        return self.store.counters().get('copied', 0)

    def test_clone_and_delete_copy_nothing(self) -> None:
        self.store.clone('gold', 's1')
        self.store.clone('s1', 's2')
        self.store.delete('s2')
        self.assertEqual(0, self.copied())

    def test_opening_a_clone_counts_its_shared_bytes(self) -> None:
        self.store.clone('gold', 's1')
        self.store.open_path('s1')
        self.assertEqual(3 * MiB, self.copied())

    def test_opening_a_source_counts_what_its_clones_copy(self) -> None:
        self.store.clone('gold', 's1')
        self.store.clone('gold', 's2')
        self.store.open_path('gold')
        self.assertEqual(6 * MiB, self.copied())

    def test_luns_without_counter_count_nothing(self) -> None:
        self.store.create('plain', MiB)
        write(self.store, 'plain', 0, b'y' * MiB)
        self.store.clone('plain', 'c')
        self.store.open_path('c')
        self.assertEqual(0, self.copied())


class SVCFormatTest(svc_base.ArrayTestCase):
    """mkvdisk / expandvdisksize and what a new vdisk reads."""

    def setUp(self) -> None:
        super().setUp()
        self.ok('mkvdisk -name old -mdiskgrp pool0 -iogrp 0 -size 1 '
                '-unit gb')
        write(self.array.luns, self.uid('old'), 5 * MiB, PATTERN)
        self.ok('rmvdisk old')

    def uid(self, name: str) -> str:
        return self.inv()['vdisks'][name]['vdisk_UID']

    def shows_old_data(self, name: str, offset: int = 5 * MiB) -> bool:
        return self.array.luns.read(self.uid(name), offset,
                                    len(PATTERN)) == PATTERN

    def test_nofmtdisk_fully_allocated_vdisk_reads_old_data(self) -> None:
        self.ok('mkvdisk -name raw -mdiskgrp pool0 -iogrp 0 -size 1 '
                '-unit gb -nofmtdisk')
        self.assertTrue(self.shows_old_data('raw'))
        self.assertIn('formatted!no', self.ok('lsvdisk -delim ! raw'))

    def test_formatted_and_thin_vdisks_read_zeros(self) -> None:
        self.ok('mkvdisk -name fmt -mdiskgrp pool0 -iogrp 0 -size 1 '
                '-unit gb')
        self.ok('mkvdisk -name thin -mdiskgrp pool0 -iogrp 0 -size 1 '
                '-unit gb -rsize 2% -autoexpand')
        self.assertFalse(self.shows_old_data('fmt'))
        self.assertFalse(self.shows_old_data('thin'))
        self.assertIn('formatted!yes', self.ok('lsvdisk -delim ! fmt'))

    def test_expansion_follows_format_policy_or_fmtdisk(self) -> None:
        self.ok('mkvdisk -name a -mdiskgrp pool0 -iogrp 0 -size 4 '
                '-unit mb -nofmtdisk')
        self.ok('expandvdisksize -size 12 -unit mb a')
        self.assertTrue(self.shows_old_data('a'))
        self.ok('mkvdisk -name b -mdiskgrp pool0 -iogrp 0 -size 4 '
                '-unit mb -nofmtdisk')
        self.ok('expandvdisksize -size 12 -unit mb -fmtdisk b')
        self.assertFalse(self.shows_old_data('b'))
        self.ok('mkvdisk -name c -mdiskgrp pool0 -iogrp 0 -size 4 '
                '-unit mb')
        self.ok('expandvdisksize -size 12 -unit mb c')
        self.assertFalse(self.shows_old_data('c'))

    def test_flashcopy_target_reads_its_source_not_old_data(self) -> None:
        self.ok('mkvdisk -name src -mdiskgrp pool0 -iogrp 0 -size 1 '
                '-unit gb')
        self.ok('mkvdisk -name tgt -mdiskgrp pool0 -iogrp 0 -size 1 '
                '-unit gb -nofmtdisk')
        self.assertTrue(self.shows_old_data('tgt'))
        self.ok('mkfcmap -source src -target tgt -copyrate 0 -name m')
        self.ok('startfcmap -prep m')
        self.assertFalse(self.shows_old_data('tgt'))
