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
"""An emulated HMC for the DPM driver's tests.

``hmc_session`` gives a ``zhmcclient.mock.FakedSession`` holding one DPM
CPC (z14-like with storage groups, or z13-like with HBAs) with two FCP
adapters of two ports each. zhmcclient 1.26's mock lacks the operations
of the storage-group route (attach/detach storage group, fulfil FCP
storage volume, validate LUN path: 404 there, and no
``candidate-adapter-port-uris`` default at create); the handlers below add
them, through the mock's private URI table (zhmcclient is pinned).
"""

import re
from typing import Any

import zhmcclient
from zhmcclient.mock import FakedSession
from zhmcclient.mock import _urihandler as uh  # private: zhmcclient pinned

CPC_ID = 'c0ffee00-0000-4000-8000-00000000c0c1'
ADAPTERS = ('a1a1a1a1-0000-4000-8000-0000000000a1',
            'a2a2a2a2-0000-4000-8000-0000000000a2')
OSA_ID = 'a3a3a3a3-0000-4000-8000-0000000000a3'


def cpc_dict(storage_groups: bool, ifl: int = 20,
             memory_mb: int = 262144) -> dict[str, Any]:
    features = ([{'name': 'dpm-storage-management',
                  'description': 'storage groups', 'state': True}]
                if storage_groups else [])
    adapters = [{
        'properties': {'object-id': aid, 'name': 'FCP%d' % i, 'type': 'fcp',
                       'adapter-family': 'ficon', 'status': 'active'},
        'ports': [{'properties': {'element-id': str(p), 'name': 'Port %d' % p,
                                  'index': p}} for p in range(2)],
    } for i, aid in enumerate(ADAPTERS)]
    adapters.append({
        'properties': {'object-id': OSA_ID, 'name': 'OSA1', 'type': 'osd',
                       'adapter-family': 'osa', 'status': 'active'},
        'ports': [{'properties': {'element-id': '0', 'name': 'Port 0',
                                  'index': 0}}],
    })
    return {
        'properties': {
            'object-id': CPC_ID, 'name': 'CPC1', 'dpm-enabled': True,
            'se-version': '2.14.1' if storage_groups else '2.13.1',
            'status': 'active', 'processor-count-ifl': ifl,
            'storage-customer': memory_mb,
            'available-features-list': features,
        },
        'adapters': adapters,
    }


class _Reachability:
    """Which (target WWPN, FCP LUN) pairs Validate LUN Path accepts."""

    def __init__(self) -> None:
        self.unreachable_targets: set[str] = set()
        self.validated: list[tuple[str, str, str]] = []


class _StorageGroups(uh.StorageGroupsHandler):
    @staticmethod
    def post(method: str, hmc: Any, uri: str, uri_parms: Any, body: Any,
             logon_required: bool, wait_for_completion: bool) -> Any:
        body = dict(body)
        body.setdefault('candidate-adapter-port-uris', [])
        return uh.StorageGroupsHandler.post(
            method, hmc, uri, uri_parms, body, logon_required,
            wait_for_completion)


class _Attach:
    @staticmethod
    def post(method: str, hmc: Any, uri: str, uri_parms: Any, body: Any,
             logon_required: bool, wait_for_completion: bool) -> None:
        part = hmc.lookup_by_uri('/api/partitions/' + uri_parms[0])
        sg = hmc.lookup_by_uri(body['storage-group-uri'])
        part.properties.setdefault('storage-group-uris', []).append(sg.uri)
        for i, port_uri in enumerate(
                sg.properties['candidate-adapter-port-uris']):
            sg.virtual_storage_resources.add({
                'name': 'vhba_%s_%d' % (part.oid, i),
                'partition-uri': part.uri, 'adapter-port-uri': port_uri,
                'device-number': '%04x' % (0x100 + i),
                'world-wide-port-name': part.wwpn_alloc().lower()})


class _Detach:
    @staticmethod
    def post(method: str, hmc: Any, uri: str, uri_parms: Any, body: Any,
             logon_required: bool, wait_for_completion: bool) -> None:
        part = hmc.lookup_by_uri('/api/partitions/' + uri_parms[0])
        sg = hmc.lookup_by_uri(body['storage-group-uri'])
        part.properties['storage-group-uris'].remove(sg.uri)
        for vsr in list(sg.virtual_storage_resources.list()):
            if vsr.properties['partition-uri'] == part.uri:
                sg.virtual_storage_resources.remove(vsr.oid)


class _Fulfill:
    @staticmethod
    def post(method: str, hmc: Any, uri: str, uri_parms: Any, body: Any,
             logon_required: bool, wait_for_completion: bool) -> None:
        sv = hmc.lookup_by_uri(re.sub('/operations/.*$', '', uri))
        sv.properties['fulfillment-state'] = 'complete'
        sv.properties['paths'] = [{
            'target-world-wide-port-name': body['world-wide-port-name'],
            'logical-unit-number': body['logical-unit-number'],
            'adapter-port-uri': body['adapter-port-uri']}]


def _validate_handler(reach: _Reachability) -> Any:
    class _Validate:
        @staticmethod
        def post(method: str, hmc: Any, uri: str, uri_parms: Any,
                 body: Any, logon_required: bool,
                 wait_for_completion: bool) -> None:
            target = body['target-world-wide-port-name'].lower()
            reach.validated.append((body['host-world-wide-port-name'],
                                    target, body['logical-unit-number']))
            if target in reach.unreachable_targets:
                raise uh.ConflictError(method, uri, 484,
                                       'target %s not reachable' % target)
    return _Validate


def hmc_session(storage_groups: bool = True, **cpc: Any
                ) -> tuple[FakedSession, _Reachability]:
    session = FakedSession('hmc1', 'hmc1', '2.16.0', '4.10')
    session.hmc.consoles.add({'name': 'hmc1'})
    session.hmc.cpcs.add(cpc_dict(storage_groups, **cpc)['properties'])
    faked_cpc = session.hmc.cpcs.lookup_by_oid(CPC_ID)
    for adapter in cpc_dict(storage_groups, **cpc)['adapters']:
        fa = faked_cpc.adapters.add(adapter['properties'])
        for port in adapter['ports']:
            fa.ports.add(port['properties'])
    reach = _Reachability()
    extra = [
        (r'/api/storage-groups(?:\?(.*))?', _StorageGroups),
        (r'/api/partitions/([^/]+)/operations/attach-storage-group',
         _Attach),
        (r'/api/partitions/([^/]+)/operations/detach-storage-group',
         _Detach),
        (r'/api/storage-groups/([^/]+)/storage-volumes/([^/]+)/operations/'
         r'fulfill-fcp-storage-volume', _Fulfill),
        (r'/api/cpcs/([^/]+)/operations/validate-lun-path',
         _validate_handler(reach)),
    ]
    session._urihandler = uh.UriHandler(extra + list(uh.URIS))
    return session, reach


def client(session: FakedSession) -> zhmcclient.Client:
    return zhmcclient.Client(session)
