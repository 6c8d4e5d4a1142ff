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
"""Boot settings of a partition at start, down to FCP paths.

:func:`load` checks the boot settings a Start Partition needs and lists
the FCP paths (initiator WWPN, target WWPN, FCP LUN) the firmware would try,
then asks the fabric (the SVC emulator, :class:`ipl.SVCFabric`) to resolve
them. Without a fabric only the settings are checked.
"""

from __future__ import annotations

from typing import Any

from cinder_dpm_ephemeral.emulators.hmc.context import context_of
from cinder_dpm_ephemeral.emulators.hmc.errors import IplFailed

Path = tuple[str, str, str]  # initiator WWPN, target WWPN, FCP LUN


def _fail(message: str) -> IplFailed:
    return IplFailed('POST', '', 'IPL failed: ' + message)


def hba_paths(hmc: Any, partition: Any) -> list[Path]:
    props = partition.properties
    hba_uri = props.get('boot-storage-device')
    if not hba_uri:
        raise _fail(f'partition {partition.name} has boot-device '
                    f'storage-adapter but no boot-storage-device (the URI '
                    f'of one of its HBAs)')
    try:
        hba = hmc.lookup_by_uri(hba_uri)
    except KeyError:
        raise _fail(f'boot-storage-device {hba_uri} of partition '
                    f'{partition.name} does not exist') from None
    target = props.get('boot-world-wide-port-name') or ''
    lun = props.get('boot-logical-unit-number') or ''
    if not target:
        raise _fail(f'partition {partition.name} has no '
                    f'boot-world-wide-port-name (the target port WWPN)')
    if not lun:
        raise _fail(f'partition {partition.name} has no '
                    f'boot-logical-unit-number')
    return [(hba.properties['wwpn'], target, lun)]


def volume_paths(hmc: Any, partition: Any) -> list[Path]:
    sv_uri = partition.properties.get('boot-storage-volume')
    if not sv_uri:
        raise _fail(f'partition {partition.name} has boot-device '
                    f'storage-volume but no boot-storage-volume')
    try:
        sv = hmc.lookup_by_uri(sv_uri)
    except KeyError:
        raise _fail(f'boot-storage-volume {sv_uri} of partition '
                    f'{partition.name} does not exist') from None
    sg = sv.manager.parent
    if sg.uri not in partition.properties['storage-group-uris']:
        raise _fail(f'storage group {sg.name} of boot volume {sv.uri} is '
                    f'not attached to partition {partition.name}')
    if sv.properties.get('fulfillment-state') != 'complete':
        raise _fail(f'boot volume {sv.properties.get("name") or sv.uri} of '
                    f'storage group {sg.name} is not fulfilled (state '
                    f'{sv.properties.get("fulfillment-state")!r}): indicate '
                    f'its FCP target and LUN first (fulfill-fcp-storage-'
                    f'volume)')
    vsrs = {v.properties['device-number']: v
            for v in sg.virtual_storage_resources.list()
            if v.properties.get('partition-uri') == partition.uri}
    paths = []
    for path in sv.properties.get('paths') or []:
        if path.get('partition-uri') != partition.uri:
            continue
        vsr = vsrs.get(path.get('device-number'))
        if vsr is None:
            continue
        paths.append((vsr.properties['world-wide-port-name'],
                      path['target-world-wide-port-name'],
                      path['logical-unit-number']))
    if not paths:
        raise _fail(f'boot volume {sv.uri} has no path from partition '
                    f'{partition.name} (no virtual storage resource of '
                    f'storage group {sg.name} for it)')
    return paths


def load(hmc: Any, partition: Any) -> str:
    """Emulate the load of ``partition``; return what it booted from.

    :raises IplFailed: the boot settings are incomplete or no path leads
        to a bootable LUN.
    """
    device = partition.properties.get('boot-device') or 'none'
    if device == 'storage-adapter':
        paths = hba_paths(hmc, partition)
    elif device == 'storage-volume':
        paths = volume_paths(hmc, partition)
    elif device == 'none':
        raise _fail(f'partition {partition.name} has no boot device '
                    f'(boot-device none)')
    else:
        raise _fail(f'boot-device {device!r} of partition {partition.name} '
                    f'is not emulated (only storage-adapter and '
                    f'storage-volume are)')
    fabric = context_of(hmc).fabric
    if fabric is None:
        return f'{device} (settings checked, no SAN attached)'
    problems = []
    for initiator, target, lun in paths:
        try:
            return fabric.resolve(initiator, target, lun)
        except IplFailed as exc:
            problems.append(exc.message.removeprefix('IPL failed: '))
    raise _fail('; '.join(problems) if len(problems) > 1 else problems[0])
