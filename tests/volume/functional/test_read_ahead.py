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
"""The download goes on while the golden LUN is made (real Cinder).

The SVC emulator answers each CLI command after a delay here, as a real
array does, so making and mapping a LUN takes a while. What Glance has
served by the time the LUN exists says whether the download waited for
it; the LUN's content says the spooled bytes landed where they belong.
"""

import os

import fixtures

from cinder_dpm_ephemeral.image_cache import checks
from cinder_dpm_ephemeral.image_cache import readahead
from cinder_dpm_ephemeral.testing import backends
from cinder_dpm_ephemeral.testing import cinder_harness
from cinder_dpm_ephemeral.testing import images
from tests.volume.functional import array_views

MiB = 1024 * 1024


class SVCReadAheadTest(array_views.InternalTenant, array_views.SVCArray,
                       cinder_harness.CinderHarness):

    #: seconds per CLI command: a LUN's creation takes a few of them
    LATENCY = 0.05

    def start_backends(self):
        self.backend = backends.SVCBackend(self.work_dir,
                                           latency=self.LATENCY).start()
        self.addCleanup(self.backend.stop)

    def _served_when_lun_made(self):
        """Glance's bytes served at the end of each golden LUN's creation."""
        backend = self.driver.image_cache.backend
        orig = backend.create_golden_lun
        seen = []

        def observed(golden):
            update = orig(golden)
            seen.append(self.images.total_bytes_served())
            return update
        backend.create_golden_lun = observed
        self.addCleanup(setattr, backend, 'create_golden_lun', orig)
        return seen

    def _boot_volume(self, variant, read_ahead):
        self.flags(dpm_ephemeral_read_ahead=read_ahead, group=self.BACKEND)
        image = images.make_disk_image(self.work_dir, variant, 'gpt',
                                       64 * MiB, seed=5,
                                       name=f'{variant}-{read_ahead}')
        meta = self.images.add(image.path, image.disk_format,
                               name=image.variant)
        served0 = self.images.total_bytes_served()
        seen = self._served_when_lun_made()
        vol = self.create_volume(1, image_id=meta['id'])
        vol = self.wait_for_volume(vol['id'], timeout=300)
        self.assertEqual('available', vol['status'], vol)
        lun = self.lun_of(vol['id'])
        expected, size = images.reference_raw(image.path, image.disk_format,
                                              work_dir=self.work_dir)
        self.assertEqual(expected, self.backend.luns.sha256(lun, size))
        # one download, of the whole file, whatever was read ahead
        self.assertEqual(image.file_size,
                         self.images.total_bytes_served() - served0)
        self.assertEqual(1, len(seen))
        return image, seen[0] - served0

    def _nothing_left_in_conversion_dir(self):
        conv = checks.conversion_dir()
        self.assertEqual([], [n for n in os.listdir(conv)
                              if n.startswith('dpm-golden-')])

    def test_raw_download_goes_on_while_the_lun_is_made(self):
        image, ahead = self._boot_volume('raw', True)
        _, waited = self._boot_volume('raw', False)
        # Without read-ahead only the head (checked before the LUN is
        # made) has been read; with it, much more of the 64 MiB.
        self.assertLessEqual(waited, 2 * MiB)
        self.assertGreater(ahead, 16 * MiB)
        self._nothing_left_in_conversion_dir()

    def test_qcow2_download_goes_on_while_the_lun_is_made(self):
        image, ahead = self._boot_volume('qcow2', True)
        _, waited = self._boot_volume('qcow2', False)
        self.assertLessEqual(waited, 2 * MiB)
        self.assertGreater(ahead, min(16 * MiB, image.file_size // 2))
        self._nothing_left_in_conversion_dir()

    def test_no_room_in_conversion_dir_no_read_ahead(self):
        # A reserve larger than the file system: a full one, as far as
        # the spool is concerned. The volume is made all the same.
        st = os.statvfs(checks.conversion_dir())
        self.useFixture(fixtures.MonkeyPatch(
            f'{readahead.__name__}.RESERVE',
            st.f_blocks * st.f_frsize + 1))
        _, served = self._boot_volume('raw', True)
        self.assertLessEqual(served, 2 * MiB)
