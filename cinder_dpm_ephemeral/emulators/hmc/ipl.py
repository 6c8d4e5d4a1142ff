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
"""The emulated IPL: resolve a partition's boot device to an SVC LUN.

When the HMC emulator starts a partition, the load of the operating system
is emulated by following the FCP path a real machine follows:

1. the initiator WWPN: the boot HBA's ``wwpn`` (``boot-device:
   storage-adapter``, z13) or the WWPNs of the partition's virtual storage
   resources behind the boot volume's paths (``boot-device:
   storage-volume``, z14+);
2. the target WWPN must be a host-I/O port of the SVC emulator (its NPIV
   ports, ``lstargetportfc`` ``host_io_permitted yes``);
3. the SVC host owning the initiator WWPN (``mkhost -fcwwpn`` /
   ``addhostport``), its mapping with SCSI id == the boot LUN number
   (``mkvdiskhostmap -scsi N``), the mapped vdisk, and that vdisk's bytes in
   the SVC emulator's LUN store;
4. the first 512-byte block must hold a boot record: the 0x55AA signature at
   offset 510 (DOS MBR, and the protective MBR of GPT disks) or the ``zIPL``
   magic at offset 0 (the SCSI boot record zipl writes on s390x).

Any miss raises :class:`errors.IplFailed` naming what was wrong.

LUN numbers: ``boot-logical-unit-number`` and a storage volume path's
``logical-unit-number`` are FCP LUNs, 16 hexadecimal digits (8 bytes, SAM
single-level LUN structure): SCSI LUN 1 is ``0001000000000000`` (os-brick's
s390x connector writes ``0x%04x000000000000``). Shorter strings are padded
on the left, as the hexadecimal number they are, so ``"1"`` designates FCP
LUN ``0000000000000001``: a multi-level LUN no SVC presents, and the load
fails, as it would on the machine.

The SVC side is read, never written: ``svc-state.json`` of the SVC
emulator's state directory (the SVC emulator writes it atomically after
every command) and the LUN store under it.
"""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path
from typing import Any

from cinder_dpm_ephemeral.emulators import lunstore
from cinder_dpm_ephemeral.emulators.hmc.errors import IplFailed

LOG = logging.getLogger(__name__)

SVC_STATE_FILE = 'svc-state.json'
BOOT_BLOCK = 512
_HEX16 = re.compile(r'^[0-9A-Fa-f]{16}$')
_HEX = re.compile(r'^[0-9A-Fa-f]{1,16}$')


def fcp_lun_to_int(fcp_lun: str) -> int | None:
    """SCSI LUN number of a single-level FCP LUN, or None if it is not one.

    Peripheral device addressing (first byte 0x00): LUN = second byte;
    flat space addressing (first byte 0b01xxxxxx): LUN = the 14 low bits of
    the first two bytes (SAM-4 4.6.7 and 4.6.9). The other six bytes must
    be zero.
    """
    if not _HEX.match(fcp_lun or ''):
        return None
    raw = int(fcp_lun, 16).to_bytes(8, 'big')
    if any(raw[2:]):
        return None
    method = raw[0] >> 6
    if method == 0 and raw[0] == 0:
        return raw[1]
    if method == 1:
        return ((raw[0] & 0x3F) << 8) | raw[1]
    return None


def int_to_fcp_lun(lun: int) -> str:
    """FCP LUN string of SCSI LUN ``lun`` (peripheral below 256, else flat)."""
    if not 0 <= lun < 1 << 14:
        raise ValueError(f'LUN {lun} out of range')
    first = lun if lun < 256 else 0x4000 | lun
    return f'{first:04x}000000000000'


def has_boot_record(block: bytes) -> bool:
    """Whether a disk's first block holds a boot record (see module doc)."""
    if len(block) >= 512 and block[510:512] == b'\x55\xaa':
        return True
    return block[:4] == b'zIPL'


class SVCFabric:
    """The SVC emulator's FC side, read from its state directory."""

    def __init__(self, state_dir: str | os.PathLike[str]) -> None:
        self.state_dir = Path(state_dir)

    def _state(self) -> dict[str, Any]:
        path = self.state_dir / SVC_STATE_FILE
        try:
            with open(path) as f:
                return json.load(f)
        except FileNotFoundError:
            raise IplFailed('POST', '', f'IPL failed: no SVC system: {path} '
                            f'does not exist (start the SVC emulator with '
                            f'that --state-dir first)', 'target') from None

    def read_block(self, lun_id: str, length: int = BOOT_BLOCK) -> bytes:
        """First ``length`` bytes of LUN ``lun_id``, without side effects.

        ``LunStore.read`` follows the clone chain and copies nothing
        (``open_path`` would give a clone its own copy first).
        """
        return lunstore.LunStore(self.state_dir).read(lun_id, 0, length)

    def resolve(self, initiator: str, target: str, fcp_lun: str,
                boot: bool = True) -> str:
        """Check one FCP path; return a description of the boot LUN.

        :param boot: also require a boot record (False: the path and the
            LUN only, as Validate LUN Path does).
        :raises IplFailed: naming the first thing that is wrong; its
            ``stage`` is ``target`` when the target port is not reachable.
        """
        state = self._state()
        system = state['system']['name']
        initiator_u, target_u = initiator.upper(), target.upper()
        if not _HEX16.match(target or ''):
            raise _fail(f'target WWPN {target!r} is not 16 hexadecimal '
                        f'digits', 'target')
        host_io = {p['npiv_WWPN'] for n in state['nodes'] for p in n['ports']}
        physical = {p['WWPN'] for n in state['nodes'] for p in n['ports']}
        if target_u in physical:
            raise _fail(f'target WWPN {target} is a physical port of SVC '
                        f'system {system} that does not permit host I/O; '
                        f'use one of its host-I/O (NPIV) ports '
                        f'{sorted(host_io)}', 'target')
        if target_u not in host_io:
            raise _fail(f'no storage controller port with WWPN {target} on '
                        f'the SAN (SVC system {system} has host-I/O ports '
                        f'{sorted(host_io)})', 'target')
        lun = fcp_lun_to_int(fcp_lun)
        if lun is None:
            raise _fail(f'logical unit {fcp_lun!r} not found behind target '
                        f'{target}: SVC system {system} presents single-'
                        f'level FCP LUNs, 16 hexadecimal digits with the '
                        f'LUN in the first two bytes (SCSI LUN 1 is '
                        f'0001000000000000)')
        host = next((h for h in state['hosts'].values()
                     if initiator_u in h['wwpns']), None)
        if host is None:
            raise _fail(f'initiator WWPN {initiator} is not a port of any '
                        f'host on SVC system {system} (mkhost -fcwwpn / '
                        f'addhostport): the target presents no LUN to it')
        maps = [m for m in state['hostmaps'] if m['host'] == host['id']]
        mapping = next((m for m in maps if m['scsi'] == lun), None)
        if mapping is None:
            have = sorted(m['scsi'] for m in maps)
            raise _fail(f'no LUN {lun} (FCP LUN {fcp_lun}) for initiator '
                        f'{initiator}: SVC host {host["name"]} has mappings '
                        f'with SCSI ids {have}')
        vdisk = state['vdisks'].get(str(mapping['vdisk']))
        if vdisk is None:
            raise _fail(f'LUN {lun} of SVC host {host["name"]} maps vdisk '
                        f'id {mapping["vdisk"]}, which does not exist')
        try:
            block = self.read_block(vdisk['uid'])
        except lunstore.LunNotFound:
            raise _fail(f'vdisk {vdisk["name"]} (LUN {lun} of host '
                        f'{host["name"]}) has no data in the LUN store of '
                        f'{self.state_dir}') from None
        except OSError as exc:
            raise _fail(f'cannot read vdisk {vdisk["name"]} from the LUN '
                        f'store of {self.state_dir}: {exc} (the HMC '
                        f'emulator needs read access to the SVC emulator\'s '
                        f'LUN files)') from None
        if boot and not has_boot_record(block):
            raise _fail(f'no boot record on vdisk {vdisk["name"]} (LUN '
                        f'{lun} of SVC host {host["name"]}): its first '
                        f'block has neither the 0x55AA signature at offset '
                        f'510 nor a zIPL boot record; is the volume empty?')
        LOG.info('Emulated IPL: initiator %s target %s LUN %d -> SVC host %s '
                 'vdisk %s', initiator, target, lun, host['name'],
                 vdisk['name'])
        return f'vdisk {vdisk["name"]} of SVC system {system}'


def _fail(message: str, stage: str = 'lun') -> IplFailed:
    return IplFailed('POST', '', 'IPL failed: ' + message, stage)
