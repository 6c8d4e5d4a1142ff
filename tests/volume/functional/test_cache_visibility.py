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
"""The golden cache as Cinder's monitoring sees it, through real Cinder.

Notifications with the event types of Cinder's image-volume cache (its
own test base routes ``cinder.rpc.get_notifier`` to Cinder's fake
notifier), and the pool statistics the volume service reports.
"""


import time

from cinder import context as cinder_context
import eventlet

from cinder_dpm_ephemeral.testing import cinder_harness
from cinder_dpm_ephemeral.testing import images
from tests.volume.functional import array_views

MiB = 1024 * 1024


class SVCCacheVisibilityTest(array_views.InternalTenant,
                             array_views.SVCArray,
                             cinder_harness.CinderHarness):

    def _events(self):
        return [(n['event_type'], n['payload'])
                for n in self.notifier.notifications
                if n['event_type'].startswith('image_volume_cache.')]

    def test_hit_miss_evict_and_pool_figures(self):
        image = images.make_image(self.work_dir, 8 * MiB, 'qcow2', seed=7,
                                  name='visible')
        meta = self.add_image(image)
        self.notifier.reset()
        first = self.wait_for_volume(
            self.create_volume(1, image_id=meta['id'])['id'], timeout=300)
        second = self.wait_for_volume(
            self.create_volume(1, image_id=meta['id'])['id'], timeout=300)
        self.assertEqual('available', second['status'], second)
        ictx = cinder_context.get_internal_tenant_context()
        (golden,) = self.driver.image_cache.goldens(ictx)
        events = self._events()
        self.assertEqual(['image_volume_cache.miss',
                          'image_volume_cache.hit'], [e for e, _ in events])
        for _event, payload in events:
            self.assertEqual(meta['id'], payload['image_id'])
            self.assertEqual(golden.id, payload['golden_volume_id'])
            self.assertEqual('pool0', payload['pool'])
            self.assertEqual(first['os-vol-host-attr:host'], payload['host'])

        # the pool's stats carry the cache's figures (the clone count as
        # of now, not of a refresh less than half a polling interval ago)
        self.driver.image_cache.clone_counts_seen = (float('-inf'), {})
        self.driver._update_volume_stats()
        [pool] = self.driver._stats['pools']
        self.assertEqual(1, pool['dpm_golden_volumes'])
        self.assertEqual(golden.size, pool['dpm_golden_gb'])
        self.assertEqual(2, pool['dpm_golden_clones'])

        # eviction: clones gone, the image gone from Glance, clean-up
        for v in (first, second):
            self.delete_volume(v['id'])
        self.notifier.reset()
        self.images.remove(meta['id'])
        self.driver.image_cache.collect_garbage(self.images.service())
        self.assertEqual([], self.driver.image_cache.goldens(ictx))
        events = self._events()
        self.assertEqual(['image_volume_cache.evict'],
                         [e for e, _ in events])
        self.assertEqual(meta['id'], events[0][1]['image_id'])
        self.driver._update_volume_stats()
        [pool] = self.driver._stats['pools']
        self.assertEqual((0, 0, 0), (pool['dpm_golden_volumes'],
                                     pool['dpm_golden_gb'],
                                     pool['dpm_golden_clones']))


class _StatsCost:
    """The stats update asks the array about clones once, not per golden.

    It runs every ``backend_stats_polling_interval`` (and with it the
    golden cache's figures): one ``lsvdiskfcmappings`` (SVC) or two REST
    calls (PowerFlex) per golden volume made it grow with the cache, on
    an array whose command rate is shared with every other client.
    """

    def _volume_from(self, image_meta, keep=True):
        vol = self.wait_for_volume(
            self.create_volume(self.VOLUME_GB, image_id=image_meta['id'])
            ['id'], timeout=300)
        self.assertEqual('available', vol['status'], vol)
        if not keep:
            self.delete_volume(vol['id'])
        return vol

    def _watch_updates(self):
        """Count the driver's stats updates under way (any caller)."""
        driver = self.driver
        real = driver._update_volume_stats
        self._updating = 0

        def update(*args, **kwargs):
            self._updating += 1
            try:
                return real(*args, **kwargs)
            finally:
                self._updating -= 1
        driver._update_volume_stats = update
        self.addCleanup(delattr, driver, '_update_volume_stats')

    def _no_update_under_way(self):
        """Wait for the stats updates Cinder runs by itself to end.

        The volume manager refreshes the stats after each delete. One
        that asked the array before a measurement began and stores its
        clone count during it would spare the measured update its array
        call, and the update would look cheaper than it is.
        """
        deadline = time.monotonic() + 60
        while self._updating:
            self.assertLess(time.monotonic(), deadline)
            eventlet.sleep(0.05)

    def _stats(self, fresh=True):
        """Array calls of one stats update, and the pool's figures.

        ``fresh``: as when the last clone count is half a polling interval
        old (the periodic report), else right after another update (the
        refresh Cinder makes after each delete). The emulator counts
        every call; the volume manager's own periodic report may run at
        the same moment and only add to the count: the least of three
        updates is the update's own cost.
        """
        costs = []
        for _ in range(3):
            self._no_update_under_way()
            if fresh:
                self.driver.image_cache.clone_counts_seen = (float('-inf'),
                                                             {})
            before = self.backend.emulator.call('calls_made')
            self.driver._update_volume_stats()
            costs.append(self.backend.emulator.call('calls_made') - before)
        [pool] = self.driver._stats['pools']
        return min(costs), pool

    def test_pool_figures_cost_the_same_for_any_number_of_goldens(self):
        self._watch_updates()
        metas = [self.add_image(images.make_image(
            self.work_dir, 4 * MiB, 'qcow2', seed=30 + i, name=f'cost{i}'))
            for i in range(3)]
        self._volume_from(metas[0])
        self._volume_from(metas[0])
        calls_one, pool = self._stats()
        self.assertEqual((1, 2), (pool['dpm_golden_volumes'],
                                  pool['dpm_golden_clones']))

        self._volume_from(metas[1])
        self._volume_from(metas[2], keep=False)
        calls_three, pool = self._stats()
        self.assertEqual((3, 3), (pool['dpm_golden_volumes'],
                                  pool['dpm_golden_clones']))
        self.assertEqual(calls_one, calls_three)

        # Cinder's refresh after each delete reuses the count (stale by
        # at most half a polling interval) and asks the array only for
        # the pool itself
        calls_cached, pool = self._stats(fresh=False)
        self.assertEqual(3, pool['dpm_golden_clones'])
        self.assertEqual(calls_three - self.CLONE_QUERY_CALLS, calls_cached)

        # per golden, the batch agrees with asking each golden alone
        cache = self.driver.image_cache
        goldens = {g.metadata['image_id']: g for g in self.goldens()}
        counts = cache.backend.clone_counts(list(goldens.values()))
        self.assertEqual([2, 1, 0], [counts[goldens[m['id']].id]
                                     for m in metas])
        self.assertEqual(counts, {g.id: cache.backend.dependents(g)
                                  for g in goldens.values()})


class SVCStatsCostTest(_StatsCost, array_views.InternalTenant,
                       array_views.SVCArray, cinder_harness.CinderHarness):
    CLONE_QUERY_CALLS = 1       # lsfcmap


class PowerFlexStatsCostTest(_StatsCost, array_views.InternalTenant,
                             array_views.PowerFlexArray,
                             cinder_harness.CinderHarness):
    # queryBySelectedIds, the pool's volumes
    CLONE_QUERY_CALLS = 2
