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
"""Secure defaults, tested: secrets, TLS, SSH host keys, golden volumes.

* Every password option the project registers (the volume drivers' and
  nova_shim's) is ``secret=True``, as are the Cinder options the drivers
  read passwords from.
* The configuration the project writes (the test and demo helpers, the
  devstack plugin, the installation guide) verifies the PowerFlex
  gateway's certificate and the SVC's SSH host key; a backend started
  without either says so at every start, naming the fix.
* Golden volumes are invisible and unusable to tenants: a member of
  another project (not an admin) does not list them, cannot show,
  snapshot, clone or delete them, and its own volume does not name its
  golden; an admin sees them with ``all_tenants``.
* A storm of creates and deletes with DEBUG logging leaves no array
  password (nor the HTTP basic credentials built from it) in any line of
  the test's Cinder log.
"""

import base64
import os
import pathlib
import uuid

from cinder import context as cinder_context
from cinder.tests.functional.api import client as api_client
import fixtures
from oslo_config import cfg
import testtools
import webob.dec

from cinder_dpm_ephemeral import opts
from cinder_dpm_ephemeral.testing import cinder_harness
from cinder_dpm_ephemeral.testing import images
from tests.volume.functional import array_views
from tests.volume.functional import log_capture

MiB = 1024 * 1024
ROOT = pathlib.Path(__file__).resolve().parents[3]

INTERNAL_PROJECT = array_views.INTERNAL_PROJECT
#: users whose name starts so are plain project members, not admins
TENANT_PREFIX = 'tenant-'


def tenant_context_factory(global_conf, **local_conf):
    """Paste filter: a ``tenant-*`` user is a member, not an admin.

    Cinder's noauth pipeline makes every caller an admin; this filter,
    placed after it, gives ``tenant-*`` users the context Keystone gives a
    project member, so Cinder's own policies decide what they see.
    """
    def wrap(app):
        @webob.dec.wsgify
        def call(req):
            ctx = req.environ.get('cinder.context')
            if ctx is not None and str(ctx.user_id).startswith(
                    TENANT_PREFIX):
                req.environ['cinder.context'] = (
                    cinder_context.RequestContext(
                        ctx.user_id, ctx.project_id, is_admin=False,
                        roles=['member', 'reader']))
            return req.get_response(app)
        return call
    return wrap


def _password_options():
    """(group, option) of every option that holds a password."""
    import nova_shim.conf
    found = []
    for group, group_opts in opts.list_opts() + nova_shim.conf.list_opts():
        name = group if isinstance(group, str) else group.name
        for opt in group_opts:
            if any(w in opt.name for w in ('password', 'secret', 'token',
                                           'passphrase')):
                found.append((name, opt))
    return found


class SecretOptionsTest(testtools.TestCase):

    def test_every_password_option_is_secret(self):
        found = _password_options()
        self.assertIn('hmc_password', [o.name for _g, o in found])
        for group, opt in found:
            self.assertTrue(opt.secret, f'[{group}] {opt.name}')
        # The Cinder options the drivers take the array password from.
        from cinder.volume.drivers.san import san
        (pw,) = [o for o in san.san_opts if o.name == 'san_password']
        self.assertTrue(pw.secret)

    def test_project_configuration_verifies_tls_and_host_keys(self):
        devstack = (ROOT / 'devstack' / 'lib' /
                    'cinder_backends_dpm_ephemeral').read_text()
        self.assertIn('iniset $CINDER_CONF DEFAULT strict_ssh_host_key_policy '
                      'True', devstack)
        self.assertIn('iniset $CINDER_CONF $be_name driver_ssl_cert_verify '
                      'True', devstack)
        guide = (ROOT / 'doc' / 'source' / 'admin' /
                 'install.rst').read_text()
        self.assertIn('strict_ssh_host_key_policy = True', guide)
        self.assertIn('driver_ssl_cert_verify = True', guide)
        self.assertIn('strict_ssh_host_key_policy = True',
                      (ROOT / 'README.md').read_text())
        cloud = (ROOT / 'cinder_dpm_ephemeral' / 'testing' / 'cloud' /
                 'config.py').read_text()
        self.assertIn("'strict_ssh_host_key_policy': True", cloud)
        self.assertIn("'driver_ssl_cert_verify': True", cloud)
        self.assertIn('#hmc_verify_cert = true',
                      (ROOT / 'etc' / 'nova' /
                       'nova-shim.conf.sample').read_text())


class _SecureDefaults(log_capture.CapturedLogs,
                      array_views.InternalTenant):
    """On one array, through real Cinder."""

    def api_paste_config(self):
        text = pathlib.Path(super().api_paste_config()).read_text()
        text = text.replace(' noauth apiv3', ' noauth tenantctx apiv3')
        text += ('\n[filter:tenantctx]\npaste.filter_factory = '
                 f'{__name__}:tenant_context_factory\n')
        path = os.path.join(self.work_dir, 'api-paste.ini')
        with open(path, 'w') as f:
            f.write(text)
        return path

    def _tenant(self):
        tenant = api_client.TestOpenStackClient(
            TENANT_PREFIX + uuid.uuid4().hex[:8], 'key', self.auth_url,
            self._osapi_version)
        tenant.update_project(uuid.uuid4().hex)
        return tenant

    def test_configuration_helpers_are_secure(self):
        if self.BACKEND == 'svc':
            self.assertTrue(self.backend.default_options()[
                'strict_ssh_host_key_policy'])
        else:
            o = self.backend.backend_options()
            self.assertTrue(o['driver_ssl_cert_verify'])
            self.assertTrue(os.path.exists(o['driver_ssl_cert_path']))
        # Turned off, it is named at start (an explicit choice).
        logs = self.useFixture(fixtures.FakeLogger(
            name='cinder_dpm_ephemeral.image_cache.driver'))
        self.driver.check_for_setup_error()
        self.assertNotIn('is False', logs.output)
        if self.BACKEND == 'svc':
            self.flags(strict_ssh_host_key_policy=False)
            why = 'strict_ssh_host_key_policy is False'
        else:
            self.flags(driver_ssl_cert_verify=False, group=self.BACKEND)
            why = 'driver_ssl_cert_verify is False'
        self.driver.check_for_setup_error()
        self.assertIn(why, logs.output)

    def test_golden_volumes_invisible_and_unusable_to_tenants(self):
        image = images.make_image(self.work_dir, 4 * MiB, 'raw', seed=51,
                                  name='tenant')
        meta = self.add_image(image)
        tenant = self._tenant()
        vol = tenant.post_volume({'volume': {'size': self.VOLUME_GB,
                                             'imageRef': meta['id']}})
        vol = self._wait(tenant, vol['id'])
        self.assertEqual('available', vol['status'])
        (golden,) = self.goldens()
        before = self.array_objects()
        # not listed, not even with all_tenants, not named anywhere
        for uri in ('/volumes/detail', '/volumes/detail?all_tenants=1',
                    '/volumes', f'/volumes/{vol["id"]}'):
            text = repr(tenant.api_get(uri))
            self.assertNotIn(golden.id, text, uri)
            self.assertNotIn('dpm-golden', text, uri)
        self.assertEqual([vol['id']], [v['id'] for v in tenant.api_get(
            '/volumes/detail?all_tenants=1')['volumes']])
        # not shown, snapshotted, cloned or deleted
        self.assertRaises(api_client.OpenStackApiException404,
                          tenant.get_volume, golden.id)
        self.assertRaises(api_client.OpenStackApiException404,
                          tenant.post_snapshot,
                          {'snapshot': {'volume_id': golden.id}})
        self.assertRaises(api_client.OpenStackApiException404,
                          tenant.post_volume,
                          {'volume': {'size': self.VOLUME_GB,
                                      'source_volid': golden.id}})
        self.assertRaises(api_client.OpenStackApiException404,
                          tenant.delete_volume, golden.id)
        self.assertEqual([vol['id']], [v['id'] for v in tenant.api_get(
            '/volumes/detail')['volumes']])
        self.assertEqual([], tenant.api_get('/snapshots')['snapshots'])
        self.assertEqual(before, self.array_objects())
        self.assertEqual('available', self.goldens()[0].status)
        # an operator sees it
        listed = self.api.api_get('/volumes/detail?all_tenants=1')['volumes']
        self.assertIn((golden.id, f'dpm-golden-{meta["id"]}'),
                      [(v['id'], v['name']) for v in listed])
        tenant.delete_volume(vol['id'])

    def _wait(self, client, volume_id):
        import time
        deadline = time.monotonic() + 120
        while True:
            v = client.get_volume(volume_id)
            if v['status'] in ('available', 'error'):
                return v
            self.assertLess(time.monotonic(), deadline, v)
            time.sleep(self.poll_interval)

    def test_no_password_in_any_log_line_of_a_storm(self):
        metas = [self.add_image(images.make_image(
            self.work_dir, 4 * MiB, 'raw', seed=52 + i, name=f'storm{i}'))
            for i in range(2)]
        vols = [self.create_volume(self.VOLUME_GB,
                                   image_id=metas[i % 2]['id'])
                for i in range(8)]
        vols = [self.wait_for_volume(v['id'], timeout=120) for v in vols]
        for v in vols:
            self.assertEqual('available', v['status'])
        for v in vols:
            self.delete_volume(v['id'])
        for m in metas:
            self.images.remove(m['id'])
        self.driver.image_cache.collect_garbage(self.images.service())
        self.assertEqual([], self.goldens())
        log = self.all_logs()
        self.assertIn('DEBUG', log)
        self.assertGreater(len(log), 100000)    # DEBUG was on
        user, password = self.backend.login
        basic = base64.b64encode(f'{user}:{password}'.encode()).decode()
        for secret in (password, basic, cfg.CONF[self.BACKEND].san_password):
            self.assertNotIn(secret, log)


class SVCSecureDefaultsTest(array_views.SVCArray, _SecureDefaults,
                            cinder_harness.CinderHarness):
    pass


class PowerFlexSecureDefaultsTest(array_views.PowerFlexArray,
                                  _SecureDefaults,
                                  cinder_harness.CinderHarness):
    pass
