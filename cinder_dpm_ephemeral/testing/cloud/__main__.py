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
"""./run cloud up|down|status: the whole cloud on this machine."""

from __future__ import annotations

import argparse
import logging
import sys

from cinder_dpm_ephemeral.testing.cloud import cloud
from cinder_dpm_ephemeral.testing.cloud import layout as lay
from cinder_dpm_ephemeral.testing.cloud import services as svcs

LOG = logging.getLogger(__name__)


def _print_up(lo: lay.Layout, timings: dict[str, float]) -> None:
    print('Cloud up in %.0f s (seconds to healthy, from its start):'
          % timings['total'])
    for name, secs in sorted(timings.items(), key=lambda kv: kv[1]):
        if name != 'total':
            print(f'  {name:20s} {secs:6.1f}')
    print(f'''
clouds.yaml: {lo.clouds_yaml}
  export OS_CLIENT_CONFIG_FILE={lo.clouds_yaml}
  export OS_CLOUD=dpm-demo          # or dpm-demo-admin
  {lay.venv_bin("openstack")} server list
logs: {lo.logs}
''')


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog='./run cloud',
        description='Keystone, Glance, Placement, Neutron, Cinder and Nova '
                    'on this machine, each its own process, on RabbitMQ, '
                    'with the emulated arrays. State in $DPM_CLOUD_DIR '
                    '(default .cloud/ in the repository).')
    parser.add_argument('action', choices=('up', 'down', 'status'))
    parser.add_argument('-v', '--verbose', action='store_true')
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format='%(asctime)s %(levelname)s %(name)s: %(message)s')
    for noisy in ('keystoneauth', 'urllib3', 'stevedore'):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    lo = lay.Layout.load()
    if args.action == 'up':
        try:
            timings = cloud.up(lo)
        except svcs.ServiceError as exc:
            print(f'ERROR: {exc}\n(the cloud stays as it is for a look at '
                  f'{lo.logs}; "./run cloud down" ends it)', file=sys.stderr)
            return 1
        _print_up(lo, timings)
        return 0
    if args.action == 'down':
        stopped = cloud.down(lo)
        print('stopped: ' + (', '.join(stopped) or 'nothing was running'))
        return 0
    state = cloud.status(lo)
    if not state:
        print(f'no cloud running from {lo.root}')
        return 3
    for name, what in state.items():
        print(f'{name:20s} {what}')
    return 0 if all(w.startswith('running') for w in state.values()) else 1


if __name__ == '__main__':
    sys.exit(main())
