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
"""``cinder-dpm-ephemeral``: the operator's command.

Reads cinder.conf as cinder-manage does (``--config-file``, default
/etc/cinder/cinder.conf) and reaches each array through the backend's own
driver. Human output by default, ``--format json`` for scripts.

    cinder-dpm-ephemeral doctor
    cinder-dpm-ephemeral cache list
    cinder-dpm-ephemeral cache warm IMAGE [--pool POOL] [--backend NAME]
    cinder-dpm-ephemeral cache evict [--image ID]
    cinder-dpm-ephemeral status
    cinder-dpm-ephemeral reconcile [--apply]
    cinder-dpm-ephemeral default-type TYPE PROJECT [PROJECT...]
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, TextIO

from oslo_config import cfg
from oslo_log import log as logging

LOG = logging.getLogger(__name__)
CONF = cfg.CONF


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog='cinder-dpm-ephemeral',
        description='Check, inspect and tidy the golden image caches of '
                    'cinder-dpm-ephemeral backends.')
    p.add_argument('--config-file', action='append', default=[],
                   help='cinder.conf (repeatable; default '
                        '/etc/cinder/cinder.conf)')
    p.add_argument('--format', choices=('human', 'json'), default='human')
    sub = p.add_subparsers(dest='command', required=True)
    sub.add_parser('doctor', help='check configuration, arrays, trust, '
                   'credentials, internal tenant, qemu-img, coordination')
    c = sub.add_parser('cache', help='golden volumes')
    csub = c.add_subparsers(dest='cache_command', required=True)
    csub.add_parser('list', help='golden volumes per backend and pool')
    w = csub.add_parser('warm', help='build the golden volume of IMAGE '
                        'now (before a boot storm), with progress')
    w.add_argument('image')
    w.add_argument('--pool', help='pool (default: the backend\'s first)')
    w.add_argument('--backend', help='only this backend section')
    e = csub.add_parser('evict', help='remove golden volumes no clone '
                        'shares (the others are never cloned again)')
    e.add_argument('--image', help='only the golden volumes of this image')
    sub.add_parser('status', help='volumes and golden volumes per backend')
    r = sub.add_parser('reconcile', help='array objects Cinder does not '
                       'know (dry run unless --apply)')
    r.add_argument('--apply', action='store_true',
                   help='remove what was found')
    d = sub.add_parser('default-type', help='make TYPE the default volume '
                       'type of the given projects')
    d.add_argument('volume_type')
    d.add_argument('projects', nargs='+')
    return p


def load_config(files: list[str]) -> None:
    """Cinder's options, then the files (as cinder-manage parses them)."""
    from cinder.common import config  # noqa: F401  (registers options)
    from cinder import objects
    objects.register_all()
    logging.register_options(CONF)
    # stdout is the command's output (JSON for scripts): logs go to stderr
    # unless cinder.conf names a log file.
    CONF.set_default('use_stderr', True)
    CONF([], project='cinder',
         default_config_files=files or ['/etc/cinder/cinder.conf'])
    logging.setup(CONF, 'cinder-dpm-ephemeral')
    if not CONF.debug:
        # The drivers' INFO lines (SSH connects, pool ids) are not what an
        # operator asked for: warnings and errors only, unless --debug.
        import logging as py_logging
        py_logging.getLogger().setLevel(py_logging.WARNING)


def _start_coordination() -> None:
    """The cache's per-image locks are tooz locks, as in cinder-volume."""
    from cinder import coordination
    if not coordination.COORDINATOR.started:
        coordination.COORDINATOR.start()


def _start_data_path() -> None:
    """What cinder-volume sets up before it writes an image onto a LUN.

    os-brick attaches the golden LUN through its privsep daemon, started
    with Cinder's root helper (``sudo cinder-rootwrap``, as cinder-volume's
    command does), and the cache's notifications go out on Cinder's
    message bus.
    """
    import shlex

    from cinder import rpc
    from cinder import utils
    from oslo_privsep import priv_context
    priv_context.init(root_helper=shlex.split(utils.get_root_helper()))
    if not rpc.initialized():
        rpc.init(CONF)


def _drivers() -> dict[str, Any]:
    from cinder_dpm_ephemeral.ops import backend as be
    out = {}
    for name in be.backends():
        if not be.array_kind(be.backend_conf(name)):
            continue
        try:
            out[name] = be.build_driver(name)
        except Exception as exc:
            LOG.warning('Backend %s unreachable: %s (run doctor)', name, exc)
    return out


def _table(rows: list[dict[str, Any]], cols: list[str], out: TextIO) -> None:
    if not rows:
        out.write('(none)\n')
        return
    cells = [[('' if r.get(c) is None else str(r.get(c))) for c in cols]
             for r in rows]
    widths = [max(len(c), *(len(x[i]) for x in cells))
              for i, c in enumerate(cols)]
    for line in [cols, *cells]:
        out.write('  '.join(v.ljust(w) for v, w in zip(line, widths,
                                                       strict=True)).rstrip()
                  + '\n')


def execute(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    """Run a parsed command against the already-loaded configuration."""
    from cinder_dpm_ephemeral.ops import backend as be
    from cinder_dpm_ephemeral.ops import doctor
    from cinder_dpm_ephemeral.ops import inventory

    as_json = args.format == 'json'
    if args.command == 'doctor':
        checks = doctor.run()
        rows = [vars(c) for c in checks]
        if as_json:
            json.dump(rows, out, indent=2)
            out.write('\n')
        else:
            for c in checks:
                where = ' [%s]' % c.backend if c.backend else ''
                out.write('%-4s %s%s: %s\n' % (c.status, c.name, where,
                                               c.detail))
                if c.fix:
                    out.write('     fix: %s\n' % c.fix)
        return 1 if any(c.status == doctor.FAIL for c in checks) else 0
    if args.command == 'default-type':
        rows = inventory.set_default_type(args.volume_type, args.projects)
        cols = ['project', 'volume_type', 'volume_type_id']
    else:
        drivers = _drivers()
        try:
            if args.command == 'cache' and args.cache_command == 'evict':
                _start_coordination()
                rows = inventory.cache_evict(drivers, args.image)
                cols = ['backend', 'image', 'golden_volume', 'clones',
                        'result']
            elif args.command == 'cache' and args.cache_command == 'warm':
                from cinder_dpm_ephemeral.ops import warm
                _start_coordination()
                _start_data_path()
                rows = [warm.warm(name, d, args.image, args.pool)
                        for name, d in drivers.items()
                        if args.backend in (None, name)]
                cols = ['backend', 'pool', 'image', 'downloaded_bytes',
                        'rate_mib_s']
            elif args.command == 'cache':
                rows = inventory.cache_list(drivers)
                cols = ['backend', 'pool', 'image', 'golden_volume',
                        'size_gb', 'state', 'clones', 'clone_limit',
                        'last_used']
            elif args.command == 'status':
                rows = inventory.status(drivers)
                cols = ['backend', 'array', 'reachable', 'volumes',
                        'golden_volumes', 'golden_gb']
            else:
                rows = inventory.reconcile(drivers, args.apply)
                cols = ['backend', 'kind', 'name', 'fcmaps',
                        'host_mappings', 'removed']
        finally:
            for d in drivers.values():
                be.close_driver(d)
    if as_json:
        json.dump(rows, out, indent=2, default=str)
        out.write('\n')
    else:
        _table(rows, cols, out)
        if args.command == 'reconcile' and rows and not args.apply:
            out.write('dry run: nothing removed (--apply removes)\n')
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    load_config(args.config_file)
    return execute(args)


if __name__ == '__main__':
    sys.exit(main())
