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
"""The boot-from-volume filter inside Nova 34's functional harness.

Real nova-api through the real paste pipeline (Nova's api-paste.ini with the
project's snippet merged in), conductor, scheduler, placement and a compute
with the fake virt driver; Cinder and Glance are Nova's fixtures (Cinder's
completed by ``harness.RecordingCinder``).
"""

from typing import Any

import fixtures
from nova import context as nova_context
from nova import objects
from nova.tests.functional.api import client as api_client
from nova.tests.functional import integrated_helpers
from oslo_config import cfg

from nova_shim import conf as shim_conf
from tests.compute.functional import harness

shim_conf.register_opts(cfg.CONF)

IMAGE = '155d900f-4e14-4e4c-a73d-069cbf4541e6'  # GlanceFixture image1
GROUP = 'dpm_boot_from_volume'


class BfvFilterTestBase(integrated_helpers._IntegratedTestBase):
    """Harness with the filter in the pipeline and a recording Cinder."""

    api_major_version = 'v2.1'
    microversion = 'latest'
    # scheduler attempts; 1 = a failed spawn is not rescheduled
    MAX_ATTEMPTS = 3

    def setUp(self) -> None:
        self.paste = harness.build_paste_config(harness.temp_dir(self))
        super().setUp()

    def _setup_services(self) -> None:
        # After test.TestCase.setUp (config fixture) and the stock fixtures,
        # before the API loads its paste pipeline.
        self.flags(api_paste_config=self.paste, group='wsgi')
        self.flags(max_attempts=self.MAX_ATTEMPTS, group='scheduler')
        self.flags(block_device_allocate_retries_interval=0)
        self.flags(volume_type='dpm-svc', cinder_cache_seconds=0,
                   group=GROUP)
        self.rcinder = self.useFixture(harness.RecordingCinder(self.cinder))
        super()._setup_services()
        self.ctxt = nova_context.get_admin_context()
        self.targeted = self._create_flavor(
            name='dpm.small', memory_mb=512, vcpu=1, disk=5, ephemeral=0,
            extra_spec={'dpm:boot_from_volume': 'true'})
        self.plain = self._create_flavor(
            name='plain.small', memory_mb=512, vcpu=1, disk=1, ephemeral=0)

    # helpers ---------------------------------------------------------------

    def _body(self, flavor: str, image: str = IMAGE,
              **extra: Any) -> dict[str, Any]:
        server: dict[str, Any] = {'name': 'dpm', 'imageRef': image,
                                  'flavorRef': flavor}
        version = self.api.microversion
        if version == 'latest' or (
                version and tuple(map(int, version.split('.'))) >= (2, 37)):
            server['networks'] = 'none'
        server.update(extra)
        return {'server': server}

    def _boot(self, flavor: str, image: str = IMAGE, state: str = 'ACTIVE',
              **extra: Any) -> dict[str, Any]:
        server = self.api.post_server(self._body(flavor, image, **extra))
        return self._wait_for_state_change(server, state)

    def _post_error(self, body: dict[str, Any]) -> tuple[int, str]:
        exc = self.assertRaises(api_client.OpenStackApiException,
                                self.api.post_server, body)
        fault = exc.response.json()
        message = next(iter(fault.values()))['message']
        return exc.response.status_code, message

    def _bdms(self, server_id: str) -> list[Any]:
        return sorted(
            objects.BlockDeviceMappingList.get_by_instance_uuid(
                self.ctxt, server_id),
            key=lambda b: (b.boot_index != 0, b.destination_type,
                           b.volume_size or 0))

    def _resources(self, server_id: str) -> dict[str, int]:
        allocations = self._get_allocations_by_server_uuid(server_id)
        merged: dict[str, int] = {}
        for alloc in allocations.values():
            merged.update(alloc['resources'])
        return merged

    def _assert_root_volume(self, server: dict[str, Any], size: int,
                            volume_type: str | None) -> Any:
        bdms = self._bdms(server['id'])
        root = bdms[0]
        self.assertEqual(0, root.boot_index)
        self.assertEqual('image', root.source_type)
        self.assertEqual('volume', root.destination_type)
        self.assertTrue(root.delete_on_termination)
        self.assertEqual(size, root.volume_size)
        self.assertEqual(IMAGE, root.image_id)
        self.assertIsNotNone(root.volume_id)
        created = self.rcinder.created[root.volume_id]
        self.assertEqual(IMAGE, created['image_id'])
        self.assertEqual(size, created['size'])
        self.assertEqual(volume_type, created['volume_type'])
        # imageRef '' reached the instance: nova-dpm refuses image_ref
        self.assertEqual('', server['image'])
        instance = objects.Instance.get_by_uuid(self.ctxt, server['id'])
        self.assertEqual('', instance.image_ref)
        return root

    def _delete_all(self, servers: list[dict[str, Any]]) -> None:
        for server in servers:
            self._delete_server(server)
        created = set(self.rcinder.created)
        self.assertTrue(created)
        self.assertEqual(created, set(self.rcinder.deleted))
        self.assertEqual(len(created), len(self.rcinder.deleted))


class TestTranslation(BfvFilterTestBase):

    def test_targeted_image_boot_becomes_boot_from_volume(self) -> None:
        server = self._boot(self.targeted)
        self._assert_root_volume(server, 5, 'dpm-svc')
        self.assertEqual(1, len(self._bdms(server['id'])))
        resources = self._resources(server['id'])
        self.assertNotIn('DISK_GB', resources)
        self.assertEqual({'VCPU': 1, 'MEMORY_MB': 512}, resources)
        self._delete_all([server])

    def test_untargeted_flavor_untouched(self) -> None:
        server = self._boot(self.plain)
        self.assertEqual(IMAGE, server['image']['id'])
        bdms = self._bdms(server['id'])
        self.assertEqual(1, len(bdms))
        self.assertEqual(('image', 'local'),
                         (bdms[0].source_type, bdms[0].destination_type))
        self.assertEqual(1, self._resources(server['id'])['DISK_GB'])
        self.assertEqual({}, self.rcinder.created)
        self._delete_server(server)

    def test_hypervisor_type_targeting(self) -> None:
        # The fake driver reports hypervisor_type 'fake'; it stands in for
        # PRSM here (the scheduler's ComputeCapabilitiesFilter checks it).
        self.flags(hypervisor_types=['PRSM', 'fake'], group=GROUP)
        flavor = self._create_flavor(
            name='hv', memory_mb=512, vcpu=1, disk=2, ephemeral=0,
            extra_spec={'capabilities:hypervisor_type': 's== fake'})
        server = self._boot(flavor)
        self._assert_root_volume(server, 2, 'dpm-svc')
        self._delete_all([server])

    def test_global_switch_and_flavor_opt_out(self) -> None:
        self.flags(translate_all=True, group=GROUP)
        opted_out = self._create_flavor(
            name='out', memory_mb=512, vcpu=1, disk=1, ephemeral=0,
            extra_spec={'dpm:boot_from_volume': 'false'})
        server = self._boot(self.plain)
        self._assert_root_volume(server, 1, 'dpm-svc')
        local = self._boot(opted_out)
        self.assertEqual(IMAGE, local['image']['id'])
        self.assertEqual(1, len(self.rcinder.created))
        self._delete_server(local)
        self._delete_all([server])

    def test_ephemeral_and_swap_become_volumes(self) -> None:
        flavor = self._create_flavor(
            name='eph', memory_mb=512, vcpu=1, disk=3, ephemeral=2,
            swap=1536, extra_spec={'dpm:boot_from_volume': 'true',
                                   'resources:DISK_GB': '0'})
        server = self._boot(flavor)
        self._assert_root_volume(server, 3, 'dpm-svc')
        volumes = [b for b in self._bdms(server['id'])
                   if b.destination_type == 'volume']
        blank = sorted((b.volume_size, b.delete_on_termination)
                       for b in volumes if b.source_type == 'blank')
        # ephemeral_gb 2, swap 1536 MiB -> 2 GiB
        self.assertEqual([(2, True), (2, True)], blank)
        self.assertEqual(
            [2, 2, 3], sorted(v['size'] for v in
                              self.rcinder.created.values()))
        self.assertEqual({'dpm-svc'}, {v['volume_type'] for v in
                                       self.rcinder.created.values()})
        # Nova 34 itself still adds local blank mappings for the flavor's
        # ephemeral/swap (compute/api.py _get_flavor_defined_bdms); the
        # resources:DISK_GB=0 extra spec keeps them out of placement.
        local = [b for b in self._bdms(server['id'])
                 if b.destination_type == 'local']
        self.assertEqual([('blank', ''), ('blank', 'swap')],
                         sorted((b.source_type, b.guest_format or '')
                                for b in local))
        self.assertNotIn('DISK_GB', self._resources(server['id']))
        self._delete_all([server])

    def test_root_gb_zero_uses_image_min_disk(self) -> None:
        flavor = self._create_flavor(
            name='zero', memory_mb=512, vcpu=1, disk=0, ephemeral=0,
            extra_spec={'dpm:boot_from_volume': 'true'})
        image = dict(self.glance.image1, id=None, min_disk=3,
                     name='min-disk-3')
        image.pop('id')
        image_id = self.glance.create(None, image)['id']
        server = self._boot(flavor, image=image_id)
        root = self._bdms(server['id'])[0]
        self.assertEqual(('image', 'volume', 3, image_id),
                         (root.source_type, root.destination_type,
                          root.volume_size, root.image_id))
        # no min_disk, no virtual size: a clear 400, nothing created
        status, message = self._post_error(self._body(flavor))
        self.assertEqual(400, status)
        self.assertIn('root_gb 0', message)
        self.assertIn(IMAGE, message)
        self._delete_all([server])

    def test_multiple_servers(self) -> None:
        self.api.post_server(self._body(self.targeted, min_count=3))
        servers = [self._wait_for_state_change(s, 'ACTIVE')
                   for s in self.api.get_servers()]
        self.assertEqual(3, len(servers))
        roots = {self._assert_root_volume(s, 5, 'dpm-svc').volume_id
                 for s in servers}
        self.assertEqual(3, len(roots))
        self.assertEqual(roots, set(self.rcinder.created))
        self._delete_all(servers)


class TestLeftAlone(BfvFilterTestBase):

    def test_boot_from_volume_request_untouched(self) -> None:
        bdm = {'boot_index': 0, 'uuid': IMAGE, 'source_type': 'image',
               'destination_type': 'volume', 'volume_size': 1,
               'delete_on_termination': False}
        server = self.api.post_server(self._body(
            self.targeted, image='', block_device_mapping_v2=[bdm]))
        server = self._wait_for_state_change(server, 'ACTIVE')
        bdms = self._bdms(server['id'])
        self.assertEqual(1, len(bdms))
        # the client's own choices survive: not the filter's size/deletion
        self.assertEqual((1, False),
                         (bdms[0].volume_size,
                          bdms[0].delete_on_termination))
        created = list(self.rcinder.created.values())
        self.assertEqual([None], [c['volume_type'] for c in created])

    def test_boot_from_volume_snapshot_image(self) -> None:
        origin = self._boot(self.targeted)
        root = self._assert_root_volume(origin, 5, 'dpm-svc')
        resp = self.api.post_server_action(
            origin['id'], {'createImage': {'name': 'snap'}})
        snapshot_image = self.glance.show(None, resp['image_id'])
        mappings = snapshot_image['properties']['block_device_mapping']
        self.assertEqual('snapshot', mappings[0]['source_type'])

        server = self._boot(self.targeted, image=resp['image_id'])
        bdms = self._bdms(server['id'])
        self.assertEqual(1, len(bdms))
        new_root = bdms[0]
        self.assertEqual(('snapshot', 'volume', True),
                         (new_root.source_type, new_root.destination_type,
                          new_root.delete_on_termination))
        self.assertNotEqual(root.volume_id, new_root.volume_id)
        instance = objects.Instance.get_by_uuid(self.ctxt, server['id'])
        # Left alone, so Nova keeps the snapshot image as image_ref (the
        # root is still a volume): the DPM driver must accept that.
        self.assertEqual(resp['image_id'], instance.image_ref)
        created = self.rcinder.created[new_root.volume_id]
        self.assertEqual(mappings[0]['snapshot_id'], created['snapshot_id'])
        self.assertIsNone(created['image_id'])
        self._delete_all([origin, server])

    def test_rebuild_not_translated(self) -> None:
        server = self._boot(self.plain)
        self.api.post_server_action(
            server['id'], {'rebuild': {'imageRef': IMAGE}})
        server = self._wait_for_state_change(server, 'ACTIVE')
        self.assertEqual(IMAGE, server['image']['id'])
        self.assertEqual({}, self.rcinder.created)


class TestErrors(BfvFilterTestBase):

    def test_unknown_flavor_is_novas_error(self) -> None:
        status, message = self._post_error(self._body('no-such-flavor'))
        self.assertEqual(400, status)
        self.assertEqual('Flavor no-such-flavor could not be found.',
                         message)

    def test_unknown_image_is_novas_error(self) -> None:
        status, message = self._post_error(
            self._body(self.targeted,
                       image='6b1e0c53-2f4e-4f4e-9a53-1d0a3c2b7e11'))
        self.assertEqual(400, status)
        self.assertEqual('Can not find requested image', message)

    def test_missing_volume_type_is_400_naming_it(self) -> None:
        self.flags(volume_type='no-such-type', group=GROUP)
        for version in ('2.1', 'latest'):
            self.api.microversion = version
            status, message = self._post_error(self._body(self.targeted))
            self.assertEqual(400, status)
            self.assertIn('no-such-type', message)
        self.assertEqual({}, self.rcinder.created)
        # untargeted requests are not affected
        self.api.microversion = 'latest'
        self._delete_server(self._boot(self.plain))


class TestMicroversions(BfvFilterTestBase):
    """The configured volume type at every microversion."""

    def _boot_at(self, version: str) -> dict[str, Any]:
        self.api.microversion = version
        return self._boot(self.targeted)

    def test_2_67_and_latest_carry_the_volume_type(self) -> None:
        servers = []
        for version in ('2.67', 'latest'):
            server = self._boot_at(version)
            root = self._bdms(server['id'])[0]
            self.assertEqual('dpm-svc', root.volume_type)
            self._assert_root_volume(server, 5, 'dpm-svc')
            servers.append(server)
        self.assertEqual(0, self.rcinder.default_type_lookups)
        self._delete_all(servers)

    def test_old_microversions_use_the_project_default_type(self) -> None:
        self.rcinder.project_defaults[self.api.project_id] = 'dpm-svc'
        servers = []
        for version in ('2.1', '2.66'):
            server = self._boot_at(version)
            # Nova refuses BDM volume_type below 2.67: none is sent, and
            # Cinder applies the project's default type, dpm-svc.
            root = self._assert_root_volume(server, 5, None)
            self.assertIsNone(root.volume_type)
            servers.append(server)
        self.assertEqual(2, self.rcinder.default_type_lookups)
        self._delete_all(servers)

    def test_old_microversion_refused_when_cinder_would_pick_another(
            self) -> None:
        for version in ('2.1', '2.66'):
            self.api.microversion = version
            status, message = self._post_error(self._body(self.targeted))
            self.assertEqual(400, status)
            self.assertIn('dpm-svc', message)
            self.assertIn('2.67', message)
            self.assertIn('lvm-1', message)
        self.assertEqual({}, self.rcinder.created)

    def test_old_microversion_image_property(self) -> None:
        image = dict(self.glance.image1, name='typed')
        image.pop('id')
        image['properties'] = dict(image['properties'],
                                   cinder_img_volume_type='dpm-svc')
        image_id = self.glance.create(None, image)['id']
        self.api.microversion = '2.1'
        server = self._boot(self.targeted, image=image_id)
        root = self._bdms(server['id'])[0]
        self.assertEqual(('image', 'volume', image_id),
                         (root.source_type, root.destination_type,
                          root.image_id))
        self.assertEqual(0, self.rcinder.default_type_lookups)
        self._delete_all([server])

    def test_old_microversion_cinder_default_mode(self) -> None:
        self.flags(old_microversion_volume_type='cinder-default',
                   group=GROUP)
        server = self._boot_at('2.1')
        self._assert_root_volume(server, 5, None)
        self._delete_all([server])


class TestSpawnFailure(BfvFilterTestBase):
    MAX_ATTEMPTS = 1

    def test_volumes_deleted_with_failed_server(self) -> None:
        def _fail(*args: Any, **kwargs: Any) -> None:
            raise RuntimeError('partition start failed')

        self.useFixture(fixtures.MockPatch(
            'nova.virt.fake.FakeDriver.spawn', side_effect=_fail))
        server = self._boot(self.targeted, state='ERROR')
        self.assertIn('partition start failed',
                      self.api.get_server(server['id'])['fault']['message'])
        self.assertEqual(1, len(self.rcinder.created))
        self.assertEqual([], self.rcinder.deleted)
        self._delete_all([server])


class TestLegacyV2(BfvFilterTestBase):
    """/v2 goes through the other composite (legacy_v2_compatible)."""

    api_major_version = 'v2'
    USE_PROJECT_ID = True
    microversion = None

    def test_legacy_v2_image_boot_becomes_boot_from_volume(self) -> None:
        # the legacy API is 2.0: no volume_type in mappings, so Cinder's
        # project default must be the configured type
        status, message = self._post_error(self._body(self.targeted))
        self.assertEqual(400, status)
        self.assertIn('dpm-svc', message)
        self.rcinder.project_defaults[self.api.project_id] = 'dpm-svc'
        server = self._boot(self.targeted)
        root = self._assert_root_volume(server, 5, None)
        self.assertIsNone(root.volume_type)
        self._delete_all([server])
