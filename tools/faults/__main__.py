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
"""./run faults [--quick] [--rate R] [--seed S] [--out FILE]: fault campaign.

Volume lifecycles through real Cinder with our drivers on the emulated SVC
and PowerFlex, faults injected at rate R (default 0.1) into every
management call, LUN writes and image downloads; then Cinder's database is
compared with the arrays (:mod:`tools.faults.campaign`). Prints a summary
and, as the last line, one JSON object (``lifecycles``, ``succeeded``,
``failed_cleanly``, ``stuck``, ``leaked``, ``corrupt``, per-array details,
rate, seed, seconds). Exits 1 if anything is stuck, leaked or corrupt.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog='./run faults',
                                description=__doc__.splitlines()[0])
    p.add_argument('--quick', action='store_true',
                   help='30 lifecycles per array instead of 100')
    p.add_argument('--rate', type=float, default=0.1,
                   help='fault rate per call, 0..1 (default 0.1)')
    p.add_argument('--seed', type=int, default=1,
                   help='random seed of the faults and the plan')
    p.add_argument('--lifecycles', type=int, default=None,
                   help='lifecycles per array (overrides --quick)')
    p.add_argument('--spare-luns', type=int, default=None,
                   help='dpm_ephemeral_spare_golden_luns for the campaign '
                        '(default: the option\'s default, 1): spare LUNs, '
                        'made and attached ahead, under the same faults; '
                        '0 builds every golden on a LUN made for it')
    p.add_argument('--arrays', default='svc,powerflex',
                   help='comma-separated: svc, powerflex')
    p.add_argument('--out', default=None,
                   help='also write the JSON result to this file')
    p.add_argument('--log', default=None,
                   help='write the services\' warnings and errors here')
    p.add_argument('--cloud', action='store_true',
                   help='server lifecycles through the whole cloud (Nova, '
                        'the DPM driver, the HMC emulator) instead: '
                        'tools/faults/cloud_campaign.py')
    p.add_argument('--keep', action='store_true',
                   help='with --cloud: leave the campaign\'s cloud running')
    args = p.parse_args(argv)
    if not 0 <= args.rate <= 1:
        p.error(f'--rate {args.rate}: give a fault rate between 0 and 1')
    if args.cloud:
        return _cloud(args)
    arrays = [a for a in args.arrays.split(',') if a]
    bad = set(arrays) - {'svc', 'powerflex'}
    if bad:
        p.error(f'--arrays: unknown {sorted(bad)}; use svc and/or powerflex')
    warnings.simplefilter('ignore')
    # Cinder runs under eventlet: patch before anything imports ssl.
    from cinder import monkey_patch
    monkey_patch.patch()
    from tools.faults import campaign

    params = campaign.params_for(args.quick, args.rate, args.seed,
                                 args.lifecycles)
    params['log'] = args.log
    params['spare_luns'] = args.spare_luns
    t = time.monotonic()
    per_array = {}
    for array in arrays:
        print(f'--- {array}: {params["lifecycles_per_array"]} lifecycles '
              f'at fault rate {args.rate:g} (seed {args.seed})', flush=True)
        per_array[array] = campaign.run_array(array, params)
        _print_array(array, per_array[array])
    total = {'lifecycles': 0, 'succeeded': 0, 'failed_cleanly': 0,
             'stuck': 0, 'leaked': 0, 'corrupt': 0, 'operator_resets': 0,
             'password_in_log': 0}
    for res in per_array.values():
        for k in total:
            total[k] += int(res.get(k, 0))
    errors = [a for a, r in per_array.items() if r.get('errors')]
    result = {**total, 'rate': args.rate, 'seed': args.seed,
              'quick': args.quick, 'campaign_errors': errors,
              'seconds': round(time.monotonic() - t, 1),
              'params': params, 'arrays': per_array}
    print(f'=== {total["lifecycles"]} lifecycles: {total["succeeded"]} '
          f'succeeded, {total["failed_cleanly"]} failed cleanly, '
          f'{total["stuck"]} stuck, {total["leaked"]} leaked, '
          f'{total["corrupt"]} corrupt ({result["seconds"]} s)', flush=True)
    _write(args.out, result)
    print(json.dumps({k: result[k] for k in (
        'lifecycles', 'succeeded', 'failed_cleanly', 'stuck', 'leaked',
        'corrupt', 'operator_resets', 'password_in_log', 'rate', 'seed',
        'seconds',
        'campaign_errors')} | {
        'per_array': {a: {k: r.get(k) for k in (
            'lifecycles', 'succeeded', 'failed_cleanly', 'stuck',
            'leaked', 'corrupt', 'leaked_detail', 'stuck_detail')}
            for a, r in per_array.items()}}), flush=True)
    bad_run = (total['stuck'] or total['leaked'] or total['corrupt'] or
               total['password_in_log'] or errors or
               total['lifecycles'] == 0)
    return 1 if bad_run else 0


def _write(path: str | None, result: dict) -> None:
    """The whole result as JSON in ``path`` (``--out``), if given."""
    if not path:
        return
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, 'w') as f:
        json.dump(result, f, indent=1, sort_keys=True)
        f.write('\n')


def _cloud(args: argparse.Namespace) -> int:
    from tools.faults import cloud_campaign
    params = cloud_campaign.params_for(args.quick, args.rate, args.seed,
                                       args.lifecycles)
    print(f'--- cloud: {params["lifecycles"]} server lifecycles at fault '
          f'rate {args.rate:g} (seed {args.seed})', flush=True)
    result = cloud_campaign.run(params, keep=args.keep)
    print(f'=== {result["lifecycles"]} lifecycles ({result["servers"]} '
          f'servers): {result["succeeded"]} succeeded, '
          f'{result["failed_cleanly"]} failed cleanly, {result["stuck"]} '
          f'stuck, {result["leaked"]} leaked, {result["password_in_log"]} '
          f'log lines with a password; faults injected '
          f'{result["faults_injected"]} ({result["seconds"]} s)', flush=True)
    for s in result['stuck_detail']:
        print(f'    stuck: {s}')
    for k, items in result['leaked_detail'].items():
        for i in items:
            print(f'    leaked {k}: {i}')
    _write(args.out, result)
    print(json.dumps({k: result[k] for k in (
        'lifecycles', 'servers', 'succeeded', 'failed_cleanly', 'stuck',
        'leaked', 'password_in_log', 'faults_injected', 'seconds',
        'leaked_detail', 'stuck_detail')} | {
        'rate': args.rate, 'seed': args.seed, 'cloud': True}), flush=True)
    bad = (result['stuck'] or result['leaked'] or result['password_in_log']
           or not result['lifecycles'])
    return 1 if bad else 0


def _print_array(array: str, res: dict) -> None:
    if res.get('errors'):
        print(f'  {array}: the campaign itself failed:')
        for e in res['errors']:
            print('   ', e.replace('\n', '\n    '))
        return
    print(f'  {array}: {res["lifecycles"]} lifecycles, {res["succeeded"]} '
          f'succeeded, {res["failed_cleanly"]} failed cleanly, '
          f'{res["stuck"]} stuck, {res["leaked"]} leaked, '
          f'{res["corrupt"]} corrupt, {res["operator_resets"]} operator '
          f'resets; faults injected '
          f'{res["faults_injected"]}; {res["seconds"]} s')
    for s in res.get('stuck_detail', []):
        print(f'    stuck: {s}')
    for k, items in res.get('leaked_detail', {}).items():
        for i in items:
            print(f'    leaked {k}: {i}')


if __name__ == '__main__':
    sys.exit(main())
