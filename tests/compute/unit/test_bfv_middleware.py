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
"""The filter as WSGI middleware, with Nova's flavor/image/Cinder lookups
stubbed at their module boundaries (the functional tests run them for real).
"""

import json
import types
from unittest import mock

import fixtures
from nova.api.openstack import api_version_request as avr
from nova import context as nova_context
from nova import exception
from nova import objects
from oslo_config import cfg
from oslo_config import fixture as config_fixture
import testtools
import webob

from nova_shim.api import bfv_filter
from nova_shim.api import cinder_types

IMG = '155d900f-4e14-4e4c-a73d-069cbf4541e6'
GROUP = 'dpm_boot_from_volume'
TYPES = [{'id': 'id-lvm', 'name': 'lvm-1'}, {'id': 'id-dpm',
                                             'name': 'dpm-svc'}]

objects.register_all()


class RecordingApp:
    """Stands in for Nova's API router: records what it was handed."""

    def __init__(self):
        self.calls = []

    def __call__(self, environ, start_response):
        body = environ['wsgi.input'].read(
            int(environ.get('CONTENT_LENGTH') or 0))
        self.calls.append((environ['REQUEST_METHOD'], environ['PATH_INFO'],
                           body, dict(environ)))
        start_response('202 Accepted', [('Content-Type', 'text/plain')])
        return [b'nova']


class FilterTestBase(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.conf = self.useFixture(config_fixture.Config(cfg.CONF))
        self.conf.config(volume_type='dpm-svc', cinder_cache_seconds=0,
                         flavor_cache_seconds=0, group=GROUP)
        self.flavors = {
            'dpm': objects.Flavor(
                flavorid='dpm', root_gb=5, ephemeral_gb=0, swap=0,
                extra_specs={'dpm:boot_from_volume': 'true'}),
            'plain': objects.Flavor(flavorid='plain', root_gb=1,
                                    ephemeral_gb=0, swap=0, extra_specs={}),
        }
        self.images = {IMG: {'id': IMG, 'min_disk': 0, 'properties': {}}}
        self.project_default = 'lvm-1'

        def get_flavor(ctxt, flavorid, read_deleted='yes'):
            try:
                return self.flavors[flavorid]
            except KeyError:
                raise exception.FlavorNotFound(flavor_id=flavorid) from None

        def get_image(ctxt, image_ref, **kw):
            try:
                return self.images[image_ref]
            except KeyError:
                raise exception.ImageNotFound(image_id=image_ref) from None

        self.get_flavor = self.useFixture(fixtures.MockPatch(
            'nova.compute.flavors.get_flavor_by_flavor_id',
            side_effect=get_flavor)).mock
        self.useFixture(fixtures.MockPatch(
            'nova.image.glance.API.get', side_effect=get_image))
        self.useFixture(fixtures.MockPatch(
            'nova.volume.cinder.API.get_all_volume_types',
            side_effect=lambda ctxt: [dict(t) for t in TYPES]))
        client = mock.Mock()
        client.volume_types.default.side_effect = (
            lambda: types.SimpleNamespace(id='id-x',
                                          name=self.project_default))
        # no volume type is encrypted (GET /types/{id}/encryption: {})
        client.volume_encryption_types.get.return_value = (
            types.SimpleNamespace(_info={}))
        self.cinderclient = self.useFixture(fixtures.MockPatch(
            'nova.volume.cinder.cinderclient', return_value=client)).mock
        self.default_type = client.volume_types.default
        self.app = RecordingApp()
        self.filter = bfv_filter.BootFromVolumeFilter(self.app)

    def _request(self, body, path='/servers', method='POST', version=None,
                 raw=None):
        req = webob.Request.blank(path, method=method)
        req.body = raw if raw is not None else json.dumps(body).encode()
        req.content_type = 'application/json'
        if version:
            req.headers['OpenStack-API-Version'] = 'compute %s' % version
        req.environ['nova.context'] = nova_context.RequestContext(
            'user', 'project', is_admin=False)
        return req

    def _send(self, *args, **kwargs):
        req = self._request(*args, **kwargs)
        original = req.body
        resp = req.get_response(self.filter)
        return original, resp

    @staticmethod
    def _server(flavor='dpm', image=IMG, **extra):
        server = {'name': 's', 'imageRef': image, 'flavorRef': flavor}
        server.update(extra)
        return {'server': server}


class TestPassThrough(FilterTestBase):

    def _assert_untouched(self, original, resp):
        self.assertEqual(202, resp.status_int)
        self.assertEqual(1, len(self.app.calls))
        self.assertEqual(original, self.app.calls[0][2])

    def test_other_methods_and_paths_not_read(self):
        for method, path in (('GET', '/servers'), ('PUT', '/servers/x'),
                             ('POST', '/servers/x/action'),
                             ('POST', '/flavors'),
                             ('POST', '/servers/detail')):
            self.app.calls.clear()
            body = {'rebuild': {'imageRef': IMG}}
            original, resp = self._send(body, path=path, method=method)
            self._assert_untouched(original, resp)
        self.get_flavor.assert_not_called()

    def test_untargeted_flavor_byte_for_byte(self):
        # odd spacing and key order must survive exactly
        raw = (b'{ "server" : {"flavorRef":"plain",  "name": "s",'
               b'"imageRef": "%s"} }' % IMG.encode())
        original, resp = self._send(None, raw=raw)
        self._assert_untouched(original, resp)
        self.assertEqual(raw, self.app.calls[0][2])
        self.assertEqual(str(len(raw)),
                         self.app.calls[0][3]['CONTENT_LENGTH'])

    def test_boot_from_volume_request_not_looked_at(self):
        body = self._server(image='', block_device_mapping_v2=[{
            'boot_index': 0, 'uuid': 'v', 'source_type': 'volume',
            'destination_type': 'volume'}])
        self._assert_untouched(*self._send(body))
        self.get_flavor.assert_not_called()

    def test_invalid_bodies_left_to_nova(self):
        for raw in (b'not json', b'[]', b'{"server": 3}', b''):
            self.app.calls.clear()
            self._assert_untouched(*self._send(None, raw=raw))

    def test_unknown_flavor_and_image_left_to_nova(self):
        self._assert_untouched(*self._send(self._server(flavor='nope')))
        self.app.calls.clear()
        self._assert_untouched(*self._send(self._server(image='nope')))

    def test_invalid_microversion_left_to_nova(self):
        for version in ('2.999', 'junk'):
            self.app.calls.clear()
            self._assert_untouched(*self._send(self._server(),
                                               version=version))

    def test_volume_snapshot_image_left_alone(self):
        self.images[IMG]['properties'] = {
            'bdm_v2': True, 'block_device_mapping': [
                {'boot_index': 0, 'source_type': 'snapshot',
                 'destination_type': 'volume', 'snapshot_id': 'sn'}]}
        self._assert_untouched(*self._send(self._server()))

    def test_unexpected_failure_passes_request_unchanged(self):
        self.get_flavor.side_effect = RuntimeError('db went away')
        self._assert_untouched(*self._send(self._server()))

    def test_without_context_left_alone(self):
        req = self._request(self._server())
        del req.environ['nova.context']
        original = req.body
        self._assert_untouched(original, req.get_response(self.filter))


class TestTranslate(FilterTestBase):

    def _translated(self, **kwargs):
        original, resp = self._send(self._server(), **kwargs)
        self.assertEqual(202, resp.status_int, resp.body)
        body = json.loads(self.app.calls[-1][2])
        self.assertEqual(len(self.app.calls[-1][2]),
                         int(self.app.calls[-1][3]['CONTENT_LENGTH']))
        return body['server']

    def test_latest_carries_volume_type(self):
        server = self._translated(version='latest')
        self.assertEqual('', server['imageRef'])
        self.assertEqual([{
            'uuid': IMG, 'source_type': 'image',
            'destination_type': 'volume', 'boot_index': 0,
            'delete_on_termination': True, 'volume_size': 5,
            'volume_type': 'dpm-svc'}], server['block_device_mapping_v2'])
        self.default_type.assert_not_called()

    def test_2_66_relies_on_project_default(self):
        self.project_default = 'dpm-svc'
        for version in ('2.66', None):
            server = self._translated(version=version)
            self.assertNotIn('volume_type',
                             server['block_device_mapping_v2'][0])

    def test_2_66_refused_when_default_differs(self):
        original, resp = self._send(self._server(), version='2.66')
        self.assertEqual(400, resp.status_int)
        fault = json.loads(resp.body)['badRequest']
        self.assertEqual(400, fault['code'])
        self.assertIn('dpm-svc', fault['message'])
        self.assertIn('lvm-1', fault['message'])
        self.assertEqual([], self.app.calls)
        self.assertEqual('compute 2.66', resp.headers['OpenStack-API-Version'])

    def test_image_property_covers_root_only(self):
        self.images[IMG]['properties'] = {
            'cinder_img_volume_type': 'id-dpm'}
        self._translated(version='2.1')
        self.default_type.assert_not_called()
        # a blank volume would still get the project default: refused
        self.flavors['dpm'].ephemeral_gb = 1
        original, resp = self._send(self._server(), version='2.1')
        self.assertEqual(400, resp.status_int)

    def test_image_property_naming_another_type_refused(self):
        self.project_default = 'dpm-svc'
        self.images[IMG]['properties'] = {'cinder_img_volume_type': 'lvm-1'}
        original, resp = self._send(self._server(), version='2.1')
        self.assertEqual(400, resp.status_int)
        self.assertIn('lvm-1', json.loads(resp.body)['badRequest']['message'])

    def test_cinder_default_mode(self):
        self.conf.config(old_microversion_volume_type='cinder-default',
                         group=GROUP)
        server = self._translated(version='2.1')
        self.assertNotIn('volume_type', server['block_device_mapping_v2'][0])

    def test_missing_volume_type(self):
        self.conf.config(volume_type='gone', group=GROUP)
        for version in ('2.1', 'latest'):
            original, resp = self._send(self._server(), version=version)
            self.assertEqual(400, resp.status_int)
            self.assertIn('gone',
                          json.loads(resp.body)['badRequest']['message'])
        self.assertEqual([], self.app.calls)

    def test_cinder_down_is_503_not_500(self):
        self.useFixture(fixtures.MockPatch(
            'nova.volume.cinder.API.get_all_volume_types',
            side_effect=exception.CinderConnectionFailed(reason='down')))
        original, resp = self._send(self._server(), version='latest')
        self.assertEqual(503, resp.status_int)
        self.assertIn('dpm-svc', resp.text)

    def test_no_volume_type_configured(self):
        self.conf.config(volume_type=None, group=GROUP)
        server = self._translated(version='2.1')
        self.assertNotIn('volume_type', server['block_device_mapping_v2'][0])

    def test_other_keys_kept(self):
        raw = self._server(min_count=2, metadata={'a': 'b'})
        raw['os:scheduler_hints'] = {'group': 'g'}
        self._send(raw, version='latest')
        body = json.loads(self.app.calls[-1][2])
        self.assertEqual({'group': 'g'}, body['os:scheduler_hints'])
        self.assertEqual((2, {'a': 'b'}, 's'),
                         (body['server']['min_count'],
                          body['server']['metadata'],
                          body['server']['name']))

    def test_legacy_v2_path_with_project_id(self):
        req = self._request(self._server(), path='/project/servers')
        req.environ['openstack.legacy_v2'] = True
        resp = req.get_response(self.filter)
        self.assertEqual(400, resp.status_int)  # 2.0 < 2.67, default lvm-1
        self.project_default = 'dpm-svc'
        req = self._request(self._server(), path='/project/servers')
        req.environ['openstack.legacy_v2'] = True
        self.assertEqual(202, req.get_response(self.filter).status_int)


class TestFlavorCache(FilterTestBase):

    def test_hits_per_project_and_misses_not_kept(self):
        cache = bfv_filter.FlavorCache(ttl=60)
        ctxt = nova_context.RequestContext('u', 'p', is_admin=False)
        info = cache.get(ctxt, 'dpm')
        self.assertEqual(('dpm', 5, {'dpm:boot_from_volume': 'true'}),
                         (info.flavorid, info.root_gb, info.extra_specs))
        cache.get(ctxt, 'dpm')
        self.assertEqual(1, self.get_flavor.call_count)
        other = nova_context.RequestContext('u', 'q', is_admin=False)
        cache.get(other, 'dpm')
        self.assertEqual(2, self.get_flavor.call_count)
        for _ in range(2):
            self.assertRaises(exception.FlavorNotFound, cache.get, ctxt,
                              'nope')
        self.assertEqual(4, self.get_flavor.call_count)

    def test_ttl_zero_reads_every_time(self):
        cache = bfv_filter.FlavorCache(ttl=0)
        ctxt = nova_context.RequestContext('u', 'p', is_admin=False)
        cache.get(ctxt, 'dpm')
        cache.get(ctxt, 'dpm')
        self.assertEqual(2, self.get_flavor.call_count)


class TestRequestVersion(testtools.TestCase):

    def _version(self, headers, environ=None):
        return bfv_filter.request_version(environ or {}, headers)

    def test_versions(self):
        self.assertEqual(avr.APIVersionRequest('2.1'), self._version({}))
        self.assertEqual(avr.max_api_version(), self._version(
            {'OpenStack-API-Version': 'compute latest'}))
        self.assertEqual(avr.APIVersionRequest('2.67'), self._version(
            {'X-OpenStack-Nova-API-Version': '2.67'}))
        self.assertEqual(avr.APIVersionRequest('2.0'), self._version(
            {'OpenStack-API-Version': 'compute 2.90'},
            {'openstack.legacy_v2': True}))

    def test_invalid(self):
        for text in ('2.9999', 'x.y'):
            self.assertRaises(ValueError, self._version,
                              {'OpenStack-API-Version': 'compute ' + text})


class TestVolumeTypeLookup(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.listing = self.useFixture(fixtures.MockPatch(
            'nova.volume.cinder.API.get_all_volume_types',
            side_effect=lambda ctxt: [dict(t) for t in TYPES])).mock
        self.ctxt = nova_context.RequestContext('u', 'p', is_admin=False)

    def test_find_by_name_or_id_and_cache_hits_only(self):
        lookup = cinder_types.VolumeTypeLookup(ttl=60)
        self.assertEqual({'id': 'id-dpm', 'name': 'dpm-svc'},
                         lookup.find(self.ctxt, 'dpm-svc'))
        self.assertEqual('dpm-svc', lookup.find(self.ctxt, 'id-dpm')['name'])
        self.assertEqual(2, self.listing.call_count)
        lookup.find(self.ctxt, 'dpm-svc')
        self.assertEqual(2, self.listing.call_count)  # cached
        self.assertIsNone(lookup.find(self.ctxt, 'nope'))
        self.assertIsNone(lookup.find(self.ctxt, 'nope'))
        self.assertEqual(4, self.listing.call_count)  # misses not cached

    def test_ttl_zero_never_caches(self):
        lookup = cinder_types.VolumeTypeLookup(ttl=0)
        lookup.find(self.ctxt, 'dpm-svc')
        lookup.find(self.ctxt, 'dpm-svc')
        self.assertEqual(2, self.listing.call_count)

    def test_project_default(self):
        client = mock.Mock()
        client.volume_types.default.return_value = types.SimpleNamespace(
            id='id-dpm', name='dpm-svc')
        patch = self.useFixture(fixtures.MockPatch(
            'nova.volume.cinder.cinderclient', return_value=client)).mock
        lookup = cinder_types.VolumeTypeLookup(ttl=60)
        self.assertEqual({'id': 'id-dpm', 'name': 'dpm-svc'},
                         lookup.project_default(self.ctxt))
        lookup.project_default(self.ctxt)
        patch.assert_called_once_with(self.ctxt)
        other = nova_context.RequestContext(
            'u', 'other-project', is_admin=False)
        lookup.project_default(other)
        self.assertEqual(2, patch.call_count)


class TestVirtualSize(testtools.TestCase):

    def test_from_record_or_raw_glance(self):
        self.assertEqual(7, bfv_filter.BootFromVolumeFilter._virtual_size(
            None, IMG, {'virtual_size': 7}))
        session = mock.Mock()
        session._client.call.return_value = {'virtual_size': 3 * 1024 ** 3}
        self.useFixture(fixtures.MockPatch(
            'nova.image.glance.get_remote_image_service',
            return_value=(session, IMG)))
        self.assertEqual(3 * 1024 ** 3,
                         bfv_filter.BootFromVolumeFilter._virtual_size(
                             'ctx', IMG, {}))
        session._client.call.assert_called_once_with('ctx', 2, 'get',
                                                     args=(IMG,))
        session._client.call.side_effect = RuntimeError('glance down')
        self.assertIsNone(bfv_filter.BootFromVolumeFilter._virtual_size(
            'ctx', IMG, {}))


class TestPasteSnippet(testtools.TestCase):
    """etc/nova/api-paste-dpm-bfv.ini: both composites, after context."""

    def test_snippet_merges_into_novas_paste_config(self):
        from tests.compute.functional import harness

        text = harness.merged_paste_text()
        for name in harness.COMPOSITES:
            section = text.split('[composite:%s]' % name, 1)[1]
            words = section.split('keystone = ', 1)[1].split('\n', 1)[0]
            words = words.split()
            self.assertEqual('osapi_compute_app_v21', words[-1])
            self.assertEqual('dpm_bfv', words[-2])
            self.assertLess(words.index('keystonecontext'),
                            words.index('dpm_bfv'))
        self.assertIn('nova_shim.api.bfv_filter:BootFromVolumeFilter.factory',
                      text)
        factory = bfv_filter.BootFromVolumeFilter.factory({})
        self.assertIsInstance(factory(RecordingApp()),
                              bfv_filter.BootFromVolumeFilter)
