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
"""./run bench cold: a cold golden build against the machine's copy limit.

One run, side by side, ``repeats`` times each (default 5):

* the **reference**, what the issue calls the copy limit:
  ``qemu-img convert -q -f FMT -O raw -n IMAGE DEST`` of the very image
  file Glance serves (in the page cache, as Glance's store is here) into
  ``DEST``, an existing sparse file of the image's virtual size in the
  same file system as the emulated LUNs (made before the clock starts, as
  the array makes the LUN), then ``fsync(DEST)``; and the same into a new
  file (no ``-n``, the main bench's reference). Each is timed just before
  and just after each of our builds
  (:func:`tools.bench.storage.raw_reference_seconds`); a trial's
  reference is the fastest of the four (the machine's best copy around
  that build: it never flatters ours). Before each timed copy and before
  the build: ``os.sync()``, ``--settle`` seconds of pause (default 0;
  with 1 s the references were steadier and ours slower, see
  doc/benchmarks.md), and with ``--warm-mib N``, N MiB written to a
  file and unlinked, meant to give the copy page cache pages the virtual
  machine's host has not taken back (:mod:`tools.bench.first_touch`;
  the default between the runs of 05:54Z and 06:06Z on 2026-12-03, off
  since: slow builds came more often with it);
* **ours**: the first volume from that image, never seen before, through
  the real Cinder (API, scheduler, volume service) on the emulated SVC
  and the file-backed Glance stand-in; the time is the golden volume's
  own ``build_seconds`` (download start to image durable on the LUN: LUN
  creation, attach, download, conversion, fsync included; the detach too
  with ``dpm_ephemeral_detach_beside_clone`` False, while by default it
  runs after, beside the first clone, and counts in the end-to-end time
  of the volume that asked for the build: ``fraction_end_to_end``). Each
  on a running deployment: before the timed build the volume service
  built one golden from another image (1 MiB of data), as a deployment
  that has served an image before has, so on SVC the volume host's host
  object exists and the fabric's target ports are known; what a
  brand-new volume service pays once at its very first build is reported
  apart (``phases.FMT.first_build``), and ``--new-service`` times every
  build as that first one (the figures before 2026-12-02's night).

The image is a realistic boot disk made once per run: a GPT with an EFI
System partition and an ext4 root file system filled to ``--fill`` (0.8)
of its size with files like a distribution's (text, binaries with
zero-padded sections, compressed archives, preallocated data files), as
qcow2 (``qemu-img convert -O qcow2``, what image builders run) and raw.

With ``--glance-mbps R`` each download is paced at R MB/s (a network
link to Glance; the reference still reads the local file: that is the
copy limit of the host, not of the link).

With ``--ab OPTION`` each format is also built with that boolean backend
option False (same image, same run), the two variants alternating build
by build (from 2026-12-01; before, the variant's ``repeats`` builds came
after all of the others): the figures of that variant are under
``without`` in the results and ``..._without_OPTION`` in the headline.
``--ab OPTION=VALUE`` sets the option to VALUE instead
(``..._OPTION_VALUE``); ``--ab module.NAME=VALUE`` sets a constant of
``cinder_dpm_ephemeral.module`` in this process for that variant (the
volume service runs in it), e.g. ``image_cache.readahead.DROP_EVERY=0``
(``..._NAME_VALUE``). ``--set OPTION=VALUE`` (repeatable) sets a backend
option for every build of both variants, e.g. spare LUNs off
(``dpm_ephemeral_spare_golden_luns=0``; on by default since 2026-12-03)
while ``--ab dpm_ephemeral_read_ahead`` measures the read-ahead.

Each build's copy step is traced (:mod:`tools.bench.copy_trace`): this
process's CPU seconds (user, system) and the machine's, pressure
stalls, the garbage collector's pauses and the services' periodic tasks
that fell in it, per trial under ``copy_trace``; ``slow_copy_steps`` gives, per
format, the median trace of the steps over 1.25 times the median step
and of the others (doc/benchmarks.md, "The slow copy steps").

The fraction is reference / ours, per trial (paired: the reference is
measured around that very build), reported as the median with min and
max. Results: ``doc/results/bench-cold.json`` (``--out`` to change); the
last line printed is its ``headline``.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import random
import shutil
import subprocess
import tempfile
import time
import uuid
import warnings
from collections.abc import Callable
from typing import Any

from tools.bench import copy_trace

MiB = 1024 * 1024
#: targets of issue 12 point 5 (reference / ours)
TARGETS = {'qcow2': 0.7, 'raw': 0.9}

_WORDS = (b'the of and to in is for on that with kernel device driver '
          b'module config option value user system file path error '
          b'return status volume image disk partition boot service '
          b'network address package version license copyright library '
          b'function struct static const void int char unsigned').split()


def _text(rng: random.Random, n: int) -> bytes:
    lines = []
    size = 0
    while size < n:
        line = b' '.join(rng.choices(_WORDS, k=rng.randint(4, 14))) + b'\n'
        lines.append(line)
        size += len(line)
    return b''.join(lines)[:n]


def _binary(rng: random.Random, n: int, strings: bytes) -> bytes:
    """An executable-like file: code, string tables, zero padding."""
    out = bytearray(b'\x7fELF\x02\x01\x01' + bytes(57))
    while len(out) < n:
        kind = rng.random()
        if kind < 0.6:
            out += rng.randbytes(rng.randint(4, 64) * 1024)       # code
        elif kind < 0.8:
            off = rng.randrange(len(strings) - 65536)
            out += strings[off:off + rng.randint(4, 64) * 1024]   # strings
        else:
            out += bytes(4096 - len(out) % 4096)                  # padding
            out += bytes(rng.randint(1, 4) * 4096)
    return bytes(out[:n])


def fill_tree(root: str, total: int, seed: int) -> int:
    """Write files like a distribution's under ``root``; their bytes."""
    rng = random.Random(seed)
    strings = _text(rng, 4 * MiB)
    written = 0
    n = 0
    # (share of the bytes, directory, size range, maker)
    kinds = [
        (0.15, 'usr/share/doc', (2048, 256 * 1024), 'text'),
        (0.45, 'usr/lib', (64 * 1024, 8 * MiB), 'binary'),
        (0.30, 'var/cache/apt/archives', (256 * 1024, 24 * MiB), 'random'),
        (0.10, 'var/lib/db', (MiB, 16 * MiB), 'prealloc'),
    ]
    for share, sub, (lo, hi), kind in kinds:
        quota = int(total * share)
        d = os.path.join(root, sub)
        os.makedirs(d, exist_ok=True)
        while quota > 0:
            size = min(quota, rng.randint(lo, hi))
            if kind == 'text':
                data = _text(rng, size)
            elif kind == 'binary':
                data = _binary(rng, size, strings)
            elif kind == 'random':
                data = rng.randbytes(size)
            else:
                # a preallocated data file: a used head, zeros behind it
                used = size // 3
                data = rng.randbytes(used) + bytes(size - used)
            with open(os.path.join(d, f'f{n:05d}'), 'wb') as f:
                f.write(data)
            n += 1
            quota -= size
            written += size
    etc = os.path.join(root, 'etc')
    os.makedirs(etc, exist_ok=True)
    with open(os.path.join(etc, 'os-release'), 'wb') as f:
        f.write(b'NAME="dpm cold bench"\nVERSION_ID="%d"\n' % seed)
    return written


def make_full_disk(path: str, size: int, seed: int = 0,
                   fill: float = 0.8) -> dict[str, Any]:
    """A raw GPT boot disk whose ext4 root is ``fill`` full; its facts."""
    from cinder_dpm_ephemeral.testing import disks
    sector = disks.SECTOR
    sectors = size // sector
    esp_first = disks.ALIGN
    esp_last = esp_first + 16 * MiB // sector - 1
    root_first = esp_last + 1
    root_last = ((sectors - 2 - disks.GPT_ENTRY_SECTORS + 1)
                 // disks.ALIGN * disks.ALIGN - 1)
    rng = random.Random(seed)
    parts = [
        disks.Partition(1, esp_first, esp_last, 'vfat',
                        gpt_type=disks.ESP_TYPE, name='EFI System Partition'),
        disks.Partition(2, root_first, root_last, 'ext4',
                        gpt_type=disks.LINUX_FS_TYPE, name='rootfs'),
    ]
    work = tempfile.mkdtemp(prefix='cold-disk-',
                            dir=os.path.dirname(os.path.abspath(path)))
    try:
        esp, rootfs, tree = (os.path.join(work, n)
                             for n in ('esp', 'root', 'tree'))
        disks.make_fat16(esp, parts[0].size, {
            'EFI/BOOT/BOOTX64.EFI': b'MZ' + rng.randbytes(200 * 1024)},
            hidden_sectors=esp_first)
        files = fill_tree(tree, int(parts[1].size * fill), seed)
        with open(rootfs, 'wb') as f:
            f.truncate(parts[1].size)
        subprocess.run(['mkfs.ext4', '-q', '-F', '-L', 'rootfs', '-d', tree,
                        rootfs], check=True, capture_output=True)
        shutil.rmtree(tree)
        with open(path, 'wb') as disk:
            disk.truncate(size)
            for p, src in zip(parts, (esp, rootfs), strict=True):
                disks._copy_into(disk, p.offset, src)
            guid = uuid.UUID(int=rng.getrandbits(128), version=4)
            for lba, blob in disks.gpt_structures(sectors, parts, guid, seed):
                disk.seek(lba * sector)
                disk.write(blob)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(4 * MiB), b''):
            h.update(chunk)
    return {'file_bytes': files, 'sha256': h.hexdigest()}


def _allocated(path: str, fmt: str) -> int:
    """Bytes of data (not zeros, not holes) in the image, by qemu-img."""
    out = subprocess.run(['qemu-img', 'map', '--output=json', '-f', fmt,
                          path], check=True, capture_output=True, text=True)
    return sum(e['length'] for e in json.loads(out.stdout)
               if e.get('data') and not e.get('zero'))


def images_for(work: str, size: int, fill: float, seed: int
               ) -> tuple[dict[str, Any], dict[str, Any]]:
    from cinder_dpm_ephemeral.testing import images
    raw = os.path.join(work, 'cold-disk.raw')
    facts = make_full_disk(raw, size, seed, fill)
    qcow2 = os.path.join(work, 'cold-disk.qcow2')
    images.convert_raw(raw, 'qcow2', qcow2)
    made = {}
    for fmt, path in (('raw', raw), ('qcow2', qcow2)):
        made[fmt] = images.TestImage(
            path=path, disk_format=fmt, virtual_size=size,
            file_size=os.path.getsize(path), raw_sha256=facts['sha256'])
    info = {'virtual_size': size, 'fill': fill, 'seed': seed,
            'root_fs_file_bytes': facts['file_bytes'],
            'data_bytes': _allocated(raw, 'raw'),
            'qcow2_file_bytes': made['qcow2'].file_size,
            'raw_file_bytes': made['raw'].file_size,
            'raw_sha256': facts['sha256']}
    return made, info


class Phases:
    """Where a golden build's time goes: each step's seconds, per build.

    Wraps (for the benchmark only, never in the service) the steps of
    :meth:`GoldenImageCache._build_golden`: the LUN's creation, the array's
    answer whether it reads zeros, os-brick's connector properties, the
    attach and detach, and the data copy (raw stream, or qcow2 conversion,
    download and fsync included); each step's own time, without the steps
    nested in it. ``other`` is the rest of the build (database rows,
    quota, metadata, the header's download and checks). The connector
    properties and the zeros answer run beside the LUN's creation and the
    attach (``writer.Soon``): their seconds are their own thread's, any
    wait for them is counted in the step that waited, and ``total`` is
    the build's wall time, less than the sum of the steps. With
    ``dpm_ephemeral_detach_beside_clone`` (the default) ``detach`` and
    ``detach_unmap`` run after the build, beside the first clone: they
    are reported with the build but are not part of ``total``.
    """

    def __init__(self, trace: copy_trace.CopyTrace | None = None) -> None:
        #: the copy steps' traces (machine and process counters)
        self.trace = trace
        self.builds: list[dict[str, float]] = []
        #: index in ``builds`` -> the trace of that build's copy step
        self.copy_traces: dict[int, dict[str, float]] = {}
        #: what each of ``builds`` was: 'build' (a timed golden build),
        #: 'prime' (the bench's build that leaves a spare LUN behind),
        #: 'spare' (a spare LUN made after a build)
        self.kinds: list[str] = []
        self._undo: list[tuple[Any, str, Any]] = []
        # steps under way per thread: [label, seconds of the steps nested
        # in it]; a step run beside the build (writer.Soon) has its own
        self._stacks: dict[int, list[list[Any]]] = {}

    def _wrap(self, owner: Any, name: str, label: str,
              new_build: str | Callable[..., str] = '') -> None:
        import threading

        import eventlet.patcher
        clock = eventlet.patcher.original('time').monotonic
        orig = getattr(owner, name)
        phases = self

        def timed(*args: Any, **kwargs: Any) -> Any:
            if new_build:
                phases.builds.append({})
                phases.kinds.append(new_build if isinstance(new_build, str)
                                    else new_build(*args))
            stack = phases._stacks.setdefault(threading.get_ident(), [])
            frame = [label, 0.0]
            stack.append(frame)
            t0 = clock()
            try:
                return orig(*args, **kwargs)
            finally:
                took = clock() - t0
                stack.pop()
                if stack:
                    stack[-1][1] += took
                if phases.builds:
                    # each step's own time, without the steps within it
                    b = phases.builds[-1]
                    b[label] = b.get(label, 0.0) + took - frame[1]
                    if new_build:
                        b['wall'] = took
        self._undo.append((owner, name, orig))
        setattr(owner, name, timed)

    def __enter__(self) -> Phases:
        from cinder.volume import volume_utils

        from cinder_dpm_ephemeral import emulation
        from cinder_dpm_ephemeral.image_cache import cache
        from cinder_dpm_ephemeral.image_cache import driver
        from cinder_dpm_ephemeral.image_cache import spares
        from cinder_dpm_ephemeral.image_cache import stream
        from cinder_dpm_ephemeral.image_cache import writer
        from cinder_dpm_ephemeral.svc import clones
        self._wrap(cache.GoldenImageCache, '_build_golden', 'other',
                   _build_kind)
        self._wrap(spares, 'replenish', 'other', 'spare')
        self._wrap(driver.ArrayClones, 'create_golden_lun', 'lun_create')
        self._wrap(clones.SVCClones, 'reads_zeros', 'reads_zeros')
        self._wrap(volume_utils, 'brick_get_connector_properties',
                   'connector_properties')
        self._wrap(emulation.EmulatedDataPathMixin, '_attach_volume',
                   'attach')
        self._wrap(emulation.EmulatedDataPathMixin, '_detach_volume',
                   'detach')
        # within the attach and detach: the array's side (the host
        # mapping) apart from the device's (os-brick's connect and check)
        from cinder import objects
        objects.register_all()      # the in-tree driver's module needs them
        from cinder.volume import driver as cinder_driver

        from cinder_dpm_ephemeral.svc import driver as svc_driver
        self._wrap(svc_driver.StorwizeEphemeralDriver,
                   'initialize_connection', 'attach_map')
        self._wrap(svc_driver.StorwizeEphemeralDriver,
                   'terminate_connection', 'detach_unmap')
        self._wrap(cinder_driver.BaseVD, '_connect_device', 'attach_device')
        self._wrap(writer, 'write_raw_stream', 'copy')
        self._wrap(stream, 'convert_qcow2_to_device', 'copy')
        if self.trace is not None:
            # outside the step's timer: the samples are not counted in it
            for owner, name in ((writer, 'write_raw_stream'),
                                (stream, 'convert_qcow2_to_device')):
                timed = getattr(owner, name)
                self._undo.append((owner, name, timed))
                setattr(owner, name, self.trace.around(
                    timed, lambda t: self.copy_traces.__setitem__(
                        len(self.builds) - 1, t)))
        return self

    def __exit__(self, *exc: Any) -> None:
        for owner, name, orig in reversed(self._undo):
            setattr(owner, name, orig)
        self._undo = []

    def new_builds(self, since: int) -> list[dict[str, float]]:
        """The timed golden builds (kind 'build') from index ``since``."""
        return [b for b, k in zip(self.builds[since:], self.kinds[since:],
                                  strict=True) if k == 'build']

    def new_traces(self, since: int) -> list[dict[str, float] | None]:
        """The copy traces of :meth:`new_builds` (None: not traced)."""
        return [self.copy_traces.get(i)
                for i in range(since, len(self.builds))
                if self.kinds[i] == 'build']

    def summary(self) -> dict[str, Any]:
        out = self._steps('build')
        first = self._steps('prime')
        if first:
            # the first build of a brand-new volume service (the priming
            # build, 1 MiB of data): the array's steps a running
            # deployment has behind it
            out['first_build'] = first
        made = self._steps('spare')
        if made:
            # array work a spare LUN took off the builds (after them)
            out['spare_lun'] = made
        return out

    def _steps(self, kind: str) -> dict[str, Any]:
        from tools.bench import storage
        builds = [b for b, k in zip(self.builds, self.kinds, strict=True)
                  if k == kind]
        if not builds:
            return {}
        labels = sorted({k for b in builds for k in b} - {'wall'})
        out = {k: storage.summary([b.get(k) for b in builds])
               for k in labels}
        # steps run beside others (connector_properties, reads_zeros)
        # overlap: the build's time is its wall time, not their sum
        out['total'] = storage.summary([b['wall'] for b in builds
                                        if 'wall' in b])
        return out


def copy_step(trials: list[dict[str, Any]],
              builds: list[dict[str, float]],
              traces: list[dict[str, float] | None] | None = None) -> None:
    """Give each trial its build's data copy step, against the reference.

    ``copy_step_seconds`` is the build's ``copy`` step (download and
    conversion or stream onto the attached LUN, fsync included; the
    array's steps before and after it left out), and
    ``fraction_copy_step`` the trial's reference over it: what the data
    path does once the array has made and attached the LUN; and
    ``copy_trace``, that step's trace (:mod:`.copy_trace`). Only when the
    trial's builds and the timed ones pair one to one; otherwise None,
    never a guess.
    """
    paired = len(builds) == len(trials)
    traces = traces if traces and len(traces) == len(builds) else None
    for n, (trial, build) in enumerate(zip(
            trials, builds if paired else [{}] * len(trials), strict=True)):
        step = build.get('copy')
        trial['copy_step_seconds'] = step
        trial['copy_trace'] = traces[n] if paired and traces else None
        trial['fraction_copy_step'] = (
            trial['reference_seconds'] / step if step else None)


def _build_kind(cache: Any, context: Any, ictx: Any, volume: Any,
                image_meta: dict[str, Any], *rest: Any) -> str:
    """'prime' for the bench's own priming image, 'build' otherwise."""
    from tools.bench import storage
    return ('prime' if str(image_meta.get('name') or '').startswith(
        storage.PRIME_PREFIX) else 'build')


def headline(storage: dict[str, Any]) -> dict[str, Any]:
    res = storage.get('ours-svc', {})
    out: dict[str, Any] = {}
    met = {}
    for fmt, target in TARGETS.items():
        cold = res.get(f'cold_{fmt}') or {}
        fr = cold.get('fraction_copy') or {}
        key = f'cold_{fmt}_fraction_of_reference'
        out[key] = fr.get('median')
        out[f'{key}_spread'] = [fr.get('min'), fr.get('max')]
        for k in ('copy_seconds', 'reference_seconds', 'glance_bytes',
                  'fraction_end_to_end', 'reference_new_file_seconds',
                  'fraction_copy_new_file', 'peak_dirty_mb',
                  'copy_step_seconds'):
            out[f'cold_{fmt}_{k}'] = (cold.get(k) or {}).get('median')
        # the data path alone, once the LUN is attached (see copy_step)
        step = cold.get('fraction_copy_step') or {}
        out[f'cold_{fmt}_fraction_of_reference_copy_step'] = step.get(
            'median')
        out[f'cold_{fmt}_fraction_of_reference_copy_step_spread'] = [
            step.get('min'), step.get('max')]
        met[key] = (None if fr.get('min') is None
                    else fr['min'] >= target)
    out['targets'] = {f'cold_{f}_fraction_of_reference': f'>= {t}'
                      for f, t in TARGETS.items()}
    out['targets_met'] = met
    return out


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog='./run bench cold')
    parser.add_argument('--size-mib', type=int, default=1024,
                        help='virtual size of the image (default 1024)')
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--fill', type=float, default=0.8,
                        help='share of the root file system holding files')
    parser.add_argument('--formats', default='qcow2,raw')
    parser.add_argument('--settle', type=float, default=0.0,
                        help='seconds of pause after the os.sync() before '
                             'each timed copy and the build (default 0)')
    parser.add_argument('--warm-mib', type=int, default=None,
                        help='MiB written to a file and unlinked before '
                             'each timed copy, meant to give it page cache '
                             'pages the host has not taken back (default '
                             '0: none; it made slow builds more frequent, '
                             'doc/benchmarks.md; tools/bench/'
                             'first_touch.py)')
    parser.add_argument('--svc-latency', type=float, default=None,
                        help='seconds per SVC CLI command (default: the '
                             'main bench\'s, svc.cli.BENCH_CLI_LATENCY)')
    parser.add_argument('--glance-mbps', type=float, default=None,
                        help='pace each download at this many MB/s, as a '
                             'network link to Glance would (default: as '
                             'fast as the stand-in reads its file)')
    parser.add_argument('--ab', metavar='OPTION[=VALUE]', default=None,
                        help='also build each format with this backend '
                             'option False (e.g. dpm_ephemeral_read_ahead)'
                             ' or VALUE, or this module constant '
                             '(image_cache.readahead.DROP_EVERY=0) set to '
                             'VALUE, alternating build by build in this '
                             'run; its figures are under "without"')
    parser.add_argument('--set', metavar='OPTION=VALUE', action='append',
                        default=[],
                        help='a backend option set for every build (with '
                             '--ab, for both variants), e.g. '
                             'dpm_ephemeral_spare_golden_luns=0; repeatable')
    parser.add_argument('--new-service', action='store_true',
                        help='time each build as the first of a brand-new '
                             'volume service (default: on a running '
                             'deployment, after a build of another image)')
    parser.add_argument('--out', default=os.path.join(
        'doc', 'results', 'bench-cold.json'))
    args = parser.parse_args(argv)
    results = run(size_mib=args.size_mib, repeats=args.repeats,
                  formats=[f for f in args.formats.split(',') if f],
                  fill=args.fill, settle=args.settle,
                  svc_latency=args.svc_latency, glance_mbps=args.glance_mbps,
                  ab=args.ab, new_service=args.new_service,
                  warm_mib=args.warm_mib,
                  options=dict(ab_variant(spec)[:2] for spec in args.set))
    os.makedirs(os.path.dirname(args.out) or '.', exist_ok=True)
    with open(args.out, 'w') as f:
        json.dump(results, f, indent=2, default=str)
    print(f'results: {args.out}')
    print(json.dumps(results['headline']))
    return 0


def run(size_mib: int = 1024, repeats: int = 5,
        formats: list[str] | None = None, fill: float = 0.8,
        settle: float = 0.0, svc_latency: float | None = None,
        glance_mbps: float | None = None, ab: str | None = None,
        new_service: bool = False,
        warm_mib: int | None = None,
        options: dict[str, Any] | None = None) -> dict[str, Any]:
    """The cold benchmark (see the module's doc); its results.

    Also what ``./run bench [--quick]`` runs for the headline's
    ``cold_*_fraction_of_reference`` (1 GiB, 5 repeats, no variant).
    ``options``: backend options of every build (``--set``).
    """
    options = dict(options or {})
    warnings.simplefilter('ignore')
    from cinder import monkey_patch
    monkey_patch.patch()
    from cinder_dpm_ephemeral.emulators.svc import cli as svc_cli
    from tools.bench import storage

    results: dict[str, Any] = {
        'started': time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime()),
        'load_average': os.getloadavg(), 'cpus': os.cpu_count(),
        'qemu_img': subprocess.run(['qemu-img', '--version'],
                                   capture_output=True, text=True
                                   ).stdout.splitlines()[0],
        'reference': ('per trial, the fastest of four copies, two before '
                      'and two after the build: qemu-img convert -q -f FMT '
                      '-O raw -n IMAGE DEST; fsync(DEST), DEST an existing '
                      'sparse file of the virtual size beside the LUN files '
                      '(made before the clock starts), and the same without '
                      '-n into a new DEST; IMAGE the file Glance serves, in '
                      'the page cache; os.sync() (and --settle seconds of '
                      'pause; warm_bytes written to a file and unlinked, '
                      'when set) before each timed copy and before the '
                      'build'),
        'reference_new_file': ('mean of the two new-file copies '
                               '(the main bench\'s reference)'),
        'ours': ('golden build_seconds, real Cinder, emulated SVC; '
                 + ('each build the first of a brand-new volume service'
                    if new_service else
                    'each build on a running deployment: the volume '
                    'service built one golden (another image, 1 MiB of '
                    'data) before it, whose steps are phases.FMT.'
                    'first_build'))}
    work = tempfile.mkdtemp(prefix='bench-cold-')
    stack = contextlib.ExitStack()
    try:
        t = time.monotonic()
        made, info = images_for(work, size_mib * MiB, fill, 7)
        info['make_seconds'] = time.monotonic() - t
        results['image'] = info
        print(f'image: {json.dumps(info)}', flush=True)
        formats = list(formats or TARGETS)
        params = {
            'repeats': repeats,
            'cold_formats': formats,
            'cold_images': made,
            'image_bytes': size_mib * MiB,
            'reference_into_existing': True,
            'reference_fastest': True,
            'running_deployment': not new_service,
            # with --ab: the variants alternate build by build
            'variants_alternate': bool(ab),
            'settle_seconds': settle,
            # before each timed copy (tools/bench/first_touch.py)
            'warm_bytes': (warm_mib or 0) * MiB,
            # the sampler's thread takes the GIL every 10 ms, in the
            # volume service's process: it slowed ours, not the reference
            'sample_rss': False,
            'svc_latency': (svc_cli.BENCH_CLI_LATENCY
                            if svc_latency is None
                            else svc_latency),
            'glance_bytes_per_second': (glance_mbps * 1e6
                                        if glance_mbps else None),
            'idle_timeout': 600,
            'timeout': 1800,
            # --set: every build's (both variants')
            'options_set': options,
        }
        storage_results: dict[str, Any] = {
            'params': {k: v for k, v in params.items()
                       if k != 'cold_images'}}
        phases: dict[str, Any] = {}
        without: dict[str, Any] = {}
        variants = [(dict(options), storage_results, phases)]
        # a module constant the variant sets (--ab module.NAME=VALUE)
        setting: tuple[str, Any] | None = None
        if ab:
            # the variant, built in turn with the builds as configured
            name, value, label = ab_variant(ab)
            without = {'option': name, 'value': value, 'label': label,
                       'storage': {}, 'phases': {}}
            if '.' in name:
                setting = (name, value)
            variants.append((dict(options) if setting
                             else {**options, name: value},
                             without['storage'], without['phases']))
        slow: dict[str, Any] = {}
        trace = stack.enter_context(copy_trace.CopyTrace())
        for fmt in formats:
            # With a variant, the two alternate build by build (one
            # trial each in turn), so that a drift of the machine's disk
            # or load weighs on both alike.
            timers = [Phases(trace) for _ in variants]
            trials: list[list[dict[str, Any]]] = [[] for _ in variants]
            for trial in range(repeats):
                for i, (options, into, _steps) in enumerate(variants):
                    params['cold_formats'] = [fmt]
                    params['repeats'] = 1
                    params['backend_options'] = options
                    res: dict[str, Any] = {}
                    before = len(timers[i].builds)
                    with timers[i], _constant(
                            None if into is storage_results else setting):
                        storage.run_case('ours-svc', params, res,
                                         'run_cold')
                    got = res.get('ours-svc', {}).get(f'cold_{fmt}')
                    if got:
                        copy_step(got['trials'],
                                  timers[i].new_builds(before),
                                  timers[i].new_traces(before))
                        trials[i].extend(got['trials'])
                    if 'errors' in res:
                        into.setdefault('errors', {}).update(
                            {f'{k}-{fmt}-{trial}': v
                             for k, v in res['errors'].items()})
            # the slow copy steps against the others (all variants)
            slow[fmt] = copy_trace.slow_copies(
                [t for ts in trials for t in ts])
            for i, (_options, into, steps) in enumerate(variants):
                steps[fmt] = timers[i].summary()
                if trials[i]:
                    into.setdefault('ours-svc', {'config': 'ours-svc'})[
                        f'cold_{fmt}'] = storage.cold_summary(trials[i])
        results['storage'] = storage_results
        # each trial's copy_trace, in storage; here the slow ones apart
        results['slow_copy_steps'] = slow
        # seconds per step of one golden build (median, min, max)
        results['phases'] = phases
        if without:
            without['headline'] = headline(without['storage'])
            results['without'] = without
    finally:
        stack.close()
        shutil.rmtree(work, ignore_errors=True)
    results['headline'] = head = headline(results['storage'])
    if without:
        for key in [k for k in head if k.endswith(
                ('_fraction_of_reference', '_fraction_of_reference_spread',
                 '_copy_seconds', '_peak_dirty_mb', '_copy_step',
                 '_copy_step_spread'))]:
            head[f'{key}_{without["label"]}'] = without['headline'].get(key)
    results['finished'] = time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())
    results['load_average_end'] = os.getloadavg()
    results['code'] = code_version()
    return results


def ab_variant(spec: str) -> tuple[str, Any, str]:
    """``--ab``'s (name, value, label of its headline keys)."""
    name, eq, text = spec.partition('=')
    value: Any = False
    if eq:
        low = text.strip().lower()
        if low in ('true', 'false'):
            value = low == 'true'
        else:
            try:
                value = int(text)
            except ValueError:
                value = text
    if value is False:
        return name, value, f'without_{name}'
    return name, value, f'{name.rsplit(".", 1)[-1]}_{value}'


class _constant:
    """Set ``cinder_dpm_ephemeral.<module>.<NAME>`` for a while."""

    def __init__(self, setting: tuple[str, Any] | None) -> None:
        self.setting = setting
        self.undo: tuple[Any, str, Any] | None = None

    def __enter__(self) -> None:
        if self.setting is None:
            return
        import importlib
        path, value = self.setting
        module_name, attr = path.rsplit('.', 1)
        module = importlib.import_module(f'cinder_dpm_ephemeral.'
                                         f'{module_name}')
        if not hasattr(module, attr):
            raise SystemExit(f'--ab {path}: cinder_dpm_ephemeral.'
                             f'{module_name} has no {attr}')
        self.undo = (module, attr, getattr(module, attr))
        setattr(module, attr, value)

    def __exit__(self, *exc: Any) -> None:
        if self.undo is not None:
            setattr(*self.undo)
            self.undo = None


def code_version() -> str:
    """The commit measured (and whether the work tree differed from it)."""
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        head = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'],
                              cwd=here, capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(['git', 'status', '--porcelain',
                                '--untracked-files=no', '--', '.',
                                '../../cinder_dpm_ephemeral'],
                               cwd=here, capture_output=True, text=True,
                               check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return 'unknown (not a git work tree)'
    return f'commit {head}' + (' with local changes' if dirty else '')
