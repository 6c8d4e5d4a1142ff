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
"""Volume lifecycles and the settle phase of the fault campaign.

Mixed into the campaign's :class:`CinderHarness` case (see
:mod:`tools.faults.campaign`); all Cinder calls go through its REST API,
as Nova's and users' do.
"""

from __future__ import annotations

import logging
import random
import time
from typing import Any

import eventlet
from cinder import context as cinder_context
from cinder.tests.functional.api import client as api_client

from cinder_dpm_ephemeral.testing import audit
from cinder_dpm_ephemeral.testing import images

MiB = 1024 * 1024
GiB = 1024 * MiB
API_ERRORS = (api_client.OpenStackApiException, AssertionError)
#: statuses Cinder's API deletes a volume from
DELETABLE = ('available', 'error', 'error_restoring', 'error_extending',
             'error_managing')


#: lifecycle kinds (see tools/faults/campaign.py) and their weights
KINDS = {'new': 2.0, 'cached': 3.0, 'storm': 1.0, 'attach': 3.0}
#: seconds the settle phase's first audit waits for a leak to go (the
#: last attempt's clean-up of a failed create takes seconds: its lookups
#: retry with back-off)
LEAK_GRACE_SECONDS = 30.0


def plan(params: dict[str, Any], rng: random.Random) -> list[str]:
    """The lifecycle kinds, in order, adding up to the per-array count."""
    kinds, weights = list(KINDS), list(KINDS.values())
    out: list[str] = []
    n = 0
    while n < params['lifecycles_per_array']:
        k = rng.choices(kinds, weights)[0]
        out.append(k)
        n += params['storm_size'] if k == 'storm' else 1
    return out


def _log_filter(record: logging.LogRecord) -> bool:
    """Warnings and errors, and what this project's code says."""
    return (record.levelno >= logging.WARNING or
            record.name.startswith(('cinder_dpm_ephemeral',
                                    'cinder.volume.manager')))


def _why(exc: Exception) -> str:
    resp = getattr(exc, 'response', None)
    text = getattr(resp, 'text', '') or ''
    return f'{str(exc)[:80]} {text[:160]}'.strip()


class LifecycleMixin:
    """Lifecycles and settling, on the campaign's harness.

    Needs the harness (``api``, ``images``, ``backend``, ``driver``) and
    ``connector()``, ``arm(rate)``.
    """

    api: Any
    backend: Any
    driver: Any
    images: Any
    work_dir: str

    # -- one volume -----------------------------------------------------------
    def _size_gb(self, array: str) -> int:
        return 8 if array == 'powerflex' else 1

    def _wait(self, vol_id: str, statuses: tuple[str, ...],
              timeout: float) -> dict | None:
        try:
            return self.wait_for_volume(vol_id, statuses, timeout)
        except AssertionError:
            return {'id': vol_id, 'status': 'timeout'}

    def _lun_sha(self, array: str, vol_id: str, length: int) -> str | None:
        if array == 'svc':
            uid = next((v['vdisk_UID'] for v in self.backend.emulator.
                        inventory()['vdisks']
                        if v['name'] == f'volume-{vol_id}'), None)
        else:
            from cinder import objects
            uid = objects.Volume.get_by_id(
                cinder_context.get_admin_context(), vol_id).provider_id
        if uid is None:
            return None
        return self.backend.luns.sha256(uid, length)

    def _attach_detach(self, rec: dict[str, Any], vol_id: str) -> None:
        """Attach and detach as Nova does.

        Reserve, update with the connector, complete; then delete the
        attachment (retried, as Nova's delete is).
        """
        att = self.api.api_post(
            '/attachments', {'attachment': {'volume_uuid': vol_id}}
        )['attachment']
        try:
            self.api.api_put(f'/attachments/{att["id"]}',
                             {'attachment': {'connector': self.connector()}})
            self.api.api_post(f'/attachments/{att["id"]}/action',
                              {'os-complete': None},
                              check_response_status=[204])
            rec['attached'] = True
        except API_ERRORS as exc:
            rec['steps'].append(f'attach failed: {_why(exc)}')
            rec['ok'] = False
        for _attempt in range(self._params['delete_attempts']):
            try:
                self.api.api_delete(f'/attachments/{att["id"]}')
                return
            except API_ERRORS as exc:
                rec['steps'].append(f'detach failed: {_why(exc)}')
                rec['ok'] = False
        rec['detach_gave_up'] = True

    def _delete(self, rec: dict[str, Any], vol_id: str) -> bool:
        """Delete, retried; an ``error_deleting`` volume is reset first.

        Cinder's API refuses to delete a volume in ``error_deleting`` (or
        ``error_detaching``...): an operator resets it to ``error``
        (``cinder reset-state``) and deletes again; each such reset is
        counted (``operator_resets``).
        """
        for _attempt in range(self._params['delete_attempts']):
            if rec.get('last_status') not in (None,) + DELETABLE:
                try:
                    self.api.api_post(f'/volumes/{vol_id}/action',
                                      {'os-reset_status':
                                       {'status': 'error',
                                        'attach_status': 'detached'}},
                                      check_response_status=[202])
                    rec['operator_resets'] = rec.get('operator_resets',
                                                     0) + 1
                    rec['last_status'] = 'error'
                except API_ERRORS as exc:
                    rec['steps'].append(f'reset refused: {_why(exc)}')
            try:
                self.api.delete_volume(vol_id)
            except API_ERRORS as exc:
                rec['steps'].append(f'delete refused: {_why(exc)}')
                rec['ok'] = False
                time.sleep(0.5)
                continue
            v = self._wait(vol_id, ('error_deleting',),
                           self._params['timeout'])
            if v is None:
                return True
            rec['last_status'] = v['status']
            rec['steps'].append(f'delete ended {v["status"]}')
            rec['ok'] = False
        return False

    def _lifecycle(self, array: str, kind: str, image: Any,
                   meta: dict[str, Any], vol_id: str | None = None
                   ) -> dict[str, Any]:
        rec: dict[str, Any] = {'kind': kind, 'ok': True, 'steps': []}
        try:
            if vol_id is None:
                vol_id = self.create_volume(self._size_gb(array),
                                            image_id=meta['id'])['id']
            rec['volume'] = vol_id
            v = self._wait(vol_id, ('available', 'error'),
                           self._params['timeout'])
            rec['created'] = v['status'] if v else 'gone'
            if not v or v['status'] != 'available':
                rec['ok'] = False
            else:
                sha = self._lun_sha(array, vol_id, image.virtual_size)
                if sha != image.raw_sha256:
                    # None: no LUN on the array behind an available volume
                    rec['corrupt'] = 'no LUN' if sha is None else sha[:12]
                    rec['ok'] = False
                if kind == 'attach':
                    self._attach_detach(rec, vol_id)
            rec['deleted'] = self._delete(rec, vol_id)
            if not rec['deleted']:
                rec['ok'] = False
        except Exception as exc:       # the campaign goes on
            rec['ok'] = False
            rec['steps'].append(f'{type(exc).__name__}: {str(exc)[:200]}')
        return rec

    # -- the campaign ---------------------------------------------------------
    def _new_image(self, n: int) -> tuple[Any, dict[str, Any]]:
        fmt = 'qcow2' if n % 2 else 'raw'
        image = images.make_image(self.work_dir + '/img',
                                  self._params['image_bytes'], fmt,
                                  seed=1000 + n, name=f'faults-{n}')
        return image, self.add_image(image, name=f'faults-{n}')

    def _periodic(self) -> None:
        """The stats update the volume manager's timer runs.

        With it runs the golden cache's clean-up.
        """
        try:
            self.volume_manager._report_driver_status(
                cinder_context.get_admin_context())
        except Exception as exc:
            self._periodic_errors.append(f'{type(exc).__name__}: '
                                         f'{str(exc)[:200]}')

    def campaign(self, array: str, params: dict[str, Any]) -> dict[str, Any]:
        self._params = params
        if params.get('log'):
            # the services' log, warnings and errors, for the root causes
            handler = logging.FileHandler(params['log'])
            handler.setLevel(logging.INFO)
            handler.addFilter(_log_filter)
            handler.setFormatter(logging.Formatter(
                '%(asctime)s %(levelname)s %(name)s %(message)s'))
            logging.getLogger().addHandler(handler)
            self.addCleanup(logging.getLogger().removeHandler, handler)
        self._periodic_errors: list[str] = []
        rng = random.Random(params['seed'])
        kinds = plan(params, rng)
        cached = [self._new_image(i) for i in range(3)]
        n_images = len(cached)
        t0 = time.monotonic()
        self.arm(params['rate'])
        pool = eventlet.GreenPool(params['concurrency'])
        threads = []
        for i, kind in enumerate(kinds):
            if kind in ('new', 'storm'):
                image, meta = self._new_image(n_images)
                n_images += 1
                if kind == 'new':
                    cached.append((image, meta))
            else:
                image, meta = rng.choice(cached)
            if kind == 'storm':
                vols = [self.create_volume(self._size_gb(array),
                                           image_id=meta['id'])['id']
                        for _ in range(params['storm_size'])]
                for vid in vols:
                    threads.append(pool.spawn(self._lifecycle, array, kind,
                                              image, meta, vid))
            else:
                threads.append(pool.spawn(self._lifecycle, array, kind,
                                          image, meta))
            if i and i % params['evict_every'] == 0:
                pool.spawn(self._periodic)
        records = [t.wait() for t in threads]
        pool.waitall()
        run_seconds = time.monotonic() - t0
        injected = self.backend.emulator.fault_stats()
        self.arm(0.0)
        out = {'lifecycles': len(records),
               'succeeded': sum(1 for r in records if r['ok']),
               'corrupt': sum(1 for r in records if r.get('corrupt')),
               'operator_resets': sum(r.get('operator_resets', 0)
                                      for r in records),
               'run_seconds': round(run_seconds, 1),
               'faults_injected': {
                   'management': injected['injected'],
                   'lun_write_errors': self.backend.luns.counters().get(
                       'injected_write_errors', 0),
                   'glance': dict(self.images.faults_injected)},
               'kinds': {k: kinds.count(k) for k in KINDS},
               'glance_downloads': sum(self.images.downloads.values())}
        out.update(self._settle(array, params, records))
        out['periodic_errors'] = self._periodic_errors[:5]
        out['failures_sample'] = [r for r in records if not r['ok']][:8]
        out['corrupt_detail'] = [r for r in records if r.get('corrupt')]
        if params.get('log'):
            # the array's password must appear in no line of the log
            with open(params['log'], errors='replace') as f:
                out['password_in_log'] = sum(
                    1 for line in f if self.backend.login[1] in line)
        return out

    def _audit_when_idle(self, array: str,
                         params: dict[str, Any]) -> dict[str, Any]:
        """The audit once what the service is still undoing is undone.

        A create whose last attempt failed is deleted by the API at once
        (it has no host), while the volume service's clean-up of that
        attempt (Cinder's delete "just in case" after a reschedule) may
        still be removing its LUN: a leak only if it stays. Audited
        again every 0.5 s until nothing leaks, for at most
        :data:`LEAK_GRACE_SECONDS`.
        """
        deadline = time.monotonic() + LEAK_GRACE_SECONDS
        while True:
            res = audit.audit(array, self.backend.emulator.inventory(),
                              params['max_count'])
            if (not any(res['leaked'].values()) or
                    time.monotonic() >= deadline):
                return res
            time.sleep(0.5)

    def _settle(self, array: str, params: dict[str, Any],
                records: list[dict[str, Any]]) -> dict[str, Any]:
        t = time.monotonic()
        deadline = t + params['settle_seconds']
        while time.monotonic() < deadline:
            if not audit.stuck(audit.cinder_view()):
                break
            time.sleep(0.5)
        self._periodic()
        before = self._audit_when_idle(array, params)
        # What failed is deleted now (faults off), as an operator would.
        leftover = []
        settle_resets = 0
        view = audit.cinder_view()
        ictx = cinder_context.get_internal_tenant_context()
        for vid, vol in view['volumes'].items():
            if vol.project_id == ictx.project_id:
                continue                      # golden volumes: the cache's
            for att in view['attachments'].get(vid, []):
                try:
                    self.api.api_delete(f'/attachments/{att.id}')
                except API_ERRORS:
                    pass
            try:
                status = self.api.get_volume(vid)['status']
            except API_ERRORS:
                status = None
            rec: dict[str, Any] = {'steps': [], 'last_status': status}
            if not self._delete(rec, vid):
                leftover.append(f'{vid}: {rec["steps"][-1:]}')
            settle_resets += rec.get('operator_resets', 0)
        self._periodic()
        after = audit.audit(array, self.backend.emulator.inventory(),
                            params['max_count'])
        leaked: dict[str, list[str]] = {}
        for res in (before, after):
            for k, items in res['leaked'].items():
                leaked.setdefault(k, [])
                leaked[k] += [i for i in items if i not in leaked[k]]
        leaked['undeletable'] = leftover
        stuck = before['stuck'] + [s for s in after['stuck']
                                   if s not in before['stuck']]
        n_stuck = len(stuck)
        n_leaked = sum(len(v) for v in leaked.values())
        # a failed lifecycle is clean if nothing stuck or leaked names its
        # volume (PowerFlex names LUNs otherwise: the totals still count)
        blame = ' '.join(stuck + [i for v in leaked.values() for i in v])
        failed_cleanly = sum(1 for r in records if not r['ok'] and
                             r.get('volume', '?') not in blame)
        return {'failed_cleanly': failed_cleanly,
                'stuck': n_stuck, 'leaked': n_leaked,
                'stuck_detail': stuck,
                'leaked_detail': {k: v for k, v in leaked.items() if v},
                'settle_operator_resets': settle_resets,
                'settle_seconds': round(time.monotonic() - t, 1)}
