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
"""dpm-ephemeral-demo: boot-from-image storage flow on emulated arrays.

What it shows, step by step, with timings:

 1. an emulated IBM SVC starts, reachable over real SSH on 127.0.0.1 (its
    host key is verified by Cinder, as in production);
 2. real Cinder services (API, scheduler, volume) start in this process,
    configured through a cinder.conf backend section that uses this
    project's StorwizeEphemeralDriver;
 3. a disk image is registered in a Glance stand-in: by default a
    realistic boot disk (GPT, an EFI System partition with FAT16, an ext4
    root holding known files) as qcow2; with --image, your own file, in
    the format you give with --disk-format or the one qemu-img finds;
 4. a root volume is created from the image through Cinder's REST API (what
    Nova does for a DPM server booted from an image): the driver downloads
    and converts the image once into a golden vdisk owned by Cinder's
    internal tenant, and the root volume is a FlashCopy of it with no
    background copy;
 5. the root volume's LUN is checked against the image: its bytes must be
    those of ``qemu-img convert -O raw`` of the image (sha256); for the
    generated disk, the GPT and the known files are also read back from
    the LUN as a guest would;
 6. more volumes from the same image at once: no download, no copy;
 7. one volume is connected as a DPM partition would (two virtual HBA
    WWPNs): the array gets a host and a host mapping, and Cinder returns
    the Fibre Channel target WWPN and LUN the partition boots from;
 8. all volumes are deleted; the golden vdisk stays cached;
 9. the image is deleted from Glance and the cache removes the golden
    vdisk: the array is left holding nothing.

The exit status is 0 only if every check passed.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import time
import uuid
import warnings
from typing import Any

MiB = 1024 * 1024
GiB = 1024 * MiB


def build_parser() -> argparse.ArgumentParser:
    return argparse.ArgumentParser(
        prog='./run demo',
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=__doc__.split('\n', 1)[1])


DISK_FORMATS = ('raw', 'qcow2', 'vmdk', 'vhd', 'vhdx', 'iso')


def _add_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--image', metavar='FILE',
                        help='use this disk image file instead of the '
                             'generated one (a gzip file is uploaded as '
                             'container_format compressed)')
    parser.add_argument('--disk-format', choices=DISK_FORMATS,
                        help='Glance disk_format of --image (default: what '
                             'qemu-img info finds; an ISO 9660 file is iso)')
    parser.add_argument('--image-mib', type=int, default=64,
                        help='virtual size of the generated image in MiB '
                             '(default 64, at least 32)')
    parser.add_argument('--format', default='qcow2',
                        choices=('raw', 'qcow2', 'qcow2-compressed', 'vmdk',
                                 'vhd', 'vhdx', 'iso', 'raw-gzip'),
                        help='format of the generated image (default '
                             'qcow2)')
    parser.add_argument('--storm', type=int, default=10,
                        help='volumes created at once from the cached '
                             'image (default 10)')


class UserImage:
    """The user's --image file as the demo uploads it."""

    def __init__(self, path: str, disk_format: str | None) -> None:
        from cinder_dpm_ephemeral.testing import images

        self.path = os.path.abspath(path)
        if not os.path.isfile(self.path):
            raise SystemExit(f'--image {path}: no such file')
        try:
            found, container = images.detect_disk_format(self.path)
        except (OSError, ValueError, subprocess.CalledProcessError) as exc:
            detail = getattr(exc, 'stderr', '') or exc
            raise SystemExit(f'--image {path}: qemu-img cannot read it as '
                             f'a disk image ({str(detail).strip()}); give '
                             'a raw, qcow2, vmdk, vhd, vhdx or iso file')
        self.detected = found
        self.disk_format = disk_format or found
        self.container_format = container
        self.file_size = os.path.getsize(self.path)
        self.raw_sha256, self.virtual_size = images.reference_raw(
            self.path, self.disk_format, container)


class _Printer:
    def __init__(self) -> None:
        self.t0 = time.monotonic()
        self.n = 0

    def step(self, text: str) -> float:
        self.n += 1
        print(f'\n[{self.n}] {text}', flush=True)
        return time.monotonic()

    def done(self, start: float, text: str) -> None:
        print(f'    {text} ({time.monotonic() - start:.2f} s)', flush=True)

    def info(self, text: str) -> None:
        print(f'    {text}', flush=True)


def _scenario(args: argparse.Namespace) -> type:
    from cinder import context as cinder_context

    from cinder_dpm_ephemeral.testing import backends
    from cinder_dpm_ephemeral.testing import cinder_harness
    from cinder_dpm_ephemeral.testing import images

    out = _Printer()

    user_image = (UserImage(args.image, args.disk_format) if args.image
                  else None)

    class Demo(cinder_harness.CinderHarness):
        BACKEND = 'svc'

        def start_backends(self) -> None:
            t = out.step('Starting the emulated IBM SVC (SSH CLI) ...')
            self.svc = backends.SVCBackend(self.work_dir).start()
            self.addCleanup(self.svc.stop)
            emu = self.svc.emulator
            out.done(t, f'listening on 127.0.0.1:{emu.port}, host key '
                        f'pinned in {emu.known_hosts_path}')
            self._t_cinder = out.step(
                'Starting Cinder (API, scheduler, volume service) with '
                'backend [svc] ...')

        def backend_options(self) -> dict:
            return self.svc.backend_options(self.BACKEND)

        def default_options(self) -> dict:
            opts = dict(self.svc.default_options())
            # Golden volumes belong to Cinder's internal tenant.
            opts['cinder_internal_tenant_project_id'] = uuid.uuid4().hex
            opts['cinder_internal_tenant_user_id'] = uuid.uuid4().hex
            # gzip images (container_format compressed) are accepted
            opts['allow_compression_on_image_upload'] = True
            return opts

        def run_demo(self) -> None:
            out.done(self._t_cinder, 'driver '
                     f'{type(self.driver).__name__} '
                     f'{self.driver.VERSION} initialised over SSH')
            with open(self.cinder_conf_path) as f:
                for line in f:
                    if 'password' in line:
                        line = line.split('=')[0] + '= ***\n'
                    if line.strip():
                        out.info('cinder.conf: ' + line.rstrip())

            # Glance records virtual_size on upload, as the real one does
            self.images.record_virtual_size = True
            image = self._make_image()
            meta = self.images.add(image.path, image.disk_format,
                                   container_format=image.container_format,
                                   name='demo-rootfs')
            out.info(f'image {meta["id"]}: disk_format '
                     f'{meta["disk_format"]}, container_format '
                     f'{meta["container_format"]}, '
                     f'{image.file_size / MiB:.1f} MiB file, '
                     f'{image.virtual_size / MiB:.1f} MiB virtual; '
                     f'qemu-img convert -O raw sha256 '
                     f'{image.raw_sha256[:16]}...')

            size_gb = max(1, -(-image.file_size // GiB),
                          -(-image.virtual_size // GiB))
            t = out.step(f'Creating a {size_gb} GB root volume from the '
                         'image through the Cinder API (cold: first use) ...')
            vol = self.create_volume(size_gb, image_id=meta['id'],
                                     name='demo-root-0')
            vol = self.wait_for_volume(vol['id'], timeout=600)
            self.assertEqual('available', vol['status'],
                             f'volume {vol["id"]} ended {vol["status"]}: '
                             'Cinder refused the image or could not copy '
                             f'it ({self._user_messages(vol["id"])}; the '
                             'log above says more)')
            self.assertEqual('true', vol['bootable'])
            goldens = self.driver.image_cache.goldens(
                cinder_context.get_internal_tenant_context())
            self.assertEqual(1, len(goldens))
            out.done(t, f'volume {vol["id"]} available, bootable; Glance '
                        f'served {self.images.total_bytes_served() / MiB:.1f}'
                        f' MiB once into golden volume {goldens[0].id} '
                        '(internal tenant), the root volume is a FlashCopy '
                        'of it')

            t = out.step('Verifying the root volume\'s LUN against the '
                         'image ...')
            vdisk = self._vdisk(vol['id'])
            uid = vdisk['vdisk_UID']
            lun_sum = self.svc.luns.sha256(uid, image.virtual_size)
            self.assertEqual(image.raw_sha256, lun_sum,
                             'LUN content differs from qemu-img convert -O '
                             'raw of the image')
            out.done(t, f'vdisk {vdisk["name"]} (UID {uid}): first '
                        f'{image.virtual_size // MiB} MiB sha256 '
                        f'{lun_sum[:16]}... MATCHES the image')
            if getattr(image, 'layout', None) is not None:
                t = out.step('Reading the LUN as the guest would: '
                             'partition table and files ...')
                out.done(t, self._guest_view(uid, image.layout))

            n = args.storm
            served = self.images.total_bytes_served()
            t = out.step(f'{n} more servers boot from the same image at '
                         'once (warm) ...')
            more = [self.create_volume(size_gb, image_id=meta['id'],
                                       name=f'demo-root-{i + 1}')
                    for i in range(n)]
            more = [self.wait_for_volume(v['id'], timeout=600)
                    for v in more]
            for v in more:
                self.assertEqual('available', v['status'])
            inv = self.svc.emulator.inventory()
            copied = self.svc.luns.counters().get(
                'svc_background_copy_bytes', 0)
            rates = sorted({str(m['copy_rate']) for m in inv['fcmaps']})
            self.assertEqual(served, self.images.total_bytes_served())
            self.assertEqual(0, copied)
            out.done(t, f'{n} volumes available; Glance bytes read: 0; '
                        f'{len(inv["fcmaps"])} FlashCopy maps with copy '
                        f'rate {",".join(rates)} (no background copy); '
                        f'array bytes copied: {copied}')

            connector = {'host': 'dpm-partition-demo', 'platform': 's390x',
                         'os_type': 'linux', 'multipath': False,
                         'wwpns': ['c05076ffe5000a10', 'c05076ffe5000a11'],
                         'wwnns': ['c05076ffe5000a10', 'c05076ffe5000a11']}
            t = out.step('Connecting the first volume to a DPM partition '
                         f'(vHBA WWPNs {", ".join(connector["wwpns"])}) ...')
            conn = self.initialize_connection(vol['id'], connector)
            data = conn['data']
            self.assertEqual('fibre_channel', conn['driver_volume_type'])
            inv = self.svc.emulator.inventory()
            maps = [m for m in inv['host_mappings']
                    if m['vdisk_name'] == vdisk['name']]
            self.assertEqual(1, len(maps))
            self.assertEqual(int(maps[0]['scsi_id']), int(data['target_lun']))
            out.done(t, f'fibre_channel: target WWPN(s) {data["target_wwn"]}'
                        f', LUN {data["target_lun"]}; array host '
                        f'{maps[0]["host_name"]} maps the vdisk as SCSI id '
                        f'{maps[0]["scsi_id"]}')

            t = out.step(f'Disconnecting and deleting all {n + 1} volumes '
                         '(servers deleted) ...')
            self.terminate_connection(vol['id'], connector)
            for v in [vol] + more:
                self.api.delete_volume(v['id'])
            for v in [vol] + more:
                self.wait_for_deleted(v['id'])
            inv = self.svc.emulator.inventory()
            self.assertEqual([], inv['host_mappings'])
            self.assertEqual([], inv['fcmaps'])
            self.assertEqual(1, len(inv['vdisks']))
            out.done(t, 'no host mapping or FlashCopy map left; the golden '
                        'vdisk stays cached for the next boot')

            t = out.step('The image is deleted from Glance; the cache '
                         'collects its golden volume ...')
            self.images.remove(meta['id'])
            removed = self.driver.image_cache.collect_garbage(
                self.images.service())
            self.assertEqual([goldens[0].id], removed)
            inv = self.svc.emulator.inventory()
            left = {k: inv[k] for k in ('vdisks', 'host_mappings', 'fcmaps')
                    if inv[k]}
            self.assertEqual({}, left, f'left on the array: {left}')
            self.assertEqual({}, self.svc.luns.list())
            out.done(t, 'array holds no vdisk, host mapping or FlashCopy '
                        'map; LUN data removed')

        def _guest_view(self, uid: str, layout: Any) -> str:
            """Check the partition table and known files on the LUN."""
            from cinder_dpm_ephemeral.testing import disks

            luns = self.svc.luns

            def read(offset: int, length: int) -> bytes:
                return luns.read(uid, offset, length)

            gpt = disks.read_gpt(read)      # both headers, CRC32s checked
            self.assertEqual(
                [(p.first_lba, p.last_lba, p.gpt_type)
                 for p in layout.partitions],
                [(p['first_lba'], p['last_lba'], p['type'])
                 for p in gpt['partitions']])
            checked = 0
            for part in layout.partitions:
                fs = read(part.offset, part.size)
                path = os.path.join(self.work_dir, f'guest-{part.number}')
                if part.fs_type == 'ext4':
                    with open(path, 'wb') as f:
                        f.write(fs)
                for name, digest in part.files:
                    if part.fs_type == 'vfat':
                        data = disks.read_fat_file(fs, name)
                    else:
                        data = disks.read_ext4_file(path, name)
                    self.assertEqual(digest,
                                     hashlib.sha256(data).hexdigest(),
                                     f'{name} on partition {part.number}')
                    checked += 1
            return (f'GPT (primary and backup, CRC32 valid) lists '
                    f'{len(gpt["partitions"])} partitions as made; '
                    f'{checked} known files read back intact from the '
                    'FAT16 EFI System partition and the ext4 root')

        def _user_messages(self, volume_id: str) -> str:
            """What Cinder's messages API tells the user about a volume."""
            try:
                msgs = self.api.api_get('/messages')['messages']
            except Exception as exc:  # only for the error text
                return f'messages API failed: {exc}'
            said = [m['user_message'] for m in msgs
                    if m.get('resource_uuid') == volume_id]
            return ('Cinder says: ' + ' / '.join(said) if said else
                    'no user message from Cinder')

        def _make_image(self) -> Any:
            if user_image is not None:
                t = out.step(f'Uploading {user_image.path} to Glance ...')
                if user_image.detected != user_image.disk_format:
                    out.info(f'WARNING: qemu-img says this is '
                             f'{user_image.detected}, not '
                             f'{user_image.disk_format}: Cinder should '
                             'refuse it')
                out.done(t, f'{user_image.disk_format} '
                            f'({user_image.container_format} container)')
                return user_image
            t = out.step(f'Making a {args.image_mib} MiB boot disk (GPT: '
                         f'EFI System partition, ext4 root) as '
                         f'{args.format} ...')
            image = images.make_disk_image(
                self.work_dir, args.format, 'gpt', args.image_mib * MiB,
                seed=2026, name='demo-rootfs')
            parts = ', '.join(
                f'{p.number}: {p.name or p.fs_type} ({p.fs_type}, '
                f'{p.size // MiB} MiB, {len(p.files)} known files)'
                for p in (image.layout.partitions if image.layout else ()))
            # what a volume must hold: qemu-img convert -O raw of the image
            ref_sha, ref_size = images.reference_raw(
                image.path, image.disk_format, image.container_format)
            self.assertEqual((image.raw_sha256, image.virtual_size),
                             (ref_sha, ref_size))
            out.done(t, f'partitions {parts or "none (an iso)"}')
            return image

        def _vdisk(self, volume_id: str) -> dict:
            inv = self.svc.emulator.inventory()
            return next(v for v in inv['vdisks']
                        if v['name'] == f'volume-{volume_id}')

    return Demo


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    _add_args(parser)
    args = parser.parse_args(argv)
    warnings.simplefilter('ignore')
    # Cinder's test fixtures re-enable warnings; an operator watching the
    # demo needs none of Cinder's own deprecation notices.
    warnings.showwarning = lambda *args, **kwargs: None
    os.environ.setdefault('PYTHONWARNINGS', 'ignore')
    # Cinder runs under eventlet: patch before ssl/urllib3 are imported.
    from cinder import monkey_patch
    monkey_patch.patch()
    import unittest

    t0 = time.monotonic()
    print('cinder-dpm-ephemeral demo: a Glance image becomes a bootable FC '
          'LUN on an (emulated) IBM SVC, through real Cinder.', flush=True)
    demo = _scenario(args)('run_demo')
    result = unittest.TestResult()
    demo.run(result)
    problems = result.errors + result.failures
    if problems or not result.wasSuccessful():
        print('\nDEMO FAILED:', file=sys.stderr)
        for _case, text in problems:
            print(text, file=sys.stderr)
        return 1
    print(f'\nDemo passed in {time.monotonic() - t0:.1f} s: the image '
          'checksum matched on the LUN, and nothing was left behind.')
    return 0


if __name__ == '__main__':
    sys.exit(main())
