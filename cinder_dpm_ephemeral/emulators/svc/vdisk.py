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
"""Vdisk verbs: mkvdisk, rmvdisk, expandvdisksize, chvdisk, lsvdisk."""

from __future__ import annotations

from cinder_dpm_ephemeral.emulators.svc import fcmap
from cinder_dpm_ephemeral.emulators.svc.common import (
    E_BAD_ARGUMENT, E_BAD_NAME, E_EXISTS, E_MISSING, E_NO_EXTENTS,
    E_NOT_FOUND, E_NOT_FOUND_NAME, E_UNSUPPORTED, E_VDISK_IN_USE, Args,
    CLIError, Ctx, Detail, Result, Table, find_iogrp, fmt_size, need,
    to_bytes, yes_no)
from cinder_dpm_ephemeral.emulators.svc.state import (
    EXTENT_SIZE, Obj, valid_name)


def _percent_or_size(value: str, capacity: int, unit: str | None) -> int:
    if value.endswith('%'):
        try:
            pct = float(value[:-1])
        except ValueError:
            raise CLIError(E_BAD_ARGUMENT % value)
        return int(capacity * pct / 100)
    return to_bytes(value, unit)


def pool_key(pool: Obj) -> str:
    """The LUN store's name for the extents of an mdisk group."""
    return f'mdiskgrp{pool["id"]}'


def reads_zeros(vdisk: Obj) -> bool:
    """Whether never-written parts of ``vdisk`` read zeros."""
    return bool(vdisk['thin'] or vdisk['formatted'])


def _check_space(ctx: Ctx, pool: Obj, extra: int) -> None:
    if extra > ctx.state.pool_usage(pool)['free']:
        raise CLIError(E_NO_EXTENTS)


def mkvdisk(ctx: Ctx, args: Args) -> Result:
    pool_ref = args.need('mdiskgrp')
    size_arg = args.need('size')
    if args.get('iogrp') is None:
        raise CLIError(E_MISSING)
    if ':' in pool_ref or args.get('copies') not in (None, '1'):
        raise CLIError(E_UNSUPPORTED)        # mirrored vdisks: not modelled
    name = args.get('name')
    if name is not None:
        if not valid_name(name):
            raise CLIError(E_BAD_NAME)
        if ctx.state.by_name('vdisks', name) is not None:
            raise CLIError(E_EXISTS)
    pool = need(ctx, 'pools', pool_ref, E_NOT_FOUND_NAME)
    iogrp = find_iogrp(ctx, args.need('iogrp'))
    if iogrp is None or not iogrp['node_count']:
        raise CLIError(E_NOT_FOUND_NAME)
    unit = args.get('unit')
    capacity = to_bytes(size_arg, unit)
    capacity = -(-capacity // 512) * 512
    if capacity <= 0:
        raise CLIError(E_BAD_ARGUMENT % size_arg)
    rsize = args.get('rsize')
    thin = rsize is not None or args.flag('compressed')
    real = 0
    if thin:
        real = _percent_or_size(rsize or '2%', capacity, unit)
        real = min(capacity, -(-real // 512) * 512)
        _check_space(ctx, pool, real)
    else:
        _check_space(ctx, pool, -(-capacity // EXTENT_SIZE) * EXTENT_SIZE)
    vid = ctx.state.free_id('vdisks')
    nodes = [n for n in ctx.data['nodes'] if n['iogrp'] == iogrp['id']]
    vdisk = {
        'id': vid,
        'name': name or 'vdisk%d' % vid,
        'uid': ctx.state.new_uid(),
        'capacity': capacity,
        'pool': pool['id'],
        'iogrp': iogrp['id'],
        'preferred_node': nodes[vid % len(nodes)]['id'],
        'thin': thin,
        'compressed': args.flag('compressed'),
        'rsize': rsize or '',
        'real_capacity': real,
        'autoexpand': thin and args.flag('autoexpand'),
        'warning': args.get('warning') or ('80%' if thin else ''),
        'grainsize': args.get('grainsize') or ('256' if thin else ''),
        'easytier': args.get('easytier') or 'on',
        'formatted': not args.flag('nofmtdisk'),
        'udid': args.get('udid') or '',
    }
    # What a new vdisk reads where it was never written (IBM Documentation,
    # mkvdisk): a thin-provisioned (or compressed) copy has no extents
    # behind unwritten grains and reads zeros; a fully allocated volume is
    # formatted by default (quick initialization: available at once, reads
    # zeros). With -nofmtdisk it is not formatted: its extents keep what
    # deleted volumes left on them. Cinder's driver passes -nofmtdisk when
    # storwize_svc_vol_nofmtdisk (or the type's drivers:nofmtdisk) is True.
    ctx.luns.create(vdisk['uid'], capacity, pool=pool_key(pool),
                    reads_zeros=reads_zeros(vdisk))
    ctx.data['vdisks'][str(vid)] = vdisk
    return 'Virtual Disk, id [%d], successfully created' % vid


def remove_vdisk(ctx: Ctx, vdisk: Obj) -> None:
    """Drop a vdisk, its host mappings and FlashCopy mappings, its LUN."""
    vid = vdisk['id']
    ctx.data['hostmaps'] = [m for m in ctx.data['hostmaps']
                            if m['vdisk'] != vid]
    for m in ctx.state.fcmaps_of_vdisk(vid):
        fcmap.drop_map(ctx, m)
    del ctx.data['vdisks'][str(vid)]
    ctx.luns.delete(vdisk['uid'])


def rmvdisk(ctx: Ctx, args: Args) -> Result:
    vdisk = need(ctx, 'vdisks', args.need_obj(), E_NOT_FOUND)
    force = args.flag('force')
    if not force:
        if (ctx.state.hostmaps_of_vdisk(vdisk['id'])
                and not args.flag('removehostmappings')):
            raise CLIError(E_VDISK_IN_USE)
        if ctx.state.fcmaps_of_vdisk(vdisk['id']):
            raise CLIError(E_VDISK_IN_USE)
    remove_vdisk(ctx, vdisk)
    return ''


def expandvdisksize(ctx: Ctx, args: Args) -> Result:
    vdisk = need(ctx, 'vdisks', args.need_obj(), E_NOT_FOUND)
    size_arg = args.get('size')
    rsize_arg = args.get('rsize')
    if size_arg is None and rsize_arg is None:
        raise CLIError(E_MISSING)
    unit = args.get('unit')
    pool = ctx.state.find('pools', str(vdisk['pool']))
    assert pool is not None
    if size_arg is not None:
        add = -(-to_bytes(size_arg, unit) // 512) * 512
        new_cap = int(vdisk['capacity']) + add
        if vdisk['thin']:
            extra = 0
        else:
            before = ctx.state.vdisk_real(vdisk)
            after = -(-new_cap // EXTENT_SIZE) * EXTENT_SIZE
            extra = after - before
        _check_space(ctx, pool, extra)
        vdisk['capacity'] = new_cap
        # New extents of a fully allocated vdisk: -fmtdisk formats them
        # (IBM Documentation, expandvdisksize). Without it we keep the
        # vdisk's own policy: formatted at creation, the new capacity is
        # initialized too; made with -nofmtdisk, it shows old data.
        ctx.luns.resize(vdisk['uid'], new_cap,
                        reads_zeros=reads_zeros(vdisk)
                        or args.flag('fmtdisk'))
    if rsize_arg is not None:
        if not vdisk['thin']:
            raise CLIError(E_UNSUPPORTED)
        add = to_bytes(rsize_arg, unit)
        _check_space(ctx, pool, add)
        vdisk['real_capacity'] = min(int(vdisk['capacity']),
                                     int(vdisk['real_capacity']) + add)
    return ''


def chvdisk(ctx: Ctx, args: Args) -> Result:
    vdisk = need(ctx, 'vdisks', args.need_obj(), E_NOT_FOUND)
    name = args.get('name')
    if name is not None:
        if not valid_name(name):
            raise CLIError(E_BAD_NAME)
        other = ctx.state.by_name('vdisks', name)
        if other is not None and other is not vdisk:
            raise CLIError(E_EXISTS)
        vdisk['name'] = name
    for key in ('warning', 'easytier', 'udid'):
        value = args.get(key)
        if value is not None:
            vdisk[key] = value
    if args.get('autoexpand') is not None:
        vdisk['autoexpand'] = args.get('autoexpand') == 'on'
    rate = args.get('rate')
    if rate is not None:
        if not rate.isdigit():
            raise CLIError(E_BAD_ARGUMENT % rate)
        key = 'bandwidth_limit_MB' if args.flag('unitmb') else 'IOPs_limit'
        limits = vdisk.setdefault('throttle', {})
        if int(rate):
            limits[key] = int(rate)
        else:
            limits.pop(key, None)
    return ''


_HEADER = ['id', 'name', 'IO_group_id', 'IO_group_name', 'status',
           'mdisk_grp_id', 'mdisk_grp_name', 'capacity', 'type', 'FC_id',
           'FC_name', 'RC_id', 'RC_name', 'vdisk_UID', 'fc_map_count',
           'copy_count', 'fast_write_state', 'se_copy_count', 'RC_change',
           'compressed_copy_count', 'parent_mdisk_grp_id',
           'parent_mdisk_grp_name', 'owner_id', 'owner_name', 'formatting',
           'encrypt', 'volume_id', 'volume_name', 'function', 'protocol']


def _fc_ref(ctx: Ctx, vdisk: Obj) -> tuple[str, str, int]:
    maps = ctx.state.fcmaps_of_vdisk(vdisk['id'])
    if not maps:
        return '', '', 0
    if len(maps) > 1:
        return 'many', 'many', len(maps)
    return str(maps[0]['id']), maps[0]['name'], 1


def _row(ctx: Ctx, v: Obj, b: bool) -> list[str]:
    pool = ctx.state.find('pools', str(v['pool']))
    pname = pool['name'] if pool else ''
    fc_id, fc_name, fc_count = _fc_ref(ctx, v)
    return [str(v['id']), v['name'], str(v['iogrp']), 'io_grp%d' % v['iogrp'],
            'online', str(v['pool']), pname, fmt_size(v['capacity'], b),
            'striped', fc_id, fc_name, '', '', v['uid'], str(fc_count), '1',
            'empty', '1' if v['thin'] else '0', 'no',
            '1' if v['compressed'] else '0', str(v['pool']), pname, '', '',
            'no', 'no', str(v['id']), v['name'], '', '']


def _detail(ctx: Ctx, v: Obj, b: bool) -> Detail:
    row = dict(zip(_HEADER, _row(ctx, v, b), strict=True))
    pool = ctx.state.find('pools', str(v['pool']))
    pname = pool['name'] if pool else ''
    node = ctx.state.node(v['preferred_node'])
    limits = v.get('throttle') or {}
    top = [(k, row[k]) for k in (
        'id', 'name', 'IO_group_id', 'IO_group_name', 'status',
        'mdisk_grp_id', 'mdisk_grp_name', 'capacity', 'type')]
    top += [('formatted', yes_no(v['formatted'])), ('formatting', 'no'),
            ('mdisk_id', ''), ('mdisk_name', ''),
            ('FC_id', row['FC_id']), ('FC_name', row['FC_name']),
            ('RC_id', ''), ('RC_name', ''), ('vdisk_UID', v['uid']),
            ('preferred_node_id', str(v['preferred_node'])),
            ('fast_write_state', 'empty'), ('cache', 'readwrite'),
            ('udid', v.get('udid', '')),
            ('fc_map_count', row['fc_map_count']), ('sync_rate', '50'),
            ('copy_count', '1'), ('se_copy_count', row['se_copy_count']),
            ('filesystem', ''), ('mirror_write_priority', 'latency'),
            ('RC_change', 'no'),
            ('compressed_copy_count', row['compressed_copy_count']),
            ('access_IO_group_count', '1'), ('last_access_time', ''),
            ('parent_mdisk_grp_id', str(v['pool'])),
            ('parent_mdisk_grp_name', pname), ('owner_type', 'none'),
            ('owner_id', ''), ('owner_name', ''), ('encrypt', 'no'),
            ('volume_id', str(v['id'])), ('volume_name', v['name']),
            ('function', ''),
            ('throttle_id', str(v['id']) if limits else ''),
            ('throttle_name', 'throttle%d' % v['id'] if limits else ''),
            ('IOPs_limit', str(limits.get('IOPs_limit', ''))),
            ('bandwidth_limit_MB', str(limits.get('bandwidth_limit_MB', ''))),
            ('volume_group_id', ''), ('volume_group_name', ''),
            ('cloud_backup_enabled', 'no'), ('cloud_account_id', ''),
            ('cloud_account_name', ''), ('backup_status', 'off'),
            ('last_backup_time', ''), ('restore_status', 'none'),
            ('backup_grain_size', ''), ('deduplicated_copy_count', '0'),
            ('protocol', ''), ('preferred_node_name', node['name']),
            ('safeguarded_expiration_time', ''),
            ('safeguarded_backup_count', '0'),
            ('is_snapshot', 'no'), ('snapshot_count', '0'),
            ('volume_type', ''), ('replication_mode', ''),
            ('is_safeguarded_snapshot', 'no'),
            ('safeguarded_snapshot_count', '0'),
            ('restore_in_progress', 'no')]
    real = ctx.state.vdisk_real(v)
    used = real if not v['thin'] else min(real, int(v['capacity']))
    free = 0 if not v['thin'] else max(0, real - used)
    copy = [('copy_id', '0'), ('status', 'online'), ('sync', 'yes'),
            ('auto_delete', 'no'), ('primary', 'yes'),
            ('mdisk_grp_id', str(v['pool'])), ('mdisk_grp_name', pname),
            ('type', 'striped'), ('mdisk_id', ''), ('mdisk_name', ''),
            ('fast_write_state', 'empty'),
            ('used_capacity', fmt_size(used, b)),
            ('real_capacity', fmt_size(real, b)),
            ('free_capacity', fmt_size(free, b)),
            ('overallocation',
             str(int(v['capacity']) * 100 // real) if real else '0'),
            ('autoexpand', ('on' if v['autoexpand'] else 'off')
             if v['thin'] else ''),
            ('warning', v['warning'].rstrip('%') if v['thin'] else ''),
            ('grainsize', v['grainsize'] if v['thin'] else ''),
            ('se_copy', yes_no(v['thin'] and not v['compressed'])),
            ('easy_tier', v['easytier']), ('easy_tier_status', 'balanced'),
            ('tier', 'tier0_flash'), ('tier_capacity', fmt_size(real, b)),
            ('compressed_copy', yes_no(v['compressed'])),
            ('uncompressed_used_capacity', fmt_size(used, b)),
            ('parent_mdisk_grp_id', str(v['pool'])),
            ('parent_mdisk_grp_name', pname), ('encrypt', 'no'),
            ('deduplicated_copy', 'no'),
            ('used_capacity_before_reduction', '')]
    return Detail([top, copy])


def lsvdisk(ctx: Ctx, args: Args) -> Result:
    if args.obj:
        vdisk = ctx.state.find('vdisks', args.obj)
        if vdisk is None:
            raise CLIError(E_NOT_FOUND_NAME)
        return _detail(ctx, vdisk, args.bytes)
    vdisks = sorted(ctx.data['vdisks'].values(), key=lambda v: v['id'])
    return Table(list(_HEADER), [_row(ctx, v, args.bytes) for v in vdisks])


def lsvdiskcopy(ctx: Ctx, args: Args) -> Result:
    vdisk = need(ctx, 'vdisks', args.need_obj(), E_NOT_FOUND)
    sections = _detail(ctx, vdisk, args.bytes).sections
    copy = dict(sections[1])
    header = ['vdisk_id', 'vdisk_name', 'copy_id', 'status', 'sync',
              'primary', 'mdisk_grp_id', 'mdisk_grp_name', 'capacity',
              'type', 'se_copy', 'easy_tier', 'easy_tier_status',
              'compressed_copy', 'parent_mdisk_grp_id',
              'parent_mdisk_grp_name', 'encrypt', 'deduplicated_copy']
    row = [str(vdisk['id']), vdisk['name'], '0', 'online', 'yes', 'yes',
           copy['mdisk_grp_id'], copy['mdisk_grp_name'],
           fmt_size(vdisk['capacity'], args.bytes), 'striped',
           copy['se_copy'], copy['easy_tier'], 'balanced',
           copy['compressed_copy'], copy['parent_mdisk_grp_id'],
           copy['parent_mdisk_grp_name'], 'no', 'no']
    if args.get('copy') is not None:
        if args.get('copy') != '0':
            raise CLIError(E_NOT_FOUND)
        return Detail([sections[1]])
    return Table(header, [row])
