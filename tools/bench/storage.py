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
"""Images to volumes: our drivers against stock Cinder, side by side.

Configurations, each a fresh real Cinder (API, scheduler, volume service)
in this process with its array emulator in its own process:

* ours-svc / ours-powerflex: this project's drivers (golden volumes, thin
  clones);
* stock-svc: Cinder's in-tree Storwize driver at Cinder's defaults
  (``storwize_svc_flashcopy_rate`` 50 = 2 MB/s, clean rate 50) with
  Cinder's generic image-volume cache enabled (internal tenant set);
* stock-tuned-svc: the same, tuned as an operator who uses the image
  cache would (:data:`STOCK_TUNED`: copy and clean rate 150, the maximum;
  cache without size or count limit);
* stock-powerflex: the in-tree PowerFlex driver with the image cache.

Fairness rules: every operation starts from an idle array (no background
or stopping copy running); what a configuration leaves running after an
operation is waited for and reported apart (``leftover``: seconds and
array bytes); counters are per operation (deltas around it), not
array-wide; each figure is the median of ``repeats`` runs with its
min/max spread. SVC CLI commands cost :data:`svc.cli.BENCH_CLI_LATENCY`
each (a stated assumption). The guest-write phase has each clone write a
share of its 64 KiB blocks (5 % and 50 %) through the emulators' write
path, which applies FlashCopy (SVC) or vTree (PowerFlex) rules; it
reports array bytes copied and capacity held per server.

Scenarios: (a) cold first volume from a new image (raw and qcow2); (b)
warm lifecycle: create from a cached image then delete; (c) storm: N
concurrent creates from an image never seen before; (d) guest writes;
(e) cold lifecycle.
"""

from __future__ import annotations

import datetime
import os
import statistics
import subprocess
import time
import unittest
import uuid
from typing import Any

from tools.bench import first_touch
from tools.bench import memory

MiB = 1024 * 1024
GiB = 1024 * MiB
#: name of the images :meth:`_prime` builds (tools/bench/cold.py
#: keeps their builds apart from the timed ones in the phases)
PRIME_PREFIX = 'prime-'


#: The emulators' processes, left out of the memory figure: they are the
#: array, not the host.
_ARRAY_PIDS: set[int] = set()


def raw_reference_seconds(image_path: str, fmt: str, work: str,
                          existing_size: int | None = None) -> float:
    """The machine's raw copy: qemu-img convert of the image to a file.

    Timed like our cold path writes: buffered into a regular file (the
    emulated LUN is one), then fsync'ed, as our writers fsync the LUN.
    With ``existing_size`` the file exists already, sparse, of that size
    (made before the clock starts), and ``qemu-img`` writes into it with
    ``-n``, as our path writes into the LUN the array made.
    """
    dst = os.path.join(work, 'reference.raw')
    cmd = ['qemu-img', 'convert', '-q', '-f', fmt, '-O', 'raw']
    if existing_size is not None:
        with open(dst, 'wb') as f:
            f.truncate(existing_size)
        cmd.append('-n')
    t = time.monotonic()
    subprocess.run(cmd + [image_path, dst], check=True)
    fd = os.open(dst, os.O_RDONLY)
    os.fsync(fd)
    os.close(fd)
    elapsed = time.monotonic() - t
    os.unlink(dst)
    return elapsed


#: What an operator who uses Cinder's image cache on SVC would set.
STOCK_TUNED = {
    'storwize_svc_flashcopy_rate': 150,     # 2 GiB/s, the maximum
    'storwize_svc_clean_rate': 150,
    'image_volume_cache_max_size_gb': 0,    # no limit
    'image_volume_cache_max_count': 0,
}
SVC_BYTE_COUNTERS = ('svc_background_copy_bytes', 'svc_fc_write_split_bytes',
                     'svc_fc_cleaning_bytes')
PF_BYTE_COUNTERS = ('powerflex_write_copy_bytes', 'array_copied_bytes')


def summary(values: list[float | None]) -> dict[str, Any]:
    """Median and spread (min, max) of the runs that produced a value."""
    vals = [v for v in values if v is not None]
    if not vals:
        return {'median': None, 'min': None, 'max': None, 'n': 0}
    return {'median': statistics.median(vals), 'min': min(vals),
            'max': max(vals), 'n': len(vals)}


def _progress(config: str, phase: str, res: dict[str, Any]) -> None:
    brief = {k: v['median'] for k, v in res.items()
             if isinstance(v, dict) and 'median' in v}
    for k, v in res.items():
        if isinstance(v, dict) and 'runs' in v:
            brief[k] = {kk: vv['median'] for kk, vv in v.items()
                        if isinstance(vv, dict) and 'median' in vv}
    print(f'    {config} {phase}: {brief}', flush=True)


def _scenario_case(config: str, params: dict[str, Any],
                   results: dict[str, Any], method: str = 'run_bench') -> Any:
    from cinder import context as cinder_context
    from cinder import objects

    from cinder_dpm_ephemeral.image_cache import spares
    from cinder_dpm_ephemeral.testing import backends
    from cinder_dpm_ephemeral.testing import cinder_harness
    from cinder_dpm_ephemeral.testing import images

    ours = config.startswith('ours')
    tuned = config.startswith('stock-tuned')
    array = config.rsplit('-', 1)[1]
    repeats = params['repeats']

    class Bench(cinder_harness.CinderHarness):
        BACKEND = array
        #: whether :meth:`_prime` built this backend's first volume
        primed = False

        def start_backends(self) -> None:
            if array == 'svc':
                self.backend = backends.SVCBackend(
                    self.work_dir,
                    driver=(backends.SVC_DRIVER if ours
                            else _STOCK_SVC_DRIVER),
                    pool_bytes=100 * 1024 * GiB,
                    latency=params['svc_latency']).start()
            else:
                self.backend = backends.PowerFlexBackend(
                    self.work_dir,
                    driver=(backends.POWERFLEX_DRIVER if ours
                            else _STOCK_POWERFLEX_DRIVER),
                    capacity_gb=100 * 1024,
                    latency=params.get('powerflex_latency', 0.0)).start()
            self.addCleanup(self.backend.stop)
            proc = getattr(self.backend.emulator, '_proc', None)
            if proc is not None:
                _ARRAY_PIDS.add(proc.pid)

        def backend_options(self) -> dict[str, Any]:
            opts = self.backend.backend_options(self.BACKEND)
            # Same emulation data path for everyone (the stock drivers are
            # wrapped only for that, see stock_drivers.py).
            opts['dpm_ephemeral_emulator_state_dir'] = self.backend.state_dir
            if not ours:
                opts['image_volume_cache_enabled'] = True
                opts['dpm_ephemeral_image_cache_enabled'] = False
            if tuned:
                opts.update(STOCK_TUNED)
            if ours:
                # an A/B of one of our options (./run bench cold --ab)
                opts.update(params.get('backend_options') or {})
            return opts

        internal_project = uuid.uuid4().hex

        def default_options(self) -> dict[str, Any]:
            opts = dict(self.backend.default_options())
            opts['cinder_internal_tenant_project_id'] = self.internal_project
            opts['cinder_internal_tenant_user_id'] = uuid.uuid4().hex
            return opts

        def setUp(self) -> None:
            super().setUp()
            # The image caches (stock's entries, our golden volumes) live
            # in the internal tenant; the default quota class (10 volumes)
            # would stop both caches after 10 images and make every later
            # create a cache miss. An operator lifts it: so do we, for all.
            self.api.api_put(
                f'/os-quota-sets/{self.internal_project}',
                {'quota_set': {'volumes': -1, 'gigabytes': -1,
                               'snapshots': -1,
                               'per_volume_gigabytes': -1}})
            # Glance across a network link (./run bench cold --glance-mbps)
            self.images.rate = params.get('glance_bytes_per_second')

        # -- measuring --------------------------------------------------------
        def _size_gb(self, image: Any) -> int:
            gb = max(1, -(-image.file_size // GiB),
                     -(-image.virtual_size // GiB))
            if array == 'powerflex':
                gb = -(-gb // 8) * 8
            return gb

        def _bytes(self) -> dict[str, int]:
            c = self.backend.luns.counters()
            keys = SVC_BYTE_COUNTERS if array == 'svc' else PF_BYTE_COUNTERS
            return {k: int(c.get(k, 0)) for k in keys}

        def _calls(self) -> int:
            return int(self.backend.emulator.call('calls_made'))

        def _snap(self) -> dict[str, Any]:
            return {'t': time.monotonic(), 'wall': time.time(),
                    'bytes': self._bytes(), 'calls': self._calls()}

        def _done(self, s0: dict[str, Any], volume_id: str,
                  event: str) -> float | None:
            """Seconds from ``s0`` until the volume was ``event``.

            Read from the volume's own record: ``launched_at`` is written
            in the same update that makes it available, ``deleted_at``
            when its row is destroyed. Polling the API (every
            ``poll_interval``, 0.05 s, plus the request) would add up to
            one poll to each operation, at random: a 0.2 s warm create
            measures 0.17 or 0.24 s depending on where the polls fall.
            None if the volume never got there (an error).
            """
            vol = objects.Volume.get_by_id(
                cinder_context.get_admin_context(read_deleted='yes'),
                volume_id)
            at = vol.launched_at if event == 'available' else vol.deleted_at
            if at is None:
                return None
            return at.replace(
                tzinfo=datetime.UTC).timestamp() - s0['wall']

        @staticmethod
        def _retimed(op: dict[str, Any], seconds: float | None) -> None:
            """``op`` timed by the volume's record, the poller's time kept."""
            op['polled_seconds'] = op['seconds']
            op['seconds'] = seconds

        def _delta(self, s0: dict[str, Any]) -> dict[str, Any]:
            b = self._bytes()
            return {'seconds': time.monotonic() - s0['t'],
                    'array_bytes': sum(b.values())
                    - sum(s0['bytes'].values()),
                    'array_bytes_by_kind': {
                        k: b[k] - s0['bytes'][k] for k in b},
                    'array_calls': self._calls() - s0['calls']}

        def _busy(self) -> bool:
            if array != 'svc':
                return False        # PowerFlex copies nothing in background
            for m in self.backend.emulator.inventory()['fcmaps']:
                if m['status'] == 'stopping' or (
                        m['status'] == 'copying' and m['copy_rate'] > 0):
                    return True
            return False

        def _idle(self) -> dict[str, Any]:
            """Wait until nothing copies in the background (measured).

            Ours: a spare LUN still being made after a build is background
            work too, waited for and counted here as stock's copies are.
            """
            s0 = self._snap()
            if ours:
                spares.wait_made(self.driver.image_cache)
            while self._busy():
                if time.monotonic() - s0['t'] > params['idle_timeout']:
                    d = self._delta(s0)
                    d['timed_out'] = True
                    return d
                time.sleep(0.2)
            return self._delta(s0)

        def _lun(self, volume_id: str) -> str:
            """The array's name (SVC) or id (PowerFlex) of a volume."""
            vol = objects.Volume.get_by_id(
                cinder_context.get_admin_context(), volume_id)
            return vol.name if array == 'svc' else vol.provider_id

        def _own(self, volume_id: str) -> int:
            lun = self._lun(volume_id)
            inv = self.backend.emulator.inventory()
            if array == 'svc':
                key, items = 'name', inv['vdisks']
            else:
                key, items = 'id', inv['volumes']
            for v in items:
                if v[key] == lun:
                    return int(v.get('own_bytes') or 0)
            return 0

        def _wait_all(self, vols: list[dict]) -> tuple[list[dict], float]:
            t0 = time.monotonic()
            final: dict[str, dict] = {}
            while len(final) < len(vols):
                for v in vols:
                    if v['id'] not in final:
                        cur = self.api.get_volume(v['id'])
                        if cur['status'] in ('available', 'error'):
                            final[v['id']] = cur
                if time.monotonic() - t0 > params['timeout']:
                    break
                time.sleep(0.05)
            return list(final.values()), time.monotonic() - t0

        def _delete_all(self, vols: list[dict]) -> None:
            for v in vols:
                self.api.delete_volume(v['id'])
            for v in vols:
                self.wait_for_deleted(v['id'], timeout=params['timeout'])

        # -- scenarios --------------------------------------------------------
        def run_bench(self) -> None:
            r: dict[str, Any] = {'config': config,
                                 'tuned_options': STOCK_TUNED if tuned
                                 else {}}
            for fmt in ('raw', 'qcow2'):
                r[f'cold_{fmt}'] = self._cold(fmt)
                _progress(config, f'cold_{fmt}', r[f'cold_{fmt}'])
            image = images.make_image(self.work_dir, params['image_bytes'],
                                      'qcow2', seed=21, name='warm')
            meta = self.add_image(image)
            vol = self.create_volume(self._size_gb(image),
                                     image_id=meta['id'])
            self.wait_for_volume(vol['id'], timeout=params['timeout'])
            r['warm_prime_leftover'] = self._idle()
            r['warm'] = self._warm(image, meta)
            _progress(config, 'warm', r['warm'])
            results[config] = r
            r['guest_writes'] = self._guest_writes(image, meta)
            _progress(config, 'guest_writes', r['guest_writes'])
            self._delete_all([vol])
            self._idle()
            r['storm'] = self._storm()
            _progress(config, 'storm', r['storm'])
            r['cold_lifecycle'] = self._cold_lifecycle()
            _progress(config, 'cold_lifecycle', r['cold_lifecycle'])

        def run_cold(self) -> None:
            """Only the cold scenario, on the images params names."""
            r: dict[str, Any] = {'config': config}
            results[config] = r
            for fmt in params['cold_formats']:
                r[f'cold_{fmt}'] = self._cold(fmt)
                _progress(config, f'cold_{fmt}', r[f'cold_{fmt}'])

        def _cold(self, fmt: str) -> dict[str, Any]:
            def settle() -> None:
                # Before each timed copy: dirty pages written, and (cold
                # benchmark) a pause for what freeing the last copy's
                # blocks costs later (discards on a 'discard' mount),
                # and with warm_bytes (./run bench cold --warm-mib) a
                # file written and unlinked (tools/bench/first_touch.py),
                # for the reference's copies and the build's alike.
                os.sync()
                time.sleep(params.get('settle_seconds', 0))
                first_touch.warm(self.work_dir, params.get('warm_bytes', 0))
            trials = []
            # A given image (the cold benchmark's realistic disk) is
            # registered again under a new id per trial: a new image to
            # the cache every time, the same bytes.
            given = params.get('cold_images', {}).get(fmt)
            for trial in range(repeats):
                image = given or images.make_image(
                    self.work_dir, params['image_bytes'], fmt,
                    seed=11 + trial, name=f'cold-{fmt}-{trial}')
                meta = self.add_image(image)
                spare = self._prime(image)
                # the reference: into a new file, or (cold benchmark) into
                # an existing sparse file as the LUN is
                existing = (image.virtual_size if
                            params.get('reference_into_existing') else None)
                settle()
                ref_before = raw_reference_seconds(image.path, fmt,
                                                   self.work_dir, existing)
                new_before = new_after = None
                if existing:
                    settle()
                    new_before = raw_reference_seconds(image.path, fmt,
                                                       self.work_dir)
                settle()
                served0 = self.images.total_bytes_served()
                s0 = self._snap()
                # This process runs the volume manager (with Cinder's API
                # and scheduler: an upper bound of the volume service's).
                with memory.TreeMemory(
                        os.getpid() if params.get('sample_rss', True)
                        else None, exclude=_ARRAY_PIDS) as rss, \
                        memory.HostDirty() as dirty:
                    vol = self.create_volume(self._size_gb(image),
                                             image_id=meta['id'])
                    vol = self.wait_for_volume(vol['id'],
                                               timeout=params['timeout'])
                op = self._delta(s0)
                self.assertEqual('available', vol['status'])
                self._retimed(op, self._done(s0, vol['id'], 'available'))
                # (ours: with the spare LUN made after the build)
                leftover = self._idle()
                copy_seconds = None
                early_reads = None
                if ours:
                    ictx = cinder_context.get_internal_tenant_context()
                    golden = self.driver.image_cache.goldens(
                        ictx, None, meta['id'])[0]
                    copy_seconds = float(golden.metadata['build_seconds'])
                    if spare is not None and golden.id != spare:
                        raise AssertionError(
                            f'the build of {meta["id"]} did not take the '
                            f'spare LUN {spare} made for it')
                    early_reads = golden.metadata.get(
                        'conversion_early_reads')
                settle()
                ref_after = raw_reference_seconds(image.path, fmt,
                                                  self.work_dir, existing)
                if existing:
                    settle()
                    new_after = raw_reference_seconds(image.path, fmt,
                                                      self.work_dir)
                ref = (ref_before + ref_after) / 2
                new_ref = (None if new_before is None or new_after is None
                           else (new_before + new_after) / 2)
                if params.get('reference_fastest'):
                    # the fastest copy the machine made around this build
                    ref = min(t for t in (ref_before, ref_after, new_before,
                                          new_after) if t is not None)
                trials.append({
                    'seconds': op['seconds'], 'op': op,
                    'on_spare_lun': spare is not None,
                    'leftover': leftover,
                    'copy_seconds': copy_seconds,
                    'reference_seconds': ref,
                    'fraction_copy': (ref / copy_seconds if copy_seconds
                                      else None),
                    'reference_new_file_seconds': new_ref,
                    'fraction_copy_new_file': (
                        new_ref / copy_seconds if copy_seconds and new_ref
                        else None),
                    'fraction_end_to_end': ref / op['seconds'],
                    'glance_bytes': (self.images.total_bytes_served()
                                     - served0),
                    'image_file_bytes': image.file_size,
                    'conversion_early_reads': early_reads,
                    'peak_pss_mb': rss.peak / MiB,
                    'peak_pss_delta_mb': (rss.peak - rss.idle) / MiB,
                    # the host's unwritten page cache at its highest
                    'peak_dirty_mb': (dirty.peak - dirty.idle) / MiB})
                self._delete_all([vol])
                self._idle()
                if given is None:
                    os.unlink(image.path)
            return cold_summary(trials)

        def _prime(self, image: Any) -> str | None:
            """The deployment as a running one is before a new image.

            Two cases, both off unless asked for:

            * ``params['running_deployment']`` (the cold benchmark): the
              first volume from an image this backend builds. A running
              deployment has built some before: on SVC the volume host's
              host object is made and the fabric's target ports known,
              which a brand-new volume service pays for once, at its first
              build (tools/bench/cold.py reports that build's steps apart,
              as ``first_build``).
            * spare LUNs on (ours): the pool as a build of this size left
              it, a spare LUN of that size behind.

            A volume from another image of the same virtual size (a qcow2
            with 1 MiB of data) builds its golden volume (ours) or image
            volume (stock); the volume is deleted, what the build left
            stays. Returns the spare's id (None with spares off).
            """
            cache = getattr(self.driver, 'image_cache', None)
            want_spare = ours and spares.wanted(cache)
            if not want_spare and (self.primed or
                                   not params.get('running_deployment')):
                return None
            self.primed = True
            name = f'{PRIME_PREFIX}{uuid.uuid4().hex[:8]}'
            prime = images.make_image(
                self.work_dir, image.virtual_size, 'qcow2', seed=97,
                name=name, data_size=MiB)
            meta = self.add_image(prime, name=name)
            vol = self.create_volume(self._size_gb(image),
                                     image_id=meta['id'])
            vol = self.wait_for_volume(vol['id'], timeout=params['timeout'])
            self.assertEqual('available', vol['status'])
            if want_spare:
                spares.wait_made(cache)
            self._delete_all([vol])
            self._idle()
            os.unlink(prime.path)
            if not want_spare:
                return None
            ictx = cinder_context.get_internal_tenant_context()
            ready = [g.id for g in cache.goldens(ictx)
                     if spares.is_spare(g) and g.status == 'available']
            if len(ready) != 1:
                raise AssertionError(f'spare LUNs after priming: {ready}')
            return ready[0]

        def _warm(self, image: Any, meta: dict) -> dict[str, Any]:
            size = self._size_gb(image)
            runs = []
            for _ in range(repeats):
                self._idle()
                s0 = self._snap()
                vol = self.create_volume(size, image_id=meta['id'])
                vol = self.wait_for_volume(vol['id'],
                                           timeout=params['timeout'])
                self.assertEqual('available', vol['status'])
                create = self._delta(s0)
                s1 = self._snap()
                self.api.delete_volume(vol['id'])
                self.wait_for_deleted(vol['id'], timeout=params['timeout'])
                delete = self._delta(s1)
                lifecycle = self._delta(s0)
                # the service's time, not the poller's (see _done)
                self._retimed(create, self._done(s0, vol['id'], 'available'))
                self._retimed(delete, self._done(s1, vol['id'], 'deleted'))
                self._retimed(lifecycle,
                              create['seconds'] + delete['seconds'])
                runs.append({'create': create, 'delete': delete,
                             'lifecycle': lifecycle,
                             'leftover': self._idle()})
            return {
                'runs': runs,
                'create_seconds': summary(
                    [x['create']['seconds'] for x in runs]),
                'lifecycle_seconds': summary(
                    [x['lifecycle']['seconds'] for x in runs]),
                'lifecycle_polled_seconds': summary(
                    [x['lifecycle']['polled_seconds'] for x in runs]),
                'array_calls_per_lifecycle': summary(
                    [x['lifecycle']['array_calls'] for x in runs]),
                'array_bytes_per_clone': summary(
                    [x['create']['array_bytes'] for x in runs]),
                'array_bytes_per_lifecycle': summary(
                    [x['lifecycle']['array_bytes'] for x in runs]),
                'leftover_seconds': summary(
                    [x['leftover']['seconds'] for x in runs]),
                'leftover_array_bytes': summary(
                    [x['leftover']['array_bytes'] for x in runs]),
            }

        def _guest_writes(self, image: Any, meta: dict) -> dict[str, Any]:
            size = self._size_gb(image)
            out: dict[str, Any] = {}
            for share in params['guest_shares']:
                runs = []
                for rep in range(repeats):
                    self._idle()
                    s0 = self._snap()
                    vols = [self.create_volume(size, image_id=meta['id'])
                            for _ in range(params['guest_clones'])]
                    vols, _ = self._wait_all(vols)
                    written = 0
                    for i, v in enumerate(vols):
                        res = self.backend.emulator.call(
                            'array.guest_write' if array == 'svc'
                            else 'guest_write', self._lun(v['id']), share,
                            64 * 1024, 1000 * rep + i, params['guest_span'])
                        written += res['written']
                    self._idle()
                    d = self._delta(s0)
                    n = len(vols)
                    runs.append({
                        'array_bytes_per_server': d['array_bytes'] / n,
                        'by_kind': d['array_bytes_by_kind'],
                        'written_per_server': written / n,
                        'capacity_per_server': statistics.mean(
                            self._own(v['id']) for v in vols)})
                    self._delete_all(vols)
                out[f'{int(share * 100)}pct'] = {
                    'runs': runs,
                    'array_bytes_per_server': summary(
                        [x['array_bytes_per_server'] for x in runs]),
                    'capacity_per_server': summary(
                        [x['capacity_per_server'] for x in runs]),
                    'written_per_server': summary(
                        [x['written_per_server'] for x in runs]),
                }
            return out

        def _storm(self) -> dict[str, Any]:
            runs = []
            for rep in range(repeats):
                image = images.make_image(
                    self.work_dir, params['storm_image_bytes'], 'qcow2',
                    seed=100 + rep, name=f'storm-{rep}')
                meta = self.add_image(image)
                self._idle()
                s0 = self._snap()
                vols = [self.create_volume(self._size_gb(image),
                                           image_id=meta['id'])
                        for _ in range(params['storm'])]
                vols, _ = self._wait_all(vols)
                op = self._delta(s0)
                done = [self._done(s0, v['id'], 'available') for v in vols]
                leftover = self._idle()
                runs.append({
                    # the last volume available (see _done), polled if any
                    # failed
                    'seconds': (op['seconds'] if None in done or not done
                                else max(done)),
                    'polled_seconds': op['seconds'],
                    'available': sum(v['status'] == 'available'
                                     for v in vols),
                    'glance_bytes_ratio': (
                        self.images.bytes_served[meta['id']]
                        / image.file_size),
                    'array_bytes_per_volume': op['array_bytes'] / len(vols),
                    'array_calls_per_volume': op['array_calls'] / len(vols),
                    'leftover': leftover})
                self._delete_all(vols)
                self._idle()
                os.unlink(image.path)
            return {
                'volumes': params['storm'], 'runs': runs,
                'seconds': summary([x['seconds'] for x in runs]),
                'polled_seconds': summary(
                    [x['polled_seconds'] for x in runs]),
                'glance_bytes_ratio': summary(
                    [x['glance_bytes_ratio'] for x in runs]),
                'array_bytes_per_volume': summary(
                    [x['array_bytes_per_volume'] for x in runs]),
                'array_calls_per_volume': summary(
                    [x['array_calls_per_volume'] for x in runs]),
                'leftover_seconds': summary(
                    [x['leftover']['seconds'] for x in runs]),
            }

        def _cold_lifecycle(self) -> dict[str, Any]:
            """A short-lived server on an image never seen before."""
            runs = []
            for rep in range(repeats):
                image = images.make_image(
                    self.work_dir, params['storm_image_bytes'], 'qcow2',
                    seed=200 + rep, name=f'life-{rep}')
                meta = self.add_image(image)
                self._idle()
                s0 = self._snap()
                vol = self.create_volume(self._size_gb(image),
                                         image_id=meta['id'])
                vol = self.wait_for_volume(vol['id'],
                                           timeout=params['timeout'])
                self.assertEqual('available', vol['status'], vol)
                s1 = self._snap()
                self._delete_all([vol])
                op = self._delta(s0)
                # the service's time, not the poller's (see _done)
                self._retimed(op, self._done(s0, vol['id'], 'available') +
                              self._done(s1, vol['id'], 'deleted'))
                runs.append({'op': op, 'leftover': self._idle()})
                os.unlink(image.path)
            return {'runs': runs,
                    'lifecycle_seconds': summary(
                        [x['op']['seconds'] for x in runs]),
                    'lifecycle_polled_seconds': summary(
                        [x['op']['polled_seconds'] for x in runs]),
                    'leftover_seconds': summary(
                        [x['leftover']['seconds'] for x in runs])}

    return Bench(method)


_STOCK_SVC_DRIVER = 'tools.bench.stock_drivers.StockStorwizeFCDriver'
_STOCK_POWERFLEX_DRIVER = 'tools.bench.stock_drivers.StockPowerFlexDriver'
CONFIGS = ['ours-svc', 'stock-svc', 'stock-tuned-svc', 'ours-powerflex',
           'stock-powerflex']


def run(quick: bool, configs: list[str] | None = None,
        options: dict[str, Any] | None = None) -> dict[str, Any]:
    """Every configuration's scenarios.

    ``options``: backend options of ours (``./run bench --set``).
    """
    from cinder_dpm_ephemeral.emulators.powerflex import api as pf_api
    from cinder_dpm_ephemeral.emulators.svc import cli as svc_cli
    params = {
        'image_bytes': (32 if quick else 1024) * MiB,
        'storm_image_bytes': (16 if quick else 256) * MiB,
        'storm': 5 if quick else 50,
        # guests write in the first guest_span bytes of their disk (a
        # PowerFlex volume is at least 8 GiB)
        'guest_span': (256 if quick else 1024) * MiB,
        'repeats': 5,
        'guest_shares': [0.05, 0.5],
        'guest_clones': 2 if quick else 5,
        'svc_latency': svc_cli.BENCH_CLI_LATENCY,
        'powerflex_latency': pf_api.BENCH_REST_LATENCY,
        'idle_timeout': 1800,
        'timeout': 3600,
    }
    if options:
        params['backend_options'] = dict(options)
    results: dict[str, Any] = {'params': params}
    for config in configs or CONFIGS:
        run_case(config, params, results)
    return results


def cold_summary(trials: list[dict[str, Any]]) -> dict[str, Any]:
    """The cold scenario's trials and each figure's median and spread."""
    out: dict[str, Any] = {'trials': trials}
    for key in ('seconds', 'copy_seconds', 'reference_seconds',
                'fraction_copy', 'fraction_end_to_end',
                'reference_new_file_seconds', 'fraction_copy_new_file',
                'glance_bytes', 'peak_pss_mb', 'peak_pss_delta_mb',
                'peak_dirty_mb', 'copy_step_seconds', 'fraction_copy_step'):
        out[key] = summary([t.get(key) for t in trials])
    out['leftover_seconds'] = summary(
        [t['leftover']['seconds'] for t in trials])
    out['leftover_array_bytes'] = summary(
        [t['leftover']['array_bytes'] for t in trials])
    return out


def run_case(config: str, params: dict[str, Any], results: dict[str, Any],
             method: str = 'run_bench') -> None:
    """One configuration's scenarios (``method`` of the case) into results."""
    print(f'--- {config} ...', flush=True)
    case = _scenario_case(config, params, results, method)
    res = unittest.TestResult()
    case.run(res)
    for _c, text in res.errors + res.failures:
        print(text)
        results.setdefault('errors', {})[config] = text[-2000:]
    print(f'--- {config} done', flush=True)
