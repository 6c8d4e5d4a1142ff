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
"""The volume service's own attaches map the LUN to its host, real Cinder.

Cinder writes an image onto a LUN after the driver's ``initialize_connection``
has mapped it to the volume host (``BaseVD._attach_volume``), and unmaps it
with ``terminate_connection`` after (``BaseVD._detach_volume``). The
emulation swaps only the device for the LUN's file (``emulation.py``): the
array's side runs as on a real volume host, with the emulated host's FC
ports or PowerFlex SDC (``emulators/volume_host.py``), and costs the same
commands. After a build, and after a build that failed, no mapping is
left. On the SVC a golden is mapped the in-tree way the first time, which
makes the volume host's host object; that object is kept, and later
goldens are mapped and unmapped with one command each
(``svc/host_maps.py``).
"""

import logging
import time

from cinder import context as cinder_context
from cinder.volume import volume_types
import fixtures

from cinder_dpm_ephemeral.emulators import volume_host
from cinder_dpm_ephemeral.testing import cinder_harness
from cinder_dpm_ephemeral.testing import images
from tests.volume.functional import array_views

MiB = 1024 * 1024


class _AttachTests(array_views.InternalTenant):

    def _image(self, seed, name):
        image = images.make_image(self.work_dir, 8 * MiB, 'qcow2', seed=seed,
                                  name=name)
        return image, self.add_image(image)

    def _create(self, image_id, status='available'):
        vol = self.create_volume(self.VOLUME_GB, image_id=image_id)
        vol = self.wait_for_volume(vol['id'], timeout=300)
        self.assertEqual(status, vol['status'], vol)
        return vol

    def test_a_build_maps_the_golden_to_this_host_then_unmaps_it(self):
        image, meta = self._image(51, 'attach-a')
        mark = self.mark()
        vol = self._create(meta['id'])
        [golden] = self.goldens(meta['id'])
        self.assert_mapped_then_unmapped(mark, golden)
        self.assertEqual(image.raw_sha256,
                         self.backend.luns.sha256(self.lun_of(vol['id']),
                                                  image.virtual_size))
        self.assert_nothing_mapped()

    def test_a_failed_write_unmaps_the_golden(self):
        _image, meta = self._image(52, 'attach-b')
        mark = self.mark()
        # every LUN opened for I/O fails its writes, as a device whose
        # paths are lost
        self.backend.emulator.call('set_write_faults', 1.0, 7)
        self.addCleanup(self.backend.emulator.call, 'set_write_faults', 0.0)
        vol = self._create(meta['id'], status='error')
        self.backend.emulator.call('set_write_faults', 0.0)
        self.assertEqual([], self.goldens(meta['id']))
        self.assertGreaterEqual(self.unmaps_since(mark), 1)
        self.assert_nothing_mapped()
        self.delete_volume(vol['id'])

    def test_a_device_that_never_shows_up_unmaps_the_golden(self):
        _image, meta = self._image(53, 'attach-c')
        mark = self.mark()
        real = self.driver._connect_device

        def no_device(conn):
            # what Cinder's _connect_device raises when os-brick finds
            # the device but cannot read it
            from cinder import exception
            raise exception.DeviceUnavailable(
                path=conn['data']['device_path'], attach_info=None,
                reason='Unable to access the backend storage via the path')
        self.driver._connect_device = no_device
        self.addCleanup(setattr, self.driver, '_connect_device', real)
        vol = self._create(meta['id'], status='error')
        self.driver._connect_device = real
        self.assertEqual([], self.goldens(meta['id']))
        self.assertGreaterEqual(self.maps_since(mark), 1)
        self.assertGreaterEqual(self.unmaps_since(mark), 1)
        self.assert_nothing_mapped()
        self.delete_volume(vol['id'])

    def test_a_mapping_gone_before_the_scan_shows_no_device(self):
        # As on a real host: the device is there only while the array
        # maps the LUN to this host. A mapping removed between the
        # driver's answer and the scan (by hand, by another service)
        # leaves nothing to write to, and the build fails cleanly.
        def then_unmapped(real, volume, connector):
            info = real(volume, connector)
            self.driver.terminate_connection(volume, connector)
            return info
        self.assert_build_finds_no_device(64, 'attach-n', then_unmapped,
                                          self.NO_DEVICE)

    def assert_build_finds_no_device(self, seed, name, answer, message):
        """A build answered by ``answer(real, ...)`` fails cleanly.

        ``answer`` stands in for ``initialize_connection``; ``message`` is
        logged, and no golden or mapping is left.
        """
        _image, meta = self._image(seed, name)
        real = self.driver.initialize_connection
        self.driver.initialize_connection = (
            lambda volume, connector: answer(real, volume, connector))
        self.addCleanup(setattr, self.driver, 'initialize_connection', real)
        logs = self.useFixture(fixtures.FakeLogger(level=logging.INFO))
        vol = self._create(meta['id'], status='error')
        self.driver.initialize_connection = real
        self.assertEqual([], self.goldens(meta['id']))
        self.assert_nothing_mapped()
        self.assertIn(message, logs.output)
        self.delete_volume(vol['id'])


class SVCEmulatedAttachTest(array_views.SVCArray, _AttachTests,
                            cinder_harness.CinderHarness):

    NO_DEVICE = 'this host finds no device at SCSI LUN id'

    def _log(self):
        return self.backend.emulator.call('array.recent_commands', 10000)

    def mark(self):
        return len(self._log())

    def _since(self, mark, verb):
        return [argv for argv in self._log()[mark:] if argv[1] == verb]

    def maps_since(self, mark):
        return len(self._since(mark, 'mkvdiskhostmap'))

    def unmaps_since(self, mark):
        return len(self._since(mark, 'rmvdiskhostmap'))

    #: the CLI commands about hosts and host mappings
    HOST_VERBS = ('lshost', 'mkhost', 'addhostport', 'lsfabric',
                  'lshostvdiskmap', 'rmhost', 'lsvdiskhostmap',
                  'mkvdiskhostmap', 'rmvdiskhostmap')

    def _host_verbs(self, log):
        return [argv[1] for argv in log if argv[1] in self.HOST_VERBS]

    def _first_golden_host(self, seed, name):
        """Build a first golden; the volume host's host object it left."""
        _image, meta = self._image(seed, name)
        self._create(meta['id'])
        [host] = self._inv()['hosts']
        return host

    def _ports(self):
        return {p.upper() for p in
                volume_host.load(self.backend.state_dir)['wwpns']}

    def assert_mapped_then_unmapped(self, mark, golden):
        name = f'volume-{golden.id}'
        log = self._log()[mark:]

        def at(verb):
            return [i for i, argv in enumerate(log) if argv[1] == verb and
                    name in (a.strip('"') for a in argv)]
        # the in-tree driver made the host with this host's ports, mapped
        # the golden to it, and the mapping went after the write
        given = set()
        for argv in log:
            if argv[1] in ('mkhost', 'addhostport'):
                for flag in ('-hbawwpn', '-fcwwpn'):
                    if flag in argv:
                        given.update(argv[argv.index(flag) + 1].strip(
                            '"').upper().split(':'))
        self.assertEqual(1, len([a for a in log if a[1] == 'mkhost']))
        self.assertEqual(self._ports(), given)
        # (the first mkvdiskhostmap finds no host object yet)
        mapped, [unmapped] = at('mkvdiskhostmap')[-1], at('rmvdiskhostmap')
        self.assertLess(mapped, unmapped)

    def assert_nothing_mapped(self):
        inv = self._inv()
        self.assertEqual([], inv['host_mappings'])
        # at most the volume host's own host object, kept for the next
        # golden
        for h in inv['hosts']:
            self.assertEqual(self._ports(), set(h['wwpns']))
        self.assertLessEqual(len(inv['hosts']), 1)

    def test_later_goldens_take_one_command_each_way(self):
        host = self._first_golden_host(54, 'attach-d')
        image, meta = self._image(55, 'attach-e')
        mark = self.mark()
        vol = self._create(meta['id'])
        [golden] = self.goldens(meta['id'])
        name = f'volume-{golden.id}'
        log = self._log()[mark:]
        touching = self._host_verbs(log)
        # the kept host object: one mkvdiskhostmap (the array picks the
        # SCSI id), one rmvdiskhostmap, nothing else about hosts
        self.assertEqual(['mkvdiskhostmap', 'rmvdiskhostmap'], touching)
        for argv in log:
            if argv[1].endswith('hostmap'):
                self.assertIn(name, [a.strip('"') for a in argv])
                self.assertIn(host['name'], [a.strip('"') for a in argv])
        self.assertEqual([host], self._inv()['hosts'])
        self.assertEqual([], self._inv()['host_mappings'])
        self.assertEqual(image.raw_sha256,
                         self.backend.luns.sha256(self.lun_of(vol['id']),
                                                  image.virtual_size))

    def test_the_unmap_runs_after_the_build_and_before_the_volume(self):
        # dpm_ephemeral_detach_beside_clone: the golden is ready before
        # its unmap (here answered 3 s late), which runs beside the first
        # clone; the volume that asked for the build is available only
        # once the unmap is done. (With the detach in the build, the
        # build takes the 3 s; without the wait, the mapping is still
        # there when the volume is.)
        self._first_golden_host(65, 'attach-o')     # a running service
        _image, meta = self._image(66, 'attach-p')
        late = 3.0
        self.backend.emulator.call('array.set_faults', 0.0, None, None, late)
        self.backend.emulator.call('array.inject_fault', 'rmvdiskhostmap',
                                   1, 'slow')
        t0 = time.monotonic()
        vol = self._create(meta['id'])
        took = time.monotonic() - t0
        [golden] = self.goldens(meta['id'])
        self.assertLess(float(golden.metadata['build_seconds']), late)
        self.assertGreaterEqual(took, late)
        self.assert_nothing_mapped()
        self.assertNotIn('detach_pending', golden.metadata)
        self.delete_volume(vol['id'])

    def test_the_clean_up_leaves_a_detach_under_way_alone(self):
        # The golden is ready and its record says a detach is owed while
        # the detach is still under way (its unmap answered 3 s late):
        # the periodic clean-up must not unmap it a second time (the
        # in-tree way, since the one-command map is forgotten once
        # used).
        self._first_golden_host(67, 'attach-q')     # a running service
        _image, meta = self._image(68, 'attach-r')
        self.backend.emulator.call('array.set_faults', 0.0, None, None, 3.0)
        self.backend.emulator.call('array.inject_fault', 'rmvdiskhostmap',
                                   1, 'slow')
        mark = self.mark()
        vol = self.create_volume(self.VOLUME_GB, image_id=meta['id'])
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            owed = [g for g in self.goldens(meta['id'])
                    if 'detach_pending' in g.metadata]
            if owed:
                break
            time.sleep(0.05)
        [golden] = owed
        # past the clone (its commands take a fraction of a second): the
        # volume's create is waiting for the detach now
        time.sleep(1.0)
        self.driver.image_cache.collect_garbage(None, golden.host)
        vol = self.wait_for_volume(vol['id'], timeout=300)
        self.assertEqual('available', vol['status'])
        self.assertEqual(1, self.unmaps_since(mark))
        self.assertEqual([], self._since(mark, 'rmhost'))
        self.assert_nothing_mapped()
        self.delete_volume(vol['id'])

    def test_a_new_volume_service_finds_the_kept_host(self):
        host = self._first_golden_host(58, 'attach-h')
        self.assertRegex(host['name'], r'-dpm-[0-9a-f]{8}$')
        # what a restarted volume service has: no memory of the host
        # object; its name is worked out again from the host's ports
        self.driver._golden_host_maps = type(self.driver._golden_host_maps)(
            self.driver)
        image, meta = self._image(59, 'attach-i')
        mark = self.mark()
        vol = self._create(meta['id'])
        # the target ports are asked once, nothing else
        self.assertEqual(['mkvdiskhostmap', 'lsfabric', 'rmvdiskhostmap'],
                         self._host_verbs(self._log()[mark:]))
        self.assertEqual([host], self._inv()['hosts'])
        self.assertEqual(image.raw_sha256,
                         self.backend.luns.sha256(self.lun_of(vol['id']),
                                                  image.virtual_size))

    def test_a_host_object_removed_by_hand_is_made_again(self):
        host = self._first_golden_host(56, 'attach-f')
        out, err, status = self.backend.emulator.call(
            'array.run', ['svctask', 'rmhost', host['name']])
        self.assertEqual(0, status, err)
        image, meta = self._image(57, 'attach-g')
        vol = self._create(meta['id'])
        [again] = self._inv()['hosts']
        self.assertEqual(self._ports(), set(again['wwpns']))
        self.assertEqual([], self._inv()['host_mappings'])
        self.assertEqual(image.raw_sha256,
                         self.backend.luns.sha256(self.lun_of(vol['id']),
                                                  image.virtual_size))

    def _golden_build_commands(self, seed, name, **extra):
        """The CLI verbs of a later golden's build (the host kept)."""
        _image, meta = self._image(seed, name)
        mark = self.mark()
        vol = self.create_volume(self.VOLUME_GB, image_id=meta['id'],
                                 **extra)
        vol = self.wait_for_volume(vol['id'], timeout=300)
        self.assertEqual('available', vol['status'], vol)
        [golden] = self.goldens(meta['id'])
        name = f'volume-{golden.id}'
        return [argv[1] for argv in self._log()[mark:]
                if name in (a.strip('"') for a in argv[2:])
                and not argv[1].endswith('fcmap')]

    def test_a_thin_golden_build_takes_three_commands(self):
        # On a running deployment (the kept host object there), a golden
        # build makes the LUN, maps and unmaps it, nothing else: finding
        # the device is the host's own scan on a real volume host, no CLI
        # command, and the emulation finds it from the mapping's answer
        # the same way; a golden the driver made thin reads zeros by
        # construction, so the array is not asked.
        self._first_golden_host(60, 'attach-j')
        self.assertEqual(['mkvdisk', 'mkvdiskhostmap', 'rmvdiskhostmap'],
                         self._golden_build_commands(61, 'attach-k'))

    def test_a_thick_golden_build_asks_whether_it_reads_zeros(self):
        # a fully allocated vdisk reads zeros only if it was formatted:
        # that one is asked of the array (lsvdisk, beside the map)
        self._first_golden_host(65, 'attach-o')
        thick = volume_types.create(cinder_context.get_admin_context(),
                                    'thick', {'drivers:rsize': '-1'})
        self.assertCountEqual(
            ['mkvdisk', 'lsvdisk', 'mkvdiskhostmap', 'rmvdiskhostmap'],
            self._golden_build_commands(66, 'attach-p',
                                        volume_type=thick['name']))

    def test_a_mapping_at_another_scsi_id_finds_no_device(self):
        # As on a real host: the scan finds the LUN at the SCSI id the
        # array mapped it at, and nothing where nothing is mapped. A
        # driver that answered the wrong id would write nowhere, not into
        # the LUN it meant.
        self._first_golden_host(62, 'attach-l')

        def off_by_one(real, volume, connector):
            info = real(volume, connector)
            info['data']['target_lun'] += 1
            return info
        self.assert_build_finds_no_device(
            63, 'attach-m', off_by_one,
            'this host finds no device at SCSI LUN id 1')


class PowerFlexEmulatedAttachTest(array_views.PowerFlexArray, _AttachTests,
                                  cinder_harness.CinderHarness):

    NO_DEVICE = 'shows no device for PowerFlex volume'

    def _calls(self):
        return self.backend.emulator.call('api.calls.copy')

    def mark(self):
        return self._calls()

    def maps_since(self, mark):
        return (self._calls().get('addMappedSdc', 0) -
                mark.get('addMappedSdc', 0))

    def unmaps_since(self, mark):
        return (self._calls().get('removeMappedSdc', 0) -
                mark.get('removeMappedSdc', 0))

    def assert_mapped_then_unmapped(self, mark, golden):
        # one map to this host's SDC for the write, one unmap after; the
        # SDC is the volume host's, registered by the emulator
        self.assertEqual((1, 1), (self.maps_since(mark),
                                  self.unmaps_since(mark)))
        guid = volume_host.load(self.backend.state_dir)['sdc_guid']
        self.assertIn(guid, [s['sdcGuid'] for s in self._inv()['sdcs']])

    def assert_nothing_mapped(self):
        self.assertEqual(
            [], [v for v in self._inv()['volumes'] if v['mapped_sdcs']])
