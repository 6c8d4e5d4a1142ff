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
"""Fibre Channel connection info as Cinder hands it to the driver.

Pure functions, no HMC calls: which block device mapping is the root,
which targets a volume offers an initiator, and how WWPNs and LUNs are
written for the HMC.

Cinder's Storwize/SVC FC driver returns ``target_wwn`` (a list),
``target_lun`` (the SCSI id of the host mapping, an int) and
``initiator_target_map`` (keyed by the connector's WWPNs exactly as sent).
"""

import re
from collections.abc import Iterable, Mapping
from typing import Any

_HEX16_RE = re.compile(r'^[0-9a-f]{16}$')

FIBRE_CHANNEL = 'fibre_channel'


def normalize_wwpn(wwpn: str) -> str:
    """16 lowercase hex digits, without ``0x`` or colons.

    The HMC documents WWPNs as "16 hexadecimal characters" (HMC WS API,
    HBA element data model) and answers them in either case; Cinder and
    the SVC accept any case. One spelling everywhere makes comparisons and
    the ``initiator_target_map`` lookups exact.
    """
    text = wwpn.strip().lower()
    if text.startswith('0x'):
        text = text[2:]
    text = text.replace(':', '')
    if not _HEX16_RE.match(text):
        raise ValueError('%r is not a WWPN of 16 hexadecimal digits' % wwpn)
    return text


def fcp_lun(scsi_lun: int | str) -> str:
    """The 8-byte FCP LUN (16 lowercase hex digits) of a SCSI LUN number.

    DPM's boot properties (``boot-logical-unit-number``) and Fulfill FCP
    Storage Volume take the LUN as 16 hexadecimal characters, the FCP LUN
    of the volume as the zfcp driver writes it (``0x0001000000000000`` for
    SCSI id 1; os-brick's s390x connector builds the same string). This is
    the SAM single-level LUN format: peripheral device addressing for LUNs
    up to 255 (first byte 0x00), flat space addressing (first byte 0x40 |
    high bits) up to 16383; SVC SCSI ids stop at 2047.
    """
    lun = int(scsi_lun)
    if lun < 0 or lun > 0x3fff:
        raise ValueError('SCSI LUN %r is outside 0..16383' % scsi_lun)
    first = lun if lun < 256 else 0x4000 | lun
    return '%04x000000000000' % first


def scsi_lun(fcp: str) -> int:
    """The SCSI LUN number of an FCP LUN written by :func:`fcp_lun`."""
    value = int(fcp, 16)
    first = value >> 48
    if value & ((1 << 48) - 1):
        raise ValueError('FCP LUN %s uses more than one level' % fcp)
    return first & 0x3fff if first & 0x4000 else first


def bdm_volume_id(bdm: Mapping[str, Any]) -> str | None:
    info = bdm.get('connection_info') or {}
    return info.get('serial') or (info.get('data') or {}).get('volume_id')


def volume_bdms(block_device_info: Mapping[str, Any] | None
                ) -> list[Mapping[str, Any]]:
    return list((block_device_info or {}).get('block_device_mapping') or [])


def root_bdm(block_device_info: Mapping[str, Any] | None
             ) -> Mapping[str, Any] | None:
    """The volume mapping with ``boot_index`` 0, or None."""
    for bdm in volume_bdms(block_device_info):
        if bdm.get('boot_index') == 0:
            return bdm
    return None


def extra_bdms(block_device_info: Mapping[str, Any] | None
               ) -> list[Mapping[str, Any]]:
    """Volume mappings other than the root (ephemeral, swap, data)."""
    return [b for b in volume_bdms(block_device_info)
            if b.get('boot_index') != 0]


def encrypted(bdm: Mapping[str, Any], encryption: Any = None) -> str:
    """Why the mapping's volume is encrypted ('' if it is not).

    Cinder puts ``encrypted`` (the volume has an encryption key) into the
    connection info's ``data``; Nova passes the volume type's encryption
    (provider, cipher, ...) to ``attach_volume``.
    """
    info = bdm.get('connection_info') or {}
    if (info.get('data') or {}).get('encrypted'):
        return 'connection info'
    if encryption and (not isinstance(encryption, Mapping) or
                       encryption.get('provider')):
        provider = (encryption.get('provider')
                    if isinstance(encryption, Mapping) else None)
        return 'provider %s' % (provider or 'set')
    return ''


def fc_data(bdm: Mapping[str, Any]) -> dict[str, Any]:
    """The ``data`` of a fibre_channel connection info, else ValueError."""
    info = bdm.get('connection_info') or {}
    kind = info.get('driver_volume_type')
    if kind != FIBRE_CHANNEL:
        raise ValueError('Driver volume type %s is not supported: DPM '
                         'partitions reach volumes over FCP only (%s)'
                         % (kind, FIBRE_CHANNEL))
    data = info.get('data') or {}
    if data.get('target_lun') is None:
        raise ValueError('the connection info has no target_lun')
    return data


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return list(value)


def targets_for(data: Mapping[str, Any], initiator: str,
                ignore: Iterable[str]) -> list[str]:
    """Target WWPNs reachable from ``initiator``, ignore list removed.

    ``initiator_target_map`` first (its keys are the connector's WWPNs as
    sent, compared here normalised), else ``target_wwn``/``target_wwns``.
    Order is kept: Cinder lists the preferred node's ports first.
    """
    ignored = {normalize_wwpn(w) for w in ignore}
    mapped: list[str] = []
    itmap = data.get('initiator_target_map') or {}
    for key, targets in itmap.items():
        try:
            if normalize_wwpn(key) == initiator:
                mapped = _as_list(targets)
                break
        except ValueError:
            continue
    if not mapped:
        mapped = (_as_list(data.get('target_wwn')) or
                  _as_list(data.get('target_wwns')))
    out: list[str] = []
    for target in mapped:
        norm = normalize_wwpn(target)
        if norm not in ignored and norm not in out:
            out.append(norm)
    return out
