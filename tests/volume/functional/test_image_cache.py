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
"""The golden image cache through real Cinder, on both emulated arrays.

Every test asserts on the array emulator's own state (vdisks, FlashCopy
maps, vTree snapshots, bytes copied), not only on Cinder's database.
"""

import gc
import os
import subprocess
import tempfile

from cinder import exception
import eventlet
import fixtures

from cinder_dpm_ephemeral.image_cache import cache
from cinder_dpm_ephemeral.image_cache import checks
from cinder_dpm_ephemeral.image_cache import lunwriter
from cinder_dpm_ephemeral.testing import cinder_harness
from cinder_dpm_ephemeral.testing import images
from cinder_dpm_ephemeral.testing import keymgr
from cinder_dpm_ephemeral.testing import pagecache
from tests.volume.functional import array_views

MiB = 1024 * 1024
GiB = 1024 * MiB

INTERNAL_PROJECT = array_views.INTERNAL_PROJECT


class _CacheTests(array_views.InternalTenant):
    """Scenarios shared by both arrays; subclasses describe the array."""

    VOLUME_GB = 1
    STORM = 8
    EXTRA_BACKEND_OPTIONS: dict = {}

    # -- array views (subclasses) ---------------------------------------------
    def array_volume_count(self):
        raise NotImplementedError

    def clone_links(self):
        """Array objects sharing data with a golden (maps / snapshots)."""
        raise NotImplementedError

    def array_bytes_copied(self):
        raise NotImplementedError

    def lun_of(self, volume_id):
        raise NotImplementedError

    # -- helpers --------------------------------------------------------------
    def backend_options(self):
        opts = super().backend_options()
        opts.update(self.EXTRA_BACKEND_OPTIONS)
        return opts

    def goldens_by_id(self):
        return {g.id: g for g in self.goldens()}

    def _image(self, mib=16, seed=1, fmt='qcow2', name='img',
               data_mib=None):
        image = images.make_image(
            self.work_dir, mib * MiB, fmt, seed=seed, name=name,
            data_size=None if data_mib is None else data_mib * MiB)
        return image, self.add_image(image)

    def _create(self, image_id, n=1, size=None):
        vols = [self.create_volume(size or self.VOLUME_GB, image_id=image_id)
                for _ in range(n)]
        done = [self.wait_for_volume(v['id'], timeout=300) for v in vols]
        for v in done:
            self.assertEqual('available', v['status'], v)
        return done

    def _assert_content(self, volume_id, image):
        self.assertEqual(image.raw_sha256,
                         self.backend.luns.sha256(self.lun_of(volume_id),
                                                  image.virtual_size))

    # -- scenarios ------------------------------------------------------------
    def test_storm_downloads_once_and_clones_thin(self):
        image, meta = self._image(mib=24, seed=3)
        vols = self._create(meta['id'], n=self.STORM)

        self.assertEqual(1, self.images.downloads[meta['id']])
        self.assertEqual(image.file_size, self.images.bytes_served[meta['id']])
        goldens = self.goldens(meta['id'])
        self.assertEqual(1, len(goldens))
        self.assertEqual('available', goldens[0].status)
        self.assertEqual(INTERNAL_PROJECT, goldens[0].project_id)
        # One golden + one clone per volume on the array, all thin links.
        self.assertEqual(self.STORM + 1, self.array_volume_count())
        self.assertEqual(self.STORM, self.clone_links())
        self.assertEqual(0, self.array_bytes_copied())
        for v in vols:
            self.assertEqual('true', v['bootable'])
            self._assert_content(v['id'], image)

        # Deleting the clones leaves only the golden; no copy happens.
        for v in vols:
            self.delete_volume(v['id'])
        self.assertEqual(1, self.array_volume_count())
        self.assertEqual(0, self.clone_links())
        self.assertEqual(0, self.array_bytes_copied())

    def test_clone_limit_makes_another_golden(self):
        self.set_clone_limit(self.CLONE_LIMIT)
        image, meta = self._image(mib=8, seed=4)
        n = self.CLONE_LIMIT * 2 + 1
        vols = self._create(meta['id'], n=n)
        goldens = self.goldens(meta['id'])
        self.assertEqual(3, len(goldens), [g.metadata for g in goldens])
        self.assertEqual(n, self.clone_links())
        # each new golden one generation past those of the pool; the
        # older two at the limit, the newest taking the clones
        by_gen = {int(g.metadata[cache.MD_GENERATION]): g for g in goldens}
        self.assertEqual([1, 2, 3], sorted(by_gen))
        self.assertEqual('true', by_gen[1].metadata.get(cache.MD_FULL))
        self.assertEqual('true', by_gen[2].metadata.get(cache.MD_FULL))
        self.assertIsNone(by_gen[3].metadata.get(cache.MD_FULL))
        for v in vols[:: self.CLONE_LIMIT]:
            self._assert_content(v['id'], image)
        for v in vols:
            self.delete_volume(v['id'])
        self.assertEqual(0, self.clone_links())

    def test_image_too_big_refused_before_any_lun(self):
        # 2 GiB virtual, a few MiB of file: passes Cinder's API size check.
        image, meta = self._image(mib=2048, seed=5, name='big', data_mib=4)
        self.assertLess(image.file_size, GiB)
        self._assert_refused_leaving_nothing(meta['id'], size=1)

    def test_raw_image_streams_in_one_pass(self):
        image, meta = self._image(mib=24, seed=14, fmt='raw', name='raw')
        made = self._spy_temp_files()
        vols = self._create(meta['id'], n=3)
        # One pass: Glance sent each byte once, and nothing went through a
        # file on the volume host (no download file, no conversion).
        self.assertEqual(1, self.images.downloads[meta['id']])
        self.assertEqual(image.file_size, self.images.bytes_served[meta['id']])
        self.assertEqual([], made)
        for v in vols:
            self._assert_content(v['id'], image)

    def test_the_build_runs_with_the_service_heap_set_aside(self):
        # image_cache/collector.py: the service's objects are out of the
        # collector's full collections while the image streams
        image, meta = self._image(mib=8, seed=17, fmt='raw', name='heap')
        frozen = []
        store = self.images
        real = store.chunks

        def chunks(image_id):
            for chunk in real(image_id):
                frozen.append(gc.get_freeze_count())
                yield chunk
        store.chunks = chunks
        self.addCleanup(setattr, store, 'chunks', real)
        vol = self._create(meta['id'])[0]
        self._assert_content(vol['id'], image)
        self.assertEqual(8, len(frozen))
        self.assertTrue(all(n > 0 for n in frozen), frozen)
        # and back in the collector's reach once built
        self.assertEqual(0, gc.get_freeze_count())

    def test_the_golden_does_not_stay_in_the_page_cache(self):
        # image_cache/lunwriter.py: by default a golden's pages leave the
        # volume host's page cache once flushed (DROP_BEHIND); with
        # dpm_ephemeral_direct_io they never enter it. For the raw stream
        # and the qcow2 conversion alike, through the real volume service.
        seen = []
        real = lunwriter.LunWriter.finish

        def finish(lun):
            real(lun)
            path = os.readlink(f'/proc/self/fd/{lun.fd}')
            seen.append((lun.writes, lun.direct_writes,
                         pagecache.resident_pages(path)))
        self.useFixture(fixtures.MonkeyPatch(
            'cinder_dpm_ephemeral.image_cache.lunwriter.LunWriter.finish',
            finish))
        self.addCleanup(setattr, lunwriter, 'DROP_BEHIND',
                        lunwriter.DROP_BEHIND)
        seed = 18
        for direct, drop in ((False, False), (False, True), (True, True)):
            self.flags(dpm_ephemeral_direct_io=direct, group=self.BACKEND)
            lunwriter.DROP_BEHIND = drop
            seen.clear()
            for fmt in ('raw', 'qcow2'):
                image, meta = self._image(
                    mib=16, seed=seed, fmt=fmt,
                    name=f'cache-{direct}-{drop}-{fmt}')
                seed += 1
                vol = self._create(meta['id'])[0]
                self._assert_content(vol['id'], image)
            self.assertEqual(2, len(seen), seen)
            for writes, direct_writes, cached in seen:
                if direct:
                    # every write of whole blocks past the cache
                    self.assertGreater(direct_writes, 0, seen)
                    self.assertGreaterEqual(direct_writes, writes - 1, seen)
                else:
                    self.assertEqual(0, direct_writes, seen)
                if drop:
                    self.assertEqual(0, cached, seen)
                else:
                    self.assertGreater(cached, 1000, seen)

    def _spy_temp_files(self):
        """Record every temporary file the cache makes (still made)."""
        made = []
        real = tempfile.mkstemp

        def mkstemp(*args, **kwargs):
            fd, path = real(*args, **kwargs)
            made.append(path)
            return fd, path
        self.useFixture(fixtures.MonkeyPatch(
            'cinder_dpm_ephemeral.image_cache.build.tempfile.mkstemp',
            mkstemp))
        return made

    def _slow_glance(self, seconds_per_chunk=0.4):
        """Glance at network speed (4 MiB chunks at about 10 MB/s)."""
        store = self.images
        real = store.chunks

        def chunks(image_id):
            for chunk in real(image_id):
                eventlet.sleep(seconds_per_chunk)
                yield chunk
        store.chunks = chunks
        self.addCleanup(setattr, store, 'chunks', real)

    def test_raw_label_on_qcow2_content_refused_without_leftovers(self):
        image = images.make_image(self.work_dir, 8 * MiB, 'qcow2', seed=15,
                                  name='disguised')
        meta = self.images.add(image.path, 'raw')  # a lie: it is qcow2
        self._assert_refused_leaving_nothing(meta['id'])

    def test_qcow2_is_converted_while_it_downloads(self):
        image, meta = self._image(mib=24, seed=16, name='overlap')
        self._slow_glance()
        vol = self._create(meta['id'])[0]
        self._assert_content(vol['id'], image)
        self.assertEqual(1, self.images.downloads[meta['id']])
        self.assertEqual(image.file_size, self.images.bytes_served[meta['id']])
        golden = self.goldens(meta['id'])[0]
        self.assertGreater(float(golden.metadata['build_seconds']), 0)
        # The overlap itself: qemu-img read the image through the export
        # before the download had ended (0 when converted afterwards).
        self.assertGreater(int(golden.metadata['conversion_early_reads']), 0)
        # the temporary file and the NBD socket are gone
        self.assertEqual([], self._conversion_leftovers())

    def test_qcow2_with_backing_file_refused_before_any_lun(self):
        base = os.path.join(self.work_dir, 'base.raw')
        with open(base, 'wb') as f:
            f.truncate(8 * MiB)
        top = os.path.join(self.work_dir, 'top.qcow2')
        subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', '-b',
                        base, '-F', 'raw', top], check=True)
        meta = self.images.add(top, 'qcow2')
        self._assert_refused_leaving_nothing(meta['id'])

    def test_short_qcow2_download_fails_without_leftovers(self):
        image, meta = self._image(mib=24, seed=17, name='short')
        # Glance announced the full size; the store now sends only half.
        with open(image.path, 'r+b') as f:
            f.truncate(image.file_size // 2)
        self._assert_refused_leaving_nothing(meta['id'])

    def test_signed_images_are_verified_as_they_stream(self):
        self.flags(backend=keymgr.BACKEND, group='key_manager')
        signer = keymgr.ImageSigner()
        for seed, fmt in ((18, 'qcow2'), (19, 'raw')):
            image = images.make_image(self.work_dir, 16 * MiB, fmt,
                                      seed=seed, name=f'signed-{fmt}')
            meta = self.images.add(image.path, fmt,
                                   properties=signer.properties(image.path))
            vol = self._create(meta['id'])[0]
            self._assert_content(vol['id'], image)
            golden = self.goldens(meta['id'])[0]
            self.assertEqual('true', golden.metadata['signature_verified'])
            self.assertEqual(
                'True', vol['volume_image_metadata']['signature_verified'])

    def test_wrong_signature_refused_without_leftovers(self):
        self.flags(backend=keymgr.BACKEND, group='key_manager')
        signer = keymgr.ImageSigner()
        signed = images.make_image(self.work_dir, 16 * MiB, 'qcow2',
                                   seed=20, name='signed')
        other = images.make_image(self.work_dir, 16 * MiB, 'qcow2',
                                  seed=21, name='other')
        # the signature of other bytes
        meta = self.images.add(other.path, 'qcow2',
                               properties=signer.properties(signed.path))
        self._assert_refused_leaving_nothing(meta['id'])

    def test_incomplete_signature_refused_before_download(self):
        image, _meta = self._image(mib=8, seed=22, name='half-signed')
        meta = self.images.add(image.path, 'qcow2',
                               properties={'img_signature': 'c2lnbmF0dXJl'})
        self._assert_refused_leaving_nothing(meta['id'])
        self.assertEqual(0, self.images.downloads[meta['id']])

    def _assert_refused_leaving_nothing(self, image_id, size=None):
        """A create from ``image_id`` ends in error and leaves nothing.

        No golden volume, no array volume, no LUN, no temporary file or
        NBD socket.
        """
        vol = self.create_volume(size or self.VOLUME_GB, image_id=image_id)
        vol = self.wait_for_volume(vol['id'])
        self.assertEqual('error', vol['status'])
        self.assertEqual([], self.goldens(image_id))
        self.assertEqual(0, self.array_volume_count())
        self.assertEqual({}, self.backend.luns.list())
        self.assertEqual([], self._conversion_leftovers())
        self.delete_volume(vol['id'])

    def _conversion_leftovers(self):
        conv = checks.conversion_dir()
        return [n for n in os.listdir(conv)
                if n.startswith('dpm-golden-') or n.startswith('nbd-')]

    def test_changed_image_gets_new_golden_and_old_one_is_collected(self):
        image, meta = self._image(mib=8, seed=6)
        first = self._create(meta['id'])[0]
        old_golden = self.goldens(meta['id'])[0]

        # The operator replaces the image's bytes in Glance.
        new = images.make_image(self.work_dir, 8 * MiB, 'qcow2', seed=60,
                                name='img-v2')
        self.images.replace(meta['id'], new.path)
        second = self._create(meta['id'])[0]
        self._assert_content(second['id'], new)
        self._assert_content(first['id'], image)
        goldens = {g.id: g for g in self.goldens(meta['id'])}
        self.assertEqual(2, len(goldens))

        # The old golden still has a clone: kept, never used again.
        gc = self.driver.image_cache.collect_garbage(self.images.service())
        self.assertEqual([], gc)
        self.assertEqual('true', self.goldens_by_id()[old_golden.id]
                         .metadata['stale'])
        # Deleting its last clone removes it, with no operator action.
        self.delete_volume(first['id'])
        self.assertNotIn(old_golden.id, self.goldens_by_id())
        self.assertEqual(2, self.array_volume_count())  # new golden + clone
        self.assertEqual(1, len(self.goldens(meta['id'])))

    def test_deleted_image_golden_removed_by_periodic_cleanup(self):
        self.flags(dpm_ephemeral_image_cache_cleanup_interval=0,
                   group=self.BACKEND)
        _image, meta = self._image(mib=8, seed=7)
        vol = self._create(meta['id'])[0]
        self.images.remove(meta['id'])
        self.driver._update_volume_stats()   # the periodic stats task
        self.assertEqual(1, len(self.goldens(meta['id'])))  # still cloned
        self.delete_volume(vol['id'])
        self.driver._update_volume_stats()
        self.assertEqual([], self.goldens(meta['id']))
        self.assertEqual(0, self.array_volume_count())

    def test_lru_eviction_spares_goldens_with_clones(self):
        self.flags(dpm_ephemeral_image_cache_max_count=1, group=self.BACKEND)
        img_a, meta_a = self._image(mib=8, seed=8, name='a')
        vol_a = self._create(meta_a['id'])[0]
        _img_b, meta_b = self._image(mib=8, seed=9, name='b')
        vol_b = self._create(meta_b['id'])[0]
        # A was last cloned long ago (a golden cloned in the last minutes
        # is not retired: test_races).
        (golden_a,) = self.goldens(meta_a['id'])
        self.driver.image_cache._set_md(
            golden_a, {cache.MD_LAST_USED: cache._now(-3600)})
        self.delete_volume(vol_b['id'])
        # Two goldens, limit one: A is the least recently used, but a clone
        # depends on it, so it is kept (and no longer cloned); B is then
        # within the limit.
        removed = self.driver.image_cache.collect_garbage(
            self.images.service())
        self.assertEqual([], removed)
        self.assertEqual(2, len(self.goldens()))
        self._assert_content(vol_a['id'], img_a)
        # Its last clone gone, A is evicted right away (no operator action).
        self.delete_volume(vol_a['id'])
        left = self.goldens()
        self.assertEqual(1, len(left))
        self.assertEqual(meta_b['id'], left[0].metadata['image_id'])
        self.assertEqual(1, self.array_volume_count())

    def test_eviction_by_size_removes_least_recently_used(self):
        # Each golden is VOLUME_GB (the array's smallest LUN); room for one.
        self.flags(dpm_ephemeral_image_cache_max_size_gb=self.VOLUME_GB,
                   group=self.BACKEND)
        _img_a, meta_a = self._image(mib=8, seed=11, name='size-a')
        self.delete_volume(self._create(meta_a['id'])[0]['id'])
        _img_b, meta_b = self._image(mib=8, seed=12, name='size-b')
        vol_b = self._create(meta_b['id'])[0]
        # Over the size limit by A's golden, the least recently used one
        # with no clone: it goes (already on B's build or now).
        self.driver.image_cache.collect_garbage(self.images.service())
        left = self.goldens()
        self.assertEqual([meta_b['id']],
                         [g.metadata['image_id'] for g in left])
        self.assertEqual(2, self.array_volume_count())   # golden B + clone
        self.delete_volume(vol_b['id'])

    def test_golden_delete_through_the_api_refused_while_cloned(self):
        _image, meta = self._image(mib=8, seed=13, name='api-delete')
        vol = self._create(meta['id'])[0]
        golden = self.goldens(meta['id'])[0]
        # An operator deletes the golden volume (admin, through the API):
        # refused while a clone shares its data, nothing changes.
        self.api.delete_volume(golden.id)
        after = self.wait_for_volume(golden.id, ('available', 'error',
                                                 'error_deleting'))
        self.assertEqual('available', after['status'])
        self.assertEqual(2, self.array_volume_count())
        self.assertEqual(1, self.clone_links())
        # Once the clone is gone the same request succeeds.
        self.delete_volume(vol['id'])
        self.delete_volume(golden.id)
        self.assertEqual(0, self.array_volume_count())

    def test_golden_delete_refused_while_cloned(self):
        _image, meta = self._image(mib=8, seed=10)
        vol = self._create(meta['id'])[0]
        golden = self.goldens(meta['id'])[0]
        self.assertRaises(exception.VolumeIsBusy,
                          self.driver.image_cache.check_deletable, golden)
        self.assertEqual(2, self.array_volume_count())
        self.delete_volume(vol['id'])
        self.driver.image_cache.check_deletable(golden)


class SVCImageCacheTest(array_views.SVCArray, _CacheTests,
                        cinder_harness.CinderHarness):
    CLONE_LIMIT = 3

    def set_clone_limit(self, n):
        self.backend.emulator.set('array.ctx.fcmap_source_limit', n)

    def test_thin_clone_create_and_delete_commands(self):
        _image, meta = self._image(mib=8, seed=23, name='commands')
        self._create(meta['id'])            # builds the golden volume
        vol = self._create(meta['id'])[0]
        name = f'volume-{vol["id"]}'
        maps = [m for m in self._inv()['fcmaps']
                if m['target'] == name]
        self.assertEqual([f'dpmc-{vol["id"]}'], [m['name'] for m in maps])
        self.assertEqual('0', str(maps[0]['copy_rate']))
        self.delete_volume(vol['id'])
        self.assertNotIn(name, [v['name'] for v in self._inv()['vdisks']])
        self.assertEqual(1, len(self._inv()['fcmaps']))   # the first clone
        log = self.backend.emulator.call('array.recent_commands', 400)
        first = next(i for i, argv in enumerate(log)
                     if argv[1] == 'mkvdisk' and any(name in a for a in argv))
        # what touched the clone (startfcmap names the map by its id)
        ran = [argv[1] for argv in log[first:]
               if argv[1] == 'startfcmap' or
               any(name in a or vol['id'] in a for a in argv)]
        # mkvdisk, mkfcmap, startfcmap -prep; lsvdiskfcmappings, rmvdisk
        self.assertEqual(['mkvdisk', 'mkfcmap', 'startfcmap',
                          'lsvdiskfcmappings', 'rmvdisk'], ran)

    def test_one_io_group_is_not_asked_for(self):
        # storwize_svc_vol_iogrp is 0 (its default): the golden LUN and a
        # blank volume are made in io_grp0 without an lsiogrp (the
        # in-tree create_volume runs one before every mkvdisk)
        _image, meta = self._image(mib=8, seed=29, name='iogrp')
        self.backend.emulator.call('array.commands.clear')
        self._create(meta['id'])
        blank = self.create_volume(1)
        blank = self.wait_for_volume(blank['id'])
        self.assertEqual('available', blank['status'], blank)
        log = self.backend.emulator.call('array.recent_commands', 10000)
        made = [argv for argv in log if argv[1] == 'mkvdisk']
        # the golden LUN, its clone, the blank volume
        self.assertEqual(3, len(made), made)
        self.assertEqual(['0'] * 3,
                         [argv[argv.index('-iogrp') + 1] for argv in made])
        self.assertNotIn('lsiogrp', [argv[1] for argv in log])


class PowerFlexImageCacheTest(array_views.PowerFlexArray, _CacheTests,
                              cinder_harness.CinderHarness):
    CLONE_LIMIT = 3

    def set_clone_limit(self, n):
        self.backend.emulator.set('array.vtree_snapshot_limit', n)
