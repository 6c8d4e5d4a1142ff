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
"""FCP storage groups: create, volumes, attach, detach, fulfilment.

zhmcclient's mock lists storage groups but has no attach, detach or
fulfilment, and its create leaves ``candidate-adapter-port-uris`` unset.
These handlers model the HMC's FCP storage-group route (IBM HMC WS API
book, "Storage Group object", DPM R3.1+):

* Create Storage Group (``POST /api/storage-groups``): ``name`` String
  (1-64), unique on the HMC; ``type`` ``fcp`` (the only type modelled);
  ``cpc-uri`` of a CPC with ``dpm-storage-management``; optional
  ``candidate-adapter-port-uris`` (FCP storage ports of that CPC) and
  ``storage-volumes`` (``operation: create``, ``usage`` boot|data, ``size``
  in GiB > 0). Volumes start ``fulfillment-state: pending``.
* Attach Storage Group to Partition
  (``POST /api/partitions/{id}/operations/attach-storage-group``): the
  HMC creates one virtual storage resource (virtual HBA, NPIV) per
  candidate adapter port for the partition, each with its own
  ``world-wide-port-name`` and ``device-number``.
* Detach Storage Group from Partition: removes them.
* Fulfill FCP Storage Volume
  (``.../storage-volumes/{id}/operations/fulfill-fcp-storage-volume``,
  ``world-wide-port-name``, ``logical-unit-number``, ``adapter-port-uri``):
  on a real HMC the SAN administrator's LUN is discovered by the CPC
  through the storage group's WWPNs; here there is no SAN discovery, so the
  operation is the one source of the volume's target: it sets
  ``fulfillment-state: complete`` and gives the volume one path per
  virtual storage resource of every attached partition (``partition-uri``,
  ``device-number``, ``target-world-wide-port-name``,
  ``logical-unit-number``). Partitions attached later get their paths at
  attach. The emulated IPL uses exactly these paths.
"""

from __future__ import annotations

import copy
import re
import uuid
from typing import Any

from zhmcclient.mock import _urihandler as mock  # private API: pinned

from cinder_dpm_ephemeral.emulators.hmc import errors
from cinder_dpm_ephemeral.emulators.hmc.context import context_of
from cinder_dpm_ephemeral.emulators.hmc.checks import (
    check_name, has_sg_feature, lookup)

_HEX16 = re.compile(r'^[0-9A-Fa-f]{16}$')
_HEX1_16 = re.compile(r'^[0-9A-Fa-f]{1,16}$')
USAGES = ('boot', 'data')


def _check_ports(method: str, uri: str, hmc: Any, cpc: Any,
                 port_uris: Any) -> list[str]:
    if not isinstance(port_uris, list):
        raise errors.invalid_value(method, uri, 'candidate-adapter-port-'
                                   'uris must be an array of port URIs')
    for port_uri in port_uris:
        m = re.match(r'^(/api/adapters/[^/]+)/storage-ports/[^/]+$',
                     str(port_uri))
        if not m:
            raise mock.InvalidResourceError(method, uri, reason=6,
                                            resource_uri=port_uri)
        adapter = lookup(hmc, method, m.group(1))
        lookup(hmc, method, port_uri)
        if adapter.manager.parent.uri != cpc.uri:
            raise errors.invalid_value(
                method, uri, f'adapter port {port_uri} is not on CPC '
                f'{cpc.name}')
        if adapter.properties.get('type') != 'fcp':
            raise errors.invalid_value(
                method, uri, f'adapter {adapter.name} is not an FCP '
                f'adapter (type {adapter.properties.get("type")!r})')
    return list(port_uris)


def _volume_props(method: str, uri: str, req: dict[str, Any]
                  ) -> dict[str, Any]:
    props = copy.deepcopy(req)
    props.pop('operation', None)
    if 'element-uri' in props:
        raise mock.BadRequestError(
            method, uri, 7, "The 'element-uri' field in storage-volumes is "
            "invalid for the create operation")
    usage = props.setdefault('usage', 'data')
    if usage not in USAGES:
        raise errors.invalid_value(method, uri, f'Invalid storage volume '
                                   f'usage {usage!r}; valid: boot, data')
    size = props.get('size')
    if not isinstance(size, (int, float)) or isinstance(size, bool) \
            or size <= 0:
        raise errors.invalid_value(method, uri, f'An FCP storage volume '
                                   f'needs a size in GiB > 0; got {size!r}')
    if 'name' in props:
        check_name(method, uri, props['name'], 'storage volume')
    props.update({'fulfillment-state': 'pending', 'paths': [],
                  'uuid': None, 'active-size': None,
                  'description': props.get('description', '')})
    return props


def _add_volume(sg: Any, props: dict[str, Any]) -> Any:
    sv = sg.storage_volumes.add(props)
    return sv


def _sg_state(sg: Any) -> None:
    states = {sv.properties.get('fulfillment-state')
              for sv in sg.storage_volumes.list()}
    sg.properties['fulfillment-state'] = (
        'complete' if states <= {'complete'} else 'pending')


class StorageGroupsHandler(mock.StorageGroupsHandler):

    @staticmethod
    def post(method: str, hmc: Any, uri: str, uri_parms: Any,
             body: dict[str, Any], logon_required: bool,
             wait_for_completion: bool) -> Any:
        body = body or {}
        mock.check_required_fields(method, uri, body,
                                   ['name', 'cpc-uri', 'type'])
        cpc = lookup(hmc, method, body['cpc-uri'])
        if not cpc.dpm_enabled:
            raise mock.CpcNotInDpmError(method, uri, cpc)
        if not has_sg_feature(cpc):
            raise errors.invalid_value(
                method, uri, f'CPC {cpc.name} does not have the '
                f'dpm-storage-management feature: no storage groups')
        check_name(method, uri, body['name'], 'storage group')
        console = hmc.consoles.console
        for other in console.storage_groups.list():
            if other.name == body['name']:
                raise errors.name_not_unique(
                    method, uri, f'A storage group named {body["name"]!r} '
                    f'already exists ({other.uri})')
        if body['type'] != 'fcp':
            raise errors.invalid_value(
                method, uri, f'Storage group type {body["type"]!r} is not '
                f'modelled by the emulator (only fcp)')
        props = copy.deepcopy(body)
        sv_requests = props.pop('storage-volumes', None) or []
        props['candidate-adapter-port-uris'] = _check_ports(
            method, uri, hmc, cpc, props.get('candidate-adapter-port-uris',
                                             []))
        props.setdefault('shared', True)
        props.setdefault('description', '')
        props.setdefault('connectivity', 2)
        props.setdefault('max-partitions', 2 if props['shared'] else 1)
        props['fulfillment-state'] = 'complete'
        props['object-id'] = str(uuid.uuid4())
        volumes = []
        for req in sv_requests:
            if req.get('operation') != 'create':
                raise mock.BadRequestError(
                    method, uri, 5, 'Invalid value for storage-volumes '
                    f'operation field: {req.get("operation")!r}')
            volumes.append(_volume_props(method, uri, req))
        sg = console.storage_groups.add(props)
        sv_uris = [_add_volume(sg, v).uri for v in volumes]
        _sg_state(sg)
        return {'object-uri': sg.uri, 'element-uris': sv_uris}


class StorageGroupModifyHandler:
    """Modify Storage Group Properties, incl. storage volume requests."""

    @staticmethod
    def post(method: str, hmc: Any, uri: str, uri_parms: Any,
             body: dict[str, Any], logon_required: bool,
             wait_for_completion: bool) -> Any:
        sg = lookup(hmc, method, '/api/storage-groups/' + uri_parms[0])
        body = copy.deepcopy(body or {})
        sv_requests = body.pop('storage-volumes', None) or []
        if 'name' in body and body['name'] != sg.name:
            check_name(method, uri, body['name'], 'storage group')
            for other in hmc.consoles.console.storage_groups.list():
                if other.name == body['name']:
                    raise errors.name_not_unique(
                        method, uri, f'A storage group named '
                        f'{body["name"]!r} already exists')
        sv_uris = []
        for req in sv_requests:
            op = req.get('operation')
            if op == 'create':
                sv_uris.append(_add_volume(
                    sg, _volume_props(method, uri, req)).uri)
            elif op == 'modify':
                mock.check_required_fields(method, uri, req, ['element-uri'])
                sv = lookup(hmc, method, req['element-uri'])
                changes = {k: v for k, v in req.items()
                           if k not in ('operation', 'element-uri')}
                if 'size' in changes:
                    changes['fulfillment-state'] = 'pending'
                sv.update(changes)
            elif op == 'delete':
                mock.check_required_fields(method, uri, req, ['element-uri'])
                sv = lookup(hmc, method, req['element-uri'])
                for part in _attached_partitions(hmc, sg):
                    if (part.properties.get('boot-storage-volume') == sv.uri
                            and part.properties['status'] != 'stopped'):
                        raise errors.wrong_status(
                            method, uri, f'Storage volume {sv.uri} is the '
                            f'boot volume of active partition {part.name}')
                sg.storage_volumes.remove(sv.oid)
                if sv.uri in sg.properties['storage-volume-uris']:
                    sg.properties['storage-volume-uris'].remove(sv.uri)
                context_of(hmc).fulfilments.pop(sv.uri, None)
            else:
                raise mock.BadRequestError(
                    method, uri, 5, f'Invalid value for storage-volumes '
                    f'operation field: {op!r}')
        sg.update(body)
        _sg_state(sg)
        return {'element-uris': sv_uris}


def _attached_partitions(hmc: Any, sg: Any) -> list[Any]:
    out = []
    for cpc in hmc.cpcs.list():
        for part in cpc.partitions.list():
            if sg.uri in part.properties.get('storage-group-uris', []):
                out.append(part)
    return out


class StorageGroupDeleteHandler:

    @staticmethod
    def post(method: str, hmc: Any, uri: str, uri_parms: Any,
             body: Any, logon_required: bool,
             wait_for_completion: bool) -> None:
        sg = lookup(hmc, method, '/api/storage-groups/' + uri_parms[0])
        attached = _attached_partitions(hmc, sg)
        if attached:
            raise errors.wrong_status(
                method, uri, f'Storage group {sg.name} is attached to '
                f'partition(s) {", ".join(p.name for p in attached)}; '
                f'detach it first')
        for sv in sg.storage_volumes.list():
            context_of(hmc).fulfilments.pop(sv.uri, None)
        sg.manager.remove(sg.oid)


def _paths_for(hmc: Any, sg: Any) -> None:
    """Recompute every fulfilled volume's paths from the group's VSRs."""
    for sv in sg.storage_volumes.list():
        f = context_of(hmc).fulfilments.get(sv.uri)
        if f is None:
            continue
        sv.properties['paths'] = [
            {'partition-uri': v.properties['partition-uri'],
             'device-number': v.properties['device-number'],
             'target-world-wide-port-name': f['world-wide-port-name'],
             'logical-unit-number': f['logical-unit-number']}
            for v in sg.virtual_storage_resources.list()]


def attach(hmc: Any, partition: Any, sg: Any) -> None:
    cpc = partition.manager.parent
    serial = cpc.properties.get('machine-serial-number', cpc.oid)
    ctx = context_of(hmc)
    for port_uri in sg.properties.get('candidate-adapter-port-uris', []):
        devno = ctx.new_devno()
        sg.virtual_storage_resources.add({
            'name': f'vhba_{partition.name[:40]}_{devno}',
            'description': '',
            'partition-uri': partition.uri,
            'adapter-port-uri': port_uri,
            'device-number': devno,
            'world-wide-port-name': ctx.new_wwpn(serial),
        })
    partition.properties['storage-group-uris'].append(sg.uri)
    _paths_for(hmc, sg)


def detach(hmc: Any, partition: Any, sg: Any) -> None:
    for vsr in list(sg.virtual_storage_resources.list()):
        if vsr.properties.get('partition-uri') == partition.uri:
            sg.virtual_storage_resources.remove(vsr.oid)
            uris = sg.properties['virtual-storage-resource-uris']
            if vsr.uri in uris:
                uris.remove(vsr.uri)
    if sg.uri in partition.properties['storage-group-uris']:
        partition.properties['storage-group-uris'].remove(sg.uri)
    boot = partition.properties.get('boot-storage-volume') or ''
    if boot.startswith(sg.uri + '/'):
        partition.properties['boot-storage-volume'] = None
    _paths_for(hmc, sg)


class AttachStorageGroupHandler:

    @staticmethod
    def post(method: str, hmc: Any, uri: str, uri_parms: Any,
             body: dict[str, Any], logon_required: bool,
             wait_for_completion: bool) -> None:
        partition = lookup(hmc, method, '/api/partitions/' + uri_parms[0])
        mock.check_required_fields(method, uri, body or {},
                                   ['storage-group-uri'])
        sg = lookup(hmc, method, body['storage-group-uri'])
        mock.check_partition_status(
            method, uri, partition, invalid_statuses=['starting', 'stopping'])
        if sg.properties.get('cpc-uri') != partition.manager.parent.uri:
            raise errors.invalid_value(
                method, uri, f'Storage group {sg.name} belongs to another '
                f'CPC ({sg.properties.get("cpc-uri")})')
        if sg.uri in partition.properties['storage-group-uris']:
            raise errors.wrong_status(
                method, uri, f'Storage group {sg.name} is already attached '
                f'to partition {partition.name}')
        attached = _attached_partitions(hmc, sg)
        limit = sg.properties.get('max-partitions') or 1
        if attached and (not sg.properties.get('shared')
                         or len(attached) >= limit):
            raise errors.wrong_status(
                method, uri, f'Storage group {sg.name} is attached to '
                f'{", ".join(p.name for p in attached)} and is not shared '
                f'(or at max-partitions {limit})')
        if not sg.properties.get('candidate-adapter-port-uris'):
            raise errors.wrong_status(
                method, uri, f'Storage group {sg.name} has no candidate '
                f'adapter ports: no virtual storage resource can be made')
        attach(hmc, partition, sg)


class DetachStorageGroupHandler:

    @staticmethod
    def post(method: str, hmc: Any, uri: str, uri_parms: Any,
             body: dict[str, Any], logon_required: bool,
             wait_for_completion: bool) -> None:
        partition = lookup(hmc, method, '/api/partitions/' + uri_parms[0])
        mock.check_required_fields(method, uri, body or {},
                                   ['storage-group-uri'])
        sg = lookup(hmc, method, body['storage-group-uri'])
        if sg.uri not in partition.properties['storage-group-uris']:
            raise errors.wrong_status(
                method, uri, f'Storage group {sg.name} is not attached to '
                f'partition {partition.name}')
        boot = partition.properties.get('boot-storage-volume') or ''
        if (boot.startswith(sg.uri + '/')
                and partition.properties['status'] != 'stopped'):
            raise errors.wrong_status(
                method, uri, f'Storage group {sg.name} holds the boot '
                f'volume of partition {partition.name}, whose status is '
                f'{partition.properties["status"]}; stop it first')
        detach(hmc, partition, sg)


class FulfillFcpStorageVolumeHandler:

    @staticmethod
    def post(method: str, hmc: Any, uri: str, uri_parms: Any,
             body: dict[str, Any], logon_required: bool,
             wait_for_completion: bool) -> None:
        sg = lookup(hmc, method, '/api/storage-groups/' + uri_parms[0])
        sv = lookup(hmc, method, f'{sg.uri}/storage-volumes/{uri_parms[1]}')
        body = body or {}
        mock.check_required_fields(
            method, uri, body, ['world-wide-port-name',
                                'logical-unit-number', 'adapter-port-uri'])
        wwpn, lun = body['world-wide-port-name'], body['logical-unit-number']
        if not _HEX16.match(str(wwpn)):
            raise errors.invalid_value(
                method, uri, f'world-wide-port-name {wwpn!r}: expected 16 '
                f'hexadecimal characters')
        if not _HEX1_16.match(str(lun)):
            raise errors.invalid_value(
                method, uri, f'logical-unit-number {lun!r}: expected 1 to '
                f'16 hexadecimal characters (FCP LUN)')
        port = body['adapter-port-uri']
        lookup(hmc, method, port)
        if port not in sg.properties.get('candidate-adapter-port-uris', []):
            raise errors.invalid_value(
                method, uri, f'adapter-port-uri {port} is not a candidate '
                f'adapter port of storage group {sg.name}')
        context_of(hmc).fulfilments[sv.uri] = {
            'world-wide-port-name': str(wwpn).lower(),
            'logical-unit-number': str(lun).lower().rjust(16, '0'),
            'adapter-port-uri': port}
        sv.properties['fulfillment-state'] = 'complete'
        sv.properties['active-size'] = sv.properties.get('size')
        _paths_for(hmc, sg)
        _sg_state(sg)


class ValidateLunPathHandler:
    """Validate LUN Path: can the CPC reach a LUN from a host WWPN?

    ``POST /api/cpcs/{id}/operations/validate-lun-path``: is
    ``logical-unit-number`` behind ``target-world-wide-port-name``
    reachable from ``host-world-wide-port-name``?

    409 reason 484: the target WWPN cannot be reached; 485: it can, the LUN
    cannot (zhmcclient ``Cpc.validate_lun_path``). With the SVC emulator
    attached: a target that is not one of its host-I/O ports is 484;
    anything else that stops the LUN being presented to that initiator
    (no host with the WWPN, no mapping with that SCSI id, a LUN that is not
    single-level, no data) is 485. What the LUN holds is not checked.
    Without the SVC emulator every well-formed path is reachable.
    """

    @staticmethod
    def post(method: str, hmc: Any, uri: str, uri_parms: Any,
             body: dict[str, Any], logon_required: bool,
             wait_for_completion: bool) -> None:
        cpc = lookup(hmc, method, '/api/cpcs/' + uri_parms[0])
        body = body or {}
        mock.check_required_fields(method, uri, body, [
            'host-world-wide-port-name', 'adapter-port-uri',
            'target-world-wide-port-name', 'logical-unit-number'])
        if not has_sg_feature(cpc):
            raise errors.invalid_value(
                method, uri, f'Validate LUN Path needs the dpm-storage-'
                f'management feature, which CPC {cpc.name} lacks')
        for field, pattern in (('host-world-wide-port-name', _HEX16),
                               ('target-world-wide-port-name', _HEX16),
                               ('logical-unit-number', _HEX1_16)):
            if not pattern.match(str(body[field])):
                raise errors.invalid_value(
                    method, uri, f'{field} {body[field]!r}: expected '
                    f'hexadecimal characters (16 for a WWPN, 1-16 for a '
                    f'LUN)')
        _check_ports(method, uri, hmc, cpc, [body['adapter-port-uri']])
        fabric = context_of(hmc).fabric
        if fabric is None:
            return
        try:
            fabric.resolve(body['host-world-wide-port-name'],
                           body['target-world-wide-port-name'],
                           str(body['logical-unit-number']).rjust(16, '0'),
                           boot=False)
        except errors.IplFailed as exc:
            message = exc.message.removeprefix('IPL failed: ')
            raise mock.ConflictError(
                method, uri, 484 if exc.stage == 'target' else 485,
                message) from None


URIS = [
    (r'/api/storage-groups(?:\?(.*))?', StorageGroupsHandler),
    (r'/api/storage-groups/([^/]+)/operations/modify',
     StorageGroupModifyHandler),
    (r'/api/storage-groups/([^/]+)/operations/delete',
     StorageGroupDeleteHandler),
    (r'/api/partitions/([^/]+)/operations/attach-storage-group',
     AttachStorageGroupHandler),
    (r'/api/partitions/([^/]+)/operations/detach-storage-group',
     DetachStorageGroupHandler),
    (r'/api/storage-groups/([^/]+)/storage-volumes/([^/]+)/operations/'
     r'fulfill-fcp-storage-volume', FulfillFcpStorageVolumeHandler),
]
