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
"""The emulators' LUN store: sparse files, copy-on-write clones."""

import os

import fixtures
import testtools

from cinder_dpm_ephemeral.emulators import lunstore

MiB = 1024 * 1024


class LunStoreTest(testtools.TestCase):
    def setUp(self):
        super().setUp()
        self.dir = self.useFixture(fixtures.TempDir()).path
        self.store = lunstore.LunStore(self.dir)

    def _write(self, lun, offset, data):
        path = self.store.open_path(lun)
        with open(path, 'r+b') as f:
            f.seek(offset)
            f.write(data)

    def test_create_is_sparse_and_sized(self):
        self.store.create('a', 64 * MiB)
        path = self.store.open_path('a')
        st = os.stat(path)
        self.assertEqual(64 * MiB, st.st_size)
        self.assertLess(st.st_blocks * 512, MiB)

    def test_clone_copies_nothing_and_keeps_point_in_time(self):
        self.store.create('gold', 16 * MiB)
        self._write('gold', MiB, b'x' * MiB)
        before = self.store.sha256('gold')
        self.store.clone('gold', 'c1', size=32 * MiB)
        self.assertEqual({}, {k: v for k, v in self.store.counters().items()
                              if v})
        self.assertEqual(before, self.store.sha256('c1', 16 * MiB))
        # Writing the source gives the clone its own copy first.
        self._write('gold', 0, b'y' * 4096)
        self.assertNotEqual(before, self.store.sha256('gold'))
        self.assertEqual(before, self.store.sha256('c1', 16 * MiB))
        self.assertEqual(MiB, self.store.counters()['materialized_bytes'])
        self.assertEqual(32 * MiB, os.stat(self.store.open_path('c1')).st_size)

    def test_delete_source_keeps_clone_content(self):
        self.store.create('gold', 4 * MiB)
        self._write('gold', 0, b'z' * 8192)
        digest = self.store.sha256('gold')
        self.store.clone('gold', 'c1')
        self.store.clone('c1', 'c2')
        self.store.delete('gold')
        self.assertEqual(digest, self.store.sha256('c1'))
        self.assertEqual(digest, self.store.sha256('c2'))
        self.assertEqual({'c1', 'c2'}, set(self.store.list()))

    def test_shared_between_instances(self):
        self.store.create('a', MiB)
        other = lunstore.LunStore(self.dir)
        self.assertTrue(other.exists('a'))
        other.delete('a')
        self.assertFalse(self.store.exists('a'))
        self.assertEqual([], os.listdir(os.path.join(self.dir, 'luns'))
                         and [f for f in os.listdir(
                             os.path.join(self.dir, 'luns'))
                             if f.endswith('.lun')])

    def test_missing_lun(self):
        self.assertRaises(lunstore.LunNotFound, self.store.open_path, 'nope')
        self.store.delete('nope')  # deleting a missing LUN succeeds

    def test_write_and_allocated(self):
        self.store.create('a', 4 << 20)
        self.assertEqual([], self.store.allocated('a'))
        self.store.write('a', 1 << 20, b'x' * 10)
        (start, end), = self.store.allocated('a')
        self.assertTrue(start <= 1 << 20 < (1 << 20) + 10 <= end)
        self.store.clone('a', 'b')
        # a clone shares the allocation of its base until written
        self.assertEqual(self.store.allocated('a'),
                         self.store.allocated('b'))
        self.store.write('a', 0, b'new')
        self.assertEqual(b'\0\0\0', self.store.read('b', 0, 3))
        self.assertEqual(b'new', self.store.read('a', 0, 3))
        self.assertRaises(lunstore.LunStoreError, self.store.write, 'a',
                          (4 << 20) - 1, b'xy')
