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
"""The Storwize/SVC CLI command layer of the SVC emulator.

:class:`SVCArray` executes one CLI command line (``svcinfo lsvdisk ...``,
``svctask mkvdisk ...`` or the bare verb) against a stateful emulated
system and answers ``(stdout, stderr, exit_status)`` the way the real CLI
does, as Cinder's in-tree Storwize driver parses it (``CLIResponse``):

* concise views: a header row then one row per object, columns joined by
  ``-delim`` (or aligned with spaces), ``-nohdr`` drops the header,
  ``-filtervalue attr=value[:attr=value]`` selects rows (``*`` wildcard);
* detailed views (``lsvdisk <vdisk>``, ``lshost <host>``, ``lssystem`` ...):
  ``attribute<delim>value`` lines, sections separated by a blank line;
* capacities in bytes with ``-bytes``, else like ``10.00GB``;
* ``mk*`` verbs print ``<Object>, id [N], successfully created``;
* failures print ``CMMVCnnnnE <text>`` on stderr, exit status 1.

The system reports code level 8.5.0.6: with it the in-tree driver finds
host ports with ``lstargetportfc`` + ``lsfcportsetmember`` (portset64),
deletes volumes with ``rmvdisk -removehostmappings`` and extends volumes
that have FlashCopy mappings.

Quotes: the driver wraps names in double quotes, which a real SVC's shell
strips; one level of matching surrounding quotes is stripped here too, so
callers may pass argv as ``shlex.split`` gives it or the driver's list.
"""

from __future__ import annotations

import collections
import os
import random
import threading
import time
from collections.abc import Callable
from fnmatch import fnmatchcase
from typing import Any

from cinder_dpm_ephemeral.emulators import faults
from cinder_dpm_ephemeral.emulators import volume_host
from cinder_dpm_ephemeral.emulators.lunstore import LunStore
from cinder_dpm_ephemeral.emulators.svc import (
    fcmap, grains, host, system, vdisk)
from cinder_dpm_ephemeral.emulators.svc.common import (
    E_INVALID_FILTER, E_UNSTABLE, E_UNSUPPORTED, E_UNSUPPORTED_PARAM, Args,
    CLIError, Ctx, Detail, Result, Table)
from cinder_dpm_ephemeral.emulators.svc.state import (
    DEFAULT_CODE_LEVEL, SVCState)

Handler = Callable[[Ctx, Args], Result]

#: Per-command latency for benchmarks (seconds). Stated assumption, not a
#: measured IBM figure: IBM publishes no CLI latency. Cinder's Storwize
#: driver runs every command as a new SSH exec on a pooled connection;
#: an ``lsvdisk`` on a lightly loaded system answers in the order of a
#: tenth of a second to a few tenths, so benchmarks use 0.1 s (the lower
#: end, which favours the driver that runs more commands: stock).
BENCH_CLI_LATENCY = 0.1

#: Fault modes a campaign draws from (:meth:`SVCArray.set_faults`), with
#: their default weights, and what each imitates:
#:
#: * ``busy``: ``CMMVC5786E The action failed because the cluster is not in
#:   a stable state``, before the command does anything. The SVC CLI
#:   answers this while the configuration node is failing over or a node
#:   is being added (IBM Documentation, CLI messages, CMMVC5786E).
#: * ``drop_before`` / ``drop_after``: the SSH connection is closed with no
#:   exit status, before or after the command took effect: a configuration
#:   node warm start or failover moves the management IP address to
#:   another node and ends the SSH sessions open on it (IBM
#:   Documentation, configuration node). After the command took effect
#:   the client cannot know it did.
#: * ``slow``: the answer comes ``slow_seconds`` late (a busy
#:   configuration node; Cinder's SSH pool runs commands without a
#:   timeout, so slow is only slow).
SVC_FAULT_MODES = {'busy': 4.0, 'drop_before': 2.0, 'drop_after': 2.0,
                   'slow': 2.0}

# verb: (handler, options taking a value, flag options)
_VERBS: dict[str, tuple[Handler, str, str]] = {
    # system
    'lssystem': (system.lssystem, 'delim', 'bytes nohdr'),
    'lsnode': (system.lsnode, 'delim filtervalue', 'nohdr'),
    'lsnodecanister': (system.lsnode, 'delim filtervalue', 'nohdr'),
    'lsportfc': (system.lsportfc, 'delim filtervalue', 'nohdr'),
    'lstargetportfc': (system.lstargetportfc, 'delim filtervalue', 'nohdr'),
    'lsfcportsetmember': (system.lsfcportsetmember, 'delim filtervalue',
                          'nohdr'),
    'lsportip': (system.lsportip, 'delim filtervalue', 'nohdr'),
    'lsip': (system.lsip, 'delim filtervalue', 'nohdr'),
    'lsiogrp': (system.lsiogrp, 'delim filtervalue', 'nohdr bytes'),
    'lsmdiskgrp': (system.lsmdiskgrp, 'delim filtervalue', 'nohdr bytes'),
    'lslicense': (system.lslicense, 'delim', 'nohdr'),
    'lsguicapabilities': (system.lsguicapabilities, 'delim', 'nohdr'),
    'lscloudcallhome': (system.lscloudcallhome, 'delim', 'nohdr'),
    'registerplugin': (system.no_output,
                       'name version uniquekey metadata', ''),
    'lsiscsiauth': (system.lsiscsiauth, 'delim filtervalue', 'nohdr'),
    'lsthrottle': (system.lsthrottle, 'delim filtervalue', 'nohdr bytes'),
    # vdisks
    'mkvdisk': (vdisk.mkvdisk,
                'name mdiskgrp iogrp size unit rsize warning grainsize '
                'easytier copies udid vtype cache accessiogrp node',
                'autoexpand compressed nofmtdisk'),
    'rmvdisk': (vdisk.rmvdisk, '', 'force removehostmappings'),
    'expandvdisksize': (vdisk.expandvdisksize, 'size unit rsize copy',
                        'fmtdisk'),
    'chvdisk': (vdisk.chvdisk,
                'name warning easytier udid autoexpand rate cache copy',
                'unitmb'),
    'lsvdisk': (vdisk.lsvdisk, 'delim filtervalue', 'nohdr bytes'),
    'lsvdiskcopy': (vdisk.lsvdiskcopy, 'delim filtervalue copy',
                    'nohdr bytes'),
    # hosts and mappings
    'mkhost': (host.mkhost,
               'name fcwwpn hbawwpn iscsiname nqn type site portset iogrp '
               'protocol', 'force'),
    'addhostport': (host.addhostport, 'fcwwpn hbawwpn iscsiname', 'force'),
    'rmhostport': (host.rmhostport, 'fcwwpn hbawwpn iscsiname', 'force'),
    'chhost': (host.chhost, 'name site type chapsecret', 'nosite'),
    'rmhost': (host.rmhost, '', 'force'),
    'addhostiogrp': (host.addhostiogrp, 'iogrp', 'iogrpall'),
    'lshost': (host.lshost, 'delim filtervalue', 'nohdr'),
    'lsfabric': (host.lsfabric, 'delim filtervalue host wwpn node port',
                 'nohdr'),
    'mkvdiskhostmap': (host.mkvdiskhostmap, 'host scsi iogrp', 'force'),
    'rmvdiskhostmap': (host.rmvdiskhostmap, 'host', ''),
    'lsvdiskhostmap': (host.lsvdiskhostmap, 'delim filtervalue', 'nohdr'),
    'lshostvdiskmap': (host.lshostvdiskmap, 'delim filtervalue', 'nohdr'),
    # FlashCopy
    'mkfcmap': (fcmap.mkfcmap,
                'source target name consistgrp copyrate cleanrate '
                'grainsize iogrp', 'autodelete incremental keeptarget'),
    'prestartfcmap': (fcmap.prestartfcmap, '', 'restore'),
    'startfcmap': (fcmap.startfcmap, '', 'prep restore'),
    'stopfcmap': (fcmap.stopfcmap, '', 'force split'),
    'rmfcmap': (fcmap.rmfcmap, '', 'force'),
    'chfcmap': (fcmap.chfcmap,
                'name copyrate cleanrate autodelete consistgrp',
                'noconsistgrp force'),
    'lsfcmap': (fcmap.lsfcmap, 'delim filtervalue', 'nohdr'),
    'lsvdiskfcmappings': (fcmap.lsvdiskfcmappings, 'delim', 'nohdr'),
    'mkfcconsistgrp': (fcmap.mkfcconsistgrp, 'name', 'autodelete'),
    'prestartfcconsistgrp': (fcmap.prestartfcconsistgrp, '', 'restore'),
    'startfcconsistgrp': (fcmap.startfcconsistgrp, '', 'prep restore'),
    'stopfcconsistgrp': (fcmap.stopfcconsistgrp, '', 'force split'),
    'rmfcconsistgrp': (fcmap.rmfcconsistgrp, '', 'force'),
    'lsfcconsistgrp': (fcmap.lsfcconsistgrp, 'delim filtervalue', 'nohdr'),
}


def _unquote(arg: str) -> str:
    if len(arg) >= 2 and arg[0] == arg[-1] and arg[0] in '"\'':
        return arg[1:-1]
    return arg


def parse(argv: list[str]) -> tuple[Handler, Args]:
    """argv (with or without ``svcinfo``/``svctask``) to handler and args."""
    words = [_unquote(a) for a in argv]
    if words and words[0] in ('svcinfo', 'svctask'):
        words = words[1:]
    if not words or words[0] not in _VERBS:
        raise CLIError(E_UNSUPPORTED)
    verb = words[0]
    handler, valued, flags = _VERBS[verb]
    valued_set, flag_set = set(valued.split()), set(flags.split())
    opts: dict[str, str | bool] = {}
    obj = None
    i = 1
    while i < len(words):
        w = words[i]
        if w.startswith('-') and len(w) > 1 and not w[1:].isdigit():
            name = w[1:]
            if name in flag_set:
                opts[name] = True
            elif name in valued_set:
                if i + 1 >= len(words):
                    raise CLIError(E_UNSUPPORTED_PARAM % name)
                opts[name] = words[i + 1]
                i += 1
            else:
                raise CLIError(E_UNSUPPORTED_PARAM % name)
        elif obj is None:
            obj = w
        else:
            raise CLIError(E_UNSUPPORTED_PARAM % w)
        i += 1
    return handler, Args(verb, opts, obj)


def _filters(spec: str, header: list[str]) -> list[tuple[int, str]]:
    out = []
    for part in spec.split(':'):
        key, sep, value = part.partition('=')
        if not sep or key not in header:
            raise CLIError(E_INVALID_FILTER)
        out.append((header.index(key), _unquote(value)))
    return out


def render(result: Result, args: Args) -> str:
    """A view as the CLI prints it, honouring -delim/-nohdr/-filtervalue."""
    if isinstance(result, str):
        return result + '\n' if result else ''
    delim = args.get('delim')
    nohdr = args.flag('nohdr')
    if isinstance(result, Table):
        rows = result.rows
        spec = args.get('filtervalue')
        if spec:
            flt = _filters(spec, result.header)
            rows = [r for r in rows
                    if all(fnmatchcase(r[i], v) for i, v in flt)]
        if not rows:
            return ''      # a real SVC prints nothing, not even the header
        lines = ([] if nohdr else [result.header]) + rows
        if delim is not None:
            return ''.join(delim.join(r) + '\n' for r in lines)
        widths = [max(len(r[i]) for r in lines)
                  for i in range(len(result.header))]
        out = []
        for r in lines:
            cells = (c.ljust(w) for c, w in zip(r, widths, strict=True))
            out.append(' '.join(cells).rstrip() + '\n')
        return ''.join(out)
    assert isinstance(result, Detail)
    sep = ' ' if delim is None else delim
    blocks = []
    for section in result.sections:
        blocks.append(''.join(
            (v if nohdr else k + sep + v) + '\n' for k, v in section))
    return '\n'.join(blocks)


def _volume_host_wwpns(state_dir: str) -> list[str]:
    try:
        return [w.upper() for w in volume_host.load(state_dir)['wwpns']]
    except FileNotFoundError:
        return []


class SVCArray:
    """An emulated Storwize/SVC system behind the CLI.

    :param state_dir: where ``svc-state.json`` and the LUN store live
    :param system_name: ``lssystem`` name; node WWNNs/WWPNs and vdisk UIDs
        are derived from it, so they are stable across restarts
    :param pools: ``{name: capacity_bytes}`` storage pools (mdisk groups);
        pools missing from a saved state are added
    :param code_level: reported ``code_level`` (default 8.5.0.6; the
        driver's behaviour branches on it)
    :param time_scale: background copy runs this many times faster than
        real time (tests: e.g. 1e6)
    :param clock: time source in seconds (default ``time.time``)
    :param latency: seconds added to every command
    :param fail_rate: probability (0..1) that a command fails with the
        transient ``CMMVC5786E``, before doing anything
    :param fabric_logins: whether host ports appear logged in to the node
        ports (``lsfabric``, ``lshost`` port state)
    :param fcmap_source_limit: FlashCopy mappings one vdisk may be the
        source of (256 on a real SVC; lower it to test the limit)
    :param seed: seed of the random source behind ``fail_rate``
    :param sleep: how ``latency`` waits (default ``time.sleep``)
    """

    def __init__(self, state_dir: str | os.PathLike[str],
                 system_name: str = 'svc-emulator',
                 pools: dict[str, int] | None = None,
                 code_level: str = DEFAULT_CODE_LEVEL,
                 time_scale: float = 1.0,
                 clock: Callable[[], float] = time.time,
                 latency: float = 0.0,
                 fail_rate: float = 0.0,
                 fabric_logins: bool = True,
                 fcmap_source_limit: int = fcmap.MAX_TARGETS_PER_SOURCE,
                 seed: int | None = None,
                 sleep: Callable[[float], Any] = time.sleep) -> None:
        if pools is None:
            pools = {'pool0': 1 << 40}
        self.state_dir = str(state_dir)
        os.makedirs(self.state_dir, exist_ok=True)
        self._lock = threading.RLock()
        self.state = SVCState(self.state_dir, system_name, pools, code_level)
        self.luns = LunStore(self.state_dir)
        self.ctx = Ctx(state=self.state, luns=self.luns, clock=clock,
                       time_scale=time_scale, fabric_logins=fabric_logins,
                       fcmap_source_limit=fcmap_source_limit)
        self.latency = latency
        self.fail_rate = fail_rate
        self._random = random.Random(seed)
        self._sleep = sleep
        #: faults injected per verb, in order: [count, error or drop mode]
        self._faults: dict[str, list[list[Any]]] = {}
        #: random faults of a campaign (:meth:`set_faults`)
        self.dice = faults.FaultDice(SVC_FAULT_MODES)
        # the last commands run, newest last (for tests and debugging)
        self.commands: collections.deque[list[str]] = collections.deque(
            maxlen=10000)
        self.commands_run = 0

    # -- the CLI -------------------------------------------------------------
    def run(self, argv: list[str]) -> tuple[str, str, int]:
        """Run one command. Returns (stdout, stderr, status).

        Raises only :class:`faults.DropConnection` (a random fault of a
        campaign: the SSH server then drops the connection unanswered).
        """
        if self.latency > 0:
            self._sleep(self.latency)
        words = [a for a in argv if a not in ('svcinfo', 'svctask')]
        mode = self._take_fault(_unquote(words[0]) if words else '')
        if mode is not None and mode not in ('drop_before', 'drop_after',
                                             'slow'):
            with self._lock:
                self.commands.append(argv)
                self.commands_run += 1
            return '', mode + '\n', 1
        mode = mode or self.dice.draw()
        if mode == 'slow':
            self._sleep(self.dice.param('slow_seconds', 1.0))
        elif mode == 'busy':
            return '', E_UNSTABLE + '\n', 1
        elif mode == 'drop_before':
            raise faults.DropConnection(f'dropped before {argv[:2]}')
        answer = self._run_saved(argv)
        if mode == 'drop_after':
            raise faults.DropConnection(f'dropped after {argv[:2]}')
        return answer

    def _take_fault(self, verb: str) -> str | None:
        """The next fault :meth:`inject_fault` queued for ``verb``."""
        with self._lock:
            queue = self._faults.get(verb)
            while queue and queue[0][0] <= 0:
                queue.pop(0)
            if not queue:
                return None
            queue[0][0] -= 1
            return queue[0][1]

    def set_faults(self, rate: float, seed: int | None = None,
                   modes: dict[str, float] | None = None,
                   slow_seconds: float = 1.0) -> None:
        """Random faults at ``rate`` per command (0: none).

        Modes and weights: :data:`SVC_FAULT_MODES`.
        """
        self.dice.configure(rate, seed, modes, slow_seconds=slow_seconds)

    def fault_stats(self) -> dict[str, Any]:
        return self.dice.stats()

    def _run_saved(self, argv: list[str]) -> tuple[str, str, int]:
        with self._lock:
            try:
                return self._run(list(argv))
            except CLIError as e:
                return '', e.message + '\n', 1
            except Exception as e:  # an emulator bug must not kill SSH
                return '', 'CMMVC5786E internal error: %r\n' % (e,), 1
            finally:
                try:
                    self.state.save()
                except OSError:
                    pass

    def _run(self, argv: list[str]) -> tuple[str, str, int]:
        self.commands.append(argv)
        self.commands_run += 1
        handler, args = parse(argv)
        if self.fail_rate > 0 and self._random.random() < self.fail_rate:
            raise CLIError(E_UNSTABLE)
        fcmap.tick(self.ctx)
        result = handler(self.ctx, args)
        return render(result, args), '', 0

    # -- test hooks ----------------------------------------------------------
    def inject_fault(self, verb: str, count: int, error: str) -> None:
        """Fail the next ``count`` calls of ``verb`` with ``error``.

        Faults injected for one verb are used in the order injected.

        ``error`` is a CMMVC message, e.g.
        ``'CMMVC5786E The action failed ...'``, or ``'drop_before'`` /
        ``'drop_after'``: the SSH connection is dropped unanswered before
        or after the command took effect, or ``'slow'``: the command
        runs, ``slow_seconds`` late (see :data:`SVC_FAULT_MODES`).
        """
        with self._lock:
            self._faults.setdefault(verb, []).append([count, error])

    def clear_faults(self) -> None:
        """Forget the injected faults not used yet."""
        with self._lock:
            self._faults.clear()

    def tick(self) -> None:
        """Advance background copies to the clock's now."""
        with self._lock:
            fcmap.tick(self.ctx)
            self.state.save()

    def write(self, ref: str, offset: int, data: bytes) -> dict[str, int]:
        """A host's write to vdisk ``ref`` (id or name), FlashCopy applied.

        Stands in for a guest writing to its disk: the grains the array
        must copy first (``grains.write_cost``) are counted in
        ``svc_fc_write_split_bytes`` and on the mappings, then the data
        lands in the LUN. A target of a ``stopped`` (or ``prepared``)
        mapping is offline, as on the array. Returns ``{'write': bytes
        the array copied for this write}``.
        """
        with self._lock:
            fcmap.tick(self.ctx)
            cost = self._write(self._vdisk(ref), offset, data)
            self.state.save()
            return cost

    def _vdisk(self, ref: str) -> dict[str, Any]:
        vd = self.state.find('vdisks', ref)
        if vd is None:
            raise KeyError(f'vdisk {ref} does not exist on the SVC '
                           f'emulator')
        for m in self.state.fcmaps_of_vdisk(vd['id']):
            if m['target'] == vd['id'] and m['status'] in (
                    'stopped', 'prepared', 'preparing'):
                raise OSError(
                    f'vdisk {vd["name"]} is offline: target of FlashCopy '
                    f'mapping {m["name"]} in state {m["status"]}; start '
                    f'or delete the mapping')
        return vd

    def _write(self, vd: dict[str, Any], offset: int,
               data: bytes) -> dict[str, int]:
        cost = grains.write_cost(self.state.data, vd, offset, len(data))
        if cost['write']:
            self.luns.count(grains.SPLIT_COUNTER, cost['write'])
        self.luns.write(vd['uid'], offset, data)
        return cost

    def guest_write(self, ref: str, share: float, block: int = 64 << 10,
                    seed: int = 0, span: int | None = None
                    ) -> dict[str, int]:
        """A guest writes ``share`` of the vdisk's ``block``-sized blocks.

        Blocks chosen at random (seeded) in the first ``span`` bytes
        (default: all), random content; each applied like :meth:`write`.
        For benchmarks over the emulator process (JSON arguments).
        Returns ``{'write': array bytes copied, 'written': bytes}``.
        """
        rnd = random.Random(seed)
        with self._lock:
            fcmap.tick(self.ctx)
            vd = self._vdisk(ref)
            limit = int(vd['capacity']) if span is None else min(
                span, int(vd['capacity']))
            nblocks = limit // block
            picks = sorted(rnd.sample(range(nblocks),
                                      int(nblocks * share)))
            copied = 0
            for b in picks:
                copied += self._write(vd, b * block,
                                      rnd.randbytes(block))['write']
            self.state.save()
            return {'write': copied, 'written': len(picks) * block}

    def fc_bytes(self) -> dict[str, dict[str, int]]:
        """Per vdisk name: ``own``, the capacity it holds of its own.

        256 KiB grains copied to it by FlashCopy (background copy,
        cleaning, a write's split) since its mapping started, or written
        by a host through :meth:`write`: what a thin vdisk consumes.
        Writes through ``LunStore.open_path`` (Cinder's image copies) are
        not seen.
        """
        with self._lock:
            fcmap.tick(self.ctx)
            return {v['name']: {'own': grains.own_bytes(v)}
                    for v in self.state.data['vdisks'].values()}

    def recent_commands(self, n: int = 100) -> list[list[str]]:
        """The last ``n`` commands run (argv lists), oldest first."""
        with self._lock:
            return [list(c) for c in list(self.commands)[-n:]]

    def inventory(self) -> dict[str, Any]:
        """Everything the array holds, for leak checks in tests.

        Lists of plain dicts: ``vdisks`` (name, id, vdisk_UID, capacity,
        pool, thin, compressed, formatted, iogrp, easytier, throttle:
        IOPs_limit / bandwidth_limit_MB, real_capacity),
        ``hosts`` (name, id, wwpns),
        ``host_mappings`` (host_name, vdisk_name, scsi_id),
        ``fcmaps`` (id, name, source/target names, status, progress,
        copy_rate, autodelete, group), ``fcconsistgrps`` (names),
        ``nodes`` (id, name, WWNN, wwpns: physical and NPIV ports),
        ``pools`` (name, capacity, free, used, virtual), ``luns``
        (LUN ids in the LUN store) and ``volume_host_wwpns`` (the
        emulated volume host's ports, :mod:`..volume_host`, upper case).
        """
        with self._lock:
            fcmap.tick(self.ctx)
            self.state.save()
            d = self.state.data
            vd = {v['id']: v for v in d['vdisks'].values()}
            hs = {h['id']: h for h in d['hosts'].values()}
            grps = {g['id']: g['name'] for g in d['fcgrps'].values()}
            pools = {p['id']: p for p in d['pools'].values()}
            return {
                'vdisks': [{'name': v['name'], 'id': v['id'],
                            'vdisk_UID': v['uid'],
                            'capacity': v['capacity'],
                            'pool': pools[v['pool']]['name'],
                            'thin': v['thin'],
                            'compressed': v['compressed'],
                            'formatted': v['formatted'],
                            'iogrp': v['iogrp'],
                            'easytier': v['easytier'],
                            'throttle': dict(v.get('throttle') or {}),
                            'real_capacity': self.state.vdisk_real(v),
                            'own_bytes': grains.own_bytes(v)}
                           for v in sorted(vd.values(),
                                           key=lambda v: v['id'])],
                'hosts': [{'name': h['name'], 'id': h['id'],
                           'wwpns': list(h['wwpns'])}
                          for h in sorted(hs.values(),
                                          key=lambda h: h['id'])],
                'host_mappings': [
                    {'host_name': hs[m['host']]['name'],
                     'vdisk_name': vd[m['vdisk']]['name'],
                     'scsi_id': m['scsi']}
                    for m in sorted(d['hostmaps'],
                                    key=lambda m: (m['host'], m['scsi']))],
                'fcmaps': [{'id': m['id'], 'name': m['name'],
                            'source': vd[m['source']]['name'],
                            'target': vd[m['target']]['name'],
                            'status': m['status'],
                            'progress': fcmap._progress(m),
                            'copy_rate': m['copyrate'],
                            'autodelete': m['autodelete'],
                            'background_bytes': int(m.get('bg_bytes', 0)),
                            'write_split_bytes': int(
                                m.get('split_bytes', 0)),
                            'cleaning_bytes': int(m.get('clean_bytes', 0)),
                            'group': grps.get(m.get('grp'), '')}
                           for m in sorted(d['fcmaps'].values(),
                                           key=lambda m: m['id'])],
                'fcconsistgrps': sorted(grps.values()),
                'volume_host_wwpns': _volume_host_wwpns(self.state_dir),
                'nodes': [{'id': n['id'], 'name': n['name'],
                           'WWNN': n['WWNN'],
                           'wwpns': [w for p in n['ports']
                                     for w in (p['WWPN'], p['npiv_WWPN'])]}
                          for n in d['nodes']],
                'pools': [dict(name=p['name'], capacity=p['capacity'],
                               **self.state.pool_usage(p))
                          for p in sorted(pools.values(),
                                          key=lambda p: p['id'])],
                'luns': sorted(self.luns.list()),
            }

    def close(self) -> None:
        with self._lock:
            self.state.save()
