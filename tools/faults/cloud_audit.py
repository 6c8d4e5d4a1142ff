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
"""Cinder's database against a running cloud's emulated arrays.

``python -m tools.faults.cloud_audit --config-file CINDER_CONF
--array KIND:STATE_DIR ...`` prints, as JSON, :func:`audit.audit` of each
array (stuck volumes, leaked LUNs, FlashCopy maps, host and SDC mappings,
SVC hosts, golden volumes no one needs). Run in the cloud's service
environment: it reads Cinder's database through Cinder's own objects, and
each array's objects through ``dpm-ephemeral-emulator KIND --inventory``
on the emulator's state directory (the emulators save their state after
every command). The password of each emulator comes from
``DPM_EMULATOR_PASSWORD_<KIND>``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

LOGINS = {'svc': 'superuser', 'powerflex': 'admin'}


def inventory(kind: str, state_dir: str) -> dict:
    exe = os.path.join(os.path.dirname(sys.executable),
                       'dpm-ephemeral-emulator')
    env = dict(os.environ, DPM_EMULATOR_PASSWORD=os.environ[
        f'DPM_EMULATOR_PASSWORD_{kind.upper()}'])
    out = subprocess.run([exe, kind, '--state-dir', state_dir, '--login',
                          LOGINS[kind], '--inventory'], env=env, check=True,
                         capture_output=True, text=True, timeout=120)
    return json.loads(out.stdout)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog='python -m tools.faults.cloud_audit')
    p.add_argument('--config-file', required=True)
    p.add_argument('--array', action='append', default=[],
                   metavar='KIND:STATE_DIR')
    args = p.parse_args(argv)
    from cinder_dpm_ephemeral.ops import cli
    cli.load_config([args.config_file])
    from cinder_dpm_ephemeral.testing import audit
    out = {}
    for spec in args.array:
        kind, _, state_dir = spec.partition(':')
        out[kind] = audit.audit(kind, inventory(kind, state_dir))
    json.dump(out, sys.stdout)
    sys.stdout.write('\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
