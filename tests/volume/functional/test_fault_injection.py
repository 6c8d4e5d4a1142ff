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
"""Faults injected into the arrays and Glance: nothing stuck, nothing leaked.

A slice of the fault campaign (``./run faults``, doc/faults.md) per array
through real Cinder, and one test per leak the campaign found, each with
the fault made deterministic.
"""

import time

from cinder import context as cinder_context
from cinder import exception as cinder_exception
from cinder import objects

from cinder_dpm_ephemeral.emulators.svc import common as svc_common
from cinder_dpm_ephemeral.image_cache import detach
from cinder_dpm_ephemeral.image_cache import writer
from cinder_dpm_ephemeral import reschedule
from cinder_dpm_ephemeral.svc import ssh as svc_ssh
from cinder_dpm_ephemeral.testing import audit
from cinder_dpm_ephemeral.testing import cinder_harness
from cinder_dpm_ephemeral.testing import images
from tests.volume.functional import log_capture
from tools.faults import campaign

MiB = 1024 * 1024


_PARAMS = campaign.params_for(True, rate=0.3, seed=7, lifecycles=6)
_PARAMS.update(settle_seconds=30, timeout=120, concurrency=2)


class _CampaignSlice(log_capture.CapturedLogs, campaign.CampaignHarness):
    # at the options' defaults: spare LUNs made and attached ahead
    params = dict(_PARAMS, spare_luns=None)

    def test_campaign_slice_leaves_nothing_stuck_or_leaked(self):
        res = self.campaign(self.BACKEND, self.params)
        injected = res['faults_injected']
        self.assertGreater(sum(injected['management'].values()), 0, res)
        self.assertEqual(0, res['stuck'], res['stuck_detail'])
        self.assertEqual(0, res['leaked'], res['leaked_detail'])
        self.assertEqual(0, res['corrupt'], res['failures_sample'])
        self.assertEqual(res['lifecycles'],
                         res['succeeded'] + res['failed_cleanly'],
                         res['failures_sample'])
        # Every log line of the slice, DEBUG included, the injected
        # failures' tracebacks and retries among them: no array password.
        log = self.all_logs()
        self.assertIn('[cinder.volume', log)
        self.assertNotIn(self.backend.login[1], log)


class SVCCampaignSliceTest(_CampaignSlice, cinder_harness.CinderHarness):
    BACKEND = 'svc'
    VOLUME_GB = 1


class PowerFlexCampaignSliceTest(_CampaignSlice,
                                 cinder_harness.CinderHarness):
    BACKEND = 'powerflex'
    VOLUME_GB = 8


class _FaultTests(log_capture.CapturedLogs, campaign.CampaignHarness):
    # what a build on a LUN made for it does under each fault (the first
    # build of an image size in a pool); spare LUNs under faults:
    # test_spare_luns.py and the campaign slice above
    params = dict(_PARAMS, spare_luns=0)

    def test_cleanup_after_a_reschedule_outlives_the_volume(self):
        # The volume's row is gone (deleted in error, with no host, so
        # without the driver) before the clean-up of its last failed
        # attempt looks at it: no attempt can follow, the clean-up must
        # still remove what the attempt made.
        vol = self.create_volume(self.VOLUME_GB)
        self.wait_for_volume(vol['id'])
        ctx = cinder_context.get_admin_context()
        volume = objects.Volume.get_by_id(ctx, vol['id'])
        # as after a create whose answer was lost: no provider_id
        volume.update({'host': None, 'status': 'creating',
                       'provider_id': None})
        self.assertTrue(reschedule.rescheduled_create(volume))
        objects.Volume.get_by_id(ctx, vol['id']).destroy()
        self.driver.delete_volume(volume)
        self.assertNotIn(self._lun_name(vol['id']), self._lun_names())
        self.assert_clean()

    def test_a_build_detach_that_failed_is_done_by_the_clean_up(self):
        # A golden is marked ready before its detach, which runs beside
        # the first clone (dpm_ephemeral_detach_beside_clone): an unmap
        # the array refuses no longer fails the build. What the service
        # owes is recorded with the golden; its clean-up removes the
        # mapping, then the record. (With the detach in the build, the
        # build fails and no golden is left.)
        meta = self._image(31)
        self._fail_unmaps()
        vol = self._from_image(meta['id'])
        self.assertEqual('available', vol['status'])
        (golden,) = self._goldens()
        self.assertEqual('ready', golden.metadata['state'])
        self.assertEqual(str(self.driver.host),
                         golden.metadata[detach.MD_DETACH_PENDING])
        self.assertEqual([self._lun_name(golden.id)], self._mapped())
        self._clear_faults()
        self.driver.image_cache.collect_garbage(None, golden.host)
        self.assertEqual([], self._mapped())
        golden.refresh()
        self.assertNotIn(detach.MD_DETACH_PENDING, golden.metadata)
        self.delete_volume(vol['id'])
        self.assert_clean()

    def test_a_detach_owed_by_a_killed_service_is_done_by_its_clean_up(self):
        # Killed between marking its golden ready and the detach: the
        # golden stays mapped to the volume host, with the record. The
        # restarted service (no memory of the attach) removes the
        # mapping at its first clean-up; a record naming another service
        # is left to that one.
        meta = self._image(32)
        vol = self._from_image(meta['id'])
        (golden,) = self._goldens()
        writer._attach(self.driver, cinder_context.get_admin_context(),
                       golden, None)
        self._restart_memory()
        cache = self.driver.image_cache
        cache._set_md(golden, {detach.MD_DETACH_PENDING: 'other@backend'})
        cache.collect_garbage(None, golden.host)
        self.assertEqual([self._lun_name(golden.id)], self._mapped())
        cache._set_md(golden, detach.owed_by(cache))
        cache.collect_garbage(None, golden.host)
        self.assertEqual([], self._mapped())
        golden.refresh()
        self.assertNotIn(detach.MD_DETACH_PENDING, golden.metadata)
        self.delete_volume(vol['id'])
        self.assert_clean()

    # -- helpers --------------------------------------------------------------
    def _image(self, seed):
        image = images.make_image(self.work_dir, 2 * MiB, 'raw', seed=seed,
                                  name=f'fi-{seed}')
        return self.add_image(image)

    def _from_image(self, image_id):
        vol = self.create_volume(self.VOLUME_GB, image_id=image_id)
        return self.wait_for_volume(vol['id'])

    def _goldens(self):
        ictx = cinder_context.get_internal_tenant_context()
        return self.driver.image_cache.goldens(ictx, None)

    def assert_clean(self):
        res = audit.audit(self.BACKEND, self.backend.emulator.inventory(),
                          self.params['max_count'])
        self.assertEqual([], res['stuck'])
        self.assertEqual({}, {k: v for k, v in res['leaked'].items() if v})


class SVCFaultTests(_FaultTests, cinder_harness.CinderHarness):
    BACKEND = 'svc'
    VOLUME_GB = 1

    def _maps(self, vol_id):
        return [m for m in self.backend.emulator.inventory()['fcmaps']
                if m['target'] == f'volume-{vol_id}']

    def test_clone_delete_fails_cleanly_on_lookup_error(self):
        # An error other than "does not exist" from the clone's map lookup
        # says nothing about the clone: the delete fails (to be tried
        # again); the in-tree path, which treats the thin clone as a full
        # volume (stops and removes its map, rmvdisk without -force), is
        # never taken.
        meta = self._image(21)
        vol = self._from_image(meta['id'])
        self.assertEqual('available', vol['status'])
        self.backend.emulator.call('array.inject_fault', 'lsvdiskfcmappings',
                                   1, svc_common.E_UNSUPPORTED)
        self.api.delete_volume(vol['id'])
        failed = self.wait_for_volume(vol['id'], ('error_deleting',))
        self.assertEqual('error_deleting', failed['status'])
        (fcmap,) = self._maps(vol['id'])
        self.assertEqual('0', str(fcmap['copy_rate']))
        # an operator resets it (Cinder refuses deletes in error_deleting)
        self.api.api_post(f'/volumes/{vol["id"]}/action',
                          {'os-reset_status': {'status': 'error'}},
                          check_response_status=[202])
        self.delete_volume(vol['id'])
        self.assertEqual([], self._maps(vol['id']))
        self.assert_clean()

    def test_lost_ssh_session_of_a_delete_is_not_a_success(self):
        # The SSH session of rmvdisk drops with no exit status, before
        # (nothing done) or after (done) the command ran. Without an exit
        # status the in-tree SSH call reports success: the first clone's
        # vdisk would stay with no volume to own it.
        meta = self._image(24)
        vols = [self._from_image(meta['id']) for _ in range(2)]
        for vol, when in zip(vols, ('drop_before', 'drop_after'),
                             strict=True):
            self.backend.emulator.call('array.inject_fault', 'rmvdisk', 1,
                                       when)
            self.delete_volume(vol['id'])
            names = {v['name'] for v in
                     self.backend.emulator.inventory()['vdisks']}
            self.assertNotIn(f'volume-{vol["id"]}', names, when)
            self.assertEqual([], self._maps(vol['id']))
        self.assert_clean()

    def test_busy_answer_to_a_lookup_is_retried(self):
        # The in-tree lsvdisk runs with check_exit_code=False (it reads
        # "does not exist" from the error output): a busy cluster's answer
        # used to fail the lookup at once, even in the clean-up after a
        # failed create, which leaked that attempt's vdisk.
        vol = self.create_volume(self.VOLUME_GB)
        self.wait_for_volume(vol['id'])
        name = f'volume-{vol["id"]}'
        self.backend.emulator.call('array.inject_fault', 'lsvdisk', 2,
                                   svc_common.E_UNSTABLE)
        attrs = self.driver._helpers.get_vdisk_attributes(name)
        self.assertEqual(name, attrs['name'])
        # busy for longer than the retries last: the in-tree error, as is
        self.backend.emulator.call('array.inject_fault', 'lsvdisk',
                                   len(svc_ssh.BACKOFF) + 1,
                                   svc_common.E_UNSTABLE)
        exc = self.assertRaises(cinder_exception.VolumeBackendAPIException,
                                self.driver._helpers.get_vdisk_attributes,
                                name)
        self.assertIn('CMMVC5786E', str(exc))
        self.delete_volume(vol['id'])
        self.assert_clean()

    def test_last_attempt_of_a_lost_create_leaves_no_vdisk(self):
        # Every attempt's mkvdisk runs, its session drops; the scheduler
        # gives up after the last one, so the volume has no host and its
        # delete never reaches the driver: only the clean-up after each
        # reschedule, whose lookups meet a busy cluster, removes the vdisk.
        self.backend.emulator.call('array.inject_fault', 'mkvdisk', 3,
                                   'drop_after')
        self.backend.emulator.call('array.inject_fault', 'lsvdisk', 3,
                                   svc_common.E_UNSTABLE)
        vol = self.create_volume(self.VOLUME_GB)
        failed = self.wait_for_volume(vol['id'], ('error',))
        self.assertIsNone(failed.get('os-vol-host-attr:host'))
        # deleted at once, as Nova deletes a failed root volume: the
        # clean-up of the last attempt may still be running, or not begun
        self.delete_volume(vol['id'])
        name = f'volume-{vol["id"]}'
        deadline = time.monotonic() + 30
        while name in self._lun_names() and time.monotonic() < deadline:
            time.sleep(0.2)
        self.assertNotIn(name, self._lun_names())
        self.assert_clean()

    def _lun_names(self):
        return {v['name'] for v in
                self.backend.emulator.inventory()['vdisks']}

    def _mapped(self):
        return [m['vdisk_name'] for m in
                self.backend.emulator.inventory()['host_mappings']]

    def _fail_unmaps(self):
        # the one-command unmap, then the in-tree one it falls back to
        self.backend.emulator.call('array.inject_fault', 'rmvdiskhostmap',
                                   2, svc_common.E_UNSUPPORTED)

    def _clear_faults(self):
        pass                # both injected faults were used

    def _restart_memory(self):
        self.driver._golden_host_maps = type(
            self.driver._golden_host_maps)(self.driver)

    def _lun_name(self, vol_id):
        return f'volume-{vol_id}'

    def test_failed_connection_leaves_no_host_or_mapping(self):
        # mkvdiskhostmap ran but its answer was lost: the attachment fails
        # (Nova then deletes it); the mapping and the host made for it
        # must not stay on the array.
        vol = self.create_volume(self.VOLUME_GB)
        self.wait_for_volume(vol['id'])
        att = self.api.api_post('/attachments', {'attachment': {
            'volume_uuid': vol['id']}})['attachment']
        self.backend.emulator.call('array.inject_fault', 'mkvdiskhostmap',
                                   1, 'drop_after')
        self.assertRaises(
            cinder_harness.api_client.OpenStackApiException,
            self.api.api_put, f'/attachments/{att["id"]}',
            {'attachment': {'connector': self.connector()}})
        inv = self.backend.emulator.inventory()
        self.assertEqual([], inv['host_mappings'])
        self.assertEqual([], inv['hosts'])
        self.api.api_delete(f'/attachments/{att["id"]}')
        self.delete_volume(vol['id'])
        self.assert_clean()

    def test_golden_mapped_the_in_tree_way_is_unmapped_that_way(self):
        # The first build of a host: its kept host object does not exist
        # yet, and the one-command mapping's session drops (the command
        # answered "does not exist", unseen): the build maps the golden
        # the in-tree way, which makes a host object of its own. The
        # one-command unmap's session drops too, and its retry answers
        # "does not exist" (the kept host is not there). That used to
        # read as "the lost attempt removed it", so the in-tree mapping
        # stayed, the golden mapped to the volume host for good (the
        # campaign slice below found it).
        self.backend.emulator.call('array.inject_fault', 'mkvdiskhostmap',
                                   1, 'drop_after')
        self.backend.emulator.call('array.inject_fault', 'rmvdiskhostmap',
                                   1, 'drop_before')
        vol = self._from_image(self._image(25)['id'])
        self.assertEqual('available', vol['status'])
        inv = self.backend.emulator.inventory()
        self.assertEqual([], inv['host_mappings'])
        # the in-tree detach removed its host object with its last mapping
        self.assertEqual([], inv['hosts'])
        self.delete_volume(vol['id'])
        self.assert_clean()

    def test_golden_whose_short_map_was_lost_is_unmapped_in_tree(self):
        # The kept host object exists; the golden's one-command mapping
        # ran but its session dropped: the in-tree way finds the kept host
        # by its ports and maps the golden there (already mapped). The
        # detach is the in-tree one, which must remove that mapping (and
        # may remove the kept host with it: the next build makes it).
        first = self._from_image(self._image(26)['id'])
        self.backend.emulator.call('array.inject_fault', 'mkvdiskhostmap',
                                   1, 'drop_after')
        vol = self._from_image(self._image(27)['id'])
        self.assertEqual('available', vol['status'])
        self.assertEqual(2, len(self._goldens()))
        self.assertEqual([], self.backend.emulator.inventory()[
            'host_mappings'])
        for v in (first, vol):
            self.delete_volume(v['id'])
        self.assert_clean()

    def test_golden_whose_delete_answer_was_lost_is_removed(self):
        # rmvdisk of an evicted golden took effect but every answer was
        # lost: the golden is left in error while its vdisk is gone. The
        # next clean-up must see that nothing depends on a vdisk that does
        # not exist (not fail on "does not exist") and remove the row.
        meta = self._image(22)
        vol = self._from_image(meta['id'])
        self.delete_volume(vol['id'])
        (golden,) = self._goldens()
        # the first rmvdisk runs, its session drops; the retries meet a
        # busy cluster until they give up
        self.backend.emulator.call('array.inject_fault', 'rmvdisk', 1,
                                   'drop_after')
        self.backend.emulator.call('array.inject_fault', 'rmvdisk', 9,
                                   svc_common.E_UNSTABLE)
        self.assertFalse(self.driver.image_cache.remove_unused(golden))
        golden.refresh()
        self.assertEqual('error', golden.status)
        self.assertEqual([], self.backend.emulator.inventory()['vdisks'])
        self.driver.image_cache.collect_garbage(None, golden.host)
        self.assertEqual([], self._goldens())
        self.assert_clean()


class PowerFlexFaultTests(_FaultTests, cinder_harness.CinderHarness):
    BACKEND = 'powerflex'
    VOLUME_GB = 8

    def _lun_names(self):
        return {v['name'] for v in
                self.backend.emulator.inventory()['volumes']}

    def _lun_name(self, vol_id):
        from cinder.volume.drivers.dell_emc.powerflex import utils
        return utils.id_to_base64(vol_id)

    def _mapped(self):
        return [v['name'] for v in
                self.backend.emulator.inventory()['volumes']
                if v['mapped_sdcs']]

    def _fail_unmaps(self):
        self.backend.emulator.call('inject_fault', 'removeMappedSdc', 10)

    def _clear_faults(self):
        self.backend.emulator.call('clear_faults')

    def _restart_memory(self):
        pass                # the driver keeps nothing of an attach

    def _provider_id(self, vol_id):
        return objects.Volume.get_by_id(
            cinder_context.get_admin_context(), vol_id).provider_id

    def _names_of(self, vol_id):
        return [n for n in self._lun_names() if n == self._lun_name(vol_id)]

    def test_volume_whose_create_answer_was_lost_is_removed(self):
        # createVolume took effect, its answer came after the driver's
        # read timeout: Cinder never learnt the array id. Cinder deletes
        # the volume before it reschedules the create, and the user
        # deletes it at the end: each time the driver finds the array's
        # volume by its name.
        self.backend.emulator.call('inject_timeout', 'createVolume', 1, True)
        vol = self.create_volume(self.VOLUME_GB)
        vol = self.wait_for_volume(vol['id'])
        time.sleep(2.5)     # the withheld call has long run on the array
        self.assertLessEqual(len(self._names_of(vol['id'])), 1)
        self.delete_volume(vol['id'])
        self.assertEqual([], self._names_of(vol['id']))
        self.assert_clean()

    def test_delete_asks_the_name_only_after_a_failed_create(self):
        # A volume whose create succeeded has its array id recorded, and
        # its name is unique on the array: its delete makes no getByName
        # round trip. The clean-up of a failed create (no array id) still
        # looks its name up.
        def by_name():
            return self.backend.emulator.call('api.calls.copy').get(
                'getVolumeByName', 0)
        vol = self.wait_for_volume(self.create_volume(self.VOLUME_GB)['id'])
        before = by_name()
        self.delete_volume(vol['id'])
        self.assertEqual(before, by_name())
        self.assertEqual([], self._names_of(vol['id']))
        # every attempt fails: Cinder cleans up after each, then gives up
        self.backend.emulator.call('inject_fault', 'createVolume', 10)
        failed = self.create_volume(self.VOLUME_GB)
        failed = self.wait_for_volume(failed['id'], ('error',))
        self.backend.emulator.call('clear_faults')
        self.assertEqual('error', failed['status'])
        self.assertGreater(by_name(), before)
        self.delete_volume(failed['id'])
        self.assert_clean()

    def test_clone_whose_snapshot_answer_was_lost_is_removed(self):
        meta = self._image(23)
        first = self._from_image(meta['id'])
        self.assertEqual('available', first['status'])
        self.backend.emulator.call('inject_timeout', 'snapshotVolumes', 1,
                                   True)
        vol = self._from_image(meta['id'])
        time.sleep(2.5)
        self.assertLessEqual(len(self._names_of(vol['id'])), 1)
        self.delete_volume(vol['id'])
        self.delete_volume(first['id'])
        self.assertEqual([], self._names_of(vol['id']))
        self.assert_clean()
