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
"""Strict partition, HBA and start/stop handlers over zhmcclient's mock.

Each class wraps the mock's handler for the same URI: it first refuses what
a real HMC refuses, then lets the mock do the bookkeeping. Sources of the
rules (IBM HMC WS API book, DPM chapters "Partition object" and "HBA
element object"):

* partition ``name``: String (1-64), "must be unique on a hosting CPC"
  (Partition data model; Create Partition request body);
* ``boot-device``: one of the documented enumeration values;
* ``boot-world-wide-port-name``: String (16) hexadecimal;
  ``boot-logical-unit-number``: String (1-16) hexadecimal;
* HBAs exist only without the ``dpm-storage-management`` feature
  (zhmcclient ``_hba.py``: with it "HBA objects are not exposed anymore"),
  and the emulator creates and deletes them only on stopped partitions
  (409 reason 1, the status check the mock applies elsewhere);
* Start Partition runs the emulated IPL (:mod:`ipl`).
"""

from __future__ import annotations

import copy
import logging
import re
from typing import Any

from zhmcclient.mock import _urihandler as mock  # private API: pinned

from cinder_dpm_ephemeral.emulators.hmc import boot
from cinder_dpm_ephemeral.emulators.hmc.checks import (
    SG_FEATURE, check_name, has_sg_feature, lookup)
from cinder_dpm_ephemeral.emulators.hmc.context import context_of
from cinder_dpm_ephemeral.emulators.hmc import errors
from cinder_dpm_ephemeral.emulators.hmc import storage

LOG = logging.getLogger(__name__)

# Partition boot-device values (Partition data model, boot-device).
BOOT_DEVICES = ('storage-adapter', 'storage-volume', 'network-adapter',
                'ftp', 'removable-media', 'iso-image', 'none')
_HEX16 = re.compile(r'^[0-9A-Fa-f]{16}$')
_HEX1_16 = re.compile(r'^[0-9A-Fa-f]{1,16}$')


def check_partition_name(method: str, uri: str, cpc: Any, name: Any,
                         own_uri: str | None = None) -> None:
    check_name(method, uri, name, 'partition')
    for other in cpc.partitions.list():
        if other.name == name and other.uri != own_uri:
            raise errors.name_not_unique(
                method, uri, f'A partition named {name!r} already exists '
                f'on CPC {cpc.name} ({other.uri}); partition names must be '
                f'unique on a hosting CPC')


def check_boot_properties(method: str, uri: str, hmc: Any, partition: Any,
                          body: dict[str, Any]) -> None:
    cpc = partition.manager.parent
    device = body.get('boot-device')
    if device is not None:
        if device not in BOOT_DEVICES:
            raise errors.invalid_value(
                method, uri, f'Invalid value for boot-device: {device!r}; '
                f'valid values: {", ".join(BOOT_DEVICES)}')
        if device == 'storage-adapter' and has_sg_feature(cpc):
            raise errors.invalid_value(
                method, uri, f'boot-device storage-adapter is not valid on '
                f'CPC {cpc.name}: it has the {SG_FEATURE} feature (boot '
                f'from storage-volume)')
        if device == 'storage-volume' and not has_sg_feature(cpc):
            raise errors.invalid_value(
                method, uri, f'boot-device storage-volume needs the '
                f'{SG_FEATURE} feature, which CPC {cpc.name} lacks (boot '
                f'from storage-adapter)')
    wwpn = body.get('boot-world-wide-port-name')
    if wwpn not in (None, '') and not _HEX16.match(str(wwpn)):
        raise errors.invalid_value(
            method, uri, f'Invalid value for boot-world-wide-port-name: '
            f'{wwpn!r}; expected 16 hexadecimal characters')
    lun = body.get('boot-logical-unit-number')
    if lun not in (None, '') and not _HEX1_16.match(str(lun)):
        raise errors.invalid_value(
            method, uri, f'Invalid value for boot-logical-unit-number: '
            f'{lun!r}; expected 1 to 16 hexadecimal characters (FCP LUN, '
            f'e.g. 0001000000000000 for LUN 1)')
    hba_uri = body.get('boot-storage-device')
    if hba_uri is not None:
        if hba_uri not in partition.properties.get('hba-uris', []):
            raise errors.invalid_value(
                method, uri, f'boot-storage-device {hba_uri!r} is not an '
                f'HBA of partition {partition.name}')
    sv_uri = body.get('boot-storage-volume')
    if sv_uri is not None:
        sg_uri = re.sub(r'/storage-volumes/[^/]+$', '', str(sv_uri))
        if (sg_uri == sv_uri
                or sg_uri not in partition.properties['storage-group-uris']):
            raise errors.invalid_value(
                method, uri, f'boot-storage-volume {sv_uri!r} is not a '
                f'storage volume of a storage group attached to partition '
                f'{partition.name}')
        lookup(hmc, method, sv_uri)


class PartitionsHandler(mock.PartitionsHandler):
    """Create Partition: unique names of 1-64 characters, valid boot-device."""

    @staticmethod
    def post(method: str, hmc: Any, uri: str, uri_parms: Any,
             body: dict[str, Any], logon_required: bool,
             wait_for_completion: bool) -> Any:
        cpc = lookup(hmc, method, '/api/cpcs/' + uri_parms[0])
        body = body or {}
        if 'name' in body:
            check_partition_name(method, uri, cpc, body['name'])
        device = body.get('boot-device')
        if device is not None and device not in BOOT_DEVICES:
            raise errors.invalid_value(
                method, uri, f'Invalid value for boot-device: {device!r}; '
                f'valid values: {", ".join(BOOT_DEVICES)}')
        return mock.PartitionsHandler.post(
            method, hmc, uri, uri_parms, body, logon_required,
            wait_for_completion)


class PartitionHandler(mock.PartitionHandler):
    """Update/Delete Partition with the HMC's checks."""

    @staticmethod
    def post(method: str, hmc: Any, uri: str, uri_parms: Any,
             body: dict[str, Any], logon_required: bool,
             wait_for_completion: bool) -> Any:
        partition = lookup(hmc, method, uri)
        body = body or {}
        for ro in ('status', 'object-id', 'object-uri', 'hba-uris',
                   'storage-group-uris', 'nic-uris'):
            if ro in body:
                raise errors.invalid_value(
                    method, uri, f'Property {ro!r} is read-only and cannot '
                    f'be updated')
        if 'name' in body:
            check_partition_name(method, uri, partition.manager.parent,
                                 body['name'], own_uri=partition.uri)
        check_boot_properties(method, uri, hmc, partition, body)
        return mock.GenericUpdatePropertiesHandler.post(
            method, hmc, uri, uri_parms, body, logon_required, True)

    @staticmethod
    def delete(method: str, hmc: Any, uri: str, uri_parms: Any,
               logon_required: bool) -> None:
        partition = lookup(hmc, method, uri)
        mock.check_partition_status(method, uri, partition,
                                    valid_statuses=['stopped'])
        # Deleting a partition detaches its storage groups (their virtual
        # storage resources of this partition go away with it).
        for sg_uri in list(partition.properties['storage-group-uris']):
            storage.detach(hmc, partition, lookup(hmc, method, sg_uri))
        mock.PartitionHandler.delete(method, hmc, uri, uri_parms,
                                     logon_required)


class PartitionStartHandler:
    """Start Partition: status check, boot settings, the emulated IPL."""

    @staticmethod
    def post(method: str, hmc: Any, uri: str, uri_parms: Any,
             body: Any, logon_required: bool,
             wait_for_completion: bool) -> Any:
        partition = lookup(hmc, method, '/api/partitions/' + uri_parms[0])
        cpc = partition.manager.parent
        if not cpc.dpm_enabled:
            raise mock.CpcNotInDpmError(method, uri, cpc)
        mock.check_valid_cpc_status(method, uri, cpc)
        mock.check_partition_status(method, uri, partition,
                                    valid_statuses=['stopped'])
        try:
            what = boot.load(hmc, partition)
        except errors.IplFailed as exc:
            exc.method, exc.uri = method, uri
            LOG.info('Start of partition %s failed: %s', partition.name,
                     exc.message)
            raise
        LOG.info('Partition %s started from %s', partition.name, what)
        partition.properties['status'] = 'active'
        return {}


class HbasHandler(mock.HbasHandler):
    """Create HBA: z13-class CPCs only, stopped partitions only."""

    @staticmethod
    def post(method: str, hmc: Any, uri: str, uri_parms: Any,
             body: dict[str, Any], logon_required: bool,
             wait_for_completion: bool) -> Any:
        partition = lookup(hmc, method, re.sub('/hbas$', '', uri))
        cpc = partition.manager.parent
        if has_sg_feature(cpc):
            # Not exposed with dpm-storage-management: unknown URI.
            raise mock.InvalidResourceError(method, uri)
        mock.check_partition_status(method, uri, partition,
                                    valid_statuses=['stopped'])
        body = copy.deepcopy(body or {})
        if 'name' in body:
            check_name(method, uri, body['name'], 'HBA')
            for hba in partition.hbas.list():
                if hba.name == body['name']:
                    raise errors.name_not_unique(
                        method, uri, f'An HBA named {body["name"]!r} '
                        f'already exists in partition {partition.name}')
        for ro in ('wwpn', 'element-id', 'element-uri'):
            if ro in body:
                raise errors.invalid_value(
                    method, uri, f'{ro!r} cannot be set: the HMC assigns it')
        body['wwpn'] = context_of(hmc).new_wwpn(
            cpc.properties.get('machine-serial-number', cpc.oid))
        return mock.HbasHandler.post(method, hmc, uri, uri_parms, body,
                                     logon_required, wait_for_completion)


class HbaHandler(mock.HbaHandler):
    """Delete HBA: stopped partitions only."""

    @staticmethod
    def delete(method: str, hmc: Any, uri: str, uri_parms: Any,
               logon_required: bool) -> None:
        hba = lookup(hmc, method, uri)
        partition = hba.manager.parent
        mock.check_partition_status(method, uri, partition,
                                    valid_statuses=['stopped'])
        if partition.properties.get('boot-storage-device') == hba.uri:
            partition.properties['boot-storage-device'] = None
        mock.HbaHandler.delete(method, hmc, uri, uri_parms, logon_required)
