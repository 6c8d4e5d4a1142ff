"""Images to volumes: our drivers against stock Cinder, side by side.

Four configurations, each a fresh real Cinder (API, scheduler, volume
service) in this process with its array emulator in its own process:

* ours-svc / ours-powerflex: this project's drivers (golden volumes, thin
  clones);
* stock-svc / stock-powerflex: Cinder's in-tree drivers with Cinder's
  generic image-volume cache enabled (internal tenant configured), the way
  an operator would tune stock Cinder for this job.

Both run the emulators at the arrays' real costs: SVC FlashCopy background
copy at the copy rate Cinder configures (50 = 2 MB/s, clock not
accelerated). The emulation data path (image bytes written to the emulated
LUN files through os-brick's LOCAL connector) is the same for all four.

Scenarios: (a) cold first volume from a new image (raw and qcow2), with the
volume service's peak RSS; (b) warm: create from a cached image then delete
at once (a short-lived server); (c) storm: N concurrent creates from an image
never seen before; (d) many volumes from one image, past the arrays' clone
limits (ours only).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import time
import unittest
import uuid
from typing import Any

MiB = 1024 * 1024
GiB = 1024 * MiB


def _real_thread(target: Any) -> Any:
    """A native thread even under eventlet (RSS sampling must not yield)."""
    import eventlet.patcher
    threading_ = eventlet.patcher.original('threading')  # noqa: N806
    t = threading_.Thread(target=target, daemon=True)
    t.start()
    return t


class _RSSSampler:
    def __init__(self) -> None:
        self.peak = 0
        self._stop = False

    @staticmethod
    def rss() -> int:
        with open('/proc/self/status') as f:
            for line in f:
                if line.startswith('VmRSS:'):
                    return int(line.split()[1]) * 1024
        return 0

    def __enter__(self) -> _RSSSampler:
        import eventlet.patcher
        real_sleep = eventlet.patcher.original('time').sleep
        self.idle = self.rss()
        self.peak = self.idle

        def loop() -> None:
            while not self._stop:
                self.peak = max(self.peak, self.rss())
                real_sleep(0.01)
        self._t = _real_thread(loop)
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop = True
        self._t.join(1)


def raw_reference_seconds(image_path: str, fmt: str, work: str) -> float:
    """The machine's raw copy: qemu-img convert of the image to a file.

    Timed like our cold path writes: buffered into a regular file (the
    emulated LUN is one), then fsync'ed, as our writers fsync the LUN.
    """
    dst = os.path.join(work, 'reference.raw')
    t = time.monotonic()
    subprocess.run(['qemu-img', 'convert', '-q', '-f', fmt, '-O', 'raw',
                    image_path, dst], check=True)
    fd = os.open(dst, os.O_RDONLY)
    os.fsync(fd)
    os.close(fd)
    elapsed = time.monotonic() - t
    os.unlink(dst)
    return elapsed


def _scenario_case(config: str, params: dict[str, Any],
                   results: dict[str, Any]) -> Any:
    from cinder import context as cinder_context

    from cinder_dpm_ephemeral.testing import backends
    from cinder_dpm_ephemeral.testing import cinder_harness
    from cinder_dpm_ephemeral.testing import images

    ours = config.startswith('ours')
    array = config.split('-', 1)[1]

    class Bench(cinder_harness.CinderHarness):
        BACKEND = array

        def start_backends(self) -> None:
            if array == 'svc':
                self.backend = backends.SVCBackend(
                    self.work_dir,
                    driver=(backends.SVC_DRIVER if ours
                            else _STOCK_SVC_DRIVER),
                    pool_bytes=100 * 1024 * GiB).start()
            else:
                self.backend = backends.PowerFlexBackend(
                    self.work_dir,
                    driver=(backends.POWERFLEX_DRIVER if ours
                            else _STOCK_POWERFLEX_DRIVER),
                    capacity_gb=100 * 1024).start()
            self.addCleanup(self.backend.stop)

        def backend_options(self) -> dict[str, Any]:
            opts = self.backend.backend_options(self.BACKEND)
            # Same emulation data path for everyone (the stock drivers are
            # wrapped only for that, see _stock_drivers below).
            opts['dpm_ephemeral_emulator_state_dir'] = self.backend.state_dir
            if not ours:
                opts['image_volume_cache_enabled'] = True
                opts['dpm_ephemeral_image_cache_enabled'] = False
            return opts

        def default_options(self) -> dict[str, Any]:
            opts = dict(self.backend.default_options())
            opts['cinder_internal_tenant_project_id'] = uuid.uuid4().hex
            opts['cinder_internal_tenant_user_id'] = uuid.uuid4().hex
            return opts

        # -- helpers ----------------------------------------------------------
        def _size_gb(self, image: Any) -> int:
            gb = max(1, -(-image.file_size // GiB),
                     -(-image.virtual_size // GiB))
            if array == 'powerflex':
                gb = -(-gb // 8) * 8
            return gb

        def _copied(self) -> int:
            return int(self.backend.luns.counters().get(
                'svc_background_copy_bytes', 0))

        def _calls(self) -> int:
            return int(self.backend.emulator.call('calls_made'))

        def _create_many(self, image_id: str, n: int, size: int
                         ) -> tuple[list[dict], list[float], float]:
            t0 = time.monotonic()
            vols = [self.create_volume(size, image_id=image_id)
                    for _ in range(n)]
            done: dict[str, float] = {}
            final: dict[str, dict] = {}
            while len(final) < n:
                for v in vols:
                    if v['id'] in final:
                        continue
                    cur = self.api.get_volume(v['id'])
                    if cur['status'] in ('available', 'error'):
                        final[v['id']] = cur
                        done[v['id']] = time.monotonic() - t0
                if time.monotonic() - t0 > params['timeout']:
                    break
                time.sleep(0.05)
            return (list(final.values()), sorted(done.values()),
                    time.monotonic() - t0)

        # -- scenarios --------------------------------------------------------
        def run_bench(self) -> None:
            r: dict[str, Any] = {}
            work = self.work_dir
            # (a) cold, raw and qcow2: a few trials each, every one from a
            # new image; the machine's reference copy is timed just before
            # and just after ours, all three from a synced page cache (this
            # VM's first touch of fresh memory is slow, so whoever runs
            # first pays more: the mean of before and after is fair).
            for fmt in ('raw', 'qcow2'):
                trials = []
                for trial in range(params['cold_trials']):
                    image = images.make_image(
                        work, params['image_bytes'], fmt, seed=11 + trial,
                        name=f'cold-{fmt}-{trial}')
                    meta = self.add_image(image)
                    os.sync()
                    ref_before = raw_reference_seconds(image.path, fmt, work)
                    os.sync()
                    before = self.images.total_bytes_served()
                    with _RSSSampler() as rss:
                        t = time.monotonic()
                        vol = self.create_volume(self._size_gb(image),
                                                 image_id=meta['id'])
                        vol = self.wait_for_volume(vol['id'], timeout=1800)
                        elapsed = time.monotonic() - t
                    self.assertEqual('available', vol['status'])
                    copy_seconds = None
                    if ours:
                        # The copy itself (download, conversion, LUN
                        # create and attach), as the golden volume
                        # recorded it.
                        ictx = cinder_context.get_internal_tenant_context()
                        golden = self.driver.image_cache.goldens(
                            ictx, None, meta['id'])[0]
                        copy_seconds = float(
                            golden.metadata['build_seconds'])
                    os.sync()
                    ref_after = raw_reference_seconds(image.path, fmt, work)
                    ref = (ref_before + ref_after) / 2
                    trials.append({
                        'seconds': elapsed,
                        'copy_seconds': copy_seconds,
                        'reference_seconds': ref,
                        'reference_before_after': [ref_before, ref_after],
                        'fraction_copy': (ref / copy_seconds
                                          if copy_seconds else None),
                        'fraction_end_to_end': ref / elapsed,
                        'glance_bytes': (self.images.total_bytes_served()
                                         - before),
                        'image_file_bytes': image.file_size,
                        'peak_rss_delta_mb': (rss.peak - rss.idle) / MiB,
                    })
                    last = trial == params['cold_trials'] - 1
                    # (b) warm lifecycle on the now-cached qcow2 image
                    if fmt == 'qcow2' and last:
                        r['warm'] = self._warm(image, meta)
                    # Not waited for: on stock SVC this volume is the source
                    # of the cache entry's full copy (512 s per GiB).
                    self.api.delete_volume(vol['id'])
                    os.unlink(image.path)

                def med(key: str, trials: list = trials) -> Any:
                    vals = [x[key] for x in trials if x[key] is not None]
                    return statistics.median(vals) if vals else None
                r[f'cold_{fmt}'] = {
                    'trials': trials,
                    'seconds': med('seconds'),
                    'copy_seconds': med('copy_seconds'),
                    'reference_seconds': med('reference_seconds'),
                    'fraction_copy': med('fraction_copy'),
                    'fraction_end_to_end': med('fraction_end_to_end'),
                    'glance_bytes': med('glance_bytes'),
                    'image_file_bytes': med('image_file_bytes'),
                    'peak_rss_delta_mb': max(x['peak_rss_delta_mb']
                                             for x in trials),
                }
            # (c) storm from an image never seen before
            image = images.make_image(work, params['storm_image_bytes'],
                                      'qcow2', seed=12, name='storm')
            meta = self.add_image(image)
            copied0 = self._copied()
            calls0 = self._calls()
            vols, times, total = self._create_many(
                meta['id'], params['storm'], self._size_gb(image))
            r['storm'] = {
                'volumes': params['storm'],
                'available': sum(v['status'] == 'available' for v in vols),
                'seconds_all_available': total,
                'p50': statistics.median(times) if times else None,
                'p95': (times[max(0, int(len(times) * 0.95) - 1)]
                        if times else None),
                'volumes_per_minute': (60.0 * len(times) / total
                                       if total else None),
                'glance_bytes': self.images.bytes_served[meta['id']],
                'image_file_bytes': image.file_size,
                'array_bytes_copied': self._copied() - copied0,
                'array_calls': self._calls() - calls0,
            }
            t = time.monotonic()
            for v in vols:
                self.api.delete_volume(v['id'])
            if ours:
                for v in vols:
                    self.wait_for_deleted(v['id'], timeout=1800)
                r['storm']['delete_all_seconds'] = time.monotonic() - t
            # (e) cold lifecycle: a short-lived server booted from an image
            # never seen before (create, then delete at once). On stock SVC
            # the first volume is the source of the full-copy FlashCopy that
            # fills the cache entry, so its delete waits for that copy.
            image = images.make_image(work, params['storm_image_bytes'],
                                      'qcow2', seed=14, name='life')
            meta = self.add_image(image)
            t = time.monotonic()
            vol = self.create_volume(self._size_gb(image), image_id=meta['id'])
            vol = self.wait_for_volume(vol['id'], timeout=1800)
            created = time.monotonic() - t
            self.api.delete_volume(vol['id'])
            self.wait_for_deleted(vol['id'], timeout=3600)
            r['cold_lifecycle'] = {'create_seconds': created,
                                   'lifecycle_seconds': time.monotonic() - t}
            # (d) many volumes from one image (clone limits), ours only
            if ours and params['many']:
                image = images.make_image(work, 8 * MiB, 'qcow2', seed=13,
                                          name='many')
                meta = self.add_image(image)
                vols, times, total = self._create_many(
                    meta['id'], params['many'], self._size_gb(image))
                ictx = cinder_context.get_internal_tenant_context()
                r['many'] = {
                    'volumes': params['many'],
                    'failures': sum(v['status'] != 'available'
                                    for v in vols),
                    'goldens': len(self.driver.image_cache.goldens(
                        ictx, None, meta['id'])),
                    'seconds': total,
                    'glance_downloads': self.images.downloads[meta['id']],
                }
            results[config] = r

        def _warm(self, image: Any, meta: dict) -> dict[str, Any]:
            size = self._size_gb(image)
            # make sure the cache is primed (the cold volume did that)
            runs = []
            copied0 = self._copied()
            served0 = self.images.total_bytes_served()
            calls0 = self._calls()
            repeats = params['warm_repeats']
            for _ in range(repeats):
                t = time.monotonic()
                vol = self.create_volume(size, image_id=meta['id'])
                vol = self.wait_for_volume(vol['id'], timeout=1800)
                created = time.monotonic() - t
                self.assertEqual('available', vol['status'])
                self.api.delete_volume(vol['id'])
                self.wait_for_deleted(vol['id'], timeout=3600)
                runs.append({'create': created,
                             'lifecycle': time.monotonic() - t})
            return {
                # management round trips (SVC CLI commands over SSH, or
                # PowerFlex REST calls) per create+delete: deterministic,
                # and what a real array's per-command latency multiplies
                'array_calls_per_lifecycle': (self._calls() - calls0) / len(
                    runs),
                'create_seconds': statistics.median(
                    x['create'] for x in runs),
                'lifecycle_seconds': statistics.median(
                    x['lifecycle'] for x in runs),
                'array_bytes_copied': self._copied() - copied0,
                'glance_bytes': self.images.total_bytes_served() - served0,
            }

    return Bench('run_bench')


_STOCK_SVC_DRIVER = 'tools.bench.stock_drivers.StockStorwizeFCDriver'
_STOCK_POWERFLEX_DRIVER = 'tools.bench.stock_drivers.StockPowerFlexDriver'


def run(quick: bool, configs: list[str] | None = None) -> dict[str, Any]:
    params = {
        'image_bytes': (128 if quick else 1024) * MiB,
        'cold_trials': 3,
        'storm_image_bytes': (32 if quick else 256) * MiB,
        'storm': 50,
        'warm_repeats': 9,
        'many': 300,
        'timeout': 3600,
    }
    results: dict[str, Any] = {'params': params}
    for config in configs or ['ours-svc', 'stock-svc', 'ours-powerflex',
                              'stock-powerflex']:
        print(f'--- {config} ...', flush=True)
        case = _scenario_case(config, params, results)
        res = unittest.TestResult()
        case.run(res)
        for _c, text in res.errors + res.failures:
            print(text)
            results.setdefault('errors', {})[config] = text[-2000:]
        print(f'--- {config}: {results.get(config)}', flush=True)
    return results
