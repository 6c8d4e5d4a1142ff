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
"""Conformance: Cinder's in-tree drivers, unmodified, against our emulators.

Cinder's own Storwize FC and PowerFlex drivers, configured only through
cinder.conf (SSH host keys and TLS verified), driven through the real
Cinder API, scheduler and volume manager. Each scenario ends with the
emulated array holding exactly what Cinder's database says exists.
"""

import time

from cinder import context as cinder_context
from cinder import objects
from cinder.tests.functional.api import client as api_client
from cinder.volume.drivers.dell_emc.powerflex import utils as flex_utils

from cinder_dpm_ephemeral.testing import backends
from cinder_dpm_ephemeral.testing import cinder_harness

GiB = 1024 ** 3


class _Conformance:
    THIN_SPECS: dict = {}
    THICK_SPECS: dict = {}
    SIZE = 1

    # -- array views (subclasses) ---------------------------------------------
    def array_names(self):
        raise NotImplementedError

    def expected_name(self, kind, obj_id):
        raise NotImplementedError

    def array_size_gb(self, name):
        raise NotImplementedError

    def array_is_thin(self, name):
        raise NotImplementedError

    def connector(self):
        raise NotImplementedError

    def array_mappings(self, name):
        raise NotImplementedError

    def remove_out_of_band(self, name):
        raise NotImplementedError

    def inject_capacity_fault(self):
        raise NotImplementedError

    # -- helpers --------------------------------------------------------------
    def backend_options(self):
        return self.backend.backend_options(self.BACKEND)

    def default_options(self):
        return self.backend.default_options()

    def _type(self, name, specs):
        body = {'volume_type': {'name': name, 'extra_specs': dict(specs)}}
        return self.api.api_post('/types', body)['volume_type']

    def _snapshot(self, volume_id):
        snap = self.api.api_post('/snapshots', {'snapshot': {
            'volume_id': volume_id, 'force': True}})['snapshot']
        deadline = time.monotonic() + 120
        while True:
            snap = self.api.api_get(f'/snapshots/{snap["id"]}')['snapshot']
            if snap['status'] in ('available', 'error'):
                break
            self.assertLess(time.monotonic(), deadline, snap)
            time.sleep(0.05)
        self.assertEqual('available', snap['status'], snap)
        return snap

    def _delete_snapshot(self, snap_id):
        self.api.api_delete(f'/snapshots/{snap_id}')
        deadline = time.monotonic() + 120
        while True:
            try:
                snap = self.api.api_get(f'/snapshots/{snap_id}')['snapshot']
            except api_client.OpenStackApiException404:
                return
            self.assertNotEqual('error_deleting', snap['status'])
            self.assertLess(time.monotonic(), deadline, snap)
            time.sleep(0.05)

    def _available(self, size=None, **extra):
        vol = self.create_volume(size or self.SIZE, **extra)
        vol = self.wait_for_volume(vol['id'])
        self.assertEqual('available', vol['status'], vol)
        return vol

    def assert_array_matches_db(self):
        ctx = cinder_context.get_admin_context()
        expected = set()
        for v in objects.VolumeList.get_all(ctx):
            if v.status not in ('error',) or v.provider_id:
                expected.add(self.expected_name('volume', v))
        for s in objects.SnapshotList.get_all(ctx, filters={}):
            expected.add(self.expected_name('snapshot', s))
        self.assertEqual(expected, self.array_names())

    # -- scenarios ------------------------------------------------------------
    def test_create_thin_and_thick_then_delete(self):
        thin = self._type('thin', self.THIN_SPECS)
        thick = self._type('thick', self.THICK_SPECS)
        v1 = self._available(volume_type=thin['id'])
        v2 = self._available(volume_type=thick['id'])
        self.assert_array_matches_db()
        self.assertTrue(self.array_is_thin(self._name(v1)))
        self.assertFalse(self.array_is_thin(self._name(v2)))
        self.delete_volume(v1['id'])
        self.delete_volume(v2['id'])
        self.assert_array_matches_db()
        self.assertEqual(set(), self.array_names())

    def test_extend(self):
        vol = self._available()
        self.api.api_post(f'/volumes/{vol["id"]}/action',
                          {'os-extend': {'new_size': self.SIZE + 1}})
        vol = self.wait_for_volume(vol['id'], ('available', 'error',
                                               'error_extending'))
        self.assertEqual('available', vol['status'], vol)
        self.assertEqual(self.expected_extended_gb(self.SIZE + 1),
                         self.array_size_gb(self._name(vol)))
        self.delete_volume(vol['id'])
        self.assert_array_matches_db()

    def test_snapshot_volume_from_snapshot_and_clone(self):
        src = self._available()
        snap = self._snapshot(src['id'])
        self.assert_array_matches_db()
        from_snap = self._available(snapshot_id=snap['id'])
        clone = self._available(source_volid=src['id'])
        self.assert_array_matches_db()
        for vol in (from_snap, clone):
            self.delete_volume(vol['id'])
        self._delete_snapshot(snap['id'])
        self.delete_volume(src['id'])
        self.assert_array_matches_db()
        self.assertEqual(set(), self.array_names())

    def test_initialize_and_terminate_connection(self):
        vol = self._available()
        conn = self.initialize_connection(vol['id'], self.connector())
        self.assertEqual(self.CONNECTION_TYPE, conn['driver_volume_type'])
        self.assertEqual(1, len(self.array_mappings(self._name(vol))))
        self.check_connection_info(conn, vol)
        self.terminate_connection(vol['id'], self.connector())
        self.assertEqual([], self.array_mappings(self._name(vol)))
        self.delete_volume(vol['id'])
        self.assert_array_matches_db()

    def test_volume_stats_report_array_capacity(self):
        stats = self.driver.get_volume_stats(refresh=True)
        pools = stats['pools']
        self.assertEqual(1, len(pools))
        self.assertAlmostEqual(self.pool_capacity_gb(),
                               float(pools[0]['total_capacity_gb']),
                               delta=1)

    def test_delete_of_volume_gone_on_array_succeeds(self):
        vol = self._available()
        self.remove_out_of_band(self._name(vol))
        self.delete_volume(vol['id'])
        self.assert_array_matches_db()

    def test_capacity_exhausted_is_a_clean_error(self):
        # The array refuses every try (Cinder reschedules up to 3 times).
        self.inject_capacity_fault()
        vol = self.create_volume(self.SIZE)
        vol = self.wait_for_volume(vol['id'])
        self.assertEqual('error', vol['status'])
        self.assertEqual(set(), self.array_names())
        self.delete_volume(vol['id'])
        self.assertEqual(set(), self.array_names())

    def _name(self, vol):
        return self.expected_name('volume', objects.Volume.get_by_id(
            cinder_context.get_admin_context(), vol['id']))


class SVCConformanceTest(_Conformance, cinder_harness.CinderHarness):
    BACKEND = 'svc'
    CONNECTION_TYPE = 'fibre_channel'
    THIN_SPECS = {'drivers:rsize': '2'}
    THICK_SPECS = {'drivers:rsize': '-1'}
    WWPNS = ['c05076ffe5001000', 'c05076ffe5001001']

    def start_backends(self):
        # Background copies at 1000x the real rate: clones finish in
        # seconds, yet run through the same states as on the array.
        self.backend = backends.SVCBackend(
            self.work_dir, driver=backends.SVC_INTREE_DRIVER,
            emulate_data_path=False, pool_bytes=200 * GiB,
            time_scale=1000.0).start()
        self.addCleanup(self.backend.stop)

    def backend_options(self):
        opts = super().backend_options()
        opts['storwize_svc_check_fcmapping_interval'] = 1
        return opts

    def _inv(self):
        return self.backend.emulator.inventory()

    def expected_name(self, kind, obj):
        return f'{kind}-{obj.id}'

    def array_names(self):
        return {v['name'] for v in self._inv()['vdisks']}

    def _vdisk(self, name):
        return next(v for v in self._inv()['vdisks'] if v['name'] == name)

    def array_size_gb(self, name):
        return int(self._vdisk(name)['capacity']) // GiB

    def expected_extended_gb(self, size):
        return size

    def array_is_thin(self, name):
        return bool(self._vdisk(name)['thin'])

    def connector(self):
        return {'host': 'dpm-conformance', 'wwpns': self.WWPNS,
                'wwnns': self.WWPNS, 'platform': 's390x',
                'os_type': 'linux', 'multipath': False, 'initiator': None}

    def array_mappings(self, name):
        return [m for m in self._inv()['host_mappings']
                if m['vdisk_name'] == name]

    def check_connection_info(self, conn, vol):
        m = self.array_mappings(self._name(vol))[0]
        self.assertEqual(int(m['scsi_id']), int(conn['data']['target_lun']))

    def pool_capacity_gb(self):
        return 200.0

    def remove_out_of_band(self, name):
        out, err, status = self.backend.emulator.call(
            'array.run', ['svctask', 'rmvdisk', '-force', name])
        self.assertEqual(0, status, err)

    def inject_capacity_fault(self):
        self.backend.emulator.call(
            'array.inject_fault', 'mkvdisk', 10,
            'CMMVC5860E The action failed because there were not enough '
            'extents in the storage pool.')


class PowerFlexConformanceTest(_Conformance, cinder_harness.CinderHarness):
    BACKEND = 'powerflex'
    CONNECTION_TYPE = 'scaleio'
    SIZE = 8
    THIN_SPECS = {'provisioning:type': 'thin'}
    THICK_SPECS = {'provisioning:type': 'thick'}
    SDC_GUID = '4d1a6b2e-0c25-4f7e-9d1e-2f3c4b5a6978'

    def start_backends(self):
        self.backend = backends.PowerFlexBackend(
            self.work_dir, driver=backends.POWERFLEX_INTREE_DRIVER,
            emulate_data_path=False, capacity_gb=1024,
            sdcs=(self.SDC_GUID,)).start()
        self.addCleanup(self.backend.stop)

    def _inv(self):
        return self.backend.emulator.inventory()

    def expected_name(self, kind, obj):
        return flex_utils.id_to_base64(obj.id)

    def array_names(self):
        return {v['name'] for v in self._inv()['volumes']}

    def _vol(self, name):
        return next(v for v in self._inv()['volumes'] if v['name'] == name)

    def array_size_gb(self, name):
        return int(self._vol(name)['size_kb']) // (1024 * 1024)

    def expected_extended_gb(self, size):
        return -(-size // 8) * 8   # the array allocates 8 GiB units

    def array_is_thin(self, name):
        return self._vol(name)['type'] == 'ThinProvisioned'

    def connector(self):
        return {'host': 'dpm-conformance', 'sdc_guid': self.SDC_GUID,
                'platform': 'x86_64', 'os_type': 'linux',
                'multipath': False}

    def array_mappings(self, name):
        return self._vol(name)['mapped_sdcs']

    def check_connection_info(self, conn, vol):
        data = conn['data']
        self.assertEqual(self._vol(self._name(vol))['id'],
                         data['scaleIO_volume_id'])

    def pool_capacity_gb(self):
        return 1024.0

    def remove_out_of_band(self, name):
        self.backend.emulator.call('array.remove_volume',
                                   self._vol(name)['id'])

    def inject_capacity_fault(self):
        self.backend.emulator.call(
            'inject_fault', 'createVolume', 10, error_code=317,
            message='Insufficient capacity in Storage Pool',
            http_status=500)
