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
"""The volume service SIGKILLed at each step, then started again.

One kill catches four operations, each held at a known step of its own:
a golden volume being written (its image served through a FIFO that
stops after 2 MiB), a golden volume whose row exists but not its LUN, a
thin clone and a delete (both waiting on the SVC, stopped with SIGSTOP:
each holds an SSH request the array has not read). After the restart,
within a bounded time, everything is finished or removed: no golden
volume left ``creating``, no volume in a transitional state, the arrays
hold exactly what Cinder's database lists, and the internal tenant's
quota usage equals its golden volumes.
"""

from __future__ import annotations

import time

from testtools import content

from cinder_dpm_ephemeral.testing import images
from tests.e2e import base
from tests.e2e import volume_services as vsvc

MiB = images.MiB


class VolumeServiceCrashTest(base.CloudTestCase):

    def _image(self, name: str, seed: int, size: int = 32 * MiB) -> str:
        image = images.make_disk_image(self.work, 'raw', 'gpt', size,
                                       seed=seed, name=name)
        return self.upload(image, name)

    def _available(self, vs: vsvc.VolumeServices, *ids: str) -> None:
        def done() -> bool:
            states = [vs.status(i) for i in ids]
            if 'error' in states:
                raise AssertionError(f'volumes {ids}: {states}')
            return all(s == 'available' for s in states)
        vsvc.wait_for(f'volumes {ids} available', done, timeout=180)

    def test_killed_at_each_step_then_restarted(self) -> None:
        vs = vsvc.VolumeServices(self.cloud.lo)
        ready = self._image('crash-ready', 11)
        writing = self._image('crash-writing', 12, 48 * MiB)
        no_lun = self._image('crash-no-lun', 13)
        clone_a = vs.create('crash-a', ready)
        to_delete = vs.create('crash-delete', ready)
        self._available(vs, clone_a, to_delete)

        # 1. A golden volume being written: its LUN exists, the image
        # stops after 2 MiB.
        fifo = vsvc.FifoImage(self.cloud.lo, writing, first=2 * MiB)
        self.addCleanup(fifo.close)
        v_writing = vs.create('crash-writing', writing)

        def golden_lun() -> str | None:
            for g in vs.goldens(writing):
                if (g['status'] == 'creating' and f'volume-{g["id"]}' in
                        vs.svc_vdisk_names()):
                    return g['id']
            return None
        g_writing = vsvc.wait_for('golden volume being written', golden_lun)

        with vs.svc_held():
            # 2. A golden volume whose row exists, its mkvdisk unread.
            waiting = vs.svc_waiting()
            v_no_lun = vs.create('crash-no-lun', no_lun)
            g_no_lun = vsvc.wait_for(
                'golden row of the second image', lambda: (
                    vs.svc_waiting() > waiting and vs.goldens(no_lun)))
            # 3. A thin clone waiting on the array.
            waiting = vs.svc_waiting()
            v_clone = vs.create('crash-clone', ready)
            vsvc.wait_for('the clone waits on the SVC',
                          lambda: vs.svc_waiting() > waiting, timeout=60)
            # 4. A delete waiting on the array.
            waiting = vs.svc_waiting()
            vs.delete(to_delete)
            vsvc.wait_for('the delete waits on the SVC',
                          lambda: vs.svc_waiting() > waiting, timeout=60)
            vs.kill('cinder-volume')
        fifo.release()
        self.addDetail('killed-at', content.text_content(
            f'golden being written {g_writing}, golden without LUN '
            f'{g_no_lun[0]["id"]}, clone {v_clone}, delete {to_delete}'))

        t0 = time.monotonic()
        vs.start('cinder-volume')

        def settled() -> bool:
            return (not vs.goldens(writing) and not vs.goldens(no_lun)
                    and vs.status(to_delete) is None and not vs.stuck())
        vsvc.wait_for('every interrupted operation finished or removed',
                      settled, timeout=120, interval=1)
        self.addDetail('recovery-seconds', content.text_content(
            '%.1f' % (time.monotonic() - t0)))
        # Cinder's own clean-up: creates it had started are in error.
        for vol in (v_writing, v_no_lun, v_clone):
            self.assertIn(vs.status(vol), ('error', 'available'))
        self.assertIn('restarted during the build', vs.log())
        # ... and deleting them removes what they had on the array.
        for vol in (v_writing, v_no_lun, v_clone):
            vs.delete(vol)
        vsvc.wait_for('the interrupted volumes deleted', lambda: all(
            vs.status(v) is None for v in (v_writing, v_no_lun, v_clone)),
            timeout=90, interval=1)

        self.assertEqual([], vs.stuck())
        leaks = vs.leaks()
        self.assertEqual({k: [] for k in leaks}, leaks)
        usage, goldens = vs.quota_matches_goldens()
        self.assertEqual(goldens, usage)
        # The golden volume that was ready stays, still cloned.
        self.assertEqual(1, len(vs.goldens(ready)))
        self.assertEqual('available', vs.status(clone_a))
