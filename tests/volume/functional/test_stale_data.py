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

"""No stale data through golden volumes or their clones, through real
Cinder, on LUNs that do not read zeros.

A volume is filled with a recognisable pattern and deleted; its extents
keep the pattern (the emulators model it: a fully allocated SVC vdisk made
with ``-nofmtdisk``, a PowerFlex pool without zero padding). A golden
volume is then made from an image with zero runs, and clones of it: the
old pattern must never show through any of them, not where the image has
zeros, not past the image's end, not in a clone's extension.
"""

from __future__ import annotations

import uuid
from typing import Any

from cinder import context as cinder_context
from cinder import objects

from cinder_dpm_ephemeral.emulators import process
from cinder_dpm_ephemeral.testing import backends
from cinder_dpm_ephemeral.testing import cinder_harness
from cinder_dpm_ephemeral.testing import images

MiB = 1024 * 1024
GiB = 1024 * MiB
INTERNAL_PROJECT = uuid.uuid4().hex
INTERNAL_USER = uuid.uuid4().hex
PATTERN = b'<<previous tenant secret data>>!' * 2048      # 64 KiB
IMAGE_SIZE = 32 * MiB
IMAGE_DATA = 8 * MiB        # the image is zeros from 8 MiB to 32 MiB


class _StaleDataTests:
    """Scenarios for both arrays; subclasses describe the array."""

    VOLUME_GB: int
    #: where the deleted volume's pattern lies (a zero run of the image,
    #: past the image's end, far into the LUN)
    OFFSETS: tuple[int, ...] = (12 * MiB, 40 * MiB, 700 * MiB)

    def default_options(self) -> dict[str, Any]:
        opts = dict(self.backend.default_options())
        opts.update({'cinder_internal_tenant_project_id': INTERNAL_PROJECT,
                     'cinder_internal_tenant_user_id': INTERNAL_USER})
        return opts

    def lun_of(self, volume_id: str) -> str:
        raise NotImplementedError

    def create(self, size: int, image_id: str | None = None) -> dict:
        vol = self.create_volume(size, image_id=image_id)
        vol = self.wait_for_volume(vol['id'], timeout=300)
        self.assertEqual('available', vol['status'], vol)
        return vol

    def leave_pattern_behind(self, size: int) -> None:
        old = self.create(size)
        lun = self.lun_of(old['id'])
        with open(self.backend.luns.open_path(lun), 'r+b') as f:
            for offset in self.OFFSETS + self.extra_offsets(size):
                f.seek(offset)
                f.write(PATTERN)
        self.delete_volume(old['id'])

    def extra_offsets(self, size: int) -> tuple[int, ...]:
        """Offsets past the first ``VOLUME_GB`` (a clone's extension)."""
        return tuple(o + self.VOLUME_GB * GiB for o in self.OFFSETS
                     if size > self.VOLUME_GB)

    def shows_pattern(self, lun: str, size_gb: int) -> list[int]:
        luns = self.backend.luns
        return [o for o in self.OFFSETS + self.extra_offsets(size_gb)
                if o < size_gb * GiB and
                PATTERN[:4096] in luns.read(lun, o, len(PATTERN))]

    def test_deleted_pattern_never_shows_through(self) -> None:
        big = 2 * self.VOLUME_GB
        self.leave_pattern_behind(big)
        # The model is in force: a new blank volume shows the pattern.
        probe = self.create(big)
        self.assertEqual(
            list(self.OFFSETS + self.extra_offsets(big)),
            self.shows_pattern(self.lun_of(probe['id']), big))
        self.delete_volume(probe['id'])

        image = images.make_image(self.work_dir, IMAGE_SIZE, 'raw', seed=9,
                                  name='zero-runs', data_size=IMAGE_DATA)
        image_id = self.add_image(image)['id']
        clone = self.create(self.VOLUME_GB, image_id)
        larger = self.create(big, image_id)

        ictx = cinder_context.get_internal_tenant_context()
        (golden,) = self.driver.image_cache.goldens(ictx, None, image_id)
        luns = {'golden': (self.golden_lun(golden), golden.size),
                'clone': (self.lun_of(clone['id']), clone['size']),
                'larger clone': (self.lun_of(larger['id']), larger['size'])}
        for what, (lun, size) in luns.items():
            self.assertEqual([], self.shows_pattern(lun, size),
                             f'{what} shows the deleted volume\'s data')
        for what in ('clone', 'larger clone'):
            self.assertEqual(image.raw_sha256, self.backend.luns.sha256(
                luns[what][0], image.virtual_size))

    def golden_lun(self, golden: Any) -> str:
        return self.lun_of(golden.id)


class SVCStaleDataTest(_StaleDataTests, cinder_harness.CinderHarness):
    """Fully allocated, unformatted vdisks (storwize_svc_vol_nofmtdisk)."""

    BACKEND = 'svc'
    VOLUME_GB = 1

    def start_backends(self) -> None:
        self.backend = backends.SVCBackend(self.work_dir).start()
        self.addCleanup(self.backend.stop)

    def backend_options(self) -> dict[str, Any]:
        opts = self.backend.backend_options(self.BACKEND)
        opts.update({'storwize_svc_vol_rsize': -1,
                     'storwize_svc_vol_nofmtdisk': True})
        return opts

    def lun_of(self, volume_id: str) -> str:
        for v in self.backend.emulator.inventory()['vdisks']:
            if v['name'] == f'volume-{volume_id}':
                self.assertFalse(v['thin'])
                return v['vdisk_UID']
        self.fail(f'no vdisk for volume {volume_id}')


class _UnpaddedPowerFlexBackend(backends.PowerFlexBackend):
    """The test backend with its pool's zero padding disabled."""

    def __init__(self, work_dir: str) -> None:
        super().__init__(work_dir)
        self.emulator = process.EmulatorProcess(
            'powerflex', self.state_dir, self.login,
            pools=[{'domain': self.domain, 'name': self.pool,
                    'capacity_gb': 100 * 1024, 'zero_padding': False}],
            sdcs=[], volume_host=True)


class PowerFlexStaleDataTest(_StaleDataTests, cinder_harness.CinderHarness):
    """A storage pool without zero padding."""

    BACKEND = 'powerflex'
    VOLUME_GB = 8

    def start_backends(self) -> None:
        self.backend = _UnpaddedPowerFlexBackend(self.work_dir).start()
        self.addCleanup(self.backend.stop)

    def backend_options(self) -> dict[str, Any]:
        opts = self.backend.backend_options(self.BACKEND)
        # The in-tree driver refuses unpadded pools unless told.
        opts['powerflex_allow_non_padded_volumes'] = True
        return opts

    def lun_of(self, volume_id: str) -> str:
        vol = objects.Volume.get_by_id(cinder_context.get_admin_context(),
                                       volume_id)
        return vol.provider_id

    def golden_lun(self, golden: Any) -> str:
        return golden.provider_id
