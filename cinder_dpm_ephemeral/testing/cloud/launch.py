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
"""Run an OpenStack console script with the cloud's SQLite transactions.

  python -m cinder_dpm_ephemeral.testing.cloud.launch SCRIPT [ARGS...]

Imports the console script's module first (Nova's and Cinder's service
modules monkey-patch at import, which must come before anything else),
then installs :mod:`sqlite_tx`, then runs the script as its own wrapper
would.
"""

from __future__ import annotations

import importlib
import sys
from importlib import metadata

from cinder_dpm_ephemeral.testing.cloud import sqlite_tx


def main(argv: list[str]) -> int:
    script, *args = argv
    found = [ep for ep in metadata.entry_points(group='console_scripts')
             if ep.name == script]
    if not found:
        sys.stderr.write(f'no console script {script!r} installed\n')
        return 2
    module = importlib.import_module(found[0].module)
    func = getattr(module, found[0].attr)
    sqlite_tx.install()
    sys.argv = [script] + args
    result = func()
    return result if isinstance(result, int) else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
