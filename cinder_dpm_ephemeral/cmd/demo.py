"""dpm-ephemeral-demo: boot-from-image storage flow on emulated arrays.

What it shows, step by step, with timings:

 1. an emulated IBM SVC starts, reachable over real SSH on 127.0.0.1 (its
    host key is verified by Cinder, as in production);
 2. real Cinder services (API, scheduler, volume) start in this process,
    configured through a cinder.conf backend section that uses this
    project's StorwizeEphemeralDriver;
 3. a qcow2 disk image with known content is registered in a Glance
    stand-in;
 4. a root volume is created from the image through Cinder's REST API (what
    Nova does for a DPM server booted from an image): Cinder creates a vdisk
    on the array, downloads and converts the image once, writes it onto the
    LUN;
 5. the LUN is checked byte by byte against the image (sha256);
 6. the volume is connected as a DPM partition would (two virtual HBA
    WWPNs): the array gets a host and a host mapping, and Cinder returns
    the Fibre Channel target WWPN and LUN the partition boots from;
 7. disconnect and delete: the array is left holding nothing.

The exit status is 0 only if every check passed.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

MiB = 1024 * 1024
GiB = 1024 * MiB


def build_parser() -> argparse.ArgumentParser:
    return argparse.ArgumentParser(
        prog='./run demo',
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=__doc__.split('\n', 1)[1])


def _add_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--image-mib', type=int, default=64,
                        help='virtual size of the demo image in MiB '
                             '(default 64)')
    parser.add_argument('--format', choices=('qcow2', 'raw'),
                        default='qcow2', help='image disk format')


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
    from cinder_dpm_ephemeral.testing import backends
    from cinder_dpm_ephemeral.testing import cinder_harness
    from cinder_dpm_ephemeral.testing import images

    out = _Printer()

    class Demo(cinder_harness.CinderHarness):
        BACKEND = 'svc'

        def start_backends(self) -> None:
            t = out.step('Starting the emulated IBM SVC (SSH CLI) ...')
            self.svc = backends.SVCBackend(self.work_dir).start()
            self.addCleanup(self.svc.stop)
            out.done(t, f'listening on 127.0.0.1:{self.svc.emulator.port}, '
                        f'host key pinned in {self.svc.emulator.known_hosts_path}')
            self._t_cinder = out.step(
                'Starting Cinder (API, scheduler, volume service) with '
                'backend [svc] ...')

        def backend_options(self) -> dict:
            return self.svc.backend_options(self.BACKEND)

        def default_options(self) -> dict:
            return self.svc.default_options()

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

            t = out.step(f'Making a {args.image_mib} MiB {args.format} image '
                         'with known content (qemu-img) ...')
            image = images.make_image(self.work_dir, args.image_mib * MiB,
                                      args.format, seed=2026)
            meta = self.add_image(image, name='demo-rootfs')
            out.done(t, f'image {meta["id"]}: {image.file_size / MiB:.1f} '
                        f'MiB file, raw sha256 {image.raw_sha256[:16]}...')

            size_gb = max(1, -(-image.file_size // GiB),
                          -(-image.virtual_size // GiB))
            t = out.step(f'Creating a {size_gb} GB root volume from the '
                         'image through the Cinder API ...')
            vol = self.create_volume(size_gb, image_id=meta['id'],
                                     name='demo-root')
            vol = self.wait_for_volume(vol['id'], timeout=600)
            self.assertEqual('available', vol['status'],
                             f'volume ended {vol["status"]}')
            out.done(t, f'volume {vol["id"]} available, bootable='
                        f'{vol["bootable"]}; Glance served '
                        f'{self.images.total_bytes_served() / MiB:.1f} MiB')
            self.assertEqual('true', vol['bootable'])

            t = out.step('Verifying the LUN against the image ...')
            inv = self.svc.emulator.inventory()
            vdisk = next(v for v in inv['vdisks']
                         if v['name'] == f'volume-{vol["id"]}')
            uid = vdisk['vdisk_UID']
            lun_sum = self.svc.luns.sha256(uid, image.virtual_size)
            self.assertEqual(image.raw_sha256, lun_sum,
                             'LUN content differs from the image')
            out.done(t, f'vdisk {vdisk["name"]} (UID {uid}): first '
                        f'{image.virtual_size // MiB} MiB sha256 '
                        f'{lun_sum[:16]}... MATCHES the image')

            connector = {'host': 'dpm-partition-demo', 'platform': 's390x',
                         'os_type': 'linux', 'multipath': False,
                         'wwpns': ['c05076ffe5000a10', 'c05076ffe5000a11'],
                         'wwnns': ['c05076ffe5000a10', 'c05076ffe5000a11']}
            t = out.step('Connecting the volume to a DPM partition '
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

            t = out.step('Disconnecting and deleting the volume ...')
            self.terminate_connection(vol['id'], connector)
            self.delete_volume(vol['id'])
            inv = self.svc.emulator.inventory()
            left = {k: inv[k] for k in ('vdisks', 'host_mappings', 'fcmaps')
                    if inv[k]}
            self.assertEqual({}, left, f'left on the array: {left}')
            self.assertEqual({}, self.svc.luns.list())
            out.done(t, 'array holds no vdisk, host mapping or FlashCopy '
                        'map; LUN data removed')

    return Demo


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    _add_args(parser)
    args = parser.parse_args(argv)
    warnings.simplefilter('ignore')
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
