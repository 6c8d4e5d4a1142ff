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
"""Host verbs: hosts, their FC ports, the fabric, vdisk-to-host mappings."""

from __future__ import annotations

import re

from cinder_dpm_ephemeral.emulators.svc.common import (
    E_ALREADY_MAPPED, E_ALREADY_MAPPED_HOST, E_BAD_ARGUMENT, E_BAD_NAME,
    E_EXISTS, E_HOST_PORT_MAPPED, E_MISSING, E_NOT_FOUND, E_NOT_FOUND_NAME,
    E_SCSI_IN_USE, E_UNMAPPED, E_UNSUPPORTED, Args, CLIError, Ctx, Detail,
    Result, Table, need)
from cinder_dpm_ephemeral.emulators.svc.state import Obj, valid_name

_WWPN_RE = re.compile(r'^[0-9A-Fa-f]{16}$')
MAX_SCSI_ID = 2047


def _wwpns(args: Args) -> list[str]:
    """WWPNs of ``-fcwwpn`` (colon-separated list) or ``-hbawwpn``."""
    raw = args.get('fcwwpn') or args.get('hbawwpn')
    if raw is None:
        return []
    out = []
    for w in raw.split(':'):
        if not _WWPN_RE.match(w):
            raise CLIError(E_BAD_ARGUMENT % w)
        out.append(w.upper())
    return out


def _check_ports_free(ctx: Ctx, wwpns: list[str]) -> None:
    if len(set(wwpns)) != len(wwpns):
        raise CLIError(E_EXISTS)
    for w in wwpns:
        if ctx.state.host_of_wwpn(w) is not None:
            raise CLIError(E_EXISTS)


def mkhost(ctx: Ctx, args: Args) -> Result:
    if args.get('iscsiname') is not None or args.get('nqn') is not None:
        raise CLIError(E_UNSUPPORTED)          # only FC hosts are modelled
    wwpns = _wwpns(args)
    if not wwpns:
        raise CLIError(E_MISSING)
    name = args.get('name')
    if name is not None:
        if not valid_name(name):
            raise CLIError(E_BAD_NAME)
        if ctx.state.by_name('hosts', name) is not None:
            raise CLIError(E_EXISTS)
    _check_ports_free(ctx, wwpns)
    hid = ctx.state.free_id('hosts')
    ctx.data['hosts'][str(hid)] = {
        'id': hid, 'name': name or 'host%d' % hid, 'wwpns': wwpns,
        'type': args.get('type') or 'generic',
        'site': args.get('site') or '',
        'portset': args.get('portset') or 'portset64',
    }
    return 'Host, id [%d], successfully created' % hid


def addhostport(ctx: Ctx, args: Args) -> Result:
    host = need(ctx, 'hosts', args.need_obj(), E_NOT_FOUND)
    wwpns = _wwpns(args)
    if not wwpns:
        raise CLIError(E_MISSING)
    _check_ports_free(ctx, wwpns)
    host['wwpns'].extend(wwpns)
    return ''


def rmhostport(ctx: Ctx, args: Args) -> Result:
    host = need(ctx, 'hosts', args.need_obj(), E_NOT_FOUND)
    wwpns = _wwpns(args)
    if not wwpns:
        raise CLIError(E_MISSING)
    for w in wwpns:
        if w not in host['wwpns']:
            raise CLIError(E_NOT_FOUND)
    if (len(wwpns) == len(host['wwpns'])
            and ctx.state.hostmaps_of_host(host['id'])
            and not args.flag('force')):
        raise CLIError(E_HOST_PORT_MAPPED)
    host['wwpns'] = [w for w in host['wwpns'] if w not in wwpns]
    return ''


def chhost(ctx: Ctx, args: Args) -> Result:
    host = need(ctx, 'hosts', args.need_obj(), E_NOT_FOUND)
    changed = False
    name = args.get('name')
    if name is not None:
        if not valid_name(name):
            raise CLIError(E_BAD_NAME)
        other = ctx.state.by_name('hosts', name)
        if other is not None and other is not host:
            raise CLIError(E_EXISTS)
        host['name'] = name
        changed = True
    if args.get('site') is not None:
        host['site'] = args.get('site')
        changed = True
    if args.flag('nosite'):
        host['site'] = ''
        changed = True
    for key in ('type', 'chapsecret'):
        if args.get(key) is not None:
            host[key] = args.get(key)
            changed = True
    if not changed:
        raise CLIError(E_MISSING)
    return ''


def rmhost(ctx: Ctx, args: Args) -> Result:
    host = need(ctx, 'hosts', args.need_obj(), E_NOT_FOUND)
    if ctx.state.hostmaps_of_host(host['id']):
        if not args.flag('force'):
            raise CLIError(E_HOST_PORT_MAPPED)
        ctx.data['hostmaps'] = [m for m in ctx.data['hostmaps']
                                if m['host'] != host['id']]
    del ctx.data['hosts'][str(host['id'])]
    return ''


def addhostiogrp(ctx: Ctx, args: Args) -> Result:
    need(ctx, 'hosts', args.need_obj(), E_NOT_FOUND)
    return ''


def _logged_in(ctx: Ctx) -> int:
    """Node logins per host port: every node when the fabric is zoned."""
    return len(ctx.data['nodes']) if ctx.fabric_logins else 0


def _host_status(ctx: Ctx, host: Obj) -> str:
    return 'online' if host['wwpns'] and _logged_in(ctx) else 'offline'


_HOST_HEADER = ['id', 'name', 'port_count', 'iogrp_count', 'status',
                'site_id', 'site_name', 'host_cluster_id',
                'host_cluster_name', 'protocol', 'owner_id', 'owner_name',
                'portset_id', 'portset_name']


def lshost(ctx: Ctx, args: Args) -> Result:
    if args.obj:
        host = ctx.state.find('hosts', args.obj)
        if host is None:
            raise CLIError(E_NOT_FOUND_NAME)
        n = _logged_in(ctx)
        rows = [('id', str(host['id'])), ('name', host['name']),
                ('port_count', str(len(host['wwpns']))),
                ('type', host['type']), ('mask', '1' * 64),
                ('iogrp_count', '4'), ('status', _host_status(ctx, host)),
                ('site_id', ''), ('site_name', host['site']),
                ('host_cluster_id', ''), ('host_cluster_name', ''),
                ('protocol', 'scsi'), ('status_policy', 'redundant'),
                ('status_site', 'all'), ('owner_id', ''),
                ('owner_name', ''), ('portset_id', '64'),
                ('portset_name', host['portset'])]
        for w in host['wwpns']:
            rows += [('WWPN', w), ('node_logged_in_count', str(n)),
                     ('state', 'active' if n else 'offline')]
        return Detail([rows])
    rows = []
    for h in sorted(ctx.data['hosts'].values(), key=lambda h: h['id']):
        rows.append([str(h['id']), h['name'], str(len(h['wwpns'])), '4',
                     _host_status(ctx, h), '', h['site'], '', '', 'scsi',
                     '', '', '64', h['portset']])
    return Table(list(_HOST_HEADER), rows)


def lsfabric(ctx: Ctx, args: Args) -> Result:
    """Logins of host ports to the nodes' host-I/O (NPIV) ports."""
    header = ['remote_wwpn', 'remote_nportid', 'id', 'node_name',
              'local_wwpn', 'local_port', 'local_nportid', 'state', 'name',
              'cluster_name', 'type']
    hosts = sorted(ctx.data['hosts'].values(), key=lambda h: h['id'])
    if args.get('host') is not None:
        host = ctx.state.find('hosts', args.get('host') or '')
        if host is None:
            raise CLIError(E_NOT_FOUND_NAME)
        hosts = [host]
    wwpn_filter = (args.get('wwpn') or '').upper()
    rows = []
    if not ctx.fabric_logins:
        return Table(header, rows)
    for h in hosts:
        for i, w in enumerate(h['wwpns']):
            if wwpn_filter and w != wwpn_filter:
                continue
            for n in ctx.data['nodes']:
                for p in n['ports']:
                    rows.append([w, '0A%02X%02X' % (h['id'] % 256, i),
                                 str(n['id']), n['name'], p['npiv_WWPN'],
                                 str(p['port_id']),
                                 '01%02X%02X' % (n['id'], p['port_id'] + 8),
                                 'active', h['name'], '', 'host'])
    return Table(header, rows)


def mkvdiskhostmap(ctx: Ctx, args: Args) -> Result:
    host_ref = args.need('host')
    vdisk = need(ctx, 'vdisks', args.need_obj(), E_NOT_FOUND)
    host = need(ctx, 'hosts', host_ref, E_NOT_FOUND_NAME)
    maps = ctx.state.hostmaps_of_vdisk(vdisk['id'])
    if any(m['host'] == host['id'] for m in maps):
        raise CLIError(E_ALREADY_MAPPED_HOST)
    if maps and not args.flag('force'):
        raise CLIError(E_ALREADY_MAPPED)
    used = {m['scsi'] for m in ctx.state.hostmaps_of_host(host['id'])}
    scsi_arg = args.get('scsi')
    if scsi_arg is not None:
        if not scsi_arg.isdigit() or int(scsi_arg) > MAX_SCSI_ID:
            raise CLIError(E_BAD_ARGUMENT % scsi_arg)
        scsi = int(scsi_arg)
        if scsi in used:
            raise CLIError(E_SCSI_IN_USE)
    else:
        scsi = 0
        while scsi in used:
            scsi += 1
    ctx.data['hostmaps'].append({'host': host['id'], 'vdisk': vdisk['id'],
                                 'scsi': scsi})
    return 'Virtual Disk to Host map, id [%d], successfully created' % scsi


def rmvdiskhostmap(ctx: Ctx, args: Args) -> Result:
    host_ref = args.need('host')
    vdisk = need(ctx, 'vdisks', args.need_obj(), E_NOT_FOUND)
    host = need(ctx, 'hosts', host_ref, E_NOT_FOUND)
    before = len(ctx.data['hostmaps'])
    ctx.data['hostmaps'] = [
        m for m in ctx.data['hostmaps']
        if not (m['host'] == host['id'] and m['vdisk'] == vdisk['id'])]
    if len(ctx.data['hostmaps']) == before:
        raise CLIError(E_UNMAPPED)
    return ''


_MAP_TAIL = ['IO_group_id', 'IO_group_name', 'mapping_type',
             'host_cluster_id', 'host_cluster_name', 'protocol']


def lsvdiskhostmap(ctx: Ctx, args: Args) -> Result:
    vdisk = need(ctx, 'vdisks', args.need_obj(), E_NOT_FOUND)
    header = ['id', 'name', 'SCSI_id', 'host_id', 'host_name',
              'vdisk_UID'] + _MAP_TAIL
    rows = []
    for m in sorted(ctx.state.hostmaps_of_vdisk(vdisk['id']),
                    key=lambda m: m['host']):
        host = ctx.data['hosts'][str(m['host'])]
        rows.append([str(vdisk['id']), vdisk['name'], str(m['scsi']),
                     str(host['id']), host['name'], vdisk['uid'],
                     str(vdisk['iogrp']), 'io_grp%d' % vdisk['iogrp'],
                     'private', '', '', 'scsi'])
    return Table(header, rows)


def lshostvdiskmap(ctx: Ctx, args: Args) -> Result:
    """Mappings of one host, or of all hosts when none is given."""
    if args.obj:
        hosts = [need(ctx, 'hosts', args.obj, E_NOT_FOUND_NAME)]
    else:
        hosts = sorted(ctx.data['hosts'].values(), key=lambda h: h['id'])
    header = ['id', 'name', 'SCSI_id', 'vdisk_id', 'vdisk_name',
              'vdisk_UID'] + _MAP_TAIL
    rows = []
    for host in hosts:
        for m in sorted(ctx.state.hostmaps_of_host(host['id']),
                        key=lambda m: m['scsi']):
            v = ctx.data['vdisks'][str(m['vdisk'])]
            rows.append([str(host['id']), host['name'], str(m['scsi']),
                         str(v['id']), v['name'], v['uid'], str(v['iogrp']),
                         'io_grp%d' % v['iogrp'], 'private', '', '', 'scsi'])
    return Table(header, rows)
