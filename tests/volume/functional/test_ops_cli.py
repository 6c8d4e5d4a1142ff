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
"""``cinder-dpm-ephemeral`` against real Cinder and the emulated SVC.

The command's functions run in this process on the harness's cinder.conf
(Cinder's global configuration is already loaded from it, as the command
loads it); one run of the installed console script checks the argument
parsing and the configuration loading in a process of its own.
"""

import base64
import io
import json
import os
import sqlite3
import subprocess
import sys
import uuid

from cinder import context as cinder_context
from cinder.db import api as db_api

from cinder_dpm_ephemeral.ops import cli
from cinder_dpm_ephemeral.testing import cinder_harness
from cinder_dpm_ephemeral.testing import images
from tests.volume.functional import array_views

MiB = 1024 * 1024

INTERNAL_PROJECT = array_views.INTERNAL_PROJECT


class _Cli(array_views.InternalTenant):
    def _cli(self, *argv):
        out = io.StringIO()
        args = cli.parser().parse_args(['--format', 'json', *argv])
        rc = cli.execute(args, out)
        return rc, json.loads(out.getvalue())


class PowerFlexReconcileTest(_Cli, array_views.PowerFlexArray,
                             cinder_harness.CinderHarness):
    """Orphan volumes and vTree snapshots on PowerFlex."""

    def _names(self):
        return {v['name'] for v in self._inv()['volumes']}

    @staticmethod
    def lun_name(volume_id):
        # how Cinder's PowerFlex driver names a volume: base64 of its id
        return base64.b64encode(uuid.UUID(volume_id).bytes).decode()

    def test_orphans_found_removed_and_shared_data_kept(self):
        rc, checks = self._cli('doctor')
        self.assertEqual(0, rc, checks)
        image = images.make_image(self.work_dir, 8 * MiB, 'qcow2', seed=5,
                                  name='pf-ops')
        meta = self.add_image(image)
        clone = self.wait_for_volume(
            self.create_volume(self.VOLUME_GB, image_id=meta['id'])['id'],
            timeout=300)
        self.assertEqual('available', clone['status'], clone)
        plain = self.wait_for_volume(self.create_volume(self.VOLUME_GB)['id'])
        self.assertEqual([], self._cli('reconcile')[1])

        ctx = cinder_context.get_admin_context()
        [golden] = [r['golden_volume'] for r in self._cli('cache', 'list')[1]]
        # Cinder loses the rows of a plain volume and of the golden volume
        # its clone (a vTree snapshot) still reads through
        plain_name = self.lun_name(plain['id'])
        golden_name = self.lun_name(golden)
        db_api.volume_destroy(ctx, plain['id'])
        db_api.volume_destroy(ctx, golden)
        rc, found = self._cli('reconcile')
        by_name = {f['name']: f for f in found}
        self.assertEqual({plain_name, golden_name}, set(by_name))
        self.assertEqual((True, False), (by_name[plain_name]['removable'],
                                         by_name[golden_name]['removable']))
        self.assertIn(plain_name, self._names())          # a dry run
        rc, found = self._cli('reconcile', '--apply')
        self.assertEqual({plain_name: True, golden_name: False},
                         {f['name']: f['removed'] for f in found})
        names = self._names()
        self.assertNotIn(plain_name, names)
        self.assertIn(golden_name, names)       # the clone still reads it
        self.assertIn(self.lun_name(clone['id']), names)

        # once the clone is gone, the golden's volume is an orphan alone
        self.delete_volume(clone['id'])
        rc, found = self._cli('reconcile', '--apply')
        self.assertEqual([(golden_name, True)],
                         [(f['name'], f['removed']) for f in found])
        self.assertEqual([], self._cli('reconcile')[1])
        self.assertEqual(set(), self._names())


class SVCOpsCliTest(_Cli, array_views.SVCArray, cinder_harness.CinderHarness):

    def _vdisks(self):
        return {v['name'] for v in self._inv()['vdisks']}

    def test_doctor_cache_reconcile_and_a_stopped_array(self):
        rc, checks = self._cli('doctor')
        self.assertEqual(0, rc, checks)
        by_name = {c['name']: c for c in checks}
        for name in ('config', 'internal tenant', 'qemu-img',
                     'coordination', 'ssh host key', 'array'):
            self.assertEqual('OK', by_name[name]['status'], by_name[name])

        image = images.make_image(self.work_dir, 8 * MiB, 'qcow2', seed=3,
                                  name='ops')
        meta = self.add_image(image)
        vol = self.wait_for_volume(
            self.create_volume(1, image_id=meta['id'])['id'], timeout=300)
        self.assertEqual('available', vol['status'], vol)
        rc, rows = self._cli('cache', 'list')
        self.assertEqual(0, rc)
        [row] = rows
        self.assertEqual((self.BACKEND, 'pool0', meta['id'], 1, 256),
                         (row['backend'], row['pool'], row['image'],
                          row['clones'], row['clone_limit']))
        rc, [st] = self._cli('status')
        self.assertEqual(
            (True, 1, 1),
            (st['reachable'], st['volumes'], st['golden_volumes']))

        # Nothing to reconcile on a consistent backend
        rc, found = self._cli('reconcile')
        self.assertEqual([], found)

        # An orphan: Cinder lost the row of a volume whose vdisk remains
        lost = self.wait_for_volume(self.create_volume(1)['id'])
        vdisk = 'volume-%s' % lost['id']
        self.assertIn(vdisk, self._vdisks())
        db_api.volume_destroy(cinder_context.get_admin_context(), lost['id'])
        rc, found = self._cli('reconcile')
        self.assertEqual([vdisk], [f['name'] for f in found])
        self.assertFalse(found[0]['removed'])
        self.assertIn(vdisk, self._vdisks())     # a dry run
        rc, found = self._cli('reconcile', '--apply')
        self.assertTrue(found[0]['removed'])
        self.assertNotIn(vdisk, self._vdisks())
        # the golden and its clone are untouched
        self.assertIn('volume-%s' % vol['id'], self._vdisks())
        self.assertEqual([], self._cli('reconcile')[1])

        # the console script, in a process of its own, on the same file
        # and a copy of this Cinder's (in-memory) database
        db_file = os.path.join(self.work_dir, 'cinder.sqlite')
        raw = db_api.get_engine().raw_connection()
        try:
            with sqlite3.connect(db_file) as dest:
                raw.driver_connection.backup(dest)
        finally:
            raw.close()
        db_conf = os.path.join(self.work_dir, 'database.conf')
        with open(db_conf, 'w') as f:
            f.write('[database]\nconnection = sqlite:///%s\n' % db_file)
        script = os.path.join(os.path.dirname(sys.executable),
                              'cinder-dpm-ephemeral')
        env = dict(os.environ, PYTHONWARNINGS='ignore')
        proc = subprocess.run(
            [script, '--config-file', self.cinder_conf_path,
             '--config-file', db_conf, 'doctor'],
            capture_output=True, text=True, timeout=120, env=env)
        self.assertEqual(0, proc.returncode, proc.stdout + proc.stderr)
        self.assertIn('OK   array [svc]: svc at 127.0.0.1:', proc.stdout)
        proc = subprocess.run(
            [script, '--config-file', self.cinder_conf_path,
             '--config-file', db_conf, '--format', 'json', 'cache', 'list'],
            capture_output=True, text=True, timeout=120, env=env)
        self.assertEqual(0, proc.returncode, proc.stderr)
        self.assertEqual([meta['id']],
                         [r['image'] for r in json.loads(proc.stdout)])

        # evict: kept while its clone lives (never cloned again), then gone
        self.notifier.reset()
        rc, [row] = self._cli('cache', 'evict', '--image', meta['id'])
        self.assertEqual((1, False), (row['clones'],
                                      row['result'] == 'removed'))
        self.delete_volume(vol['id'])
        rc, rows = self._cli('cache', 'evict')
        self.assertEqual([(0, 'removed')],
                         [(r['clones'], r['result']) for r in rows])
        self.assertEqual([], self._cli('cache', 'list')[1])
        self.assertNotIn('volume-%s' % row['golden_volume'], self._vdisks())
        self.assertIn('image_volume_cache.evict',
                      [n['event_type'] for n in self.notifier.notifications])

        # warm: a new image's golden built ahead of the first boot, the
        # download shown with bytes and rate, nothing else left behind
        image2 = images.make_image(self.work_dir, 8 * MiB, 'qcow2', seed=4,
                                   name='warm')
        meta2 = self.add_image(image2)
        before = self._vdisks()
        rc, [row] = self._cli('cache', 'warm', meta2['id'], '--pool',
                              'pool0')
        self.assertEqual(0, rc)
        self.assertEqual(os.path.getsize(image2.path),
                         row['downloaded_bytes'])
        rc, rows = self._cli('cache', 'list')
        [golden2] = [r for r in rows if r['image'] == meta2['id']]
        self.assertEqual((0, 'ready'), (golden2['clones'], golden2['state']))
        self.assertEqual({'volume-%s' % golden2['golden_volume']},
                         self._vdisks() - before)
        # the first boot after it is a clone: no second download
        self.notifier.reset()
        vol2 = self.wait_for_volume(
            self.create_volume(1, image_id=meta2['id'])['id'], timeout=300)
        self.assertEqual('available', vol2['status'])
        self.assertEqual(['image_volume_cache.hit'],
                         [n['event_type']
                          for n in self.notifier.notifications
                          if n['event_type'].startswith('image_volume')])
        self.delete_volume(vol2['id'])

        # the array stops: doctor says FAIL and what to do
        self._close_driver_connections()
        self.backend.stop()
        rc, checks = self._cli('doctor')
        self.assertEqual(1, rc)
        [array] = [c for c in checks if c['name'] == 'array']
        self.assertEqual('FAIL', array['status'])
        # (the detail says what the driver met, should this ever differ)
        self.assertIn('start the array (or its emulator) or fix san_ip',
                      array['fix'], array)
