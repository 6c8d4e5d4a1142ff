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
"""``./run faults --cloud``: server lifecycles through the whole cloud.

Brings up its own cloud from nothing (``.cloud-faults/``, removed first;
ports moved by 400: Keystone,
Glance, Placement, Cinder with our driver, Nova with the Nova filter and
the DPM driver, the SVC, PowerFlex and HMC emulators), arms the
emulators' faults at rate R (each reads ``faults.json`` in its state
directory: :func:`emulators.faults.watch_control_file`), and runs server
lifecycles as the ``demo`` user, a few at a time: ``POST /servers`` with
``imageRef`` on a DPM flavor (the Nova filter makes it boot from a volume
of the DPM volume type), wait for ACTIVE or ERROR, ``DELETE``, wait until
the server is gone. A share of them are pairs (``min_count`` 2).

Then the faults are disarmed and what is left is settled as a user would:
every server still there is deleted again. After that:

* **stuck**: a server still BUILD or with a task state, a volume still in
  a transitional state (Cinder's database, :mod:`testing.audit`);
* **leaked**: an HMC partition ``OpenStack-<host>-<uuid>`` or a storage
  group of no live server; a root volume left in the demo project after
  its server was deleted (``delete_on_termination`` not honoured); a
  server that could not be deleted; on the arrays, every object Cinder
  does not own (:mod:`tools.faults.cloud_audit`);
* **password_in_log**: lines of the cloud's logs (every service) holding
  a password of the cloud (Keystone users, the arrays, the HMC).
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from typing import Any

from cinder_dpm_ephemeral.testing.cloud import layout as lay

PORT_OFFSET = 400
FLAVOR = 'faults.dpm'
POLL = 0.5
UUID_RE = re.compile(r'[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-'
                     r'[0-9a-f]{12}')
#: the emulators armed, and their fault parameters
ARMED = {'svc': {'slow_seconds': 1.0},
         'powerflex': {'slow_seconds': 0.5, 'timeout_seconds': 2.0},
         'hmc': {'slow_seconds': 0.5, 'timeout_seconds': 2.0}}
VOLUME_TRANSITIONAL = ('creating', 'downloading', 'deleting', 'attaching',
                       'detaching', 'reserved', 'extending', 'maintenance')


def params_for(quick: bool, rate: float, seed: int,
               lifecycles: int | None = None) -> dict[str, Any]:
    return {'lifecycles': lifecycles or (12 if quick else 40),
            'rate': rate, 'seed': seed, 'parallel': 2,
            'pair_share': 0.25, 'images': 3, 'active_timeout': 300,
            'delete_timeout': 300, 'settle_seconds': 300}


class Cloud:
    """The campaign's cloud through its APIs (keystoneauth sessions)."""

    def __init__(self, lo: lay.Layout) -> None:
        from tools.bench import cloud as bench_cloud
        self.lo = lo
        self.api = bench_cloud.Api(lo)
        self.nova, self.hdr = self.api.nova, self.api.hdr

    def flavor(self) -> str:
        admin = self.api.admin
        for f in admin.get(self.nova + '/flavors',
                           headers=self.hdr).json()['flavors']:
            if f['name'] == FLAVOR:
                return f['id']
        fid = admin.post(self.nova + '/flavors', headers=self.hdr, json={
            'flavor': {'name': FLAVOR, 'ram': 2048, 'vcpus': 1,
                       'disk': 1}}).json()['flavor']['id']
        admin.post(f'{self.nova}/flavors/{fid}/os-extra_specs',
                   headers=self.hdr,
                   json={'extra_specs': {'dpm:boot_from_volume': 'true'}})
        return fid

    def servers(self, prefix: str = '', admin: bool = False
                ) -> list[dict[str, Any]]:
        sess = self.api.admin if admin else self.api.demo
        params: dict[str, Any] = {'name': f'^{prefix}'} if prefix else {}
        if admin:
            params['all_tenants'] = 1
        return sess.get(self.nova + '/servers/detail', headers=self.hdr,
                        params=params).json()['servers']

    def delete_server(self, sid: str) -> int:
        return self.api.demo.delete(f'{self.nova}/servers/{sid}',
                                    headers=self.hdr,
                                    raise_exc=False).status_code

    def volumes(self) -> list[dict[str, Any]]:
        """Every volume of every project (admin)."""
        base = self.api.cinder(self.api.admin)
        return self.api.admin.get(base + '/volumes/detail', params={
            'all_tenants': 1}).json()['volumes']

    def demo_project(self) -> str:
        return self.api.demo.get_project_id()

    # -- the HMC, through zhmcclient as its administrator ------------------
    def hmc(self) -> tuple[list[str], list[str]]:
        """(partition names, storage group names) on the campaign's CPC."""
        import zhmcclient

        from cinder_dpm_ephemeral.testing.cloud import config
        dpm = config.dpm_compute(self.lo)['dpm']
        session = zhmcclient.Session(
            lay.HOST, dpm['hmc_username'], dpm['hmc_password'],
            port=dpm['hmc_port'], verify_cert=dpm['hmc_ca_certs'])
        try:
            client = zhmcclient.Client(session)
            cpc = client.cpcs.find(**{'object-id': dpm['cpc_object_id']})
            parts = [p.name for p in cpc.partitions.list()]
            groups: list[str] = []
            try:
                if cpc.feature_enabled('dpm-storage-management'):
                    groups = [g.name for g in
                              client.consoles.console.storage_groups.list()]
            except ValueError:      # a z13-like CPC: no storage groups
                pass
            return parts, groups
        finally:
            session.logoff()


def _arm(lo: lay.Layout, rate: float, seed: int) -> None:
    from cinder_dpm_ephemeral.emulators import faults
    for i, (kind, params) in enumerate(sorted(ARMED.items())):
        faults.write_control_file(
            str(lo.data / 'emulators' / kind), rate, seed=seed + i,
            write_rate=rate if kind != 'hmc' else 0.0, **params)


def _fault_stats(lo: lay.Layout) -> dict[str, Any]:
    from cinder_dpm_ephemeral.emulators import faults
    return {kind: faults.read_stats(str(lo.data / 'emulators' / kind)).get(
        'injected', {}) for kind in ARMED}


def _wait_servers(cloud: Cloud, prefix: str, count: int, done: Any,
                  timeout: float) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        servers = cloud.servers(prefix)
        if len(servers) >= count and all(done(s) for s in servers):
            return servers
        if time.monotonic() > deadline:
            return servers
        time.sleep(POLL)


def lifecycle(cloud: Cloud, n: int, count: int, image_id: str,
              flavor_id: str, params: dict[str, Any]) -> dict[str, Any]:
    """One boot (of ``count`` servers) and its delete; what happened."""
    prefix = f'fc{n:03d}-{uuid.uuid4().hex[:4]}'
    rec: dict[str, Any] = {'n': n, 'count': count, 'ok': False,
                           'servers': []}
    body: dict[str, Any] = {'name': prefix, 'imageRef': image_id,
                            'flavorRef': flavor_id, 'networks': 'none'}
    if count > 1:
        body.update(min_count=count, max_count=count)
    resp = cloud.api.demo.post(cloud.nova + '/servers', headers=cloud.hdr,
                               json={'server': body}, raise_exc=False)
    if resp.status_code != 202:
        rec['post'] = f'{resp.status_code} {resp.text[:200]}'
        return rec
    servers = _wait_servers(
        cloud, prefix, count,
        lambda s: s['status'] in ('ACTIVE', 'ERROR'),
        params['active_timeout'])
    rec['servers'] = [s['id'] for s in servers]
    rec['statuses'] = [s['status'] for s in servers]
    rec['faults'] = [(s.get('fault') or {}).get('message', '')[:200]
                     for s in servers if s['status'] == 'ERROR']
    active = (len(servers) == count and
              all(s['status'] == 'ACTIVE' for s in servers))
    for s in servers:
        cloud.delete_server(s['id'])
    # gone, or ERROR with no task under way (a delete that failed; a
    # failed build is ERROR while its delete still runs)
    left = _wait_servers(cloud, prefix, 0,
                         lambda s: s['status'] == 'ERROR' and
                         not s.get('OS-EXT-STS:task_state'),
                         params['delete_timeout'])
    rec['left_after_delete'] = [f"{s['id']} {s['status']}" for s in left]
    rec['ok'] = active and not left
    return rec


def settle(cloud: Cloud, params: dict[str, Any]) -> dict[str, Any]:
    """Faults off: delete what is left, as a user would, and wait."""
    deadline = time.monotonic() + params['settle_seconds']
    redeletes = 0
    while True:
        left = cloud.servers('fc', admin=True)
        if not left or time.monotonic() > deadline:
            break
        for s in left:
            if not s.get('OS-EXT-STS:task_state'):
                cloud.delete_server(s['id'])
                redeletes += 1
        time.sleep(2)
    while time.monotonic() < deadline and any(
            v['status'] in VOLUME_TRANSITIONAL for v in cloud.volumes()):
        time.sleep(1)
    return {'redeletes': redeletes}


def audit(cloud: Cloud, lo: lay.Layout) -> dict[str, Any]:
    """Stuck and leaked, Nova and the HMC, Cinder and the arrays."""
    from cinder_dpm_ephemeral.testing.cloud import services as svcs
    servers = cloud.servers(admin=True)
    live = {s['id'] for s in servers}
    stuck = [f"server {s['id']} {s['status']}/"
             f"{s.get('OS-EXT-STS:task_state')}" for s in servers
             if s['status'] == 'BUILD' or s.get('OS-EXT-STS:task_state')]
    leaked: dict[str, list[str]] = {
        'servers': [f"{s['id']} {s['status']}" for s in servers
                    if s['name'].startswith('fc') and
                    f"server {s['id']}" not in ' '.join(stuck)]}
    parts, groups = cloud.hmc()

    def dead(name: str) -> bool:
        ids = UUID_RE.findall(name)
        return bool(ids) and not set(ids) & live
    leaked['partitions'] = sorted(p for p in parts if p.startswith(
        'OpenStack-') and dead(p))
    leaked['storage_groups'] = sorted(g for g in groups if dead(g))
    demo = cloud.demo_project()
    vols = cloud.volumes()
    stuck += [f"volume {v['id']} {v['status']}" for v in vols
              if v['status'] in VOLUME_TRANSITIONAL]
    leaked['root_volumes'] = sorted(
        f"{v['id']} {v['status']}" for v in vols
        if v.get('os-vol-tenant-attr:tenant_id') == demo and
        v['status'] not in VOLUME_TRANSITIONAL)
    env = svcs.service_env(lo)
    for kind in ('svc', 'powerflex'):
        env[f'DPM_EMULATOR_PASSWORD_{kind.upper()}'] = lo.passwords[kind]
    out = subprocess.run(
        [sys.executable, '-m', 'tools.faults.cloud_audit', '--config-file',
         str(lo.conf('cinder')),
         '--array', f"svc:{lo.data / 'emulators' / 'svc'}",
         '--array', f"powerflex:{lo.data / 'emulators' / 'powerflex'}"],
        env=env, cwd=str(lay.REPO), capture_output=True, text=True,
        timeout=600)
    if out.returncode != 0:
        raise RuntimeError(f'cloud_audit failed: {out.stderr[-2000:]}')
    arrays = json.loads(out.stdout.strip().splitlines()[-1])
    for kind, res in arrays.items():
        stuck += [s for s in res['stuck'] if s not in stuck]
        for k, items in res['leaked'].items():
            leaked[f'{kind}_{k}'] = items
    return {'stuck': stuck,
            'leaked': {k: v for k, v in leaked.items() if v}}


def passwords_in_logs(lo: lay.Layout) -> dict[str, int]:
    """Log files of the cloud holding one of its passwords: lines each."""
    secrets = [p for p in lo.passwords.values() if p and len(p) >= 8]
    out = {}
    for path in sorted(lo.logs.rglob('*')):
        if not path.is_file():
            continue
        with open(path, errors='replace') as f:
            n = sum(1 for line in f if any(s in line for s in secrets))
        if n:
            out[str(path.relative_to(lo.root))] = n
    return out


def run(params: dict[str, Any], keep: bool = False) -> dict[str, Any]:
    os.environ['DPM_CLOUD_DIR'] = str(lay.REPO / '.cloud-faults')
    os.environ['DPM_CLOUD_PORT_OFFSET'] = str(PORT_OFFSET)
    from cinder_dpm_ephemeral.testing import images
    from cinder_dpm_ephemeral.testing.cloud import cloud as cloud_mod

    root = lay.REPO / '.cloud-faults'
    cloud_mod.down(lay.Layout.load(root))   # one an interrupted run left
    # from nothing: an earlier run's arrays and databases would count
    shutil.rmtree(root)
    lo = lay.Layout.load(root)
    t0 = time.monotonic()
    rng = random.Random(params['seed'])
    out: dict[str, Any] = {'params': params}
    try:
        out['cloud_up_seconds'] = round(cloud_mod.up(lo)['total'], 1)
        cloud = Cloud(lo)
        flavor = cloud.flavor()
        with tempfile.TemporaryDirectory() as work:
            image_ids = []
            for i in range(params['images']):
                img = images.make_disk_image(
                    work, 'qcow2', 'gpt', 64 * images.MiB,
                    seed=params['seed'] * 10 + i, name=f'faults-{i}')
                image_ids.append(cloud.api.upload(img.path, 'qcow2',
                                                  f'faults-{i}'))
        _arm(lo, params['rate'], params['seed'])
        t_run = time.monotonic()
        plan = [(n, 2 if rng.random() < params['pair_share'] else 1,
                 rng.choice(image_ids)) for n in range(params['lifecycles'])]
        with concurrent.futures.ThreadPoolExecutor(params['parallel']) as ex:
            records = list(ex.map(
                lambda p: lifecycle(cloud, p[0], p[1], p[2], flavor, params),
                plan))
        out['run_seconds'] = round(time.monotonic() - t_run, 1)
        out['faults_injected'] = _fault_stats(lo)
        _arm(lo, 0.0, params['seed'])
        out['settle'] = settle(cloud, params)
        found = audit(cloud, lo)
        out['password_in_log_files'] = passwords_in_logs(lo)
    finally:
        if not keep:
            cloud_mod.down(lo)
    blame = ' '.join(found['stuck'] + [i for v in found['leaked'].values()
                                       for i in v])
    servers = sum(r['count'] for r in records)
    out.update({
        'lifecycles': len(records), 'servers': servers,
        'succeeded': sum(1 for r in records if r['ok']),
        'failed_cleanly': sum(1 for r in records if not r['ok'] and not any(
            sid in blame for sid in r['servers'])),
        'stuck': len(found['stuck']),
        'leaked': sum(len(v) for v in found['leaked'].values()),
        'password_in_log': sum(out['password_in_log_files'].values()),
        'stuck_detail': found['stuck'], 'leaked_detail': found['leaked'],
        'failures': [r for r in records if not r['ok']],
        'seconds': round(time.monotonic() - t0, 1)})
    return out
