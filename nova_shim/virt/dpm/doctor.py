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
"""``nova-dpm-doctor``: the DPM compute side checked before nova-compute.

Run where nova-compute runs, on its configuration::

    nova-dpm-doctor --config-file /etc/nova/nova.conf [--format json]

It reads only ``[DEFAULT] host`` and the ``[dpm]`` section (its own option
parser, so nothing else of Nova's configuration needs to be valid) and
makes the checks ``init_host`` makes, one by one, each OK or FAIL with the
fix: the options, the HMC's TLS certificate, the logon, the CPC (DPM mode,
state, size of the subset) and each FCP adapter port. Exit status 1 when a
check fails. Nothing is created or changed on the HMC.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import socket
import sys
from typing import Any, TextIO

import requests
import zhmcclient
from oslo_config import cfg

from nova_shim.virt.dpm import conf as dpm_conf
from nova_shim.virt.dpm import exception
from nova_shim.virt.dpm import hmc

OK = 'OK'
FAIL = 'FAIL'


@dataclasses.dataclass
class Check:
    name: str
    status: str
    detail: str
    fix: str = ''


def load(config_files: list[str]) -> cfg.ConfigOpts:
    conf = cfg.ConfigOpts()
    conf.register_opt(cfg.StrOpt('host', default=socket.gethostname()))
    dpm_conf.register_opts(conf)
    conf([], project='nova', default_config_files=config_files)
    return conf


def _tls_failure(exc: BaseException) -> bool:
    text = repr(exc).lower()
    return 'certificate' in text or 'ssl' in text


def run(conf: cfg.ConfigOpts) -> list[Check]:
    group = conf[dpm_conf.DPM_GROUP]
    checks: list[Check] = []
    try:
        hmc.check_config(conf)
    except exception.DPMDriverError as exc:
        checks.append(Check('config', FAIL, exc.format_message(),
                            'set the [dpm] options named above'))
        return checks
    checks.append(Check('config', OK, 'host %s, HMC %s, CPC %s' % (
        conf.host, ','.join(group.hmc), group.cpc_object_id)))
    where = '%s:%s' % (','.join(group.hmc), group.hmc_port)
    session = hmc.make_session(conf)
    try:
        session.logon()
    except (zhmcclient.ConnectionError, requests.exceptions.SSLError) as exc:
        if _tls_failure(exc):
            checks.append(Check(
                'hmc tls', FAIL, 'the TLS certificate of the HMC at %s '
                'does not verify: %s' % (where, str(exc)[:300]),
                'set [dpm] hmc_ca_certs to the CA bundle that signs the '
                'HMC\'s certificate (hmc_verify_cert = false only for a '
                'test HMC)'))
        else:
            checks.append(Check(
                'hmc', FAIL, 'no answer from the HMC at %s: %s' % (
                    where, str(exc)[:300]),
                'check [dpm] hmc and hmc_port, and that the HMC\'s Web '
                'Services API is enabled and reachable from this host'))
        return checks
    except zhmcclient.ServerAuthError as exc:
        checks.append(Check(
            'hmc logon', FAIL, 'the HMC at %s refused user %s: %s' % (
                where, group.hmc_username, str(exc)[:200]),
            'check [dpm] hmc_username and hmc_password, and that the user '
            'may use the Web Services API'))
        return checks
    try:
        checks.append(Check(
            'hmc tls', OK, 'certificate verified (%s)' % (
                group.hmc_ca_certs or 'system trust store')
            if group.hmc_verify_cert else 'NOT verified: hmc_verify_cert '
            '= false', '' if group.hmc_verify_cert else
            'set hmc_verify_cert = true and hmc_ca_certs'))
        checks.append(Check('hmc logon', OK, 'user %s at %s' % (
            group.hmc_username, where)))
        client = zhmcclient.Client(session)
        try:
            cpc = hmc.find_cpc(client, conf)
        except exception.DPMDriverError as exc:
            checks.append(Check('cpc', FAIL, exc.format_message(),
                                'see the message: [dpm] cpc_object_id, '
                                'max_processors, max_memory'))
            return checks
        route = ('storage groups' if hmc.uses_storage_groups(cpc)
                 else 'virtual HBAs')
        checks.append(Check('cpc', OK, '%s in DPM mode, status %s, %s' % (
            cpc.name, cpc.get_property('status'), route)))
        try:
            ports = hmc.resolve_adapter_ports(cpc, conf)
        except exception.DPMDriverError as exc:
            checks.append(Check('adapters', FAIL, exc.format_message(),
                                'fix [dpm] physical_storage_adapter_'
                                'mappings'))
            return checks
        checks.append(Check('adapters', OK, ', '.join(
            '%s port %s' % (p.adapter.name, p.mapping.rsplit(':', 1)[1])
            for p in ports)))
    finally:
        session.logoff()
    return checks


def write(checks: list[Check], as_json: bool, out: TextIO) -> None:
    if as_json:
        json.dump([dataclasses.asdict(c) for c in checks], out, indent=2)
        out.write('\n')
        return
    for c in checks:
        out.write('%-4s %s: %s\n' % (c.status, c.name, c.detail))
        if c.fix:
            out.write('     fix: %s\n' % c.fix)


def main(argv: list[str] | None = None, out: Any = None) -> int:
    p = argparse.ArgumentParser(
        prog='nova-dpm-doctor',
        description='Check the DPM compute driver\'s configuration and '
                    'its HMC, CPC and adapters (read-only).')
    p.add_argument('--config-file', action='append', default=[],
                   help='nova-compute\'s configuration (repeatable; '
                        'default /etc/nova/nova.conf)')
    p.add_argument('--format', choices=('human', 'json'), default='human')
    args = p.parse_args(argv)
    checks = run(load(args.config_file or ['/etc/nova/nova.conf']))
    write(checks, args.format == 'json', out or sys.stdout)
    return 1 if any(c.status == FAIL for c in checks) else 0


if __name__ == '__main__':
    sys.exit(main())
