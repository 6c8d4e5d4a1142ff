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
"""dpm-ephemeral-emulator: run an emulated SVC or PowerFlex array, or HMC.

  dpm-ephemeral-emulator svc --listen 127.0.0.1:2222 --state-dir /var/lib/x \
      --login superuser:PASSWORD
  dpm-ephemeral-emulator powerflex --listen 127.0.0.1:8443 --state-dir DIR \
      --login admin:PASSWORD
  dpm-ephemeral-emulator hmc --listen 127.0.0.1:6794 --state-dir DIR \
      --login hmcuser:PASSWORD --svc-state-dir SVC_DIR

State (objects and LUN data) persists in the state directory across
restarts. The password may also come from the environment variable
DPM_EMULATOR_PASSWORD (then --login takes just the user name), which keeps it
out of the process list.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from typing import Any


def _listen(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(':')
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError(
            f'--listen {value!r}: expected HOST:PORT, e.g. 127.0.0.1:2222')
    return host, int(port)


def _login(value: str) -> tuple[str, str]:
    user, sep, password = value.partition(':')
    if not sep:
        password = os.environ.get('DPM_EMULATOR_PASSWORD', '')
    if not user or not password:
        raise argparse.ArgumentTypeError(
            '--login: expected USER:PASSWORD (or USER with the password in '
            'DPM_EMULATOR_PASSWORD)')
    return user, password


def _fraction(value: str) -> float:
    f = float(value)
    if not 0.0 <= f <= 1.0:
        raise argparse.ArgumentTypeError('--fail-rate must be in [0, 1]')
    return f


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='dpm-ephemeral-emulator',
        description='Run an emulated IBM SVC (SSH CLI) or Dell PowerFlex '
                    '(HTTPS REST gateway) for Cinder, or an IBM Z HMC '
                    '(HTTPS Web Services API) for Nova, on this machine.')
    sub = parser.add_subparsers(dest='array', required=True)
    for name, port, user in (('svc', 2222, 'superuser'),
                             ('powerflex', 8443, 'admin')):
        p = sub.add_parser(name, help=f'emulate {name}')
        p.add_argument('--listen', type=_listen,
                       default=('127.0.0.1', port),
                       help=f'HOST:PORT to listen on (default 127.0.0.1:'
                            f'{port}; port 0 picks a free one)')
        p.add_argument('--state-dir', required=True,
                       help='directory for state and LUN data (created)')
        p.add_argument('--login', type=_login, required=True,
                       help=f'USER:PASSWORD clients log in with (e.g. '
                            f'{user}:secret)')
        p.add_argument('--pool', action='append', default=[],
                       metavar='NAME:GiB' if name == 'svc' else 'PD:NAME:GiB',
                       help='storage pool and its capacity (repeatable); '
                            'default: one pool of 10240 GiB' +
                            ('' if name == 'svc' else
                             ' in protection domain domain1'))
        p.add_argument('--latency', type=float, default=0.0,
                       help='seconds added to every request')
        p.add_argument('--fail-rate', type=_fraction, default=0.0,
                       help='probability that a request fails with a '
                            'transient array error')
        p.add_argument('--inventory', action='store_true',
                       help='print everything the array holds as JSON and '
                            'exit')
        p.add_argument('-v', '--verbose', action='store_true')
    _hmc_parser(sub)
    return parser


def _hmc_parser(sub: Any) -> None:
    p = sub.add_parser('hmc', help='emulate an IBM Z HMC (Web Services API '
                                   'over HTTPS) with DPM CPCs')
    p.add_argument('--listen', type=_listen, default=('127.0.0.1', 6794),
                   help='HOST:PORT to listen on (default 127.0.0.1:6794, '
                        "the HMC's port; port 0 picks a free one)")
    p.add_argument('--state-dir', required=True,
                   help='directory for the certificate and the HMC state '
                        '(created)')
    p.add_argument('--login', type=_login, required=True,
                   help='USER:PASSWORD clients log on with (e.g. '
                        'hmcuser:secret)')
    p.add_argument('--svc-state-dir',
                   help="the SVC emulator's --state-dir: partition starts "
                        'then emulate the IPL from its LUNs (without it '
                        'a start only checks the boot settings)')
    p.add_argument('--cpc', action='append', default=[],
                   metavar='NAME[:z14|z13]',
                   help='CPC made at first start (repeatable); z14 (the '
                        'default) has storage groups, z13 has HBAs; '
                        'default: one z14-like CPC named CPC1')
    p.add_argument('--adapters', type=int, default=2,
                   help='FCP adapters per CPC (2 ports each; default 2)')
    p.add_argument('--job-seconds', type=float, default=0.0,
                   help='how long Start/Stop Partition jobs run')
    p.add_argument('--inventory', action='store_true',
                   help='print everything the HMC holds as JSON and exit')
    p.add_argument('-v', '--verbose', action='store_true')


def _make_hmc(args: argparse.Namespace) -> Any:
    from cinder_dpm_ephemeral.emulators import hmc
    cpcs = []
    for spec in args.cpc or ['CPC1']:
        name, _, kind = spec.partition(':')
        if not name or kind not in ('', 'z14', 'z13'):
            raise SystemExit(f'--cpc {spec!r}: expected NAME[:z14|z13]')
        if args.adapters < 1:
            raise SystemExit('--adapters must be at least 1')
        cpcs.append(hmc.cpc_definition(
            name, storage_groups=kind != 'z13',
            adapters=[f'fcp{i + 1}' for i in range(args.adapters)]))
    return hmc.HMCEmulator(
        args.state_dir, listen=args.listen, login=args.login,
        definition=cpcs, svc_state_dir=args.svc_state_dir,
        job_seconds=args.job_seconds)


def _pools(specs: list[str], default: str) -> dict[str, int]:
    pools = {}
    for spec in specs or [f'{default}:10240']:
        name, _, gib = spec.partition(':')
        if not name or not gib.isdigit():
            raise SystemExit(f'--pool {spec!r}: expected NAME:GiB')
        pools[name] = int(gib) * 1024 ** 3
    return pools


def _make(args: argparse.Namespace) -> Any:
    if args.array == 'hmc':
        return _make_hmc(args)
    if args.array == 'svc':
        from cinder_dpm_ephemeral.emulators.svc import server
        return server.SVCEmulator(
            args.state_dir, login=args.login, listen=args.listen,
            pools=_pools(args.pool, 'pool0'), latency=args.latency,
            fail_rate=args.fail_rate)
    from cinder_dpm_ephemeral.emulators.powerflex import gateway
    pools = []
    for spec in args.pool or ['domain1:pool1:10240']:
        parts = spec.split(':')
        if len(parts) != 3 or not parts[2].isdigit():
            raise SystemExit(f'--pool {spec!r}: expected PD:NAME:GiB')
        pools.append({'domain': parts[0], 'name': parts[1],
                      'capacity_gb': int(parts[2])})
    return gateway.PowerFlexGateway(
        args.state_dir, listen=args.listen, login=args.login, pools=pools,
        latency=args.latency, fail_rate=args.fail_rate, volume_host=True)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format='%(asctime)s %(levelname)s %(name)s: %(message)s')
    emulator = _make(args)
    if args.inventory:
        print(json.dumps(emulator.inventory(), indent=2, sort_keys=True,
                         default=str))
        return 0
    emulator.start()
    if args.array == 'svc':
        print(f'SVC emulator: ssh {args.login[0]}@{args.listen[0]} -p '
              f'{emulator.port}; host key in {emulator.known_hosts_path} '
              f'(use as cinder ssh_hosts_key_file with '
              f'strict_ssh_host_key_policy = True)', flush=True)
    elif args.array == 'hmc':
        print(f'HMC emulator: https://{args.listen[0]}:{emulator.port}/api; '
              f'TLS certificate {emulator.cert_path} (use as zhmcclient '
              f'Session verify_cert)', flush=True)
    else:
        print(f'PowerFlex gateway: https://{args.listen[0]}:{emulator.port}'
              f'/api; TLS certificate {emulator.cert_path} (use as '
              f'driver_ssl_cert_path with driver_ssl_cert_verify = True)',
              flush=True)
    stop = threading.Event()
    from cinder_dpm_ephemeral.emulators import faults
    faults.watch_control_file(emulator, args.state_dir, stop)
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    emulator.stop()
    return 0


if __name__ == '__main__':
    sys.exit(main())
