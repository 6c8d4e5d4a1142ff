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
"""Golden LUNs made ahead (``dpm_ephemeral_spare_golden_luns``), real Cinder.

A build leaves a spare LUN of its size behind; the next build of an image
of that size writes onto it without asking the array for a LUN; spares are
counted like golden volumes and never outlive a failure or the option.
Such a build reaches its attach before os-brick could answer with the
host's connector properties: the last answer stands in, and os-brick is
asked again only when that answer is old or the attach fails with it.
A spare is attached to the volume host once made, so the build on it
asks the array for no mapping; a restart leaves that mapping to the
periodic clean-up.
"""

from cinder import context as cinder_context
from cinder import exception
from cinder import objects
from cinder.volume import volume_utils
import eventlet
import fixtures

from cinder_dpm_ephemeral.emulators.powerflex import errors as pflex_errors
from cinder_dpm_ephemeral.emulators.svc import common as svc_common
from cinder_dpm_ephemeral.image_cache import detach
from cinder_dpm_ephemeral.image_cache import spares
from cinder_dpm_ephemeral.image_cache import writer
from cinder_dpm_ephemeral.testing import audit
from cinder_dpm_ephemeral.testing import cinder_harness
from cinder_dpm_ephemeral.testing import images
from tests.volume.functional import array_views

MiB = 1024 * 1024


class _SpareTests(array_views.InternalTenant):

    # the option's default: one spare per pool, volume type and size
    SPARE_GOLDEN_LUNS = None

    @property
    def cache(self):
        return self.driver.image_cache

    def _image(self, seed, name, fmt='qcow2'):
        image = images.make_image(self.work_dir, 8 * MiB, fmt, seed=seed,
                                  name=name)
        return image, self.add_image(image)

    def _create(self, image_id):
        vol = self.create_volume(self.VOLUME_GB, image_id=image_id)
        vol = self.wait_for_volume(vol['id'], timeout=300)
        self.assertEqual('available', vol['status'], vol)
        spares.wait_made(self.cache)
        return vol

    def spares(self):
        return [g for g in self.goldens() if spares.is_spare(g)]

    def _usage(self):
        return self.internal_usage()

    def _allocated_gb(self, host):
        pool = volume_utils.extract_host(host, 'pool')
        return self.volume_manager.stats['pools'][pool][
            'allocated_capacity_gb']

    def _assert_content(self, volume_id, image):
        self.assertEqual(image.raw_sha256,
                         self.backend.luns.sha256(self.lun_of(volume_id),
                                                  image.virtual_size))

    def test_next_build_takes_the_spare_and_leaves_another(self):
        image_a, meta_a = self._image(31, 'spare-a')
        vol_a = self._create(meta_a['id'])
        golden_a = self.goldens(meta_a['id'])[0]
        [spare] = self.spares()
        self.assertEqual('available', spare.status)
        self.assertEqual(golden_a.size, spare.size)
        self.assertEqual(golden_a.volume_type_id, spare.volume_type_id)
        self.assertEqual(array_views.INTERNAL_PROJECT, spare.project_id)
        self.assertIn(spare.metadata[spares.MD_READS_ZEROS],
                      ('true', 'false'))
        # golden + clone + spare on the array; all three counted, in the
        # internal tenant's quota and in the pool's allocated capacity
        # (the spare was made in the background, in no manager call)
        self.assertEqual(3, self.array_volume_count())
        self.assertEqual((2, 2 * golden_a.size), self._usage())
        self.assertEqual(2 * golden_a.size + vol_a['size'],
                         self._allocated_gb(spare.host))

        image_b, meta_b = self._image(32, 'spare-b', fmt='raw')
        vol_b = self._create(meta_b['id'])
        golden_b = self.goldens(meta_b['id'])[0]
        # the build wrote onto the spare: same row, same array object
        self.assertEqual(spare.id, golden_b.id)
        self.assertEqual(f'dpm-golden-{meta_b["id"]}', golden_b.display_name)
        self.assertEqual('ready', golden_b.metadata['state'])
        self._assert_content(vol_b['id'], image_b)
        self._assert_content(vol_a['id'], image_a)
        self.assertEqual(1, self.images.downloads[meta_b['id']])
        # and another spare was made for the next build
        [again] = self.spares()
        self.assertNotEqual(spare.id, again.id)
        self.assertEqual(5, self.array_volume_count())
        self.assertEqual((3, 3 * golden_a.size), self._usage())

    def _maps_asked(self):
        """The volume ids the driver is asked to map, from now on."""
        real = self.driver.initialize_connection
        asked = []

        def initialize_connection(volume, connector):
            asked.append(volume.id)
            return real(volume, connector)
        self.driver.initialize_connection = initialize_connection
        self.addCleanup(delattr, self.driver, 'initialize_connection')
        return asked

    def test_a_spare_is_attached_ahead_and_its_build_writes_at_once(self):
        _image, meta_a = self._image(50, 'ahead-a')
        self._create(meta_a['id'])
        [spare] = self.spares()
        # mapped to this host, recorded as a detach this service owes
        self.assertEqual([spare.id], self.mapped())
        self.assertEqual(str(self.driver.host),
                         spare.metadata[detach.MD_DETACH_PENDING])
        asked = self._maps_asked()
        image_b, meta_b = self._image(51, 'ahead-b', fmt='raw')
        vol_b = self._create(meta_b['id'])
        [golden_b] = self.goldens(meta_b['id'])
        self.assertEqual(spare.id, golden_b.id)
        # the build asked the array for no mapping of its LUN: only the
        # next spare was mapped
        [again] = self.spares()
        self.assertEqual([again.id], asked)
        self._assert_content(vol_b['id'], image_b)
        # detached once built, its record gone; the next spare attached
        self.assertEqual([again.id], self.mapped())
        self.assertNotIn(detach.MD_DETACH_PENDING, golden_b.metadata)
        self.assertTrue(writer.is_held(again.id))
        self.assertFalse(writer.is_held(golden_b.id))

    def test_the_leak_audit_knows_a_spare_attached_ahead(self):
        # (./run faults audits with it)
        _image, meta = self._image(60, 'ahead-audit')
        self._create(meta['id'])
        [spare] = self.spares()
        self.assertEqual([spare.id], self.mapped())

        def leaks():
            found = audit.audit(self.BACKEND,
                                self.backend.emulator.inventory())['leaked']
            return {k: v for k, v in found.items() if v}
        # mapped on purpose, and recorded: not a leak
        self.assertEqual({}, leaks())
        # the same mapping with no record of it is one
        detach.forget(self.cache, spare._context, spare.id)
        self.assertEqual(['host_mappings' if self.BACKEND == 'svc'
                          else 'sdc_mappings'], list(leaks()))
        self.cache._set_md(spare, detach.owed_by(self.cache))

    def test_without_attach_ahead_the_build_maps_its_spare(self):
        self.useFixture(fixtures.MonkeyPatch(
            'cinder_dpm_ephemeral.image_cache.spares.ATTACH_AHEAD', False))
        _image, meta_a = self._image(56, 'ahead-off-a')
        self._create(meta_a['id'])
        [spare] = self.spares()
        self.assertEqual([], self.mapped())
        self.assertNotIn(detach.MD_DETACH_PENDING, spare.metadata)
        asked = self._maps_asked()
        image_b, meta_b = self._image(57, 'ahead-off-b')
        vol_b = self._create(meta_b['id'])
        self.assertEqual([spare.id], asked)
        self._assert_content(vol_b['id'], image_b)
        self.assertEqual([], self.mapped())

    def test_a_restart_leaves_the_spares_mapping_to_the_clean_up(self):
        _image, meta_a = self._image(52, 'ahead-c')
        self._create(meta_a['id'])
        [spare] = self.spares()
        # the service restarts: its attachment is gone with the process,
        # the array's mapping and the record of it are not
        self.assertTrue(writer.is_held(spare.id))
        writer._held.pop(spare.id)
        self.assertEqual([spare.id], self.mapped())
        # the clean-up (its first run is at start-up) removes the mapping
        self.cache.collect_garbage(self.images.service())
        self.assertEqual([], self.mapped())
        [spare] = self.spares()
        self.assertNotIn(detach.MD_DETACH_PENDING, spare.metadata)
        # and the next build attaches the spare itself
        asked = self._maps_asked()
        image_b, meta_b = self._image(53, 'ahead-d')
        vol_b = self._create(meta_b['id'])
        [golden_b] = self.goldens(meta_b['id'])
        self.assertEqual(spare.id, golden_b.id)
        self.assertEqual(spare.id, asked[0])
        self._assert_content(vol_b['id'], image_b)
        [again] = self.spares()
        self.assertEqual([again.id], self.mapped())

    def test_a_spare_the_array_will_not_map_is_still_a_spare(self):
        self.flags(dpm_ephemeral_spare_golden_luns=0, group=self.BACKEND)
        _image, meta = self._image(54, 'ahead-e')
        vol = self._create(meta['id'])
        golden = self.goldens(meta['id'])[0]
        self.flags(dpm_ephemeral_spare_golden_luns=1, group=self.BACKEND)
        ictx = cinder_context.get_internal_tenant_context()
        volume = objects.Volume.get_by_id(ictx.elevated(), vol['id'])
        self.inject_map_fault()
        try:
            spare = spares.replenish(self.cache, ictx, volume, golden.size)
        finally:
            self.backend.emulator.call(self.CLEAR_FAULTS)
        # made, but neither attached nor recorded as mapped
        self.assertEqual([spare.id], [g.id for g in self.spares()])
        self.assertFalse(writer.is_held(spare.id))
        self.assertNotIn(detach.MD_DETACH_PENDING, self.spares()[0].metadata)
        self.assertEqual([], self.mapped())
        # the build that takes it attaches it
        image_b, meta_b = self._image(55, 'ahead-f')
        vol_b = self._create(meta_b['id'])
        self.assertEqual(spare.id, self.goldens(meta_b['id'])[0].id)
        self._assert_content(vol_b['id'], image_b)

    def test_a_spare_another_service_attached_is_left_to_it(self):
        _image, meta = self._image(58, 'ahead-g')
        self._create(meta['id'])
        [spare] = self.spares()
        # as made and attached by another volume service of a cluster
        # (the attachment lives in that service's process)
        other = f'otherhost@{self.BACKEND}'
        self.cache._set_md(spare, {detach.MD_DETACH_PENDING: other})
        image_b, meta_b = self._image(59, 'ahead-h')
        vol_b = self._create(meta_b['id'])
        # not taken here: this build made its own LUN
        self.assertNotEqual(spare.id, self.goldens(meta_b['id'])[0].id)
        self._assert_content(vol_b['id'], image_b)
        # nor removed here, nor its mapping, when the option is lowered
        self.flags(dpm_ephemeral_spare_golden_luns=0, group=self.BACKEND)
        self.cache.collect_garbage(self.images.service())
        self.assertEqual([spare.id], [g.id for g in self.spares()])
        self.assertEqual([spare.id], self.mapped())
        # its owner's clean-up removes it (the owner is this process)
        self.cache._set_md(spare, {
            detach.MD_DETACH_PENDING: str(self.driver.host)})
        self.cache.collect_garbage(self.images.service())
        self.assertEqual([], self.spares())
        self.assertEqual([], self.mapped())
        self.assertFalse(writer.is_held(spare.id))

    def test_without_the_option_no_spare_and_surplus_removed(self):
        _image, meta = self._image(33, 'spare-c')
        self._create(meta['id'])
        [spare] = self.spares()
        before = self.array_volume_count()
        # lowered to 0: the periodic clean-up removes the spare, quota too
        self.flags(dpm_ephemeral_spare_golden_luns=0, group=self.BACKEND)
        self.cache.collect_garbage(self.images.service())
        self.assertEqual([], self.spares())
        self.assertEqual(before - 1, self.array_volume_count())
        # detached before its removal: nothing mapped, nothing held
        self.assertEqual([], self.mapped())
        self.assertFalse(writer.is_held(spare.id))
        golden = self.goldens(meta['id'])[0]
        self.assertEqual((1, golden.size), self._usage())
        # and a build makes none
        _image, meta2 = self._image(34, 'spare-d')
        self._create(meta2['id'])
        self.assertEqual([], self.spares())
        self.assertEqual(before - 1 + 2, self.array_volume_count())

    def test_failed_build_on_a_spare_leaves_nothing(self):
        _image, meta = self._image(35, 'spare-e')
        self._create(meta['id'])
        [spare] = self.spares()
        objects_before = self.array_volume_count()
        usage_before = self._usage()
        # Glance announced the full size; the store now sends only half:
        # the build fails after it took the spare.
        image, bad = self._image(36, 'spare-short')
        with open(image.path, 'r+b') as f:
            f.truncate(image.file_size // 2)
        vol = self.create_volume(self.VOLUME_GB, image_id=bad['id'])
        vol = self.wait_for_volume(vol['id'], timeout=300)
        self.assertEqual('error', vol['status'])
        self.assertEqual([], self.goldens(bad['id']))
        # the spare was used and removed with the failed golden
        self.assertNotIn(spare.id, [g.id for g in self.goldens()])
        self.assertEqual([], self.spares())
        self.assertEqual(objects_before - 1, self.array_volume_count())
        self.assertEqual([], self.mapped())
        self.assertEqual((usage_before[0] - 1,
                          usage_before[1] - spare.size), self._usage())
        self.delete_volume(vol['id'])

    def test_a_spare_is_taken_once(self):
        _image, meta = self._image(37, 'spare-f')
        vol = self._create(meta['id'])
        [spare] = self.spares()
        ictx = cinder_context.get_internal_tenant_context()
        volume = objects.Volume.get_by_id(ictx.elevated(), vol['id'])
        md = {'state': 'building', 'image_id': 'x'}
        first = spares.claim(self.cache, ictx, volume, spare.size, md,
                             'dpm-golden-x', 'x')
        self.assertEqual(spare.id, first.id)
        # a second build, and a removal holding an older view of the row
        self.assertIsNone(spares.claim(self.cache, ictx, volume, spare.size,
                                       md, 'dpm-golden-y', 'y'))
        self.assertFalse(spares.remove(self.cache, spare))
        self.assertEqual('creating', objects.Volume.get_by_id(
            ictx.elevated(), spare.id).status)
        # the claimed one, as a build whose service died: the clean-up
        # removes it once it is no longer this process's
        self.cache.building.discard(first.id)
        self.cache.collect_garbage(self.images.service())
        self.assertNotIn(first.id, [g.id for g in self.goldens()])
        self.assertEqual(2, self.array_volume_count())   # golden + clone
        self.assertEqual([], self.mapped())
        self.assertFalse(writer.is_held(first.id))

    def test_a_spare_in_error_is_removed_and_replaced(self):
        _image, meta = self._image(48, 'spare-err')
        vol = self._create(meta['id'])
        [spare] = self.spares()
        # as _destroy leaves one whose array delete failed
        spare.status = 'error'
        spare.save()
        objects_before = self.array_volume_count()
        # it does not stand in the way of a new one
        ictx = cinder_context.get_internal_tenant_context()
        volume = objects.Volume.get_by_id(ictx.elevated(), vol['id'])
        made = spares.replenish(self.cache, ictx, volume, spare.size)
        self.assertIsNotNone(made)
        self.assertEqual(objects_before + 1, self.array_volume_count())
        # and the clean-up removes it
        self.cache.collect_garbage(self.images.service())
        self.assertEqual([made.id], [g.id for g in self.spares()])
        self.assertEqual(objects_before, self.array_volume_count())

    def test_a_spare_of_another_size_is_not_taken(self):
        _image, meta = self._image(38, 'spare-g')
        self._create(meta['id'])
        [spare] = self.spares()
        # a 2 GiB-larger image (virtual size) needs a larger LUN
        big = images.make_image(self.work_dir, spare.size * 1024 * MiB +
                                MiB, 'qcow2', seed=39, name='spare-big',
                                data_size=4 * MiB)
        meta_big = self.add_image(big)
        vol = self.create_volume(spare.size * 2, image_id=meta_big['id'])
        vol = self.wait_for_volume(vol['id'], timeout=300)
        self.assertEqual('available', vol['status'], vol)
        spares.wait_made(self.cache)
        golden_big = self.goldens(meta_big['id'])[0]
        self.assertNotEqual(spare.id, golden_big.id)
        # one spare per pool (the option): the old size gave way
        [now] = self.spares()
        self.assertEqual(golden_big.size, now.size)
        self.assertNotIn(spare.id, [g.id for g in self.goldens()])
        # the operator's eviction (cinder-dpm-manage cache evict) takes it
        objects_before = self.array_volume_count()
        self.assertTrue(self.cache.remove_unused(now))
        self.assertEqual([], self.spares())
        self.assertEqual(objects_before - 1, self.array_volume_count())

    def _slow_connector(self):
        """os-brick answers slowly from its second call on.

        Each answer is marked with its number. Returns the answers each
        attach of a golden LUN used.
        """
        # the build attaches the spare itself (as after a restart, or
        # when attaching ahead failed)
        self.useFixture(fixtures.MonkeyPatch(
            'cinder_dpm_ephemeral.image_cache.spares.ATTACH_AHEAD', False))
        real = volume_utils.brick_get_connector_properties
        answers = self.answers = []
        # no answer of an earlier test of this process
        self.useFixture(fixtures.MonkeyPatch(
            'cinder_dpm_ephemeral.image_cache.writer._last_connector', {}))

        def slow(*args, **kwargs):
            props = dict(real(*args, **kwargs))
            answers.append(props)
            props['dpm_test_answer'] = len(answers)
            if len(answers) > 1:
                eventlet.sleep(2.0)
            return props
        self.useFixture(fixtures.MonkeyPatch(
            'cinder_dpm_ephemeral.image_cache.writer.volume_utils.'
            'brick_get_connector_properties', slow))
        used = []
        real_attach = self.driver._attach_volume

        def attach(context, volume, properties, *args, **kwargs):
            used.append(properties.get('dpm_test_answer'))
            if used[-1] in self.refused_answers:
                # as an FC attach with a replaced HBA's old WWPNs fails
                raise exception.VolumeBackendAPIException(
                    data='no device found for the host\'s ports')
            return real_attach(context, volume, properties, *args,
                               **kwargs)
        self.driver._attach_volume = attach
        self.addCleanup(delattr, self.driver, '_attach_volume')
        return used

    refused_answers = ()

    def test_attach_uses_the_last_connector_without_asking_again(self):
        used = self._slow_connector()
        image_a, meta_a = self._image(43, 'conn-a')
        self._create(meta_a['id'])
        image_b, meta_b = self._image(44, 'conn-b', fmt='raw')
        vol_b = self._create(meta_b['id'])
        # the first build waited for the answer; the second (on the spare)
        # used it, and os-brick was not asked again
        self.assertEqual([1, 1], used)
        self.assertEqual(1, len(self.answers))
        self._assert_content(vol_b['id'], image_b)

    def test_an_old_connector_answer_is_not_used(self):
        used = self._slow_connector()
        self.useFixture(fixtures.MonkeyPatch(
            'cinder_dpm_ephemeral.image_cache.writer.CONNECTOR_MAX_AGE', 0))
        _image, meta_a = self._image(48, 'conn-e')
        self._create(meta_a['id'])
        image_b, meta_b = self._image(49, 'conn-f', fmt='raw')
        vol_b = self._create(meta_b['id'])
        # the first answer too old for the second build: it waited for
        # its own
        self.assertEqual([1, 2], used)
        self._assert_content(vol_b['id'], image_b)

    def test_attach_refused_with_the_last_connector_uses_the_new_one(self):
        used = self._slow_connector()
        _image, meta_a = self._image(45, 'conn-c')
        self._create(meta_a['id'])
        self.refused_answers = (1,)
        image_b, meta_b = self._image(46, 'conn-d')
        vol_b = self._create(meta_b['id'])
        self.assertEqual([1, 1, 2], used)
        self._assert_content(vol_b['id'], image_b)
        self.assertEqual(1, self.images.downloads[meta_b['id']])

    def test_no_spare_over_the_internal_tenants_quota(self):
        self.flags(dpm_ephemeral_spare_golden_luns=0, group=self.BACKEND)
        _image, meta = self._image(47, 'spare-quota')
        vol = self._create(meta['id'])
        golden = self.goldens(meta['id'])[0]
        # room for the golden volume only
        self.api.api_put(f'/os-quota-sets/{array_views.INTERNAL_PROJECT}',
                         {'quota_set': {'volumes': 1}})
        before = (self.array_objects(), self.internal_usage())
        self.flags(dpm_ephemeral_spare_golden_luns=1, group=self.BACKEND)
        ictx = cinder_context.get_internal_tenant_context()
        volume = objects.Volume.get_by_id(ictx.elevated(), vol['id'])
        self.assertIsNone(spares.replenish(self.cache, ictx, volume,
                                           golden.size))
        self.assertEqual([], self.spares())
        self.assertEqual(before, (self.array_objects(),
                                  self.internal_usage()))

    def test_a_spare_the_array_refuses_leaves_nothing(self):
        self.flags(dpm_ephemeral_spare_golden_luns=0, group=self.BACKEND)
        _image, meta = self._image(42, 'spare-h')
        vol = self._create(meta['id'])
        golden = self.goldens(meta['id'])[0]
        before = (self.array_objects(), self.internal_usage())
        self.flags(dpm_ephemeral_spare_golden_luns=1, group=self.BACKEND)
        self.inject_lun_fault()
        ictx = cinder_context.get_internal_tenant_context()
        volume = objects.Volume.get_by_id(ictx.elevated(), vol['id'])
        self.assertRaises(exception.VolumeBackendAPIException,
                          spares.replenish, self.cache, ictx,
                          volume, golden.size)
        # no row, no LUN, no quota left behind
        self.assertEqual([], self.spares())
        self.assertEqual([golden.id], [g.id for g in self.goldens()])
        self.assertEqual(before, (self.array_objects(),
                                  self.internal_usage()))
        self.assertEqual(set(), self.cache.building)
        # and the next try makes it
        made = spares.replenish(self.cache, ictx, volume, golden.size)
        self.assertEqual([made.id], [g.id for g in self.spares()])


class SVCSpareLunTest(array_views.SVCArray, _SpareTests,
                      cinder_harness.CinderHarness):

    def inject_lun_fault(self):
        # the pool has no extents left for the new vdisk
        self.backend.emulator.call('array.inject_fault', 'mkvdisk', 1,
                                   svc_common.E_NO_EXTENTS)

    def mapped(self):
        """The ids of the volumes mapped to a host."""
        return sorted(m['vdisk_name'][len('volume-'):]
                      for m in self._inv()['host_mappings'])

    CLEAR_FAULTS = 'array.clear_faults'

    def inject_map_fault(self):
        # every mapping refused (the one-command way and the in-tree
        # way), with an answer no one retries (CMMVC5786E is retried)
        self.backend.emulator.call('array.inject_fault', 'mkvdiskhostmap',
                                   100, svc_common.E_UNSUPPORTED)

    def test_no_mkvdisk_for_a_build_on_a_spare(self):
        _image, meta = self._image(40, 'spare-cmd')
        self._create(meta['id'])
        [spare] = self.spares()
        start = len(self.backend.emulator.call('array.recent_commands',
                                               10000))
        _image, meta2 = self._image(41, 'spare-cmd2')
        vol = self._create(meta2['id'])
        golden = self.goldens(meta2['id'])[0]
        [again] = self.spares()
        log = self.backend.emulator.call('array.recent_commands', 10000)
        made = [argv for argv in log[start:] if argv[1] == 'mkvdisk']
        names = [next(a.strip('"') for a in argv
                      if a.strip('"').startswith('volume-'))
                 for argv in made]
        # the clone's vdisk and the next spare's; none for the golden,
        # which is the spare's vdisk
        self.assertEqual(spare.id, golden.id)
        self.assertEqual(sorted([f'volume-{vol["id"]}',
                                 f'volume-{again.id}']), sorted(names))

    def _spare_made_after(self, create):
        """Assert the spare made after ``create()`` waited for its clones.

        ``create()`` returns the volumes it made, available; the next
        spare's first command, its ``mkvdisk``, must come after every
        command naming one of their vdisks.
        """
        start = len(self.backend.emulator.call('array.recent_commands',
                                               10000))
        vols = create()
        spares.wait_made(self.cache)
        [spare] = self.spares()
        log = self.backend.emulator.call('array.recent_commands',
                                         10000)[start:]

        def naming(vdisk):
            return [i for i, argv in enumerate(log)
                    if any(a.strip('"') == vdisk for a in argv)]
        spare_first = naming(f'volume-{spare.id}')[0]
        self.assertEqual('mkvdisk', log[spare_first][1])
        clones_last = max(naming(f'volume-{v["id"]}')[-1] for v in vols)
        self.assertGreater(spare_first, clones_last, log)

    def test_a_storm_is_cloned_before_the_spare_is_made(self):
        # The spare is for the next cold build: its array commands wait
        # until the clones under way, a boot storm's, are made
        # (spares.AFTER_CLONES_WAIT), rather than run beside them.
        _image, meta = self._image(42, 'spare-storm')

        def storm():
            vols = [self.create_volume(self.VOLUME_GB, image_id=meta['id'])
                    for _ in range(5)]
            vols = [self.wait_for_volume(v['id'], timeout=300)
                    for v in vols]
            for v in vols:
                self.assertEqual('available', v['status'], v)
            return vols
        self._spare_made_after(storm)

    def test_a_spread_storm_is_cloned_before_the_spare_is_made(self):
        # Nova sends a storm's creates spread out: the next clone may
        # start after the one before is made. The spare waits for a quiet
        # while (spares.AFTER_CLONES_QUIET), not only for no clone under
        # way. (5 s here rather than 1 s: a loaded test machine may take
        # longer than 1 s from one create's end to the next clone.)
        self.useFixture(fixtures.MonkeyPatch(
            'cinder_dpm_ephemeral.image_cache.spares.AFTER_CLONES_QUIET',
            5.0))
        _image, meta = self._image(43, 'spare-spread')

        def one_then_another():
            vols = []
            for _ in range(2):
                vol = self.wait_for_volume(self.create_volume(
                    self.VOLUME_GB, image_id=meta['id'])['id'], timeout=300)
                self.assertEqual('available', vol['status'], vol)
                vols.append(vol)
            return vols
        self._spare_made_after(one_then_another)


class PowerFlexSpareLunTest(array_views.PowerFlexArray, _SpareTests,
                            cinder_harness.CinderHarness):

    CLEAR_FAULTS = 'clear_faults'

    def mapped(self):
        """The ids of the volumes mapped to an SDC."""
        ids = {v['id'] for v in self._inv()['volumes'] if v['mapped_sdcs']}
        known = {g.provider_id: g.id for g in self.goldens()}
        # (an array id where no golden volume has it)
        return sorted(known.get(i, i) for i in ids)

    def inject_map_fault(self):
        self.backend.emulator.call(
            'inject_fault', 'addMappedSdc', 100,
            error_code=pflex_errors.INJECTED,
            message='The SDC is not connected', http_status=500)

    def inject_lun_fault(self):
        # the storage pool has no room for the new volume
        self.backend.emulator.call(
            'inject_fault', 'createVolume', 1,
            error_code=pflex_errors.INSUFFICIENT_CAPACITY,
            message='Insufficient capacity in Storage Pool',
            http_status=500)
