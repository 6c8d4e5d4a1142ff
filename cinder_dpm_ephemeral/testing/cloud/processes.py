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
"""Bring the whole cloud up, report its state, take it down.

Order, as devstack stacks: RabbitMQ (with its own epmd) and the emulated
arrays; Keystone (bootstrapped the first time) and its accounts and
catalog; every other configuration file; the databases (first time); then
every API and service process at once, each waited for with a health
check: the APIs answer HTTP, the RPC services report ``up`` in their API's
service list. The first ``up`` also makes the volume types and maps the
compute host into cell1.
"""

from __future__ import annotations

import datetime
import logging
import os
import pathlib
import sys
from collections.abc import Callable
from typing import Any

from cinder_dpm_ephemeral.testing.cloud import config
from cinder_dpm_ephemeral.testing.cloud import keystone
from cinder_dpm_ephemeral.testing.cloud import layout as lay
from cinder_dpm_ephemeral.testing.cloud import services as svcs

LOG = logging.getLogger(__name__)

RABBIT_SERVER = '/usr/lib/rabbitmq/bin/rabbitmq-server'
WSGI_APPS = {
    # name: (layout port, module:attr, environment naming its config)
    'keystone': ('keystone', 'keystone.wsgi.api:application',
                 lambda lo: {'OS_KEYSTONE_CONFIG_FILES':
                             str(lo.conf('keystone'))}),
    'glance-api': ('glance', 'glance.wsgi.api:application',
                   lambda lo: {'OS_GLANCE_CONFIG_DIR':
                               str(lo.etc / 'glance')}),
    'placement-api': ('placement', 'placement.wsgi.api:application',
                      lambda lo: {'OS_PLACEMENT_CONFIG_DIR':
                                  str(lo.etc / 'placement')}),
    'neutron-api': ('neutron',
                    'cinder_dpm_ephemeral.testing.cloud.neutron_api:'
                    'application',
                    lambda lo: {'OS_NEUTRON_CONFIG_DIR':
                                str(lo.etc / 'neutron'),
                                'OS_NEUTRON_CONFIG_FILES': 'neutron.conf'}),
    'cinder-api': ('cinder', 'cinder.wsgi.api:application',
                   lambda lo: {}),
    'nova-api': ('nova', 'nova.wsgi.osapi_compute:application',
                 lambda lo: {'OS_NOVA_CONFIG_DIR': str(lo.etc / 'nova'),
                             # Nova loads its paste app from the first.
                             'OS_NOVA_CONFIG_FILES':
                                 'api-paste.ini;nova.conf'}),
}


def _py(*args: str) -> list[str]:
    return [sys.executable, *args]


def wsgi_service(lo: lay.Layout, name: str) -> svcs.Service:
    port_key, target, env = WSGI_APPS[name]
    args = ['--config-file', str(lo.conf('cinder'))] if name == 'cinder-api' \
        else []
    argv = _py('-m', 'cinder_dpm_ephemeral.testing.cloud.wsgi', name,
               f'{lay.HOST}:{lo.ports[port_key]}', target,
               str(lo.logs / f'{name}-access.log'), '--', *args)
    return svcs.Service(name, argv, env=env(lo),
                        health=svcs.http_health(lo.url(port_key) + '/'),
                        port=lo.ports[port_key])


def rabbit_env(lo: lay.Layout) -> dict[str, str]:
    base = lo.data / 'rabbitmq'
    return {
        'HOME': str(base),  # its Erlang cookie, apart from the user's
        'ERL_EPMD_PORT': str(lo.ports['epmd']),
        'RABBITMQ_NODENAME': 'dpmcloud@localhost',
        'RABBITMQ_NODE_IP_ADDRESS': lay.HOST,
        'RABBITMQ_NODE_PORT': str(lo.ports['rabbitmq']),
        'RABBITMQ_DIST_PORT': str(lo.ports['rabbitmq-dist']),
        'RABBITMQ_MNESIA_BASE': str(base / 'mnesia'),
        'RABBITMQ_LOG_BASE': str(lo.logs / 'rabbitmq'),
        'RABBITMQ_CONFIG_FILE': str(base / 'rabbitmq.conf'),
        'RABBITMQ_ENABLED_PLUGINS_FILE': str(base / 'enabled_plugins'),
    }


def write_rabbit_config(lo: lay.Layout) -> None:
    base = lo.data / 'rabbitmq'
    (base / 'mnesia').mkdir(parents=True, exist_ok=True)
    (lo.logs / 'rabbitmq').mkdir(parents=True, exist_ok=True)
    conf = base / 'rabbitmq.conf'
    conf.write_text(
        f'listeners.tcp.default = {lay.HOST}:{lo.ports["rabbitmq"]}\n'
        'default_user = cloud\n'
        f'default_pass = {lo.passwords["rabbitmq"]}\n'
        'loopback_users = none\n')
    conf.chmod(0o600)
    (base / 'enabled_plugins').write_text('[].\n')


def bus_services(lo: lay.Layout) -> list[svcs.Service]:
    if not pathlib.Path(RABBIT_SERVER).exists():
        raise svcs.ServiceError(
            f'RabbitMQ is not installed ({RABBIT_SERVER} missing): run '
            '"./run cloud up", which installs the Debian package '
            'rabbitmq-server, or apt-get install -y rabbitmq-server')
    env = rabbit_env(lo)
    return [
        svcs.Service('epmd', ['epmd', '-port', str(lo.ports['epmd'])],
                     env=env, health=svcs.tcp_health(lo.ports['epmd']),
                     port=lo.ports['epmd']),
        svcs.Service('rabbitmq', [RABBIT_SERVER], env=env,
                     health=svcs.tcp_health(lo.ports['rabbitmq']),
                     port=lo.ports['rabbitmq']),
    ]


def emulator_services(lo: lay.Layout) -> list[svcs.Service]:
    out = []
    for kind, user, ready in (('svc', 'superuser', 'known_hosts'),
                              ('powerflex', 'admin',
                               'powerflex-gateway.crt')):
        state = lo.data / 'emulators' / kind
        state.mkdir(parents=True, exist_ok=True)
        port = lo.ports[kind]
        check_file = svcs.file_health(state / ready)
        check_port = svcs.tcp_health(port)
        out.append(svcs.Service(
            f'{kind}-emulator',
            [lay.venv_bin('dpm-ephemeral-emulator'), kind, '--listen',
             f'{lay.HOST}:{port}', '--state-dir', str(state), '--login',
             user],
            # The password stays out of the process list.
            env={'DPM_EMULATOR_PASSWORD': lo.passwords[kind]},
            # (the SVC's readiness is its host key: a bare TCP probe would
            # make its SSH server log a failed handshake)
            health=check_file if kind == 'svc' else
            (lambda f=check_file, p=check_port: f() or p()),
            port=port))
    return out


def cpc_model() -> str:
    """``z14`` (storage groups) or ``z13`` (virtual HBAs): $DPM_CLOUD_CPC.

    The HMC emulator makes its CPC at its first start: changing the model
    needs a new cloud directory.
    """
    model = os.environ.get('DPM_CLOUD_CPC', 'z14')
    if model not in ('z13', 'z14'):
        raise svcs.ServiceError(f'DPM_CLOUD_CPC={model!r}: expected z14 '
                                '(storage-group route) or z13 (HBA route)')
    return model


def hmc_service(lo: lay.Layout) -> svcs.Service:
    """The emulated HMC; its partition starts IPL from the SVC's LUNs."""
    state = lo.data / 'emulators' / 'hmc'
    state.mkdir(parents=True, exist_ok=True)
    check_file = svcs.file_health(state / 'hmc-emulator.crt')
    check_port = svcs.tcp_health(lo.ports['hmc'])
    return svcs.Service(
        'hmc-emulator',
        [lay.venv_bin('dpm-ephemeral-emulator'), 'hmc', '--listen',
         f'{lay.HOST}:{lo.ports["hmc"]}', '--state-dir', str(state),
         '--login', config.HMC_USER,
         '--cpc', f'{config.HMC_CPC}:{cpc_model()}',
         '--adapters', str(len(config.HMC_ADAPTERS)),
         '--svc-state-dir', str(lo.data / 'emulators' / 'svc')],
        env={'DPM_EMULATOR_PASSWORD': lo.passwords['hmc']},
        health=lambda: check_file() or check_port(), port=lo.ports['hmc'])


class _ServiceLists:
    """Health checks through the APIs' own service lists (admin token)."""

    def __init__(self, lo: lay.Layout) -> None:
        self.lo = lo
        self._sess: Any = None

    def _get(self, url: str) -> Any:
        if self._sess is None:
            self._sess = keystone.admin_session(self.lo)
        return self._sess.get(url, raise_exc=False)

    def check(self, kind: str, binary: str, host: str
              ) -> Callable[[], str | None]:
        # 'up' is not enough after a restart: the old process's last
        # heartbeat keeps a service 'up' for service_down_time (60 s), and
        # Nova's ComputeFilter then still finds the new one silent. Wait
        # for a heartbeat of this start.
        since = datetime.datetime.now(datetime.UTC).replace(
            tzinfo=None)

        def health() -> str | None:
            try:
                if kind == 'nova':
                    resp = self._get(self.lo.url('nova') +
                                     '/v2.1/os-services')
                else:
                    resp = self._get(self.lo.url('cinder') +
                                     '/v3/os-services')
            except Exception as exc:  # API not up yet
                return f'{kind} API: {exc}'
            if resp.status_code != 200:
                return f'{kind} API service list: HTTP {resp.status_code}'
            for s in resp.json()['services']:
                if s['binary'] != binary or s['host'] != host:
                    continue
                if s['state'] != 'up':
                    return f'{binary} on {host} is {s["state"]}'
                beat = s.get('updated_at')
                if not beat or datetime.datetime.fromisoformat(
                        beat.rstrip('Z')).replace(tzinfo=None) < since:
                    return f'{binary} on {host}: no heartbeat since start'
                return None
            return f'{binary} on {host} has not reported yet'
        return health


def launch(script: str, *args: str) -> list[str]:
    """A console script run through launch.py (SQLite transactions)."""
    return _py('-m', 'cinder_dpm_ephemeral.testing.cloud.launch', script,
               *args)


def rpc_services(lo: lay.Layout) -> list[svcs.Service]:
    lists = _ServiceLists(lo)
    fatal = r' (ERROR|CRITICAL) (nova|cinder) \['
    cinder_conf = ['--config-file', str(lo.conf('cinder'))]
    nova_conf = ['--config-file', str(lo.conf('nova'))]
    out = [svcs.Service('cinder-scheduler',
                        launch('cinder-scheduler', *cinder_conf),
                        health=lists.check('cinder', 'cinder-scheduler',
                                           lay.STORAGE_HOST), fatal=fatal),
           svcs.Service('cinder-volume',
                        launch('cinder-volume', *cinder_conf),
                        health=lists.check(
                            'cinder', 'cinder-volume',
                            f'{lay.STORAGE_HOST}@{lay.SVC_BACKEND}'),
                        fatal=fatal)]
    for binary in ('nova-conductor', 'nova-scheduler', 'nova-compute'):
        if binary == 'nova-compute':
            # its own file, without database connections (config.nova_cpu)
            conf = ['--config-file', str(lo.conf('nova', 'nova-cpu.conf'))]
            override = compute_override(lo)
            if override.exists():
                conf += ['--config-file', str(override)]
        else:
            conf = list(nova_conf)
        out.append(svcs.Service(binary, launch(binary, *conf),
                                health=lists.check('nova', binary,
                                                   lay.COMPUTE_HOST),
                                fatal=fatal))
    return out


def compute_override(lo: lay.Layout) -> pathlib.Path:
    """Options nova-compute reads after nova-cpu.conf, when the file exists.

    A test that needs other compute options (cloud.restart_compute) writes
    it and restarts nova-compute; nothing else of the cloud reads it.
    """
    return lo.conf('nova', 'nova-compute-override.conf')
