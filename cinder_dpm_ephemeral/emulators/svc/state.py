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
"""Objects of the emulated SVC and their JSON persistence.

Everything the array holds lives in one plain dictionary (``SVCState.data``)
so it can be written to ``<state_dir>/svc-state.json`` atomically after
every change and read back at start: the emulated system survives restarts.

Object ids are small integers allocated like a real SVC allocates them
(lowest unused id of the object type); names are unique per object type.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

from cinder_dpm_ephemeral.emulators import files

STATE_FILE = 'svc-state.json'
SCHEMA = 1

# 1 GiB extents: thick vdisks consume whole extents of their pool.
EXTENT_SIZE = 1024 * 1024 * 1024
# Real code level reported by lssystem (see the README of cli.py).
DEFAULT_CODE_LEVEL = '8.5.0.6 (build 157.12.2209281358000)'
PORTS_PER_NODE = 2
NODE_COUNT = 2

_NAME_RE = re.compile(r'^[A-Za-z_][A-Za-z0-9 ._-]{0,62}$')

Obj = dict[str, Any]


def valid_name(name: str) -> bool:
    """Whether ``name`` follows SVC naming rules.

    Letters, digits, space . - _; start with a letter or an underscore; at
    most 63 characters; no trailing space.
    """
    return bool(_NAME_RE.match(name)) and not name.endswith(' ')


def _hex(seed: str, n: int) -> str:
    return hashlib.sha256(seed.encode()).hexdigest()[:n].upper()


def node_wwnn(system_name: str, node: int) -> str:
    return '5005076810%s%X0' % (_hex(system_name, 4), node)


def port_wwpn(system_name: str, node: int, port: int, npiv: bool) -> str:
    """Physical port ``p`` ends in ``p``; its NPIV host port in ``p + 8``."""
    return '5005076810%s%X%X' % (_hex(system_name, 4), node,
                                 port + (8 if npiv else 0))


def build_system(system_name: str, pools: dict[str, int],
                 code_level: str) -> dict[str, Any]:
    """A new system: 2 nodes in io_grp0, 2 FC ports each, the given pools."""
    nodes = []
    for n in range(1, NODE_COUNT + 1):
        nodes.append({
            'id': n,
            'name': 'node%d' % n,
            'WWNN': node_wwnn(system_name, n),
            'iogrp': 0,
            'panel_name': '7800%s-%d' % (_hex(system_name + 'p', 2), n),
            'ports': [
                {'port_id': p,
                 'WWPN': port_wwpn(system_name, n, p, False),
                 'npiv_WWPN': port_wwpn(system_name, n, p, True)}
                for p in range(1, PORTS_PER_NODE + 1)],
        })
    pool_objs = {}
    for i, (name, capacity) in enumerate(sorted(pools.items())):
        pool_objs[str(i)] = {'id': i, 'name': name, 'capacity': int(capacity)}
    return {
        'schema': SCHEMA,
        'system': {
            'name': system_name,
            'id': '0000020' + _hex(system_name + 'id', 9),
            'code_level': code_level,
            'serial': _hex(system_name + 'uid', 7),
        },
        'nodes': nodes,
        'pools': pool_objs,
        'vdisks': {},
        'hosts': {},
        'hostmaps': [],
        'fcmaps': {},
        'fcgrps': {},
        'next_uid': 1,
    }


class SVCState:
    """The objects of one emulated system, persisted as JSON."""

    def __init__(self, state_dir: str | os.PathLike[str], system_name: str,
                 pools: dict[str, int], code_level: str) -> None:
        self.path = Path(state_dir) / STATE_FILE
        self._saved = ''
        if self.path.exists():
            with open(self.path) as f:
                self.data: dict[str, Any] = json.load(f)
            self._saved = self._dump()
            # pools given at construction that the saved system lacks
            known = {p['name'] for p in self.data['pools'].values()}
            for name, capacity in sorted(pools.items()):
                if name not in known:
                    pid = self.free_id('pools')
                    self.data['pools'][str(pid)] = {
                        'id': pid, 'name': name, 'capacity': int(capacity)}
        else:
            self.data = build_system(system_name, pools, code_level)
        self.save()

    # -- persistence -------------------------------------------------------
    def _dump(self) -> str:
        return json.dumps(self.data, sort_keys=True, indent=1)

    def save(self) -> None:
        """Write the state if it changed.

        Atomic (temp file + rename), no fsync: it protects against process
        restarts, not power loss.
        """
        text = self._dump()
        if text == self._saved:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        files.write_text_atomic(self.path, text)
        self._saved = text

    def snapshot(self) -> dict[str, Any]:
        return copy.deepcopy(self.data)

    # -- ids and names -----------------------------------------------------
    def free_id(self, kind: str) -> int:
        used = {int(k) for k in self.data[kind]}
        i = 0
        while i in used:
            i += 1
        return i

    def find(self, kind: str, ref: str) -> Obj | None:
        """Object of ``kind`` by id (all digits) or by name."""
        objs = self.data[kind]
        if ref.isdigit():
            return objs.get(str(int(ref)))
        for obj in objs.values():
            if obj['name'] == ref:
                return obj
        return None

    def by_name(self, kind: str, name: str) -> Obj | None:
        for obj in self.data[kind].values():
            if obj['name'] == name:
                return obj
        return None

    def new_uid(self) -> str:
        n = self.data['next_uid']
        self.data['next_uid'] = n + 1
        return '600507681%s%016X' % (self.data['system']['serial'], n)

    # -- pools and capacity ------------------------------------------------
    @staticmethod
    def vdisk_real(vdisk: Obj) -> int:
        """Pool capacity a vdisk consumes."""
        if vdisk.get('thin'):
            return int(vdisk['real_capacity'])
        extents = -(-int(vdisk['capacity']) // EXTENT_SIZE)
        return extents * EXTENT_SIZE

    def pool_usage(self, pool: Obj) -> dict[str, int]:
        vds = [v for v in self.data['vdisks'].values()
               if v['pool'] == pool['id']]
        used = sum(self.vdisk_real(v) for v in vds)
        virtual = sum(int(v['capacity']) for v in vds)
        return {'vdisk_count': len(vds), 'used': used, 'virtual': virtual,
                'free': max(0, int(pool['capacity']) - used)}

    # -- relations ---------------------------------------------------------
    def hostmaps_of_vdisk(self, vid: int) -> list[Obj]:
        return [m for m in self.data['hostmaps'] if m['vdisk'] == vid]

    def hostmaps_of_host(self, hid: int) -> list[Obj]:
        return [m for m in self.data['hostmaps'] if m['host'] == hid]

    def fcmaps_of_vdisk(self, vid: int) -> list[Obj]:
        return [m for _, m in sorted(self.data['fcmaps'].items(),
                                     key=lambda kv: int(kv[0]))
                if vid in (m['source'], m['target'])]

    def host_of_wwpn(self, wwpn: str) -> Obj | None:
        wwpn = wwpn.upper()
        for host in self.data['hosts'].values():
            if wwpn in host['wwpns']:
                return host
        return None

    def node(self, nid: int) -> Obj:
        for n in self.data['nodes']:
            if n['id'] == nid:
                return n
        raise KeyError(nid)


def lun_seen_by(state_dir: str | os.PathLike[str], wwpns: list[str],
                scsi_id: int) -> str | None:
    """The vdisk UID a host with ``wwpns`` finds at SCSI LUN ``scsi_id``.

    What a Fibre Channel scan on the volume host finds (os-brick's FC
    connector looks for the LUN id ``initialize_connection`` returned
    behind the array's target ports): the vdisk mapped at that SCSI id to
    the host object holding one of the host's ports, read from the state
    the emulator saved before it answered the mapping command. None when
    nothing is mapped there: the scan finds no device. The emulated LUN's
    file has the vdisk's UID for its name (:mod:`..lunstore`).
    """
    try:
        with open(Path(state_dir) / STATE_FILE) as f:
            data = json.load(f)
    except FileNotFoundError:
        return None
    ports = {w.upper() for w in wwpns}
    hosts = {h['id'] for h in data['hosts'].values()
             if ports & {w.upper() for w in h['wwpns']}}
    for m in data['hostmaps']:
        if m['host'] in hosts and m['scsi'] == scsi_id:
            return data['vdisks'][str(m['vdisk'])]['uid']
    return None
