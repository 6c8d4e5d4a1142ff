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
"""up / down / status of the whole cloud (see processes.py for the order)."""

from __future__ import annotations

import concurrent.futures
import json
import logging
import os
import sys
import threading
import time
from typing import Any

import yaml

from cinder_dpm_ephemeral.testing.cloud import config
from cinder_dpm_ephemeral.testing.cloud import keystone
from cinder_dpm_ephemeral.testing.cloud import layout as lay
from cinder_dpm_ephemeral.testing.cloud import processes as procs
from cinder_dpm_ephemeral.testing.cloud import services as svcs
from cinder_dpm_ephemeral.testing.cloud import sqlite_tx

LOG = logging.getLogger(__name__)

# Stop order: the services before what they talk to, the bus last.
STOP_ORDER = ('nova-api', 'nova-compute', 'nova-scheduler', 'nova-conductor',
              'cinder-api', 'cinder-volume', 'cinder-scheduler',
              'neutron-api', 'placement-api', 'glance-api', 'keystone',
              'svc-emulator', 'powerflex-emulator', 'hmc-emulator',
              'rabbitmq', 'epmd')


def _manage(lo: lay.Layout, project: str, *args: str) -> list[str]:
    conf = lo.conf('glance', 'glance-api.conf') if project == 'glance' \
        else lo.conf(project)
    return [lay.venv_bin(f'{project}-manage' if project != 'neutron'
                         else 'neutron-db-manage'),
            '--config-file', str(conf), *args]


def _db_steps(lo: lay.Layout) -> dict[str, list[list[str]]]:
    return {
        'glance': [_manage(lo, 'glance', 'db_sync')],
        'placement': [_manage(lo, 'placement', 'db', 'sync')],
        'neutron': [
            [sys.executable, '-m',
             'cinder_dpm_ephemeral.testing.cloud.neutron_db',
             lo.sqlite('neutron')],
            _manage(lo, 'neutron', 'stamp', 'heads')],
        'cinder': [_manage(lo, 'cinder', 'db', 'sync')],
        'nova': [
            _manage(lo, 'nova', 'api_db', 'sync'),
            _manage(lo, 'nova', 'cell_v2', 'map_cell0',
                    '--database_connection', config.nova_cell0_url(lo)),
            _manage(lo, 'nova', 'cell_v2', 'create_cell', '--name', 'cell1',
                    '--database_connection', config.nova_cell1_url(lo),
                    '--transport-url', lo.transport_url),
            _manage(lo, 'nova', 'db', 'sync'),
        ],
    }


def _first_time(lo: lay.Layout, step: str) -> bool:
    return not (lo.data / 'done' / step).exists()


def _done(lo: lay.Layout, step: str) -> None:
    marker = lo.data / 'done' / step
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.touch()


def _sync_databases(lo: lay.Layout) -> None:
    (lo.data / 'db').mkdir(parents=True, exist_ok=True)

    def one(project: str, steps: list[list[str]]) -> None:
        if not _first_time(lo, f'db-{project}'):
            return
        for argv in steps:
            svcs.run_once(lo, project, argv)
        _done(lo, f'db-{project}')

    with concurrent.futures.ThreadPoolExecutor(5) as pool:
        futures = [pool.submit(one, p, s) for p, s in _db_steps(lo).items()]
        for f in futures:
            f.result()
    sqlite_tx.use_wal(lo.data / 'db')


def _start_and_wait(lo: lay.Layout, services: list[svcs.Service],
                    timings: dict[str, float]) -> None:
    t0 = time.monotonic()
    for s in services:
        svcs.start(lo, s)
    timings.update(svcs.wait_healthy(lo, services, t0))


def _post_setup(lo: lay.Layout, ids: dict[str, str]) -> None:
    if _first_time(lo, 'cell-hosts'):
        svcs.run_once(lo, 'nova', _manage(lo, 'nova', 'cell_v2',
                                          'discover_hosts', '--verbose'))
        _done(lo, 'cell-hosts')
    if _first_time(lo, 'volume-types'):
        sess = keystone.admin_session(lo)
        base = lo.url('cinder') + '/v3/' + sess.get_project_id()
        for name, backend in ((lay.DPM_VOLUME_TYPE, lay.SVC_BACKEND),
                              (lay.POWERFLEX_VOLUME_TYPE,
                               lay.POWERFLEX_BACKEND)):
            types = sess.get(base + '/types').json()['volume_types']
            if not any(t['name'] == name for t in types):
                sess.post(base + '/types', json={'volume_type': {
                    'name': name, 'os-volume-type-access:is_public': True,
                    'extra_specs': {'volume_backend_name': backend}}})
        # Storms of servers: the demo project's volume quota is not a limit.
        sess.put(f'{base}/os-quota-sets/{ids["demo_project_id"]}',
                 json={'quota_set': {'volumes': -1, 'gigabytes': -1,
                                     'snapshots': -1}})
        nova = lo.url('nova') + '/v2.1'
        sess.put(f'{nova}/os-quota-sets/{ids["demo_project_id"]}',
                 json={'quota_set': {'instances': 100, 'cores': 400,
                                     'ram': 4 * 1024 ** 2}})
        _done(lo, 'volume-types')


def write_clouds_yaml(lo: lay.Layout) -> None:
    def cloud(user: str, project: str) -> dict[str, Any]:
        return {'auth': {'auth_url': lo.keystone_url, 'username': user,
                         'password': lo.passwords[user],
                         'project_name': project,
                         'user_domain_name': 'Default',
                         'project_domain_name': 'Default'},
                'region_name': lay.REGION, 'identity_api_version': 3,
                'interface': 'public'}
    data = {'clouds': {
        'dpm-demo': cloud(lay.DEMO_USER, lay.DEMO_PROJECT),
        'dpm-demo-admin': cloud(lay.ADMIN_USER, 'admin')}}
    lo.clouds_yaml.write_text(yaml.safe_dump(data, sort_keys=False))
    lo.clouds_yaml.chmod(0o600)


def compute_kind() -> str:
    """``dpm`` (the DPM driver on the emulated HMC) unless told ``fake``."""
    kind = os.environ.get('DPM_CLOUD_COMPUTE', 'dpm')
    if kind not in ('dpm', 'fake'):
        raise svcs.ServiceError(
            f'DPM_CLOUD_COMPUTE={kind!r}: expected dpm (the DPM driver on '
            'the emulated HMC, the default) or fake (Nova\'s FakeDriver)')
    return kind


def compute_options(lo: lay.Layout, kind: str) -> config.Conf:
    return config.dpm_compute(lo) if kind == 'dpm' else config.fake_compute()


def up(lo: lay.Layout) -> dict[str, float]:
    """Start everything; returns seconds to healthy per service."""
    t0 = time.monotonic()
    for d in (lo.etc, lo.logs, lo.run, lo.data / 'db',
              lo.data / 'nova' / 'instances', *(
                  lo.data / p for p in ('keystone', 'glance', 'placement',
                                        'neutron', 'cinder'))):
        d.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    procs.write_rabbit_config(lo)
    config.write_keystone(lo)
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        bus = pool.submit(_start_and_wait, lo,
                          procs.bus_services(lo), timings)
        kind = compute_kind()
        emulators = procs.emulator_services(lo)
        if kind == 'dpm':
            emulators.append(procs.hmc_service(lo))
        arrays = pool.submit(_start_and_wait, lo, emulators, timings)
        if _first_time(lo, 'keystone'):
            keystone.bootstrap(lo)
            _done(lo, 'keystone')
        _start_and_wait(lo, [procs.wsgi_service(lo, 'keystone')], timings)
        ids = keystone.configure(lo)
        (lo.data / 'ids.json').write_text(json.dumps(ids, indent=1))
        config.write_services(lo, ids, compute_options(lo, kind))
        _sync_databases(lo)
        bus.result()
        arrays.result()
    services = [procs.wsgi_service(lo, n) for n in procs.WSGI_APPS
                if n != 'keystone'] + procs.rpc_services(lo)
    _start_and_wait(lo, services, timings)
    _post_setup(lo, ids)
    write_clouds_yaml(lo)
    timings['total'] = time.monotonic() - t0
    (lo.run / 'timings.json').write_text(json.dumps(timings, indent=1))
    return timings


def restart_compute(lo: lay.Layout,
                    overrides: config.Conf | None = None) -> float:
    """Restart nova-compute with ``overrides`` over nova.conf (None: none).

    Returns the seconds until the new process reported to Nova.
    """
    override = procs.compute_override(lo)
    if overrides:
        config.write_ini(override, overrides)
    else:
        override.unlink(missing_ok=True)
    svcs.stop(lo, 'nova-compute')
    [service] = [s for s in procs.rpc_services(lo)
                 if s.name == 'nova-compute']
    t0 = time.monotonic()
    svcs.start(lo, service)
    return svcs.wait_healthy(lo, [service], t0)['nova-compute']


def down(lo: lay.Layout) -> list[str]:
    """Stop everything this cloud started; returns what was running."""
    stopped = []
    names = svcs.recorded_names(lo)
    ordered = [n for n in STOP_ORDER if n in names] + [
        n for n in names if n not in STOP_ORDER]
    # The APIs and services first, all at once; then arrays; the bus last.
    waves = [ordered[:-2], ordered[-2:]] if len(ordered) > 2 else [ordered]
    results: dict[str, bool] = {}

    def one(name: str) -> None:
        results[name] = svcs.stop(lo, name)

    for wave in waves:
        # Plain threads: this may run at interpreter exit, where
        # concurrent.futures refuses new work.
        threads = [threading.Thread(target=one, args=(n,)) for n in wave]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        stopped += [n for n in wave if results.get(n)]
    left = svcs.stop_stragglers(lo)
    if left:
        LOG.warning('killed %d leftover process(es): %s', len(left), left)
    return stopped


def status(lo: lay.Layout) -> dict[str, str]:
    out = {}
    for name in svcs.recorded_names(lo):
        pid = svcs.recorded_pid(lo, name)
        out[name] = f'running (pid {pid})' if pid else 'dead'
    return out
