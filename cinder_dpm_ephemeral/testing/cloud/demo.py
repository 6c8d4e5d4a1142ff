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
"""The demo on the whole cloud: what a user types and what it prints.

  python -m cinder_dpm_ephemeral.testing.cloud.demo [--keep]
      [--image FILE [--disk-format raw|qcow2|vmdk|vhd|vhdx|iso]]

Brings the cloud up (``./run cloud up``; the first time takes a couple of
minutes for the databases, later ones well under one), then runs the
user's commands with the real ``openstack`` client as the ``dpm-demo``
user: upload a bootable GPT disk image (made by the test image maker
unless ``--image`` names one), a DPM flavor (as ``dpm-demo-admin``), boot
one server from the image, show it and its volumes, delete it, and takes
the cloud down again (unless it was already running, or ``--keep``).
Ends with the times and bytes of each step.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import pathlib
import shlex
import subprocess
import sys
import tempfile
import time
from typing import Any

from cinder_dpm_ephemeral.testing.cloud import cloud
from cinder_dpm_ephemeral.testing.cloud import layout as lay
from cinder_dpm_ephemeral.testing.cloud import services as svcs

LOG = logging.getLogger(__name__)

IMAGE_NAME = 'dpm-demo-gpt'
FLAVOR_NAME = 'dpm.demo'
SERVER_NAME = 'dpm-demo-1'


class Demo:
    def __init__(self, lo: lay.Layout) -> None:
        self.lo = lo
        self.env = dict(os.environ, OS_CLIENT_CONFIG_FILE=str(lo.clouds_yaml))
        self.times: list[tuple[str, float]] = []

    def run(self, *args: str, admin: bool = False, show: bool = True,
            check: bool = True) -> str:
        cloud_name = 'dpm-demo-admin' if admin else 'dpm-demo'
        printable = ['openstack', '--os-cloud', cloud_name, *args]
        if show:
            print('$ ' + ' '.join(shlex.quote(a) for a in printable),
                  flush=True)
        proc = subprocess.run([lay.venv_bin('openstack'), *printable[1:]],
                              env=self.env, capture_output=True, text=True)
        if show:
            sys.stdout.write(proc.stdout + proc.stderr)
            sys.stdout.flush()
        if check and proc.returncode != 0:
            raise RuntimeError(f'{" ".join(printable)} failed:\n'
                               f'{proc.stdout}{proc.stderr}')
        return proc.stdout

    def value(self, *args: str, admin: bool = False) -> Any:
        return json.loads(self.run(*args, '-f', 'json', admin=admin,
                                   show=False))

    def timed(self, label: str, fn: Any, *args: Any, **kw: Any) -> Any:
        t0 = time.monotonic()
        result = fn(*args, **kw)
        self.times.append((label, time.monotonic() - t0))
        return result

    def downloads(self, image_id: str) -> int:
        wanted = f'"GET /v2/images/{image_id}/file '
        with open(self.lo.logs / 'glance-api-access.log') as f:
            return sum(1 for line in f if wanted in line and '" 200 ' in line)


def _image(args: argparse.Namespace, work: pathlib.Path) -> tuple[str, str]:
    from cinder_dpm_ephemeral.testing import images
    if args.image:
        return args.image, (args.disk_format or
                            images.detect_disk_format(args.image)[0])
    made = images.make_disk_image(work, 'qcow2', 'gpt', 512 * images.MiB,
                                  seed=11, name='demo')
    return made.path, made.disk_format


def scenario(demo: Demo, args: argparse.Namespace) -> dict[str, Any]:
    facts: dict[str, Any] = {}
    print('\n# 1. The image: a GPT boot disk (EFI and ext4 partitions)')
    existing = demo.value('image', 'list', '--name', IMAGE_NAME)
    if existing and not args.image:
        image_id = existing[0]['ID']
        print(f'(image {IMAGE_NAME} is already there: {image_id}; the '
              'golden volume cached by the last run will be cloned)')
    else:
        with tempfile.TemporaryDirectory() as work:
            path, disk_format = _image(args, pathlib.Path(work))
            facts['image_file_bytes'] = os.path.getsize(path)
            image_id = demo.timed('image upload', lambda: demo.value(
                'image', 'create', '--disk-format', disk_format,
                '--container-format', 'bare', '--file', path,
                IMAGE_NAME))['id']
            demo.run('image', 'show', image_id, '-c', 'id', '-c',
                     'disk_format', '-c', 'size', '-c', 'virtual_size',
                     '-c', 'status')
    facts['downloads_before'] = demo.downloads(image_id)

    print('\n# 2. A DPM flavor (an administrator does this once)')
    flavors = demo.value('flavor', 'list', '--all', admin=True)
    if not [f for f in flavors if f['Name'] == FLAVOR_NAME]:
        demo.run('flavor', 'create', '--ram', '2048', '--vcpus', '2',
                 '--disk', '5', '--property', 'dpm:boot_from_volume=true',
                 FLAVOR_NAME, '-c', 'name', '-c', 'disk', '-c',
                 'properties', admin=True)
    else:
        print(f'(flavor {FLAVOR_NAME} is already there)')

    print('\n# 3. Boot from the image, as on any cloud')
    left = [s['ID'] for s in demo.value('server', 'list', '--name',
                                        f'^{SERVER_NAME}$')]
    if left:
        print(f'(removing {len(left)} server(s) left by an interrupted run)')
        demo.run('server', 'delete', '--wait', *left, show=False)
    demo.timed('server create -> ACTIVE', demo.run, 'server', 'create',
               '--image', IMAGE_NAME, '--flavor', FLAVOR_NAME,
               '--nic', 'none', '--wait', SERVER_NAME, '-c', 'id', '-c',
               'name', '-c', 'status', '-c', 'image', '-c',
               'volumes_attached')
    demo.run('volume', 'list')
    print('\n# 4. Delete it: its volumes go with it, the golden stays cached')
    demo.timed('server delete', demo.run, 'server', 'delete', '--wait',
               SERVER_NAME)
    demo.run('volume', 'list', '--all-projects', '--name',
             f'dpm-golden-{image_id}', '-c', 'ID', '-c', 'Name', '-c',
             'Status', '-c', 'Size', admin=True)
    facts['glance_downloads'] = (demo.downloads(image_id) -
                                 facts['downloads_before'])
    return facts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog='./run demo', description=__doc__.split('\n\n')[0])
    parser.add_argument('--keep', action='store_true',
                        help='leave the cloud running at the end')
    parser.add_argument('--image', help='boot this image file instead')
    parser.add_argument('--disk-format',
                        choices=('raw', 'qcow2', 'vmdk', 'vhd', 'vhdx',
                                 'iso'),
                        help='Glance disk_format of --image (default: what '
                             'qemu-img finds)')
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    lo = lay.Layout.load()
    was_running = bool(cloud.status(lo)) and all(
        s.startswith('running') for s in cloud.status(lo).values())
    demo = Demo(lo)
    t_all = time.monotonic()
    print('$ ./run cloud up', flush=True)
    try:
        timings = demo.timed('cloud up', cloud.up, lo)
    except svcs.ServiceError as exc:
        print(f'ERROR: {exc}', file=sys.stderr)
        return 1
    print(f'cloud up: {len(timings) - 1} processes healthy; clouds.yaml '
          f'in {lo.clouds_yaml}')
    try:
        facts = scenario(demo, args)
    finally:
        if not (was_running or args.keep):
            print('\n$ ./run cloud down', flush=True)
            demo.timed('cloud down', cloud.down, lo)
    total = time.monotonic() - t_all
    print('\n# Summary')
    for label, secs in demo.times:
        print(f'  {label:26s} {secs:6.1f} s')
    print(f'  {"total":26s} {total:6.1f} s')
    if 'image_file_bytes' in facts:
        print(f'  image uploaded             '
              f'{facts["image_file_bytes"] / 2 ** 20:6.1f} MiB')
    print(f'  Glance downloads (boot)    {facts["glance_downloads"]:6d} '
          '(0: the golden volume was already cached)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
