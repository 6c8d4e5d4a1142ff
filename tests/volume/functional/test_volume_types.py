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

"""Volume types honoured by thin clones, through real Cinder.

A volume from an image cloned from a golden volume gets what Cinder's
in-tree clone would give it: thin or fully allocated, QoS, IOPS and
bandwidth limits. A type the fast path cannot honour (replication,
HyperSwap, multiattach...) is refused by the clone backend before anything
is made, and Cinder's own path serves it. Every test asserts on the
emulated array's state.
"""

from __future__ import annotations

import uuid
from typing import Any

from cinder import context as cinder_context
from cinder import objects
from cinder.tests.unit import fake_constants
from cinder.volume import qos_specs
from cinder.volume import volume_types

from cinder_dpm_ephemeral.testing import backends
from cinder_dpm_ephemeral.testing import cinder_harness
from cinder_dpm_ephemeral.testing import images

MiB = 1024 * 1024
GiB = 1024 * MiB
INTERNAL_PROJECT = uuid.uuid4().hex
INTERNAL_USER = uuid.uuid4().hex
SDC_GUID = '5A0F9C2E-1B3D-4E5F-8A9B-0C1D2E3F4A5B'


class _TypesBase(cinder_harness.CinderHarness):

    VOLUME_GB = 1

    def default_options(self) -> dict[str, Any]:
        opts = dict(self.backend.default_options())
        opts.update({'cinder_internal_tenant_project_id': INTERNAL_PROJECT,
                     'cinder_internal_tenant_user_id': INTERNAL_USER})
        return opts

    def backend_options(self) -> dict[str, Any]:
        return self.backend.backend_options(self.BACKEND)

    def make_type(self, specs: dict[str, str],
                  qos: dict[str, str] | None = None) -> str:
        ctxt = cinder_context.get_admin_context()
        name = f'type-{uuid.uuid4().hex[:8]}'
        vtype = volume_types.create(ctxt, name, dict(specs))
        if qos:
            spec = qos_specs.create(ctxt, f'qos-{name}',
                                    dict(qos, consumer='back-end'))
            qos_specs.associate_qos_with_type(ctxt, spec['id'], vtype['id'])
        return name

    def image(self, seed: int = 1) -> tuple[images.TestImage, str]:
        image = images.make_image(self.work_dir, 8 * MiB, 'raw', seed=seed,
                                  name=f'img{seed}')
        return image, self.add_image(image)['id']

    def create(self, image_id: str, vtype: str | None = None,
               size: int | None = None) -> dict:
        extra = {'volume_type': vtype} if vtype else {}
        vol = self.create_volume(size or self.VOLUME_GB, image_id=image_id,
                                 **extra)
        vol = self.wait_for_volume(vol['id'], timeout=300)
        self.assertEqual('available', vol['status'], vol)
        return vol

    def goldens(self, image_id: str) -> list:
        ictx = cinder_context.get_internal_tenant_context()
        return self.driver.image_cache.goldens(ictx, None, image_id)

    def volume_object(self, vtype: str) -> objects.Volume:
        """A Cinder volume of ``vtype`` on this backend (not created)."""
        ctxt = cinder_context.get_admin_context()
        type_id = volume_types.get_volume_type_by_name(ctxt, vtype)['id']
        vol = objects.Volume(ctxt, size=self.VOLUME_GB,
                             volume_type_id=type_id,
                             host=f'cinder@{self.BACKEND}#pool',
                             project_id=fake_constants.PROJECT_ID,
                             user_id=fake_constants.USER_ID,
                             status='creating', multiattach=False,
                             encryption_key_id=None)
        vol.create()
        self.addCleanup(vol.destroy)
        return objects.Volume.get_by_id(ctxt, vol.id)


class SVCVolumeTypesTest(_TypesBase):
    BACKEND = 'svc'

    def start_backends(self) -> None:
        self.backend = backends.SVCBackend(self.work_dir).start()
        self.addCleanup(self.backend.stop)

    def vdisk(self, volume_id: str) -> dict[str, Any]:
        for v in self.backend.emulator.inventory()['vdisks']:
            if v['name'] == f'volume-{volume_id}':
                return v
        self.fail(f'no vdisk for volume {volume_id}')

    def clone_map(self, volume_id: str) -> dict[str, Any] | None:
        for m in self.backend.emulator.inventory()['fcmaps']:
            if m['name'] == f'dpmc-{volume_id}':
                return m
        return None

    def assert_thin_clone(self, vol: dict, image: images.TestImage) -> None:
        m = self.clone_map(vol['id'])
        self.assertIsNotNone(m, 'not cloned from a golden volume')
        self.assertEqual('0', str(m['copy_rate']))
        self.assertEqual(image.raw_sha256, self.backend.luns.sha256(
            self.vdisk(vol['id'])['vdisk_UID'], image.virtual_size))

    def test_default_type_gets_a_thin_target(self) -> None:
        image, image_id = self.image(seed=1)
        vol = self.create(image_id)
        self.assert_thin_clone(vol, image)
        self.assertTrue(self.vdisk(vol['id'])['thin'])

    def test_thick_type_gets_a_fully_allocated_target(self) -> None:
        image, image_id = self.image(seed=2)
        thick = self.make_type({'drivers:rsize': '-1'})
        vol = self.create(image_id, thick)
        self.assert_thin_clone(vol, image)
        v = self.vdisk(vol['id'])
        self.assertFalse(v['thin'])
        self.assertTrue(v['formatted'])
        self.assertEqual(v['capacity'], v['real_capacity'])

    def test_qos_types_get_their_throttles(self) -> None:
        image, image_id = self.image(seed=3)
        # Cinder 29 wants the unit with the rate (both, or no QoS at all)
        iops = self.make_type({'qos:IOThrottling': '500',
                               'qos:IOThrottling_unit': 'iops'})
        mbps = self.make_type({'qos:IOThrottling': '40',
                               'qos:IOThrottling_unit': 'mbps'})
        v_iops = self.create(image_id, iops)
        v_mbps = self.create(image_id, mbps)
        self.assert_thin_clone(v_iops, image)
        self.assert_thin_clone(v_mbps, image)
        self.assertEqual({'IOPs_limit': 500},
                         self.vdisk(v_iops['id'])['throttle'])
        self.assertEqual({'bandwidth_limit_MB': 40},
                         self.vdisk(v_mbps['id'])['throttle'])

    def test_unformatted_thick_extension_is_formatted(self) -> None:
        image, image_id = self.image(seed=4)
        raw = self.make_type({'drivers:rsize': '-1',
                              'drivers:nofmtdisk': 'True'})
        vol = self.create(image_id, raw, size=2)
        self.assert_thin_clone(vol, image)
        v = self.vdisk(vol['id'])
        self.assertFalse(v['thin'])
        self.assertFalse(v['formatted'])
        self.assertEqual(2 * GiB, v['capacity'])
        log = self.backend.emulator.call('array.recent_commands', 400)
        expands = [argv for argv in log if argv[1] == 'expandvdisksize'
                   and any(vol['id'] in a for a in argv)]
        self.assertEqual(1, len(expands), expands)
        self.assertIn('-fmtdisk', expands[0])

    def test_types_it_cannot_honour_are_refused_up_front(self) -> None:
        backend = self.driver.image_cache.backend
        cases = {
            'replicated': {'replication_enabled': '<is> True'},
            'HyperSwap': {'drivers:volume_topology': 'hyperswap',
                          'drivers:peer_pool': 'pool0'},
            'mirrored': {'drivers:mirror_pool': 'pool0'},
        }
        for word, specs in cases.items():
            why = backend.supports(self.volume_object(self.make_type(specs)))
            self.assertIsNotNone(why, word)
            self.assertIn(word, why)
        self.assertIsNone(backend.supports(self.volume_object(
            self.make_type({'drivers:rsize': '-1',
                            'qos:IOThrottling': '100',
                            'qos:IOThrottling_unit': 'iops'}))))
        self.assertEqual([], self.backend.emulator.inventory()['vdisks'])

    def test_multiattach_type_takes_the_in_tree_path(self) -> None:
        image, image_id = self.image(seed=5)
        multi = self.make_type({'multiattach': '<is> True'})
        vol = self.create(image_id, multi)
        self.assertIsNone(self.clone_map(vol['id']))
        self.assertEqual([], self.goldens(image_id))
        self.assertEqual(image.raw_sha256, self.backend.luns.sha256(
            self.vdisk(vol['id'])['vdisk_UID'], image.virtual_size))


class PowerFlexVolumeTypesTest(_TypesBase):
    BACKEND = 'powerflex'
    VOLUME_GB = 8

    def start_backends(self) -> None:
        self.backend = backends.PowerFlexBackend(
            self.work_dir, sdcs=(SDC_GUID,)).start()
        self.addCleanup(self.backend.stop)

    def array_volume(self, volume_id: str) -> dict[str, Any]:
        vol = objects.Volume.get_by_id(cinder_context.get_admin_context(),
                                       volume_id)
        for v in self.backend.emulator.inventory()['volumes']:
            if v['id'] == vol.provider_id:
                return v
        self.fail(f'no array volume for {volume_id}')

    def golden_provider_id(self, image_id: str) -> str:
        (golden,) = self.goldens(image_id)
        return golden.provider_id

    def test_qos_limits_are_set_when_mapped(self) -> None:
        image, image_id = self.image(seed=6)
        limited = self.make_type({}, qos={'maxIOPS': '1000',
                                          'maxBWS': '2048'})
        vol = self.create(image_id, limited)
        av = self.array_volume(vol['id'])
        self.assertEqual('Snapshot', av['type'])
        self.assertEqual(self.golden_provider_id(image_id),
                         av['ancestor_id'])
        self.initialize_connection(vol['id'], {
            'sdc_guid': SDC_GUID, 'host': 'dpm-compute-1',
            'ip': '127.0.0.1'})
        (mapping,) = self.array_volume(vol['id'])['mappings']
        self.assertEqual(1000, mapping['limitIops'])
        self.assertEqual(2, mapping['limitBwInMbps'])   # 2048 KB/s

    def test_thick_type_gets_what_the_in_tree_clone_gives(self) -> None:
        image, image_id = self.image(seed=7)
        thick = self.make_type({'provisioning:type': 'thick'})
        vol = self.create(image_id, thick)
        av = self.array_volume(vol['id'])
        # Cinder's own clone of a volume is a snapshot in its vTree too.
        self.assertEqual('Snapshot', av['type'])
        self.assertEqual(self.golden_provider_id(image_id),
                         av['ancestor_id'])
        self.assertEqual(0, self.backend.emulator.inventory()[
            'lun_counters'].get('array_copied_bytes', 0))

    def test_replicated_type_is_refused_up_front(self) -> None:
        backend = self.driver.image_cache.backend
        why = backend.supports(self.volume_object(
            self.make_type({'replication_enabled': '<is> True'})))
        self.assertIn('replicated', why)
        self.assertIsNone(backend.supports(self.volume_object(
            self.make_type({'provisioning:type': 'thick'},
                           qos={'maxIOPS': '100'}))))
