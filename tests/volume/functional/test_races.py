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
"""Races: 50 creates and 50 deletes with the clean-up running, both arrays.

Fifty volumes from several images are created at once through the API
while the golden cache's clean-up (Glance check, LRU eviction with a small
``dpm_ephemeral_image_cache_max_count``) runs in a loop; then all fifty
are deleted at once, the loop still running. Each phase has a deadline: a
volume still in a transitional state when it passes fails the test with a
dump of every volume, golden volume and array object (a deadlock shows as
volumes stuck in ``creating`` or ``deleting``). At the end Cinder's
database and the array hold exactly the same volumes (no leaked vdisk,
FlashCopy map, host mapping or vTree snapshot), no volume is left in a
transitional state, and only golden volumes within the limit remain.
"""

import json
import time

from cinder import context as cinder_context
from cinder import objects
import eventlet

from cinder_dpm_ephemeral.testing import cinder_harness
from cinder_dpm_ephemeral.testing import images
from tests.volume.functional import array_views

MiB = 1024 * 1024

INTERNAL_PROJECT = array_views.INTERNAL_PROJECT

N = 50
IMAGES = 4
MAX_GOLDENS = 2
DEADLINE = 60
TRANSITIONAL = ('creating', 'downloading', 'deleting', 'attaching',
                'detaching', 'maintenance')


class _Races(array_views.InternalTenant):

    def backend_options(self):
        o = super().backend_options()
        o['dpm_ephemeral_image_cache_max_count'] = MAX_GOLDENS
        return o

    def _db_volumes(self):
        ctx = cinder_context.get_admin_context()
        return list(objects.VolumeList.get_all(ctx))

    def _dump(self):
        inv = self.backend.emulator.inventory()
        return json.dumps({
            'volumes': [(v.id, v.status, v.display_name, v.provider_id)
                        for v in self._db_volumes()],
            'goldens': [(g.id, g.status, dict(g.metadata))
                        for g in self.goldens()],
            'array': self.array_objects(),
            'fcmaps': inv.get('fcmaps'),
        }, indent=1, default=str)

    def _settle(self, ids, done, what):
        """Wait until every volume of ``ids`` is ``done``; else fail."""
        deadline = time.monotonic() + DEADLINE
        while True:
            left = {}
            for v in self._db_volumes():
                if v.id in ids and not done(v):
                    left[v.id] = v.status
            if not left:
                return
            if time.monotonic() > deadline:
                self.fail(f'{len(left)} volumes not {what} after '
                          f'{DEADLINE} s (stuck or deadlocked): {left}\n'
                          f'{self._dump()}')
            time.sleep(0.2)

    def test_fifty_creates_and_deletes_with_cleanup_running(self):
        made = [images.make_image(self.work_dir, 4 * MiB, 'raw',
                                  seed=60 + i, name=f'race{i}')
                for i in range(IMAGES)]
        metas = [self.add_image(img) for img in made]
        by_id = {m['id']: img for m, img in zip(metas, made, strict=True)}
        cache = self.driver.image_cache
        stop = []
        cleanups = []
        errors = []

        def cleanup_loop():
            while not stop:
                try:
                    cleanups.append(cache.collect_garbage(
                        self.images.service()))
                except Exception as exc:   # reported, never hidden
                    errors.append(repr(exc))
                eventlet.sleep(0.01)

        cleaner = eventlet.spawn(cleanup_loop)
        try:
            start = time.monotonic()
            ids = {self.create_volume(
                self.VOLUME_GB, image_id=metas[i % IMAGES]['id'])['id']
                for i in range(N)}
            self._settle(ids, lambda v: v.status not in TRANSITIONAL,
                         'created')
            created = time.monotonic() - start
            statuses = {v.status for v in self._db_volumes()
                        if v.id in ids}
            self.assertEqual({'available'}, statuses, self._dump())
            # One golden per image, every volume a thin clone: eviction
            # retired no golden in use (which would make the next create
            # of its image build another, up to the internal tenant's
            # quota, then copy images the slow way) and removed none
            # between its build and its first clone.
            self.assertEqual(IMAGES, len(self.goldens()), self._dump())
            self.assertEqual([], [v.id for v in self._db_volumes()
                                  if v.id in ids and not v.admin_metadata
                                  .get('dpm_golden_volume_id')])
            # every clone holds its own image's bytes (no golden was
            # removed or swapped under it)
            for vid in ids:
                img = by_id[self.api.get_volume(vid)[
                    'volume_image_metadata']['image_id']]
                self.assertEqual(img.raw_sha256, self.backend.luns.sha256(
                    self.lun_of(vid), img.virtual_size), vid)
            self._assert_db_equals_array()
            for vid in ids:
                self.api.delete_volume(vid)
            self._settle(ids, lambda v: False, 'deleted')
        finally:
            stop.append(True)
            cleaner.wait()
        self.assertEqual([], errors)
        self.assertGreater(len(cleanups), 10)
        self.addDetail('timing', _text(
            f'{N} creates in {created:.1f} s, {len(cleanups)} clean-ups'))
        # Once no clone is left, the clean-up keeps at most the limit.
        cache.collect_garbage(self.images.service())
        goldens = self.goldens()
        self.assertLessEqual(len(goldens), MAX_GOLDENS, self._dump())
        for g in goldens:
            self.assertEqual('available', g.status)
            self.assertEqual('ready', g.metadata['state'])
        self._assert_db_equals_array()
        # and without images, nothing at all
        for m in metas:
            self.images.remove(m['id'])
        cache.collect_garbage(self.images.service())
        self.assertEqual([], self._db_volumes(), self._dump())
        self.assertEqual(self.empty_array(), self.array_objects())
        self.assertEqual({}, self.backend.luns.list())

    def _assert_db_equals_array(self):
        vols = self._db_volumes()
        for v in vols:
            self.assertNotIn(v.status, TRANSITIONAL, self._dump())
        self.assertEqual(self.expected_array(vols), self.array_objects(),
                         self._dump())
        self.assertEqual(len(vols), len(self.backend.luns.list()))


def _text(s):
    from testtools import content
    return content.text_content(s)


class SVCRacesTest(array_views.SVCArray, _Races,
                   cinder_harness.CinderHarness):

    def expected_array(self, vols):
        # each clone is a vdisk with its own no-copy map from its golden
        # (a volume Cinder's own path made, the internal tenant being out
        # of quota for another golden, has none)
        return {'vdisks': sorted(f'volume-{v.id}' for v in vols),
                'fcmaps': sorted(f'dpmc-{v.id}' for v in vols
                                 if v.admin_metadata.get(
                                     'dpm_golden_volume_id')),
                'hosts': [], 'host_mappings': []}

    def empty_array(self):
        return self.expected_array([])


class PowerFlexRacesTest(array_views.PowerFlexArray, _Races,
                         cinder_harness.CinderHarness):

    def expected_array(self, vols):
        return {'volumes': sorted(
            (v.provider_id, name, ())
            for v in vols
            for name in [self._name_of(v.provider_id)])}

    def _name_of(self, provider_id):
        for v in self._inv()['volumes']:
            if v['id'] == provider_id:
                return v['name']
        return None

    def empty_array(self):
        return {'volumes': []}
