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
"""FlashCopy: mappings, consistency groups, background copy over time.

Which grains move, and what host writes cost, is in :mod:`.grains` (with
IBM's documentation cited there): background copy moves only the allocated
grains of a thin-provisioned source (all grains of a fully allocated one),
highest LBA first; the active mappings of one source form a cascade; a map
stopped while an older one reads grains through its target is
``stopping`` until those grains are copied at the cleaning rate.

States follow the real state machine: a new mapping is ``idle_or_copied``;
``prestartfcmap`` makes it ``prepared`` (the cache flush is instant here);
``startfcmap`` takes the point-in-time copy (the target LUN becomes a
copy-on-write image of the source) and makes it ``copying``; with a copy
rate above 0 the background copy advances with time (see :func:`rate_bps`)
until the mapping is ``idle_or_copied`` at progress 100, when
``-autodelete`` mappings disappear; ``stopfcmap`` makes it ``stopped`` (or
``idle_or_copied`` if the copy had completed, ``stopping`` first when
an older mapping of the same source depends on grains of its target).
"""

from __future__ import annotations

import time

from cinder_dpm_ephemeral.emulators.svc.common import (
    E_BAD_ARGUMENT, E_BAD_NAME, E_EXISTS, E_FC_COPYING, E_FC_IDENTICAL,
    E_FC_SAME, E_FC_SIZE, E_FC_STATE, E_FC_STOPPED, E_FC_TOO_MANY,
    E_NOT_FOUND, E_NOT_FOUND_NAME, Args, CLIError, Ctx, Detail, Result,
    Table, need, yes_no)
from cinder_dpm_ephemeral.emulators.svc import grains
from cinder_dpm_ephemeral.emulators.svc.state import Obj, valid_name

# IBM configuration limits (Spectrum Virtualize 8.x "Configuration limits
# and restrictions"; Redbook SG24-8162 10.3: "A FlashCopy Consistency Group
# can contain up to 512 FlashCopy mappings. The maximum number of
# FlashCopy mappings that is supported by the IBM Storwize V5000 Gen2
# system V8.1.0 is 4096"; "The source volume is already a member of 256
# FlashCopy mappings" fails mkfcmap).
MAX_TARGETS_PER_SOURCE = 256       # real SVC limit (fcmap_source_limit)
MAX_MAPS_PER_CONSISTGRP = 512
MAX_MAPS_PER_SYSTEM = 4096
BACKGROUND_COPY_COUNTER = grains.BACKGROUND_COPY_COUNTER


def rate_bps(copy_rate: int) -> int:
    """Bytes per second of background copy for a copy (or clean) rate.

    Spectrum Virtualize table: 1-10 copy 128 KiB/s and every further 10
    doubles it (41-50: 2 MiB/s, 91-100: 64 MiB/s, 141-150: 2 GiB/s);
    0 means no background copy.
    """
    if copy_rate <= 0:
        return 0
    return (128 << 10) << ((min(copy_rate, 150) - 1) // 10)


def _rate_arg(value: str | None, default: int) -> int:
    if value is None:
        return default
    if not value.isdigit() or int(value) > 150:
        raise CLIError(E_BAD_ARGUMENT % value)
    return int(value)


def _progress(m: Obj) -> int:
    """Share of the grains to copy that the target holds (bitmap)."""
    if m['status'] == 'idle_or_copied' and m.get('complete'):
        return 100
    if m['status'] in ('copying', 'stopping') and 'todo_bits' in m \
            and not m['todo_bits']:
        return 100        # a thin source with nothing allocated
    size = int(m.get('size') or 0)
    if not size:
        return 0
    return min(100, int(float(m['copied']) * 100 // size))


def _clean_progress(m: Obj) -> int:
    if m['status'] != 'stopping':
        return 100
    left = grains.mask(m, 'clean').bit_count()
    total = max(left, int(m.get('clean_total', left)) or 1)
    return 100 - left * 100 // total


def _start_time(ctx: Ctx) -> str:
    return time.strftime('%y%m%d%H%M%S', time.gmtime(ctx.clock()))


def drop_map(ctx: Ctx, m: Obj) -> None:
    ctx.data['fcmaps'].pop(str(m['id']), None)
    gid = m.get('grp')
    if gid is not None:
        grp = ctx.data['fcgrps'].get(str(gid))
        if grp and grp['autodelete'] and not _members(ctx, grp):
            del ctx.data['fcgrps'][str(gid)]


def _complete(ctx: Ctx, m: Obj) -> None:
    # An older mapping still reading grains through this target gets them
    # now (counted as cleaning; a real array does it before the map leaves
    # the cascade, at the cleaning rate: simplification, see emulators.md).
    older, deps = grains.dependent_grains(ctx.data, m)
    if older is not None and deps:
        _clean_now(ctx, m, older, deps)
    m['status'] = 'idle_or_copied'
    m['complete'] = True
    m['copied'] = m['size']
    if m['autodelete']:
        drop_map(ctx, m)


def _capacity(ctx: Ctx, m: Obj) -> int:
    return int(ctx.data['vdisks'][str(m['source'])]['capacity'])


def _clean_now(ctx: Ctx, m: Obj, older: Obj, deps: int) -> None:
    m['clean'] = grains.dump(deps)
    moved = grains.advance(m, deps.bit_count(), 'clean', _capacity(ctx, m),
                           ctx.data, older, 'clean')
    if moved:
        ctx.luns.count(grains.CLEAN_COUNTER, moved)


def _credit(ctx: Ctx, m: Obj, rate: int, now: float) -> int:
    """Whole grains the rate allows since the last tick."""
    last = float(m.get('last', now))
    m['last'] = now
    credit = float(m.get('credit', 0.0)) + (
        rate_bps(rate) / grains.grain_bytes(m)
        * max(0.0, now - last) * ctx.time_scale)
    n = int(credit)
    m['credit'] = credit - n
    return n


def tick(ctx: Ctx) -> None:
    """Advance background copies and stopping copies to now."""
    now = ctx.clock()
    for m in sorted(ctx.data['fcmaps'].values(),
                    key=lambda m: (int(m.get('seq', 0)), m['id'])):
        if str(m['id']) not in ctx.data['fcmaps']:
            continue        # auto-deleted by an earlier completion
        if m['status'] == 'stopping':
            _tick_stopping(ctx, m, now)
            continue
        if m['status'] != 'copying' or not rate_bps(m['copyrate']):
            continue        # no-copy maps: only host writes split grains
        n = _credit(ctx, m, m['copyrate'], now)
        if n:
            moved = grains.advance(m, n, 'todo', _capacity(ctx, m),
                                   ctx.data, m, 'background')
            if moved:
                ctx.luns.count(BACKGROUND_COPY_COUNTER, moved)
        if not grains.mask(m, 'todo') and not (
                grains.mask(m, 'todo_bits') & ~grains.mask(m, 'split')):
            _complete(ctx, m)


def _tick_stopping(ctx: Ctx, m: Obj, now: float) -> None:
    older = ctx.data['fcmaps'].get(str(m.get('clean_onto')))
    if older is None or older['status'] not in grains.ACTIVE:
        m['clean'] = ''
    # a clean rate of 0 still has to finish: lowest rate (assumption)
    n = _credit(ctx, m, max(1, int(m['cleanrate'])), now)
    if n and older is not None and m.get('clean'):
        moved = grains.advance(m, n, 'clean', _capacity(ctx, m), ctx.data,
                               older, 'clean')
        if moved:
            ctx.luns.count(grains.CLEAN_COUNTER, moved)
    if not m.get('clean'):
        m['status'] = 'stopped'
        m['restoring'] = False


def _members(ctx: Ctx, grp: Obj) -> list[Obj]:
    return [m for _, m in sorted(ctx.data['fcmaps'].items(),
                                 key=lambda kv: int(kv[0]))
            if m.get('grp') == grp['id']]


def _grp_status(ctx: Ctx, grp: Obj) -> str:
    states = {m['status'] for m in _members(ctx, grp)}
    if not states:
        return 'empty'
    for s in ('copying', 'stopped', 'preparing', 'stopping'):
        if s in states:
            return s
    if states == {'prepared'}:
        return 'prepared'
    return 'idle_or_copied'


def _vdisk(ctx: Ctx, ref: str) -> Obj:
    return need(ctx, 'vdisks', ref, E_NOT_FOUND_NAME)


def mkfcmap(ctx: Ctx, args: Args) -> Result:
    src = _vdisk(ctx, args.need('source'))
    tgt = _vdisk(ctx, args.need('target'))
    if src['id'] == tgt['id']:
        raise CLIError(E_FC_SAME)
    if int(src['capacity']) != int(tgt['capacity']):
        raise CLIError(E_FC_SIZE)
    maps = list(ctx.data['fcmaps'].values())
    if any(m['source'] == src['id'] and m['target'] == tgt['id']
           for m in maps):
        raise CLIError(E_FC_IDENTICAL)
    if sum(1 for m in maps if m['source'] == src['id']) \
            >= ctx.fcmap_source_limit:
        raise CLIError(E_FC_TOO_MANY)
    if len(maps) >= MAX_MAPS_PER_SYSTEM:
        raise CLIError(E_FC_TOO_MANY)
    name = args.get('name')
    if name is not None:
        if not valid_name(name):
            raise CLIError(E_BAD_NAME)
        if ctx.state.by_name('fcmaps', name) is not None:
            raise CLIError(E_EXISTS)
    grp = None
    if args.get('consistgrp') is not None:
        grp = need(ctx, 'fcgrps', args.get('consistgrp') or '',
                   E_NOT_FOUND_NAME)
        if _grp_status(ctx, grp) not in ('empty', 'idle_or_copied'):
            raise CLIError(E_FC_STATE)
        if len(_members(ctx, grp)) >= MAX_MAPS_PER_CONSISTGRP:
            raise CLIError(E_FC_TOO_MANY)
    grain = args.get('grainsize') or '256'
    if grain not in ('64', '256'):
        raise CLIError(E_BAD_ARGUMENT % grain)
    mid = ctx.state.free_id('fcmaps')
    ctx.data['fcmaps'][str(mid)] = {
        'id': mid, 'name': name or 'fcmap%d' % mid,
        'source': src['id'], 'target': tgt['id'],
        'copyrate': _rate_arg(args.get('copyrate'), 50),
        'cleanrate': _rate_arg(args.get('cleanrate'), 50),
        'autodelete': args.flag('autodelete'),
        'incremental': args.flag('incremental'),
        'grainsize': grain, 'grp': grp['id'] if grp else None,
        'status': 'idle_or_copied', 'copied': 0.0, 'size': 0,
        'complete': False, 'start_time': '', 'restoring': False,
    }
    return 'FlashCopy Mapping, id [%d], successfully created' % mid


def _map(ctx: Ctx, args: Args) -> Obj:
    return need(ctx, 'fcmaps', args.need_obj(), E_NOT_FOUND)


def _prepare(m: Obj, restore: bool) -> None:
    if m['status'] == 'copying':
        raise CLIError(E_FC_COPYING)
    if m['status'] not in ('idle_or_copied', 'stopped', 'prepared'):
        raise CLIError(E_FC_STATE)
    m['status'] = 'prepared'
    m['restoring'] = restore


def _start(ctx: Ctx, m: Obj, prep: bool, restore: bool) -> None:
    if m['status'] == 'copying':
        raise CLIError(E_FC_COPYING)
    if m['status'] != 'prepared':
        if not prep:
            raise CLIError(E_FC_STATE)
        _prepare(m, restore)
    src = ctx.data['vdisks'][str(m['source'])]
    tgt = ctx.data['vdisks'][str(m['target'])]
    capacity = int(src['capacity'])
    # What the background copy must move: the allocated grains of a thin
    # source ("only the space that is used on the source volume is copied
    # to the target volume", IBM, thin-provisioned FlashCopy), every grain
    # of a fully allocated one.
    if src.get('thin'):
        todo = grains.grains_of(m, ctx.luns.allocated(src['uid']))
    else:
        todo = (1 << grains.grain_count(m, capacity)) - 1
    size = sum(grains.grain_len(m, g, capacity)
               for g in range(todo.bit_length()) if todo >> g & 1)
    ctx.luns.copy_data(src['uid'], tgt['uid'])
    tgt['alloc'] = ''
    ctx.data['fc_seq'] = int(ctx.data.get('fc_seq', 0)) + 1
    m.update(status='copying', copied=0.0, size=size, complete=False,
             start_time=_start_time(ctx), last=ctx.clock(), credit=0.0,
             seq=ctx.data['fc_seq'], split='', todo=grains.dump(todo),
             todo_bits=grains.dump(todo), clean='',
             restoring=restore or m.get('restoring', False))


def _stop(ctx: Ctx, m: Obj, force: bool = False) -> None:
    if m['status'] in ('stopped', 'idle_or_copied'):
        raise CLIError(E_FC_STOPPED)
    if m['status'] == 'copying' and _progress(m) >= 100 \
            and m.get('todo_bits') is not None:
        _complete(ctx, m)
        return
    if m['status'] == 'stopping' and not force:
        return
    # "Stopping: the mapping is copying data to another mapping": an older
    # mapping of the same source that reads grains through this target
    # gets them first, at the cleaning rate (IBM, FlashCopy mapping
    # states; background copy and cleaning rates). -force stops at once
    # and stops that dependent mapping too (its image would be lost).
    older, deps = grains.dependent_grains(ctx.data, m)
    if older is not None and deps:
        if force:
            older['status'] = 'stopped'
            older['restoring'] = False
        else:
            m.update(status='stopping', clean=grains.dump(deps),
                     clean_total=deps.bit_count(), clean_onto=older['id'],
                     last=ctx.clock(), credit=0.0)
            return
    m['status'] = 'stopped'
    m['restoring'] = False


def _standalone(m: Obj) -> None:
    if m.get('grp') is not None:
        raise CLIError(E_FC_STATE)


def prestartfcmap(ctx: Ctx, args: Args) -> Result:
    m = _map(ctx, args)
    _standalone(m)
    _prepare(m, args.flag('restore'))
    return ''


def startfcmap(ctx: Ctx, args: Args) -> Result:
    m = _map(ctx, args)
    _standalone(m)
    _start(ctx, m, args.flag('prep'), args.flag('restore'))
    return ''


def stopfcmap(ctx: Ctx, args: Args) -> Result:
    m = _map(ctx, args)
    _standalone(m)
    _stop(ctx, m, args.flag('force'))
    return ''


def rmfcmap(ctx: Ctx, args: Args) -> Result:
    m = _map(ctx, args)
    if m['status'] not in ('idle_or_copied', 'stopped'):
        raise CLIError(E_FC_STATE)
    if (m['status'] == 'stopped' and _progress(m) < 100
            and not args.flag('force')):
        raise CLIError(E_FC_STATE)
    drop_map(ctx, m)
    return ''


def chfcmap(ctx: Ctx, args: Args) -> Result:
    m = _map(ctx, args)
    name = args.get('name')
    if name is not None:
        if not valid_name(name):
            raise CLIError(E_BAD_NAME)
        other = ctx.state.by_name('fcmaps', name)
        if other is not None and other is not m:
            raise CLIError(E_EXISTS)
        m['name'] = name
    if args.get('copyrate') is not None:
        m['copyrate'] = _rate_arg(args.get('copyrate'), 50)
        m['last'] = ctx.clock()     # the new rate applies from now on
    if args.get('cleanrate') is not None:
        m['cleanrate'] = _rate_arg(args.get('cleanrate'), 50)
    auto = args.get('autodelete')
    if auto is not None:
        if auto not in ('on', 'off'):
            raise CLIError(E_BAD_ARGUMENT % auto)
        m['autodelete'] = auto == 'on'
        if m['autodelete'] and m['status'] == 'idle_or_copied' \
                and m.get('complete'):
            drop_map(ctx, m)
    if args.get('consistgrp') is not None:
        grp = need(ctx, 'fcgrps', args.get('consistgrp') or '',
                   E_NOT_FOUND_NAME)
        m['grp'] = grp['id']
    if args.flag('noconsistgrp'):
        m['grp'] = None
    return ''


_HEADER = ['id', 'name', 'source_vdisk_id', 'source_vdisk_name',
           'target_vdisk_id', 'target_vdisk_name', 'group_id', 'group_name',
           'status', 'progress', 'copy_rate', 'clean_progress', 'incremental',
           'partner_FC_id', 'partner_FC_name', 'restoring', 'start_time',
           'rc_controlled']


def _row(ctx: Ctx, m: Obj) -> list[str]:
    src = ctx.data['vdisks'][str(m['source'])]
    tgt = ctx.data['vdisks'][str(m['target'])]
    grp = (ctx.data['fcgrps'].get(str(m['grp']))
           if m.get('grp') is not None else None)
    return [str(m['id']), m['name'], str(src['id']), src['name'],
            str(tgt['id']), tgt['name'], str(grp['id']) if grp else '',
            grp['name'] if grp else '', m['status'], str(_progress(m)),
            str(m['copyrate']), '100', 'on' if m['incremental'] else 'off',
            '', '', yes_no(m['restoring']), m['start_time'], 'no']


def lsfcmap(ctx: Ctx, args: Args) -> Result:
    if args.obj:
        m = need(ctx, 'fcmaps', args.obj, E_NOT_FOUND_NAME)
        row = dict(zip(_HEADER, _row(ctx, m), strict=True))
        src = ctx.data['vdisks'][str(m['source'])]
        # mappings whose image depends on this one: the older active
        # mappings of the same source (IBM, multiple target FlashCopy)
        dependent = 0
        if m['status'] in grains.ACTIVE:
            dependent = sum(
                1 for o in grains.cascade(ctx.data, m['source'])
                if (int(o.get('seq', 0)), o['id'])
                < (int(m.get('seq', 0)), m['id']))
        keys = ['id', 'name', 'source_vdisk_id', 'source_vdisk_name',
                'target_vdisk_id', 'target_vdisk_name', 'group_id',
                'group_name', 'status', 'progress', 'copy_rate',
                'start_time']
        rows = [(k, row[k]) for k in keys]
        rows += [('dependent_mappings', str(dependent)),
                 ('autodelete', 'on' if m['autodelete'] else 'off'),
                 ('clean_progress', str(_clean_progress(m))),
                 ('clean_rate', str(m['cleanrate'])),
                 ('incremental', row['incremental']),
                 ('difference', '100' if m['incremental'] else '0'),
                 ('grain_size', m['grainsize']),
                 ('IO_group_id', str(src['iogrp'])),
                 ('IO_group_name', 'io_grp%d' % src['iogrp']),
                 ('partner_FC_id', ''), ('partner_FC_name', ''),
                 ('restoring', row['restoring']), ('rc_controlled', 'no'),
                 ('keep_target', 'no'), ('type', 'generic'),
                 ('restore_progress', '0'), ('fc_controlled', 'no'),
                 ('owner_id', ''), ('owner_name', '')]
        return Detail([rows])
    maps = sorted(ctx.data['fcmaps'].values(), key=lambda m: m['id'])
    return Table(list(_HEADER), [_row(ctx, m) for m in maps])


def lsvdiskfcmappings(ctx: Ctx, args: Args) -> Result:
    vdisk = need(ctx, 'vdisks', args.need_obj(), E_NOT_FOUND)
    rows = [[str(m['id']), m['name']]
            for m in ctx.state.fcmaps_of_vdisk(vdisk['id'])]
    return Table(['id', 'name'], rows)


# -- consistency groups -------------------------------------------------------
def mkfcconsistgrp(ctx: Ctx, args: Args) -> Result:
    name = args.get('name')
    if name is not None:
        if not valid_name(name):
            raise CLIError(E_BAD_NAME)
        if ctx.state.by_name('fcgrps', name) is not None:
            raise CLIError(E_EXISTS)
    gid = 1             # consistency group 0 is reserved on a real SVC
    while str(gid) in ctx.data['fcgrps']:
        gid += 1
    ctx.data['fcgrps'][str(gid)] = {
        'id': gid, 'name': name or 'fccstgrp%d' % gid,
        'autodelete': args.flag('autodelete'), 'start_time': ''}
    return 'FlashCopy Consistency Group, id [%d], successfully created' % gid


def _grp(ctx: Ctx, args: Args) -> Obj:
    return need(ctx, 'fcgrps', args.need_obj(), E_NOT_FOUND)


def prestartfcconsistgrp(ctx: Ctx, args: Args) -> Result:
    grp = _grp(ctx, args)
    for m in _members(ctx, grp):
        _prepare(m, args.flag('restore'))
    return ''


def startfcconsistgrp(ctx: Ctx, args: Args) -> Result:
    grp = _grp(ctx, args)
    members = _members(ctx, grp)
    if not members:
        raise CLIError(E_FC_STATE)
    for m in members:
        _start(ctx, m, args.flag('prep'), args.flag('restore'))
    grp['start_time'] = _start_time(ctx)
    return ''


def stopfcconsistgrp(ctx: Ctx, args: Args) -> Result:
    grp = _grp(ctx, args)
    active = [m for m in _members(ctx, grp)
              if m['status'] not in ('stopped', 'idle_or_copied')]
    if not active:
        raise CLIError(E_FC_STOPPED)
    for m in active:
        _stop(ctx, m)
    return ''


def rmfcconsistgrp(ctx: Ctx, args: Args) -> Result:
    grp = _grp(ctx, args)
    members = _members(ctx, grp)
    if members and not args.flag('force'):
        raise CLIError(E_FC_STATE)
    for m in members:
        m['grp'] = None
    del ctx.data['fcgrps'][str(grp['id'])]
    return ''


def lsfcconsistgrp(ctx: Ctx, args: Args) -> Result:
    if args.obj:
        grp = need(ctx, 'fcgrps', args.obj, E_NOT_FOUND_NAME)
        rows = [('id', str(grp['id'])), ('name', grp['name']),
                ('status', _grp_status(ctx, grp)),
                ('autodelete', 'on' if grp['autodelete'] else 'off'),
                ('start_time', grp['start_time'])]
        for m in _members(ctx, grp):
            rows += [('FC_mapping_id', str(m['id'])),
                     ('FC_mapping_name', m['name'])]
        return Detail([rows])
    grps = sorted(ctx.data['fcgrps'].values(), key=lambda g: g['id'])
    return Table(['id', 'name', 'status', 'start_time'],
                 [[str(g['id']), g['name'], _grp_status(ctx, g),
                   g['start_time']] for g in grps])
