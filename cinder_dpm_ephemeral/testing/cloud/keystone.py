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
"""Keystone: bootstrap, the accounts and the catalog, as devstack makes them.

``keystone-manage bootstrap`` makes the admin user, the admin project, the
admin/member/reader roles and the identity endpoint. Then, through the
API with the admin's token: the ``service`` project and role, one user per
service (``admin`` and ``service`` roles in ``service``: Cinder accepts
attachment deletes only with a service token carrying ``service``), the
``demo`` project with its ``demo`` member, and the catalog on 127.0.0.1.
Idempotent: what exists is kept.
"""

from __future__ import annotations

import logging
from typing import Any

from keystoneauth1 import session as ks_session
from keystoneauth1.identity import v3

from cinder_dpm_ephemeral.testing.cloud import layout as lay
from cinder_dpm_ephemeral.testing.cloud import services

LOG = logging.getLogger(__name__)

# (name, type, layout service) as devstack registers them; Cinder twice,
# as devstack does, so that both the current and the legacy type resolve.
CATALOG = (
    ('glance', 'image', 'glance'),
    ('placement', 'placement', 'placement'),
    ('neutron', 'network', 'neutron'),
    ('nova', 'compute', 'nova'),
    ('cinder', 'block-storage', 'cinder'),
    ('cinderv3', 'volumev3', 'cinder'),
)


def bootstrap(lo: lay.Layout) -> None:
    """The keystone-manage steps (database, keys, admin, identity)."""
    conf = str(lo.conf('keystone'))
    manage = lay.venv_bin('keystone-manage')
    for d in ('fernet-keys', 'credential-keys'):
        (lo.data / 'keystone' / d).mkdir(parents=True, exist_ok=True)
    services.run_once(lo, 'keystone', [manage, '--config-file', conf,
                                       'db_sync'])
    for step in ('fernet_setup', 'credential_setup'):
        services.run_once(lo, 'keystone', [
            manage, '--config-file', conf, step,
            '--keystone-user', 'root', '--keystone-group', 'root'])
    services.run_once(lo, 'keystone', [
        manage, '--config-file', conf, 'bootstrap',
        '--bootstrap-username', lay.ADMIN_USER,
        '--bootstrap-project-name', 'admin',
        '--bootstrap-role-name', 'admin',
        '--bootstrap-service-name', 'keystone',
        '--bootstrap-region-id', lay.REGION,
        '--bootstrap-admin-url', lo.endpoint('keystone'),
        '--bootstrap-public-url', lo.endpoint('keystone'),
        '--bootstrap-internal-url', lo.endpoint('keystone')],
        env={'OS_BOOTSTRAP_PASSWORD': lo.passwords['admin']})


def admin_session(lo: lay.Layout) -> ks_session.Session:
    auth = v3.Password(auth_url=lo.keystone_url, username=lay.ADMIN_USER,
                       password=lo.passwords['admin'],
                       project_name='admin', user_domain_id='default',
                       project_domain_id='default')
    return ks_session.Session(auth=auth)


class _Identity:
    def __init__(self, sess: ks_session.Session, url: str) -> None:
        self.sess = sess
        self.url = url

    def _find(self, kind: str, name: str, **filters: str) -> dict | None:
        params = {'name': name, **filters}
        resp = self.sess.get(f'{self.url}/{kind}', params=params)
        found = resp.json()[kind]
        return found[0] if found else None

    def ensure(self, kind: str, body: dict[str, Any],
               **filters: str) -> dict[str, Any]:
        found = self._find(kind, body['name'], **filters)
        if found:
            return found
        one = kind[:-1]
        return self.sess.post(f'{self.url}/{kind}',
                              json={one: body}).json()[one]

    def grant(self, project_id: str, user_id: str, role_id: str) -> None:
        self.sess.put(f'{self.url}/projects/{project_id}/users/{user_id}'
                      f'/roles/{role_id}')

    def endpoints(self, service_id: str) -> list[dict[str, Any]]:
        return self.sess.get(f'{self.url}/endpoints',
                             params={'service_id': service_id}
                             ).json()['endpoints']


def configure(lo: lay.Layout) -> dict[str, str]:
    """Accounts and catalog; returns ids the other services' configs need."""
    ident = _Identity(admin_session(lo), lo.keystone_url)
    roles = {n: ident.ensure('roles', {'name': n})['id']
             for n in ('admin', 'member', 'reader', 'service')}
    service_project = ident.ensure(
        'projects', {'name': 'service', 'domain_id': 'default',
                     'description': 'OpenStack services'})
    demo_project = ident.ensure(
        'projects', {'name': lay.DEMO_PROJECT, 'domain_id': 'default',
                     'description': 'cinder-dpm-ephemeral demo'})
    ids = {'service_project_id': service_project['id'],
           'demo_project_id': demo_project['id']}
    for user in lay.SERVICE_USERS:
        u = ident.ensure('users', {'name': user, 'domain_id': 'default',
                                   'password': lo.passwords[user]})
        for role in ('admin', 'service'):
            ident.grant(service_project['id'], u['id'], roles[role])
        ids[f'{user}_user_id'] = u['id']
    demo = ident.ensure('users', {'name': lay.DEMO_USER,
                                  'domain_id': 'default',
                                  'password': lo.passwords['demo']})
    ident.grant(demo_project['id'], demo['id'], roles['member'])
    admin = ident.ensure('users', {'name': lay.ADMIN_USER,
                                   'domain_id': 'default'})
    ident.grant(demo_project['id'], admin['id'], roles['admin'])
    ids['demo_user_id'] = demo['id']
    for name, stype, where in CATALOG:
        svc = ident.ensure('services', {'name': name, 'type': stype},
                           type=stype)
        if not ident.endpoints(svc['id']):
            for interface in ('public', 'internal', 'admin'):
                ident.sess.post(f'{lo.keystone_url}/endpoints', json={
                    'endpoint': {'service_id': svc['id'],
                                 'interface': interface,
                                 'region_id': lay.REGION,
                                 'url': lo.endpoint(where)}})
    LOG.info('Keystone: accounts and catalog ready')
    return ids
