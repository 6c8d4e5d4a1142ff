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
"""The gateway on the wire: TLS, login, REST shapes, state, faults."""

from __future__ import annotations

import json
from concurrent import futures
import logging
import os
import ssl
import stat
from typing import Any

import fixtures
import requests
from cryptography import x509

from cinder import exception

from cinder_dpm_ephemeral.emulators.powerflex import api
from cinder_dpm_ephemeral.emulators.powerflex import errors
from cinder_dpm_ephemeral.emulators.powerflex import gateway
from cinder_dpm_ephemeral.emulators.powerflex import state
from tests.volume.unit.emulators_powerflex import base

KIB_GIB = base.KiB_PER_GiB


class Rest:
    """A bare gateway client (what the driver's rest_client does)."""

    def __init__(self, gw: gateway.PowerFlexGateway) -> None:
        self.gw = gw
        r = self.get('/login', auth=gw.login)
        self.token = r.json() if r.status_code == 200 else None

    def get(self, path: str, auth: Any = None) -> requests.Response:
        return requests.get(self.gw.url + path,
                            auth=auth or ('admin', self.token),
                            verify=self.gw.cert_path, timeout=10)

    def post(self, path: str, body: Any = None) -> requests.Response:
        return requests.post(self.gw.url + path, data=json.dumps(body or {}),
                             headers={'content-type': 'application/json'},
                             auth=('admin', self.token),
                             verify=self.gw.cert_path, timeout=10)

    def pool_id(self) -> str:
        pd = self.get(f'/types/Domain/instances/getByName::{base.DOMAIN}')
        return self.get('/types/Pool/instances/getByName::'
                        f'{pd.json()},{base.POOL}').json()

    def create(self, name: str, size_kb: int = KIB_GIB,
               vtype: str = 'ThinProvisioned') -> str:
        r = self.post('/types/Volume/instances', {
            'name': name, 'volumeSizeInKb': str(size_kb),
            'storagePoolId': self.pool_id(), 'volumeType': vtype})
        assert r.status_code == 200, r.text
        return r.json()['id']

    def snap(self, *defs: tuple[str, str]) -> requests.Response:
        return self.post('/instances/System/action/snapshotVolumes', {
            'snapshotDefs': [{'volumeId': v, 'snapshotName': n}
                             for v, n in defs]})


class GatewayTestCase(base.PowerFlexEmulatorTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.rest = Rest(self.gw)


class TlsAndLoginTest(GatewayTestCase):

    def test_certificate_names_localhost_and_loopback(self) -> None:
        with open(self.gw.cert_path, 'rb') as f:
            cert = x509.load_pem_x509_certificate(f.read())
        san = cert.extensions.get_extension_for_class(
            x509.SubjectAlternativeName).value
        self.assertEqual(['localhost'], san.get_values_for_type(x509.DNSName))
        self.assertEqual(['127.0.0.1'], [
            str(ip) for ip in san.get_values_for_type(x509.IPAddress)])
        mode = stat.S_IMODE(os.stat(self.gw.key_path).st_mode)
        self.assertEqual(0o600, mode)
        self.assertEqual(
            os.path.join(self.state_dir, 'powerflex-gateway.crt'),
            self.gw.cert_path)

    def test_hostname_localhost_verifies_too(self) -> None:
        r = requests.get(f'https://localhost:{self.gw.port}/api/login',
                         auth=('admin', 'password'),
                         verify=self.gw.cert_path, timeout=10)
        self.assertEqual(200, r.status_code)

    def test_certificate_is_reused_on_restart(self) -> None:
        with open(self.gw.cert_path, 'rb') as f:
            first = f.read()
        self.gw.stop()
        again = self.start_gateway()
        with open(again.cert_path, 'rb') as f:
            self.assertEqual(first, f.read())

    def test_client_trusting_another_certificate_is_refused(self) -> None:
        other = self.useFixture(fixtures.TempDir()).path
        other_cert, _ = gateway.ensure_certificate(other)
        self.assertRaises(requests.exceptions.SSLError, requests.get,
                          self.gw.url + '/version', verify=other_cert,
                          timeout=10)
        self.assertRaises(requests.exceptions.SSLError,
                          self.make_driver, driver_ssl_cert_path=other_cert)
        ctx = ssl.create_default_context(cafile=self.gw.cert_path)
        self.assertEqual(ssl.CERT_REQUIRED, ctx.verify_mode)

    def test_login_then_token(self) -> None:
        self.assertIsInstance(self.rest.token, str)
        self.assertEqual('3.6', self.rest.get('/version').json())
        # The password is for /login only; other calls need the token.
        r = self.rest.get('/version', auth=('admin', 'password'))
        self.assertEqual(401, r.status_code)
        self.assertEqual({'message': 'Unauthorized', 'httpStatusCode': 401,
                          'errorCode': 0}, r.json())

    def test_calls_are_counted(self) -> None:
        before = self.gw.calls_made()
        self.rest.get('/version')
        self.rest.get('/version')
        self.rest.get('/login', auth=self.gw.login)
        self.assertEqual(before + 3, self.gw.calls_made())

    def test_bad_login_is_401(self) -> None:
        r = self.rest.get('/login', auth=('admin', 'nope'))
        self.assertEqual(401, r.status_code)
        self.assertEqual(401, r.json()['httpStatusCode'])
        r = requests.get(self.gw.url + '/version', verify=self.gw.cert_path,
                         timeout=10)
        self.assertEqual(401, r.status_code)

    def test_secrets_are_never_logged(self) -> None:
        logs = self.useFixture(fixtures.FakeLogger(level=logging.DEBUG))
        rest = Rest(self.gw)
        rest.get('/version')
        rest.get('/login', auth=('admin', 'wrong-secret'))
        rest.post('/instances/Volume::0000000000000000/action/removeVolume')
        self.assertIn('removeVolume', logs.output)
        self.assertNotIn('password', logs.output)
        self.assertNotIn('wrong-secret', logs.output)
        self.assertNotIn(rest.token, logs.output)


class RestShapesTest(GatewayTestCase):

    def test_unknown_path_is_404_json(self) -> None:
        r = self.rest.get('/types/Nothing/instances')
        self.assertEqual(404, r.status_code)
        self.assertEqual(errors.ILLEGAL_SYNTAX, r.json()['errorCode'])

    def test_volume_not_found_is_code_79(self) -> None:
        r = self.rest.get('/instances/Volume::00000000deadbeef')
        self.assertEqual(500, r.status_code)
        self.assertEqual({'message': 'Could not find the volume',
                          'httpStatusCode': 500, 'errorCode': 79}, r.json())

    def test_volume_document(self) -> None:
        vid = self.rest.create('doc-vol')
        v = self.rest.get(f'/instances/Volume::{vid}').json()
        self.assertEqual(vid, v['id'])
        self.assertEqual('doc-vol', v['name'])
        self.assertEqual(8 * KIB_GIB, v['sizeInKb'])
        self.assertIsNone(v['mappedSdcInfo'])
        self.assertIsNone(v['ancestorVolumeId'])
        self.assertEqual(self.rest.pool_id(), v['storagePoolId'])
        self.assertRegex(v['vtreeId'], r'^[0-9a-f]{16}$')
        self.assertEqual(vid, self.rest.get(
            '/types/Volume/instances/getByName::doc-vol').json())
        listed = self.rest.get('/types/Volume/instances').json()
        self.assertEqual([vid], [x['id'] for x in listed])
        tree = self.rest.get(f'/instances/VTree::{v["vtreeId"]}').json()
        self.assertEqual('NotInMigration',
                         tree['vtreeMigrationInfo']['migrationStatus'])

    def test_names_with_slashes_are_url_decoded(self) -> None:
        vid = self.rest.create('a/b+c==')
        r = self.rest.get('/types/Volume/instances/getByName::a%2Fb%2Bc%3D%3D')
        self.assertEqual(vid, r.json())

    def test_names_longer_than_31_characters_are_refused(self) -> None:
        r = self.rest.post('/types/Volume/instances', {
            'name': 'n' * 32, 'volumeSizeInKb': str(KIB_GIB),
            'storagePoolId': self.rest.pool_id()})
        self.assertEqual(400, r.status_code)
        self.assertEqual(200, self.rest.post('/types/Volume/instances', {
            'name': 'n' * 31, 'volumeSizeInKb': str(KIB_GIB),
            'storagePoolId': self.rest.pool_id()}).status_code)

    def test_system_and_sdcs(self) -> None:
        (system,) = self.rest.get('/types/System/instances').json()
        self.assertRegex(system['id'], r'^[0-9a-f]{16}$')
        sdcs = self.rest.get('/types/Sdc/instances').json()
        self.assertEqual(sorted(base.SDC_GUIDS),
                         sorted(s['sdcGuid'] for s in sdcs))
        one = self.rest.get(f'/instances/Sdc::{sdcs[0]["id"]}').json()
        self.assertEqual(sdcs[0]['sdcIp'], one['sdcIp'])

    def test_selected_statistics_reject_unknown_properties(self) -> None:
        r = self.rest.post(
            '/types/StoragePool/instances/action/querySelectedStatistics',
            {'ids': [self.rest.pool_id()], 'properties': ['noSuchStat']})
        self.assertEqual(400, r.status_code)

    def test_snapshot_group_is_all_or_nothing(self) -> None:
        a = self.rest.create('vol-a')
        b = self.rest.create('vol-b')
        r = self.rest.snap((a, 'snap-a'), (b, 'vol-a'))
        self.assertEqual(errors.NAME_IN_USE, r.json()['errorCode'])
        self.assertEqual(2, len(self.inventory()['volumes']))
        (system,) = self.rest.get('/types/System/instances').json()
        r = self.rest.post(
            f'/instances/System::{system["id"]}/action/snapshotVolumes',
            {'snapshotDefs': [{'volumeId': a, 'snapshotName': 'snap-a'},
                              {'volumeId': b, 'snapshotName': 'snap-b'}]})
        body = r.json()
        self.assertEqual(2, len(body['volumeIdList']))
        groups = {v['snapshot_group_id'] for v in self.inventory()['volumes']
                  if v['type'] == 'Snapshot'}
        self.assertEqual({body['snapshotGroupId']}, groups)

    def test_vtree_limit_error_shape(self) -> None:
        vid = self.rest.create('base')
        for i in range(state.MAX_SNAPS_IN_VTREE):
            self.assertEqual(200, self.rest.snap((vid, f's{i}')).status_code)
        r = self.rest.snap((vid, 'one-too-many'))
        self.assertEqual(500, r.status_code)
        self.assertEqual(errors.TOO_MANY_SNAPS, r.json()['details'][0]['rc'])

    def test_remove_modes(self) -> None:
        root = self.rest.create('root')
        s1 = self.rest.snap((root, 's1')).json()['volumeIdList'][0]
        s2 = self.rest.snap((s1, 's2')).json()['volumeIdList'][0]
        other = self.rest.snap((root, 'other')).json()['volumeIdList'][0]
        r = self.rest.post(f'/instances/Volume::{s1}/action/removeVolume',
                           {'removeMode': 'INCLUDING_DESCENDANTS'})
        self.assertEqual(200, r.status_code)
        left = {v['id'] for v in self.inventory()['volumes']}
        self.assertEqual({root, other}, left)
        self.assertNotIn(s2, self.inventory()['luns'])
        r = self.rest.post(f'/instances/Volume::{other}/action/removeVolume',
                           {'removeMode': 'WHOLE_VTREE'})
        self.assertEqual(200, r.status_code)
        self.assertArrayEmpty()

    def test_mapped_volume_cannot_be_removed(self) -> None:
        vid = self.rest.create('mapped')
        sdc = self.sdc_id(base.SDC_GUIDS[0])
        self.rest.post(f'/instances/Volume::{vid}/action/addMappedSdc',
                       {'sdcId': sdc})
        r = self.rest.post(f'/instances/Volume::{vid}/action/addMappedSdc',
                           {'sdcId': sdc})
        self.assertEqual(errors.ALREADY_MAPPED, r.json()['errorCode'])
        r = self.rest.post(f'/instances/Volume::{vid}/action/addMappedSdc',
                           {'sdcId': self.sdc_id(base.SDC_GUIDS[1])})
        self.assertEqual(errors.MULTI_MAP_NOT_ALLOWED, r.json()['errorCode'])
        r = self.rest.post(f'/instances/Volume::{vid}/action/removeVolume',
                           {'removeMode': 'ONLY_ME'})
        self.assertEqual(errors.VOLUME_IS_MAPPED, r.json()['errorCode'])
        mapped = self.rest.get(f'/instances/Sdc::{sdc}/relationships/Volume')
        self.assertEqual([vid], [v['id'] for v in mapped.json()])


class StateAndFaultsTest(GatewayTestCase):

    def test_state_survives_restart(self) -> None:
        vol = self.create_volume(size=8)
        snap = self.create_snapshot(vol)
        self.driver.initialize_connection(
            vol, {'sdc_guid': base.SDC_GUIDS[0], 'host': 'compute-0'})
        before = self.inventory()
        with open(os.path.join(self.state_dir,
                               state.STATE_FILE)) as f:
            self.assertIn(vol.provider_id, json.load(f)['volumes'])
        self.gw.stop()
        self.gw = self.start_gateway()
        self.assertEqual(before, self.inventory())
        drv = self.make_driver()
        self.assertEqual(vol.provider_id,
                         drv.primary_client.query_volume(
                             vol.provider_id)['id'])
        drv.terminate_connection(
            vol, {'sdc_guid': base.SDC_GUIDS[0], 'host': 'compute-0'})
        drv.delete_snapshot(snap)
        drv.delete_volume(vol)
        self.assertArrayEmpty()

    def test_concurrent_creates_and_snapshots(self) -> None:
        vols = [self.new_volume(size=8) for _ in range(12)]
        with futures.ThreadPoolExecutor(max_workers=6) as pool:
            updates = list(pool.map(self.driver.create_volume, vols))
        for vol, update in zip(vols, updates, strict=True):
            self.apply(vol, update)
        with futures.ThreadPoolExecutor(max_workers=6) as pool:
            snaps = list(pool.map(self.create_snapshot, vols))
        ids = {v.provider_id for v in vols} | {s.provider_id for s in snaps}
        self.assertEqual(24, len(ids))
        inv = self.inventory()
        self.assertEqual(sorted(ids), inv['luns'])
        self.assertEqual(12, len(inv['vtrees']))
        self.gw.stop()
        self.gw = self.start_gateway()
        self.assertEqual(inv, self.inventory())

    def test_fault_by_path_fails_next_calls_only(self) -> None:
        vol = self.create_volume(size=8)
        self.gw.inject_fault('/types/Sdc/instances', count=1,
                             error_code=4242, message='SDC list broken')
        conn = {'sdc_guid': base.SDC_GUIDS[0], 'host': 'compute-0'}
        exc = self.assertRaises(exception.VolumeBackendAPIException,
                                self.driver.initialize_connection, vol, conn)
        self.assertIn('SDC list broken', str(exc))
        self.assertEqual([], self.array_volume(vol.provider_id)['mappings'])
        self.driver.initialize_connection(vol, conn)
        self.assertEqual(1, len(
            self.array_volume(vol.provider_id)['mappings']))

    def test_fault_on_create_leaves_nothing(self) -> None:
        self.gw.inject_fault('createVolume', count=1)
        vol = self.new_volume(size=8)
        self.assertRaises(exception.VolumeBackendAPIException,
                          self.driver.create_volume, vol)
        self.assertArrayEmpty()

    def test_fail_rate_one_fails_every_call_but_login(self) -> None:
        self.gw.fail_rate = 1.0
        r = self.rest.get('/login', auth=('admin', 'password'))
        self.assertEqual(200, r.status_code)
        r = self.rest.get('/version')
        self.assertEqual(errors.INJECTED, r.json()['errorCode'])
        self.gw.fail_rate = 0.0
        self.assertEqual(200, self.rest.get('/version').status_code)

    def test_latency_is_applied_per_call(self) -> None:
        waits: list[float] = []
        gw_api = api.GatewayAPI(self.gw.array, latency=0.25,
                                sleep=waits.append)
        status, _ = gw_api.handle('GET', '/api/login', ('admin', 'password'),
                                  b'')
        self.assertEqual(200, status)
        self.assertEqual([0.25], waits)


class OperatorReadOnlyTest(GatewayTestCase):
    """Read-only relationships an operator's script walks.

    PowerFlex REST API reference:
    ``/api/instances/<Type>::<id>/relationships/<Type>``.
    """

    def test_domain_pools_and_system_relationships(self) -> None:
        (pd,) = self.rest.get('/types/ProtectionDomain/instances').json()
        r = self.rest.get(f'/instances/ProtectionDomain::{pd["id"]}'
                          '/relationships/StoragePool')
        self.assertEqual(200, r.status_code, r.text)
        self.assertEqual([self.rest.pool_id()], [p['id'] for p in r.json()])
        self.assertIn('zeroPaddingEnabled', r.json()[0])
        (system,) = self.rest.get('/types/System/instances').json()
        doms = self.rest.get(f'/instances/System::{system["id"]}'
                             '/relationships/ProtectionDomain').json()
        self.assertEqual([pd['id']], [d['id'] for d in doms])
        sdcs = self.rest.get(f'/instances/System::{system["id"]}'
                             '/relationships/Sdc').json()
        self.assertEqual(len(base.SDC_GUIDS), len(sdcs))
        missing = self.rest.get(
            '/instances/ProtectionDomain::ffff/relationships/StoragePool')
        self.assertNotEqual(200, missing.status_code)

    def test_vtree_volumes(self) -> None:
        vol = self.rest.create('v1')
        self.rest.snap((vol, 's1'))
        vtree = self.rest.get(f'/instances/Volume::{vol}').json()['vtreeId']
        members = self.rest.get(f'/instances/VTree::{vtree}'
                                '/relationships/Volume').json()
        self.assertEqual(2, len(members))


MiB = 1 << 20


class WriteCostTest(GatewayTestCase):
    """What guest writes cost.

    ``powerflex/writes.py``: 1 MiB units, snapshots share (assumption).
    """

    def test_snapshot_writes_and_removal(self) -> None:
        vol = self.rest.create('v1')
        self.assertEqual({'write': 0}, self.gw.write(vol, 0, b'a' * 4096))
        self.assertEqual({'write': 0},
                         self.gw.write(vol, 5 * MiB, b'b' * 10))
        snap = self.rest.snap((vol, 's1')).json()['volumeIdList'][0]
        self.assertEqual(0, self.gw.byte_counters()[
            'powerflex_snapshot_copy_bytes'])
        # a partial write to a shared, allocated unit copies the rest of it
        self.assertEqual({'write': MiB - 100},
                         self.gw.write(snap, 100, b'c' * 100))
        self.assertEqual({'write': 0}, self.gw.write(snap, 300, b'c'))
        # a whole-unit write copies nothing; an unallocated unit neither
        self.assertEqual({'write': 0},
                         self.gw.write(vol, 5 * MiB, b'd' * MiB))
        self.assertEqual({'write': 0}, self.gw.write(vol, 9 * MiB, b'e'))
        self.assertEqual(b'b' * 10, self.gw.array.luns.read(
            snap, 5 * MiB, 10))
        counters = self.gw.byte_counters()
        self.assertEqual(MiB - 100,
                         counters['powerflex_write_copy_bytes'])
        vols = {v['id']: v for v in self.gw.inventory()['volumes']}
        self.assertEqual(MiB, vols[snap]['own_bytes'])
        self.rest.post(f'/instances/Volume::{snap}/action/removeVolume',
                       {'removeMode': 'ONLY_ME'})
        self.assertEqual(0, self.gw.byte_counters()[
            'powerflex_remove_copy_bytes'])
