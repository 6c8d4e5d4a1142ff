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
    Nova does for a DPM server booted from an image): the driver downloads
    and converts the image once into a golden vdisk owned by Cinder's
    internal tenant, and the root volume is a FlashCopy of it with no
    background copy;
 5. the root volume's LUN is checked against the image (sha256);
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
import os
import sys
import time
import uuid
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
    parser.add_argument('--storm', type=int, default=10,
                        help='volumes created at once from the cached '
                             'image (default 10)')


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
                         'image through the Cinder API (cold: first use) ...')
            vol = self.create_volume(size_gb, image_id=meta['id'],
                                     name='demo-root-0')
            vol = self.wait_for_volume(vol['id'], timeout=600)
            self.assertEqual('available', vol['status'],
                             f'volume ended {vol["status"]}')
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
                             'LUN content differs from the image')
            out.done(t, f'vdisk {vdisk["name"]} (UID {uid}): first '
                        f'{image.virtual_size // MiB} MiB sha256 '
                        f'{lun_sum[:16]}... MATCHES the image')

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
