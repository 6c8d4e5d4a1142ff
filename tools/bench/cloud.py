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
"""Time to ACTIVE on the whole cloud: ``./run bench cloud [--quick]``.

Brings up its own cloud (``.cloud-bench/``, ports moved by 300) with a
third Cinder backend, ``stock-svc`` (Cinder's in-tree Storwize FC driver
on the same emulated SVC and pool, Cinder's generic image-volume cache:
cloud/config.py ``DPM_CLOUD_STOCK_BACKEND``), and measures, interleaved in
one run so that the machine's noise hits every configuration alike:

- ours: POST /servers with ``imageRef`` on a DPM flavor (the Nova filter
  turns it into boot from volume, the golden cache clones), cold (a new
  image each time) and warm (golden cached);
- ours, filter bypassed: the already translated request posted directly
  (for the filter's overhead per POST, until the API answers 202);
- stock: boot from volume made from the image (BDM ``volume_type`` =
  ``stock-svc``, microversion 2.67) on a flavor the filter leaves alone;
- the floor: boot from an existing volume, same flavor as stock;
- storms: N servers at once from a new image, ours and stock.

Times are from POST /servers to ACTIVE, polled every 0.2 s through the
API (keystoneauth as the ``demo`` user). Glance's bytes per storm are its
image downloads (counted in its access log) times the image size.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import pathlib
import re
import statistics
import sys
import tempfile
import time
import uuid
from typing import Any
from collections.abc import Callable

from keystoneauth1 import session as ks_session
from keystoneauth1.identity import v3

from cinder_dpm_ephemeral.testing.cloud import layout as lay
from tools.bench import memory

LOG = logging.getLogger(__name__)

PORT_OFFSET = 300
MICROVERSION = '2.67'
STOCK_TYPE = 'stock-svc'
DPM_FLAVOR = 'bench.dpm'
PLAIN_FLAVOR = 'bench.plain'
POLL = 0.2
MiB = 1024 * 1024
#: cinder-volume's driver classes (its log's "Starting volume driver")
DRIVER_CLASSES = {'StorwizeEphemeralDriver': 'ours',
                  'StockStorwizeFCDriver': 'stock'}


class BenchError(RuntimeError):
    pass


class Api:
    """The cloud's REST APIs as the demo user (and admin for set-up)."""

    def __init__(self, lo: lay.Layout) -> None:
        self.lo = lo
        self.demo = self._session(lay.DEMO_USER, lay.DEMO_PROJECT)
        self.admin = self._session(lay.ADMIN_USER, 'admin')
        self.nova = lo.url('nova') + '/v2.1'
        self.glance = lo.url('glance') + '/v2'
        self.hdr = {'OpenStack-API-Version': f'compute {MICROVERSION}',
                    'X-OpenStack-Nova-API-Version': MICROVERSION}

    def _session(self, user: str, project: str) -> ks_session.Session:
        auth = v3.Password(auth_url=self.lo.keystone_url, username=user,
                           password=self.lo.passwords[user],
                           project_name=project, user_domain_id='default',
                           project_domain_id='default')
        return ks_session.Session(auth=auth)

    def cinder(self, sess: ks_session.Session) -> str:
        return f'{self.lo.url("cinder")}/v3/{sess.get_project_id()}'

    # -- set-up (admin) -----------------------------------------------------
    def setup(self) -> None:
        base = self.cinder(self.admin)
        types = self.admin.get(base + '/types').json()['volume_types']
        if not any(t['name'] == STOCK_TYPE for t in types):
            self.admin.post(base + '/types', json={'volume_type': {
                'name': STOCK_TYPE, 'os-volume-type-access:is_public': True,
                'extra_specs': {'volume_backend_name': STOCK_TYPE}}})
        flavors = {f['name'] for f in self.admin.get(
            self.nova + '/flavors', headers=self.hdr).json()['flavors']}
        # The stock flavor: no dpm:boot_from_volume, no PRSM hypervisor
        # type (the filter leaves it alone); volume-backed servers ask
        # placement for no DISK_GB, so it schedules to the DPM host.
        for name, extra in ((DPM_FLAVOR, {'dpm:boot_from_volume': 'true'}),
                            (PLAIN_FLAVOR, {'resources:DISK_GB': '0'})):
            if name in flavors:
                continue
            fid = self.admin.post(self.nova + '/flavors', headers=self.hdr,
                                  json={'flavor': {
                                      'name': name, 'ram': 2048, 'vcpus': 1,
                                      'disk': 1}}).json()['flavor']['id']
            self.admin.post(f'{self.nova}/flavors/{fid}/os-extra_specs',
                            headers=self.hdr, json={'extra_specs': extra})

    def flavor_id(self, name: str) -> str:
        for f in self.demo.get(self.nova + '/flavors',
                               headers=self.hdr).json()['flavors']:
            if f['name'] == name:
                return f['id']
        raise BenchError(f'flavor {name} not found')

    # -- images ---------------------------------------------------------------
    def upload(self, path: str, disk_format: str, name: str) -> str:
        image = self.demo.post(self.glance + '/images', json={
            'name': name, 'disk_format': disk_format,
            'container_format': 'bare'}).json()
        with open(path, 'rb') as f:
            self.demo.put(f'{self.glance}/images/{image["id"]}/file',
                          data=f, headers={
                              'Content-Type': 'application/octet-stream'})
        return image['id']

    def downloads(self, image_id: str) -> int:
        wanted = f'"GET /v2/images/{image_id}/file '
        with open(self.lo.logs / 'glance-api-access.log') as f:
            return sum(1 for line in f if wanted in line and '" 200 ' in line)

    # -- servers --------------------------------------------------------------
    def post_server(self, server: dict[str, Any]) -> tuple[float, dict]:
        """POST /servers; seconds until the API answered, and the body."""
        t0 = time.monotonic()
        resp = self.demo.post(self.nova + '/servers', headers=self.hdr,
                              json={'server': server}, raise_exc=False)
        elapsed = time.monotonic() - t0
        if resp.status_code != 202:
            raise BenchError(f'POST /servers answered {resp.status_code}: '
                             f'{resp.text[:500]}')
        return elapsed, resp.json()

    def servers(self, prefix: str) -> list[dict[str, Any]]:
        return self.demo.get(self.nova + '/servers/detail', headers=self.hdr,
                             params={'name': f'^{prefix}'}).json()['servers']

    def wait_active(self, prefix: str, count: int, t0: float,
                    timeout: float = 900) -> float:
        """Seconds from ``t0`` until ``count`` servers are ACTIVE.

        The servers are those named ``prefix*``; an ERROR server stops the
        run with its fault.
        """
        deadline = t0 + timeout
        while True:
            servers = self.servers(prefix)
            bad = [s for s in servers if s['status'] == 'ERROR']
            if bad:
                raise BenchError(f'server {bad[0]["name"]} in ERROR: '
                                 f'{bad[0].get("fault", {}).get("message")}')
            if len(servers) >= count and all(
                    s['status'] == 'ACTIVE' for s in servers):
                return time.monotonic() - t0
            if time.monotonic() > deadline:
                raise BenchError(f'{prefix}: not all {count} servers ACTIVE '
                                 f'after {timeout:.0f} s')
            time.sleep(POLL)

    def delete(self, prefix: str, timeout: float = 600) -> None:
        for s in self.servers(prefix):
            self.demo.delete(f'{self.nova}/servers/{s["id"]}',
                             headers=self.hdr, raise_exc=False)
        deadline = time.monotonic() + timeout
        while self.servers(prefix):
            if time.monotonic() > deadline:
                raise BenchError(f'{prefix}: servers not deleted after '
                                 f'{timeout:.0f} s')
            time.sleep(0.5)

    def volume_from_image(self, image_id: str, name: str) -> str:
        base = self.cinder(self.demo)
        vol = self.demo.post(base + '/volumes', json={'volume': {
            'size': 1, 'imageRef': image_id, 'name': name,
            'volume_type': STOCK_TYPE}}).json()['volume']
        deadline = time.monotonic() + 600
        while True:
            status = self.demo.get(f'{base}/volumes/{vol["id"]}').json()[
                'volume']['status']
            if status == 'available':
                return vol['id']
            if status == 'error' or time.monotonic() > deadline:
                raise BenchError(f'floor volume {vol["id"]}: {status}')
            time.sleep(0.5)


def _bdm_image(image_id: str, volume_type: str) -> list[dict[str, Any]]:
    return [{'uuid': image_id, 'source_type': 'image',
             'destination_type': 'volume', 'boot_index': 0,
             'delete_on_termination': True, 'volume_size': 1,
             'volume_type': volume_type}]


class Bench:
    def __init__(self, api: Api, image: Any, repeats: int, storm: int,
                 storm_repeats: int,
                 volume_pids: dict[str, int] | None = None) -> None:
        self.api = api
        #: the cinder-volume backend process of 'ours' and of 'stock'
        self.volume_pids = volume_pids or {}
        self.image = image
        self.repeats = repeats
        self.storm = storm
        self.storm_repeats = storm_repeats
        self.dpm = api.flavor_id(DPM_FLAVOR)
        self.plain = api.flavor_id(PLAIN_FLAVOR)
        self.raw: dict[str, list[dict[str, float]]] = {}

    def new_image(self, tag: str) -> str:
        return self.api.upload(self.image.path, self.image.disk_format,
                               f'bench-{tag}-{uuid.uuid4().hex[:8]}')

    def boot(self, kind: str, server: dict[str, Any], count: int = 1
             ) -> dict[str, float]:
        prefix = f'b-{kind}-{uuid.uuid4().hex[:6]}'
        server = dict(server, name=prefix, networks='none')
        if count > 1:
            server.update(min_count=count, max_count=count)
        t0 = time.monotonic()
        post_s, _body = self.api.post_server(server)
        try:
            active = self.api.wait_active(prefix, count, t0)
        finally:
            self.api.delete(prefix)
        return {'post_s': post_s, 'active_s': active}

    # -- the configurations -------------------------------------------------
    def ours(self, image_id: str, count: int = 1) -> dict[str, float]:
        return self.boot('ours', {'imageRef': image_id,
                                  'flavorRef': self.dpm}, count)

    def ours_direct(self, image_id: str) -> dict[str, float]:
        # What the filter makes of ours(): posted as it is, the filter
        # passes it through (it boots from a volume already).
        return self.boot('direct', {
            'imageRef': '', 'flavorRef': self.dpm,
            'block_device_mapping_v2': _bdm_image(image_id,
                                                  lay.DPM_VOLUME_TYPE)})

    def stock(self, image_id: str, count: int = 1) -> dict[str, float]:
        return self.boot('stock', {
            'imageRef': '', 'flavorRef': self.plain,
            'block_device_mapping_v2': _bdm_image(image_id, STOCK_TYPE)},
            count)

    def floor(self, volume_id: str) -> dict[str, float]:
        return self.boot('floor', {
            'imageRef': '', 'flavorRef': self.plain,
            'block_device_mapping_v2': [{
                'uuid': volume_id, 'source_type': 'volume',
                'destination_type': 'volume', 'boot_index': 0,
                'delete_on_termination': False}]})

    def cold(self, who: str) -> dict[str, float]:
        """A boot from a new image, with its backend process's RSS."""
        image_id = self.new_image(f'cold-{who}')
        fn = self.ours if who == 'ours' else self.stock
        with memory.TreeMemory(self.volume_pids.get(who)) as rss:
            value = fn(image_id)
        if rss.peak:
            value['volume_service_peak_pss_mb'] = rss.peak / MiB
            value['volume_service_idle_pss_mb'] = rss.idle / MiB
            value['volume_process_peak_rss_mb'] = rss.peak_rss / MiB
        return value

    def record(self, key: str, value: dict[str, float]) -> None:
        self.raw.setdefault(key, []).append(value)
        LOG.warning('%s: %s', key, {k: round(v, 2) for k, v in
                                    value.items()})

    def run(self) -> dict[str, Any]:
        warm_ours = self.new_image('warm-ours')
        warm_stock = self.new_image('warm-stock')
        floor_image = self.new_image('floor')
        # Prime both caches (not counted) and make the floor's volume.
        self.ours(warm_ours)
        self.stock(warm_stock)
        floor_vol = self.api.volume_from_image(floor_image, 'bench-floor')
        steps: list[tuple[str, Callable[[], dict[str, float]]]] = [
            ('warm_ours', lambda: self.ours(warm_ours)),
            ('warm_ours_direct', lambda: self.ours_direct(warm_ours)),
            ('warm_stock', lambda: self.stock(warm_stock)),
            ('floor', lambda: self.floor(floor_vol)),
            ('cold_ours', lambda: self.cold('ours')),
            ('cold_stock', lambda: self.cold('stock')),
        ]
        for r in range(self.repeats):
            # A different order each repeat: no configuration always runs
            # right after the same other one.
            shift = r % len(steps)
            for key, fn in steps[shift:] + steps[:shift]:
                self.record(key, fn())
        for r in range(self.storm_repeats):
            order = ('ours', 'stock') if r % 2 == 0 else ('stock', 'ours')
            for who in order:
                image_id = self.new_image(f'storm-{who}')
                fn = self.ours if who == 'ours' else self.stock
                value = fn(image_id, self.storm)
                downloads = self.api.downloads(image_id)
                value['glance_downloads'] = downloads
                value['glance_bytes_ratio'] = float(downloads)
                self.record(f'storm_{who}', value)
        return self.raw


# -- figures ---------------------------------------------------------------
def _pairs(raw: dict, a: str, b: str, field: str = 'active_s'
           ) -> list[float]:
    """Per-repeat ratios a/b (runs of the same repeat were neighbours)."""
    return [x[field] / y[field] for x, y in zip(raw.get(a, []),
                                                raw.get(b, []),
                                                strict=False)]


def _stat(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    return {'median': round(statistics.median(values), 3),
            'min': round(min(values), 3), 'max': round(max(values), 3),
            'n': len(values)}


def figures(raw: dict, repeats: int, storm: int, storm_repeats: int,
            quick: bool) -> dict[str, Any]:
    ratios = {
        'warm_active_ours_over_floor': _pairs(raw, 'warm_ours', 'floor'),
        'warm_active_ours_over_stock': _pairs(raw, 'warm_ours',
                                              'warm_stock'),
        'cold_active_ours_over_stock': _pairs(raw, 'cold_ours',
                                              'cold_stock'),
        'storm_active_ours_over_stock': _pairs(raw, 'storm_ours',
                                               'storm_stock'),
        'storm_glance_bytes_ratio': [
            v['glance_bytes_ratio'] for v in raw.get('storm_ours', [])],
        'storm_glance_bytes_ratio_stock': [
            v['glance_bytes_ratio'] for v in raw.get('storm_stock', [])],
        'nova_filter_overhead_pct': [
            100 * (x - 1) for x in _pairs(raw, 'warm_ours',
                                          'warm_ours_direct', 'post_s')],
        # The same difference in milliseconds, and as a share of the
        # request's whole time to ACTIVE (what a user waits for).
        'nova_filter_overhead_ms': [
            1000 * (x['post_s'] - y['post_s']) for x, y in zip(
                raw.get('warm_ours', []), raw.get('warm_ours_direct', []),
                strict=False)],
        'nova_filter_overhead_pct_of_active': [
            100 * (x['post_s'] - y['post_s']) / x['active_s']
            for x, y in zip(raw.get('warm_ours', []),
                            raw.get('warm_ours_direct', []), strict=False)],
    }
    out: dict[str, Any] = {}
    spread: dict[str, list[float]] = {}
    for key, values in ratios.items():
        st = _stat(values)
        out[key] = st['median'] if st else None
        if st:
            spread[key] = [st['min'], st['max']]
    targets = {'warm_active_ours_over_floor': 1.2,
               'storm_glance_bytes_ratio': 1.05,
               'nova_filter_overhead_pct': 5.0}
    out['targets_met'] = {
        k: (spread[k][1] <= bound if k in spread else None)
        for k, bound in targets.items()}
    out['targets'] = {k: f'<= {b}' for k, b in targets.items()}
    out['seconds'] = {k: {f: _stat([v[f] for v in vs])
                          for f in ('active_s', 'post_s')}
                      for k, vs in raw.items()}
    # cinder-volume's backend process alone (children included) during a
    # cold boot: peak PSS, peak less the PSS before the boot, and the
    # process's own peak RSS
    for who in ('ours', 'stock'):
        runs = [v for v in raw.get(f'cold_{who}', [])
                if 'volume_service_peak_pss_mb' in v]
        out[f'cold_volume_service_peak_pss_mb_{who}'] = _stat(
            [v['volume_service_peak_pss_mb'] for v in runs])
        out[f'cold_volume_service_pss_growth_mb_{who}'] = _stat(
            [v['volume_service_peak_pss_mb'] - v['volume_service_idle_pss_mb']
             for v in runs])
        out[f'cold_volume_process_peak_rss_mb_{who}'] = _stat(
            [v['volume_process_peak_rss_mb'] for v in runs])
    out['repeats'] = repeats
    out['storm_size'] = storm
    out['storm_repeats'] = storm_repeats
    out['quick'] = quick
    out['spread'] = spread
    return out


_LOG_TIME = r'(\d\d):(\d\d):(\d\d\.\d+) (\d+) '
_DRIVER_START = re.compile(_LOG_TIME + r'.*Starting volume driver (\w+)')
_CREATE = re.compile(_LOG_TIME + r'.*Volume (?:volume-\S+ \()?'
                     r'([0-9a-f-]{36})\)?: (being created|created success)')


def cinder_create_seconds(log: pathlib.Path, offset: int = 0
                          ) -> dict[str, Any]:
    """Seconds cinder-volume spent per volume create, per driver class.

    From cinder-volume's own log (its create flow's "being created" and
    "created successfully" lines); each backend is its own process, told
    apart by pid; ``offset``: where this run's part of the log begins
    (the bench directory's logs are kept across runs). Where the time to
    ACTIVE goes besides the driver: the API, the scheduler, RPC and Nova's
    wait for the volume.
    """
    driver_of: dict[str, str] = {}
    started: dict[str, tuple[float, str]] = {}
    seconds: dict[str, list[float]] = {}

    def ts(m: re.Match[str]) -> float:
        return (int(m.group(1)) * 3600 + int(m.group(2)) * 60 +
                float(m.group(3)))
    with open(log, errors='replace') as f:
        f.seek(offset)
        for line in f:
            m = _DRIVER_START.search(line)
            if m:
                driver_of[m.group(4)] = m.group(5)
                continue
            m = _CREATE.search(line)
            if not m:
                continue
            if m.group(6) == 'being created':
                started[m.group(5)] = (ts(m), m.group(4))
            elif m.group(5) in started:
                t0, pid = started.pop(m.group(5))
                seconds.setdefault(driver_of.get(pid, pid), []).append(
                    max(0.0, ts(m) - t0))
    return {k: _stat(v) for k, v in seconds.items()}


def volume_backend_pids(log: pathlib.Path, offset: int = 0
                        ) -> dict[str, int]:
    """The cinder-volume process of ours and of stock, from its log."""
    pids: dict[str, int] = {}
    with open(log, errors='replace') as f:
        f.seek(offset)
        for line in f:
            m = _DRIVER_START.search(line)
            if m and m.group(5) in DRIVER_CLASSES:
                pids[DRIVER_CLASSES[m.group(5)]] = int(m.group(4))
    return pids


def _environment(root: pathlib.Path) -> None:
    os.environ['DPM_CLOUD_DIR'] = str(root)
    os.environ['DPM_CLOUD_PORT_OFFSET'] = str(PORT_OFFSET)
    os.environ['DPM_CLOUD_STOCK_BACKEND'] = '1'
    # cinder-volume imports the stock driver from tools/bench.
    path = os.environ.get('PYTHONPATH')
    os.environ['PYTHONPATH'] = str(lay.REPO) + (
        os.pathsep + path if path else '')


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog='./run bench cloud')
    parser.add_argument('--quick', action='store_true',
                        help='fewer repeats and a smaller storm')
    parser.add_argument('--repeats', type=int)
    parser.add_argument('--storm', type=int)
    parser.add_argument('--storm-repeats', type=int)
    parser.add_argument('--keep', action='store_true',
                        help='leave the bench cloud running at the end')
    args = parser.parse_args(argv)
    repeats = args.repeats or 5
    storm = args.storm or (5 if args.quick else 20)
    storm_repeats = args.storm_repeats or (1 if args.quick else 5)
    logging.basicConfig(level=logging.WARNING, format='%(message)s')
    root = lay.REPO / '.cloud-bench'
    _environment(root)
    from cinder_dpm_ephemeral.testing import images
    from cinder_dpm_ephemeral.testing.cloud import cloud

    lo = lay.Layout.load(root)
    started = time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())
    load = os.getloadavg()
    cloud.down(lo)  # a cloud an interrupted run left
    volume_log = lo.logs / 'cinder-volume.log'
    log_offset = volume_log.stat().st_size if volume_log.exists() else 0
    t0 = time.monotonic()
    try:
        timings = cloud.up(lo)
        LOG.warning('bench cloud up in %.0f s (%s)', timings['total'], root)
        api = Api(lo)
        api.setup()
        with tempfile.TemporaryDirectory() as work:
            image = images.make_disk_image(work, 'qcow2', 'gpt',
                                           512 * images.MiB, seed=21,
                                           name='bench')
            bench = Bench(api, image, repeats, storm, storm_repeats,
                          volume_backend_pids(volume_log, log_offset))
            raw = bench.run()
            image_bytes = os.path.getsize(image.path)
        creates = cinder_create_seconds(volume_log, log_offset)
    finally:
        if not args.keep:
            cloud.down(lo)
    head = figures(raw, repeats, storm, storm_repeats, args.quick)
    results = {
        'started': started, 'seconds_total': round(time.monotonic() - t0),
        'load_average_start': load, 'load_average_end': os.getloadavg(),
        'cpus': os.cpu_count(), 'image': {
            'format': 'qcow2', 'virtual_bytes': 512 * images.MiB,
            'file_bytes': image_bytes},
        'cinder_volume_create_seconds': creates,
        'raw': raw, 'headline': head}
    out_dir = lay.REPO / 'doc' / 'results'
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / ('bench-cloud-quick.json' if args.quick
                      else 'bench-cloud.json')
    path.write_text(json.dumps(results, indent=1) + '\n')
    print(f'results: {path.relative_to(lay.REPO)}')
    print(json.dumps(head))
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
