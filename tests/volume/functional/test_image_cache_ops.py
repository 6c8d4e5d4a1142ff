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
"""The golden cache as an operator sees it, through real Cinder.

Cinder's books (quota of the internal tenant, the pool's allocated
capacity, ``cinder-manage quota check``), eviction racing the lock-free
clone path, and the checks made once at start.
"""

import contextlib
import io
import os
import time

from cinder.cmd import manage
from cinder import context as cinder_context
from cinder.volume import volume_types
from cinder.volume import volume_utils
import eventlet
import fixtures
from oslo_config import cfg

from cinder_dpm_ephemeral import emulation
from cinder_dpm_ephemeral.image_cache import checks
from cinder_dpm_ephemeral.image_cache import driver as cache_driver
from cinder_dpm_ephemeral.svc import clones
from cinder_dpm_ephemeral.testing import cinder_harness
from cinder_dpm_ephemeral.testing import images
from tests.volume.functional import array_views

MiB = 1024 * 1024

INTERNAL_PROJECT = array_views.INTERNAL_PROJECT


class _OpsTests(array_views.InternalTenant):
    def _image(self, seed, name, fmt='qcow2'):
        image = images.make_image(self.work_dir, 8 * MiB, fmt, seed=seed,
                                  name=name)
        return image, self.add_image(image)

    def _create(self, image_id, n=1):
        vols = [self.create_volume(self.VOLUME_GB, image_id=image_id)
                for _ in range(n)]
        return [self.wait_for_volume(v['id'], timeout=300) for v in vols]

    def _usage(self):
        return self.internal_usage()

    def _allocated_gb(self, host):
        pool = volume_utils.extract_host(host, 'pool')
        return self.volume_manager.stats['pools'][pool][
            'allocated_capacity_gb']

    def _quota_check_output(self):
        """``cinder-manage quota check``, every project, as printed.

        Its exit status cannot be used: Cinder 29's ``_check_sync`` folds
        the per-project results with ``&=`` into ``False`` and so always
        reports success; the printed lines name each mismatch.
        """
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            manage.QuotaCommands()._check_sync(None, do_fix=False)
        return out.getvalue()

    # -- accounting -----------------------------------------------------------
    def test_goldens_counted_in_quota_and_allocated_capacity(self):
        _img_a, meta_a = self._image(41, 'acct-a')
        vols = self._create(meta_a['id'], n=3)
        for v in vols:
            self.assertEqual('available', v['status'], v)
        (golden,) = self.goldens(meta_a['id'])
        # The internal tenant's quota holds the golden volume, as it holds
        # Cinder's own image-cache volumes.
        self.assertEqual((1, golden.size), self._usage())
        # The pool's allocated capacity has the golden too, from the moment
        # it exists (not only after a restart of the volume service).
        self.assertEqual(golden.size + sum(v['size'] for v in vols),
                         self._allocated_gb(golden.host))

        # A failed build: counted, then given back.
        bad = images.make_image(self.work_dir, 8 * MiB, 'qcow2', seed=42,
                                name='acct-bad')
        bad_meta = self.images.add(bad.path, 'raw')    # a false label
        (failed,) = self._create(bad_meta['id'])
        self.assertEqual('error', failed['status'])
        self.assertEqual((1, golden.size), self._usage())

        # An eviction: A's clones gone, B built, A (least recently used)
        # evicted; its quota and capacity are given back.
        for v in vols:
            self.delete_volume(v['id'])
        self.delete_volume(failed['id'])
        self.flags(dpm_ephemeral_image_cache_max_count=1, group=self.BACKEND)
        _img_b, meta_b = self._image(43, 'acct-b')
        (vol_b,) = self._create(meta_b['id'])
        self.driver.image_cache.collect_garbage(self.images.service())
        (golden_b,) = self.goldens()
        self.assertEqual(meta_b['id'], golden_b.metadata['image_id'])
        self.assertEqual((1, golden_b.size), self._usage())
        self.assertEqual(golden_b.size + vol_b['size'],
                         self._allocated_gb(golden_b.host))

        report = self._quota_check_output()
        self.assertIn(f'Processing quota usage for project '
                      f'{INTERNAL_PROJECT}', report)
        self.assertNotIn('invalid', report)
        self.assertNotIn('duplicated', report)

        # A golden volume removed through the API is given back by
        # Cinder's own delete.
        self.delete_volume(vol_b['id'])
        self.delete_volume(golden_b.id)
        self.assertEqual((0, 0), self._usage())
        self.assertNotIn('invalid', self._quota_check_output())

    # -- eviction against the lock-free clone path ----------------------------
    def test_eviction_racing_twenty_clones(self):
        image, meta = self._image(44, 'race')
        (first,) = self._create(meta['id'])
        self.delete_volume(first['id'])    # a golden nobody clones, yet
        image_cache = self.driver.image_cache
        stop = []
        removed = []

        def evict():
            # Eviction as the periodic clean-up runs it, over and over,
            # while the clones are being made.
            while not stop:
                for g in self.goldens(meta['id']):
                    if image_cache.remove_unused(g):
                        removed.append(g.id)
                eventlet.sleep(0.005)

        # Every array command takes a while, as on a busy array: the gaps
        # between looking and acting are where a race bites.
        self.slow_array()
        evictor = eventlet.spawn(evict)
        try:
            vols = self._create(meta['id'], n=20)
        finally:
            stop.append(True)
            evictor.wait()
        self.assertNotEqual([], removed, 'the evictor never removed one')
        ok = [v for v in vols if v['status'] == 'available']
        for v in vols:
            self.assertIn(v['status'], ('available', 'error'), v)
        # Every clone kept its data: no golden was destroyed under it.
        for v in ok:
            self.assertEqual(image.raw_sha256, self.backend.luns.sha256(
                self.lun_of(v['id']), image.virtual_size))
        # Nothing was turned into a full copy, nothing leaked.
        self.assertEqual(0, self.array_bytes_copied())
        goldens = self.goldens(meta['id'])
        self.assertEqual(len(ok) + len(goldens), self.array_volume_count())
        for v in vols:
            self.delete_volume(v['id'])
        image_cache.collect_garbage(self.images.service())
        self.images.remove(meta['id'])
        image_cache.collect_garbage(self.images.service())
        self.assertEqual([], self.goldens())
        self.assertEqual(0, self.array_volume_count())

    def test_removal_that_missed_a_new_clone_keeps_the_golden(self):
        # The worst interleaving, made deterministic: the clean-up decided
        # to remove a golden (it had no clone when it looked), and a clone
        # was mapped before the removal reached the array.
        image, meta = self._image(46, 'late-clone')
        (vol,) = self._create(meta['id'])
        (golden,) = self.goldens(meta['id'])
        golden.status = 'deleting'
        golden.save()
        self.assertFalse(self.driver.image_cache._destroy(golden))
        (kept,) = self.goldens(meta['id'])
        self.assertEqual('available', kept.status)
        self.assertEqual('true', kept.metadata['full'])   # not cloned again
        self.assertEqual(2, self.array_volume_count())
        self.assertEqual(0, self.array_bytes_copied())
        self.assertEqual(image.raw_sha256, self.backend.luns.sha256(
            self.lun_of(vol['id']), image.virtual_size))
        # Its last clone gone, the next clean-up that dooms it removes it.
        self.delete_volume(vol['id'])
        self.images.remove(meta['id'])
        self.driver.image_cache.collect_garbage(self.images.service())
        self.assertEqual([], self.goldens(meta['id']))
        self.assertEqual(0, self.array_volume_count())

    # -- start-up checks ------------------------------------------------------
    def test_setup_problems_named_once_at_start(self):
        conf = self.driver.configuration
        self.assertEqual([], checks.setup_problems(conf))
        blocker = os.path.join(self.work_dir, 'a-file')
        with open(blocker, 'w'):
            pass
        self.flags(image_conversion_dir=os.path.join(blocker, 'conv'))
        if 'cluster' not in cfg.CONF:   # cinder-volume's command defines it
            cfg.CONF.register_opt(cfg.StrOpt('cluster'))
        self.flags(cluster='cluster1')
        self.flags(backend_url='file:///var/lib/cinder',
                   group='coordination')
        self.flags(cinder_internal_tenant_project_id=None)
        problems = checks.setup_problems(conf)
        self.assertEqual(3, len(problems), problems)
        self.assertIn('cinder_internal_tenant_project_id', problems[0])
        self.assertIn('image_conversion_dir', problems[1])
        self.assertIn('cannot be created', problems[1])
        self.assertIn('backend_url', problems[2])
        logs = self.useFixture(fixtures.FakeLogger(
            name='cinder_dpm_ephemeral.image_cache.driver'))
        self.driver.check_for_setup_error()
        self.assertIn('cluster = cluster1', logs.output)
        # Per volume, nothing more: the cache is off and says so once.
        _img, meta = self._image(45, 'no-tenant')
        logs = self.useFixture(fixtures.FakeLogger(
            name='cinder_dpm_ephemeral.image_cache.cache'))
        self.flags(image_conversion_dir=os.path.join(self.work_dir, 'conv2'))
        vols = self._create(meta['id'], n=2)
        for v in vols:
            self.assertEqual('available', v['status'])
        self.assertEqual(
            1, logs.output.count('cinder_internal_tenant_project_id'))


class SVCOpsTest(array_views.SVCArray, _OpsTests,
                 cinder_harness.CinderHarness):

    def slow_array(self):
        self.backend.emulator.set('array.latency', 0.05)

    def test_build_asks_beside_the_array(self):
        # A golden build learns os-brick's connector properties while the
        # array makes the LUN, and whether the LUN reads zeros while it
        # is attached (writer.Soon): neither waits for the other.
        spans = {}

        def record(owner, name, label):
            orig = getattr(owner, name)

            def timed(*args, **kwargs):
                t0 = time.monotonic()
                try:
                    return orig(*args, **kwargs)
                finally:
                    spans.setdefault(label, (t0, time.monotonic()))
            self.useFixture(fixtures.MonkeyPatch(
                f'{owner.__module__}.{owner.__qualname__}.{name}'
                if isinstance(owner, type) else
                f'{owner.__name__}.{name}', timed))

        # no answer of an earlier test of this process: os-brick is asked
        self.useFixture(fixtures.MonkeyPatch(
            'cinder_dpm_ephemeral.image_cache.writer._last_connector', {}))
        record(volume_utils, 'brick_get_connector_properties', 'connector')
        record(cache_driver.ArrayClones, 'create_golden_lun', 'lun')
        record(clones.SVCClones, 'reads_zeros', 'zeros')
        record(emulation.EmulatedDataPathMixin, '_attach_volume', 'attach')
        # every CLI command takes 0.3 s: each step lasts long enough to see
        self.backend.emulator.set('array.latency', 0.3)
        _image, meta = self._image(51, 'beside', fmt='raw')
        # a fully allocated type: the array is asked whether it reads
        # zeros (a thin golden reads zeros by construction, unasked)
        thick = volume_types.create(cinder_context.get_admin_context(),
                                    'thick-beside', {'drivers:rsize': '-1'})
        vol = self.create_volume(self.VOLUME_GB, image_id=meta['id'],
                                 volume_type=thick['name'])
        vol = self.wait_for_volume(vol['id'], timeout=300)
        self.assertEqual('available', vol['status'])

        def overlap(a, b):
            return spans[a][0] < spans[b][1] and spans[b][0] < spans[a][1]
        self.assertTrue(overlap('connector', 'lun'), spans)
        self.assertTrue(overlap('zeros', 'attach'), spans)


class PowerFlexOpsTest(array_views.PowerFlexArray, _OpsTests,
                       cinder_harness.CinderHarness):

    def slow_array(self):
        pass
