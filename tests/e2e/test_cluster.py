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
"""Two volume services in one active-active cluster on the same arrays.

The cloud's cinder-volume makes way for two services of the PowerFlex
backend (the in-tree PowerFlex driver supports active-active; the
Storwize one does not), hosts ``dpm-storage`` and ``dpm-storage-b``,
``[DEFAULT] cluster = dpm-cluster``, sharing a real distributed lock:
tooz's etcd3 driver on Debian's etcd. A storm of 20 creates from a new
image, spread over both by the cluster's message queue, downloads the
image once and makes one golden volume; the service building a golden
volume SIGKILLed in the middle of a storm leaves the other to finish, and
after its restart nothing is stuck and nothing leaked. With a ``file://``
lock and ``cluster`` set, the service warns at start.
"""

from __future__ import annotations

import threading
from typing import Any

from testtools import content

from cinder_dpm_ephemeral.testing import images
from cinder_dpm_ephemeral.testing.cloud import layout as lay
from cinder_dpm_ephemeral.testing.cloud import services as svcs
from tests.e2e import base
from tests.e2e import volume_services as vsvc

MiB = images.MiB
PF = lay.POWERFLEX_BACKEND
HOSTS = {'cinder-volume': lay.STORAGE_HOST,
         'cinder-volume-b': lay.STORAGE_HOST + '-b'}
STORM = 20


class ClusterTest(base.CloudTestCase):

    def _options(self, backend_url: str) -> dict[str, Any]:
        return {'DEFAULT': {'cluster': 'dpm-cluster', 'enabled_backends': PF},
                'coordination': {'backend_url': backend_url}}

    def _start_both(self, urls: dict[str, str]) -> None:
        errors: list[BaseException] = []

        def one(name: str) -> None:
            try:
                self.vs.start(name, HOSTS[name], PF, self._options(urls[name]))
            except BaseException as exc:
                errors.append(exc)
        threads = [threading.Thread(target=one, args=(n,)) for n in urls]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise errors[0]

    def _storm(self, name: str,
               seed: int) -> tuple[str, list[str], vsvc.FifoImage]:
        image = images.make_disk_image(self.work, 'raw', 'gpt', 32 * MiB,
                                       seed=seed, name=name)
        image_id = self.upload(image, name)
        # The first download stops after 2 MiB until released: the whole
        # storm reaches both services while the golden volume is built.
        fifo = vsvc.FifoImage(self.cloud.lo, image_id, first=2 * MiB)
        self.addCleanup(fifo.close)
        ids = [self.vs.create(f'{name}-{i}', image_id, size=8,
                              volume_type=lay.POWERFLEX_VOLUME_TYPE)
               for i in range(STORM)]
        return image_id, ids, fifo

    def _building(self, image_id: str) -> dict[str, Any]:
        def golden() -> dict[str, Any] | None:
            found = [g for g in self.vs.goldens(image_id)
                     if g['status'] == 'creating' and g['provider_id']]
            return found[0] if found else None
        return vsvc.wait_for('golden volume being written', golden)

    def _handled_by(self, ids: list[str]) -> dict[str, list[str]]:
        """Volume ids each service has started to create (its log)."""
        return {name: [i for i in ids if i in self.vs.log(name)]
                for name in HOSTS}

    def _statuses(self, ids: list[str]) -> dict[str, str | None]:
        return {i: self.vs.status(i) for i in ids}

    def test_storms_across_two_services(self) -> None:
        lo = self.cloud.lo
        self.vs = vs = vsvc.VolumeServices(lo)
        # The suite's other tests may share this cloud: its own
        # cinder-volume (both backends, no cluster) comes back at the end.
        self.addCleanup(vs.start, 'cinder-volume')
        self.addCleanup(svcs.stop, lo, 'cinder-volume')
        etcd = vsvc.Etcd(lo.root / 'etcd')
        self.addCleanup(etcd.stop)
        self.addCleanup(svcs.stop, lo, 'cinder-volume-b')
        etcd_url = etcd.tooz_url(lock_timeout=10)
        file_url = 'file://' + str(lo.data / 'cinder' / 'coord')

        # A cluster on a lock of one host: the service says so at start.
        svcs.stop(lo, 'cinder-volume')
        self._start_both({'cinder-volume': file_url,
                          'cinder-volume-b': etcd_url})
        warning = ('[DEFAULT] cluster = dpm-cluster (several volume '
                   'services share these arrays) but [coordination] '
                   f'backend_url is {file_url}, a lock of this host only')
        # The driver warns when it starts, which on a loaded machine can be
        # after the service logged that it is up.
        vsvc.wait_for('the in-process lock warning',
                      lambda: warning in vs.log('cinder-volume'), timeout=60)
        self.assertNotIn('a lock of this host only', vs.log('cinder-volume-b'))
        svcs.stop(lo, 'cinder-volume')
        vs.start('cinder-volume', HOSTS['cinder-volume'], PF,
                 self._options(etcd_url))

        # A storm over both services: one download, one golden volume.
        image_id, ids, fifo = self._storm('cluster-storm', 21)
        self._building(image_id)
        vsvc.wait_for('the storm reached both services', lambda: all(
            self._handled_by(ids).values()), timeout=60)
        fifo.release()
        vsvc.wait_for('the storm created', lambda: all(
            s == 'available' for s in self._statuses(ids).values()),
            timeout=240, interval=1)
        self.addDetail('storm-spread', content.text_content(str(
            {n: len(v) for n, v in self._handled_by(ids).items()})))
        self.assertEqual(1, self.cloud.glance_downloads(image_id))
        self.assertEqual(1, len(vs.goldens(image_id)))

        # The service building a golden volume killed mid-storm.
        image_id, ids, fifo = self._storm('cluster-kill', 22)
        golden = self._building(image_id)
        builder = golden['metadata']['builder']
        dead = [n for n, h in HOSTS.items() if builder == f'{h}@{PF}'][0]
        vsvc.wait_for('the storm reached both services', lambda: all(
            self._handled_by(ids).values()), timeout=60)
        vs.kill(dead)
        fifo.release()
        survivor = self._handled_by(ids)[
            [n for n in HOSTS if n != dead][0]]
        vsvc.wait_for('the other service finished its volumes', lambda: all(
            self.vs.status(i) == 'available' for i in survivor),
            timeout=240, interval=1)
        vs.start(dead, HOSTS[dead], PF, self._options(etcd_url))
        vsvc.wait_for('nothing left creating', lambda: not vs.stuck(),
                      timeout=120, interval=1)
        statuses = self._statuses(ids)
        self.addDetail('after-restart', content.text_content(str(
            {'killed': dead, 'statuses': statuses})))
        # The dead service's golden volume went at its restart; the
        # survivor's serves the image.
        self.assertNotIn(golden['id'], [g['id']
                                        for g in vs.goldens(image_id)])
        self.assertEqual(1, len(vs.goldens(image_id)))
        self.assertIn('restarted during the build', vs.log(dead))
        # What the dead service had started is in error, and deletes.
        failed = [i for i, s in statuses.items() if s == 'error']
        self.assertEqual(
            {'available'}, {s for i, s in statuses.items()
                            if i not in failed})
        for i in failed:
            vs.delete(i)
        vsvc.wait_for('the failed volumes deleted', lambda: all(
            vs.status(i) is None for i in failed), timeout=120, interval=1)
        self.assertEqual([], vs.stuck())
        leaks = vs.leaks()
        self.assertEqual({k: [] for k in leaks}, leaks)
        usage, goldens = vs.quota_matches_goldens()
        self.assertEqual(goldens, usage)
