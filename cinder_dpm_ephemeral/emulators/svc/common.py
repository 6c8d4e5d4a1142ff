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
"""Shared pieces of the SVC command layer: errors, arguments, views.

Verb handlers (in ``system``, ``vdisk``, ``host`` and ``fcmap``) take an
:class:`Ctx` and parsed :class:`Args` and return a :class:`Table` (concise
view), a :class:`Detail` (one object's attribute/value view) or plain text;
``cli`` formats them the way the real CLI does (``-delim``, ``-nohdr``,
``-filtervalue``) and turns :class:`CLIError` into ``CMMVC`` messages on
stderr with exit status 1.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from cinder_dpm_ephemeral.emulators.lunstore import LunStore
    from cinder_dpm_ephemeral.emulators.svc.state import SVCState

# The CLI's own messages (code and text as the real CLI prints them).
E_NO_ID = 'CMMVC5701E No object ID was specified.'
E_MISSING = 'CMMVC5707E Required parameters are missing.'
E_UNSUPPORTED_PARAM = 'CMMVC5709E [-%s] is not a supported parameter.'
E_BAD_ARGUMENT = ('CMMVC5711E [%s] is not valid data.')
E_INVALID_FILTER = 'CMMVC5741E The filter value is not valid.'
E_NOT_FOUND = ('CMMVC5753E The specified object does not exist or is not a '
               'suitable candidate.')
E_NOT_FOUND_NAME = ('CMMVC5754E The specified object does not exist, or the '
                    'name supplied does not meet the naming rules.')
E_UNSTABLE = ('CMMVC5786E The action failed because the cluster is not in a '
              'stable state.')
E_VDISK_IN_USE = ('CMMVC5840E The virtual disk (VDisk) was not deleted '
                  'because it is mapped to a host or because it is part of a '
                  'FlashCopy or Remote Copy mapping, or is involved in an '
                  'image mode migrate.')
E_UNMAPPED = ('CMMVC5842E The action failed because an object that was '
              'specified in the command does not exist.')
E_NO_EXTENTS = ('CMMVC5860E The action failed because there were not enough '
                'extents in the storage pool.')
E_HOST_PORT_MAPPED = ('CMMVC5871E The action failed because one or more of '
                      'the configured port names is in a mapping.')
E_ALREADY_MAPPED_HOST = ('CMMVC5878E The VDisk-to-host mapping was not '
                         'created because this VDisk is already mapped to '
                         'this host.')
E_SCSI_IN_USE = ('CMMVC5879E The VDisk-to-host mapping was not created '
                 'because a VDisk is already mapped to this host with this '
                 'SCSI LUN.')
E_FC_STATE = ('CMMVC5903E The FlashCopy mapping was not changed because the '
              'mapping or consistency group is another state.')
E_FC_COPYING = ('CMMVC5907E The FlashCopy mapping or consistency group was '
                'not started because the mapping or consistency group is '
                'already in the copying state.')
E_FC_STOPPED = ('CMMVC5912E The FlashCopy mapping or consistency group was '
                'not stopped because the mapping or consistency group is '
                'already stopped.')
E_FC_SIZE = ('CMMVC5924E The FlashCopy mapping was not created because the '
             'source and target virtual disks (VDisks) are different sizes.')
E_EXISTS = 'CMMVC6035E The action failed as the object already exists.'
E_UNSUPPORTED = 'CMMVC6051E An unsupported action was selected.'
# what a real SVC answers mkfcmap when the source already has the maximum
# number of mappings (IBM PowerVC's Storwize driver checks for this code)
E_FC_TOO_MANY = ('CMMVC6425E The action failed because the maximum number '
                 'of objects has been reached.')
E_ALREADY_MAPPED = ('CMMVC6071E The VDisk-to-host mapping was not created '
                    'because the VDisk is already mapped to a host.')
E_FC_SAME = ('CMMVC6303E The create failed because the source and target '
             'VDisks are the same.')
E_FC_IDENTICAL = ('CMMVC6466E The command failed because an identical map '
                  'already exists.')
E_BAD_NAME = ('CMMVC6527E The name that you have entered is not valid. The '
              'name can contain letters, numbers, spaces, periods, dashes, '
              'and underscores. The name must begin with a letter or an '
              'underscore. The name must not begin or end with a space.')

_UNITS = {'b': 1, 'kb': 1 << 10, 'mb': 1 << 20, 'gb': 1 << 30,
          'tb': 1 << 40, 'pb': 1 << 50}


class CLIError(Exception):
    """A command failed; ``message`` is the CLI's stderr line."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclasses.dataclass
class Args:
    verb: str
    opts: dict[str, str | bool]
    obj: str | None

    def get(self, name: str) -> str | None:
        v = self.opts.get(name)
        return v if isinstance(v, str) else None

    def flag(self, name: str) -> bool:
        return name in self.opts

    def need(self, name: str) -> str:
        v = self.get(name)
        if v is None:
            raise CLIError(E_MISSING)
        return v

    def need_obj(self) -> str:
        if not self.obj:
            raise CLIError(E_NO_ID)
        return self.obj

    @property
    def bytes(self) -> bool:
        return 'bytes' in self.opts


@dataclasses.dataclass
class Table:
    """A concise view: a header row and rows, filterable."""
    header: list[str]
    rows: list[list[str]]


@dataclasses.dataclass
class Detail:
    """A detailed view: sections of attribute/value pairs.

    Sections are blank-line separated, like the copies of
    ``lsvdisk <vdisk>``.
    """
    sections: list[list[tuple[str, str]]]


Result = Table | Detail | str


@dataclasses.dataclass
class Ctx:
    """What verb handlers work on."""
    state: SVCState
    luns: LunStore
    clock: Callable[[], float] = time.time
    time_scale: float = 1.0
    fabric_logins: bool = True
    fcmap_source_limit: int = 256

    @property
    def data(self) -> dict[str, Any]:
        return self.state.data


def to_bytes(size: str, unit: str | None) -> int:
    """``-size`` and ``-unit`` (default MB, like mkvdisk) to bytes."""
    try:
        value = float(size)
    except ValueError:
        raise CLIError(E_BAD_ARGUMENT % size)
    factor = _UNITS.get((unit or 'mb').lower())
    if factor is None or value < 0:
        raise CLIError(E_BAD_ARGUMENT % (unit or size))
    return int(value * factor)


def fmt_size(n: int | float, as_bytes: bool) -> str:
    """Capacity as the CLI shows it.

    Bytes with ``-bytes``, else 2 decimals in the largest unit of MB..PB
    that keeps the value >= 1.
    """
    n = int(n)
    if as_bytes:
        return str(n)
    unit, div = 'MB', 1 << 20
    for u, d in (('GB', 1 << 30), ('TB', 1 << 40), ('PB', 1 << 50)):
        if n >= d:
            unit, div = u, d
    return '%.2f%s' % (n / div, unit)


def yes_no(v: bool) -> str:
    return 'yes' if v else 'no'


def iogrps(ctx: Ctx) -> list[dict[str, Any]]:
    """io_grp0..3 and the recovery I/O group, as on a real cluster."""
    nodes = ctx.data['nodes']
    out = []
    for i in range(4):
        out.append({'id': i, 'name': 'io_grp%d' % i,
                    'node_count': sum(1 for n in nodes if n['iogrp'] == i)})
    out.append({'id': 4, 'name': 'recovery_io_grp', 'node_count': 0})
    return out


def find_iogrp(ctx: Ctx, ref: str) -> dict[str, Any] | None:
    for g in iogrps(ctx):
        if ref == str(g['id']) or ref == g['name']:
            return g
    return None


def need(ctx: Ctx, kind: str, ref: str, error: str) -> dict[str, Any]:
    obj = ctx.state.find(kind, ref)
    if obj is None:
        raise CLIError(error)
    return obj
