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
"""The cloud's volume services as processes to kill, restart and multiply.

For the crash and cluster tests: SIGKILL a cinder-volume (its whole
process group, as a crash of the host would), start it again or start
another with a few options of its own (a second configuration file read
after the cloud's cinder.conf), hold the emulated SVC with SIGSTOP so that
the volume service waits on it at a known step, serve an image from Glance
through a FIFO so that a download stops where the test says, and read
Cinder's database and the arrays' state as an operator would.
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import signal
import socket
import sqlite3
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

from cinder_dpm_ephemeral.testing.cloud import config
from cinder_dpm_ephemeral.testing.cloud import keystone
from cinder_dpm_ephemeral.testing.cloud import layout as lay
from cinder_dpm_ephemeral.testing.cloud import processes as procs
from cinder_dpm_ephemeral.testing.cloud import services as svcs
from tests.e2e import base

TRANSITIONAL = ('creating', 'downloading', 'deleting', 'attaching',
                'detaching', 'extending')


class VolumeServices:
    """Volume services, Cinder's API and database, the arrays' state."""

    def __init__(self, lo: lay.Layout) -> None:
        self.lo = lo
        self.sess = keystone.admin_session(lo)
        self.base = (f'{lo.url("cinder")}/v3/'
                     f'{self.sess.get_project_id()}')

    # -- Cinder's API (admin) -------------------------------------------------
    def create(self, name: str, image_id: str | None = None, size: int = 1,
               volume_type: str | None = None) -> str:
        body: dict[str, Any] = {'name': name, 'size': size}
        if image_id:
            body['imageRef'] = image_id
        if volume_type:
            body['volume_type'] = volume_type
        resp = self.sess.post(f'{self.base}/volumes', json={'volume': body})
        return resp.json()['volume']['id']

    def volume(self, volume_id: str) -> dict[str, Any] | None:
        resp = self.sess.get(f'{self.base}/volumes/{volume_id}',
                             raise_exc=False)
        if resp.status_code == 404:
            return None
        resp.raise_for_status()
        return resp.json()['volume']

    def status(self, volume_id: str) -> str | None:
        vol = self.volume(volume_id)
        return vol['status'] if vol else None

    def delete(self, volume_id: str) -> None:
        self.sess.delete(f'{self.base}/volumes/{volume_id}', raise_exc=False)

    # -- Cinder's database ----------------------------------------------------
    def rows(self, sql: str, *args: Any) -> list[sqlite3.Row]:
        path = self.lo.data / 'db' / 'cinder.sqlite'
        with contextlib.closing(sqlite3.connect(
                f'file:{path}?mode=ro', uri=True, timeout=60)) as db:
            db.row_factory = sqlite3.Row
            return db.execute(sql, args).fetchall()

    def goldens(self, image_id: str | None = None) -> list[dict[str, Any]]:
        """Golden volume rows (not deleted) with their metadata."""
        out = []
        for row in self.rows(
                "SELECT v.* FROM volumes v JOIN volume_metadata m ON "
                "m.volume_id = v.id AND m.deleted = 0 AND m.key = "
                "'dpm_ephemeral_golden' WHERE v.deleted = 0"):
            md = {r['key']: r['value'] for r in self.rows(
                'SELECT key, value FROM volume_metadata WHERE volume_id = ? '
                'AND deleted = 0', row['id'])}
            if image_id is None or md.get('image_id') == image_id:
                out.append({**dict(row), 'metadata': md})
        return out

    def volumes(self) -> list[sqlite3.Row]:
        return self.rows('SELECT * FROM volumes WHERE deleted = 0')

    def internal_usage(self) -> dict[str, int]:
        """The internal tenant's quota usage of volumes and gigabytes."""
        project = self.golden_project()
        return {r['resource']: r['in_use'] for r in self.rows(
            'SELECT resource, in_use FROM quota_usages WHERE project_id = ? '
            "AND deleted = 0 AND resource IN ('volumes', 'gigabytes')",
            project)}

    def golden_project(self) -> str:
        conf = self.lo.conf('cinder').read_text()
        for line in conf.splitlines():
            if line.startswith('cinder_internal_tenant_project_id'):
                return line.split('=', 1)[1].strip()
        raise AssertionError('no internal tenant in cinder.conf')

    # -- the arrays -----------------------------------------------------------
    def _state(self, kind: str) -> dict[str, Any]:
        path = self.lo.data / 'emulators' / kind / f'{kind}-state.json'
        return json.loads(path.read_text())

    def leaks(self) -> dict[str, list[str]]:
        """Array objects no Cinder volume owns, and owned ones missing.

        SVC: vdisks are named ``volume-<id>``; FlashCopy maps and host
        mappings must join two existing vdisks or a vdisk and a host.
        PowerFlex: volumes and snapshots are Cinder volumes by
        ``provider_id``.
        """
        rows = self.volumes()
        svc_ids = {r['id'] for r in rows
                   if (r['host'] or '').split('#')[0].endswith(
                       '@' + lay.SVC_BACKEND)}
        pf_ids = {r['provider_id'] for r in rows
                  if (r['host'] or '').split('#')[0].endswith(
                      '@' + lay.POWERFLEX_BACKEND) and r['provider_id']}
        svc = self._state('svc')
        vdisks = {v['id']: v['name'] for v in svc['vdisks'].values()}
        pf = self._state('powerflex')
        return {
            'svc_vdisks': sorted(set(vdisks.values()) -
                                 {f'volume-{i}' for i in svc_ids}),
            'svc_missing': sorted({f'volume-{i}' for i in svc_ids} -
                                  set(vdisks.values())),
            'svc_fcmaps': sorted(m['name'] for m in svc['fcmaps'].values()
                                 if m['source'] not in vdisks or
                                 m['target'] not in vdisks),
            'svc_hostmaps': sorted(str(m['vdisk']) for m in svc['hostmaps']
                                   if m['vdisk'] not in vdisks),
            'powerflex_volumes': sorted(set(pf['volumes']) - pf_ids),
            'powerflex_missing': sorted(pf_ids - set(pf['volumes'])),
        }

    def svc_vdisk_names(self) -> set[str]:
        return {v['name'] for v in self._state('svc')['vdisks'].values()}

    def stuck(self) -> list[str]:
        """Volumes (golden ones included) in a transitional state."""
        return [f'{r["id"]} {r["status"]}' for r in self.volumes()
                if r['status'] in TRANSITIONAL]

    def quota_matches_goldens(self) -> tuple[dict[str, int], dict[str, int]]:
        """(internal tenant's usage, what its golden volumes add up to)."""
        goldens = self.goldens()
        usage = self.internal_usage()
        return ({k: usage.get(k, 0) for k in ('volumes', 'gigabytes')},
                {'volumes': len(goldens),
                 'gigabytes': sum(g['size'] for g in goldens)})

    def svc_waiting(self) -> int:
        """SSH connections to the SVC whose requests it has not read."""
        port = f'{self.lo.ports["svc"]:04X}'
        waiting = 0
        for table in ('/proc/net/tcp', '/proc/net/tcp6'):
            with contextlib.suppress(OSError), open(table) as f:
                for line in list(f)[1:]:
                    cols = line.split()
                    local, st = cols[1], cols[3]
                    rx = int(cols[4].split(':')[1], 16)
                    if local.endswith(':' + port) and st == '01' and rx:
                        waiting += 1
        return waiting

    @contextlib.contextmanager
    def svc_held(self) -> Iterator[None]:
        """The SVC emulator stopped (SIGSTOP): every command waits."""
        pid = svcs.recorded_pid(self.lo, 'svc-emulator')
        assert pid is not None, 'the SVC emulator is not running'
        os.kill(pid, signal.SIGSTOP)
        try:
            yield
        finally:
            os.kill(pid, signal.SIGCONT)

    # -- processes ------------------------------------------------------------
    def kill(self, name: str = 'cinder-volume') -> None:
        """SIGKILL the service's process group (its backends' children)."""
        pid = svcs.recorded_pid(self.lo, name)
        assert pid is not None, f'{name} is not running'
        os.killpg(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)      # the cloud's processes are our children
        deadline = time.monotonic() + 30
        while procs_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)

    def start(self, name: str = 'cinder-volume', host: str | None = None,
              backend: str = lay.SVC_BACKEND,
              options: config.Conf | None = None) -> float:
        """Start a cinder-volume; returns seconds until it heartbeats.

        ``options`` go to ``etc/cinder/<name>.conf``, read after the
        cloud's cinder.conf; ``host`` is its ``[DEFAULT] host``.
        """
        argv = ['--config-file', str(self.lo.conf('cinder'))]
        if options or host:
            conf = {k: dict(v) for k, v in (options or {}).items()}
            if host:
                conf.setdefault('DEFAULT', {})['host'] = host
            extra = config.write_ini(self.lo.conf('cinder', f'{name}.conf'),
                                     conf)
            argv += ['--config-file', str(extra)]
        check = procs._ServiceLists(self.lo).check(
            'cinder', 'cinder-volume',
            f'{host or lay.STORAGE_HOST}@{backend}')
        service = svcs.Service(name, procs.launch('cinder-volume', *argv),
                               health=check,
                               fatal=r' (ERROR|CRITICAL) cinder \[')
        t0 = time.monotonic()
        svcs.start(self.lo, service)
        svcs.wait_healthy(self.lo, [service], t0)
        return time.monotonic() - t0

    def log(self, name: str = 'cinder-volume') -> str:
        """This start's part of the service's log."""
        text = (self.lo.logs / f'{name}.log').read_text(errors='replace')
        return text.rsplit('\n==== ', 1)[-1]


def procs_alive(pid: int) -> bool:
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return False
    return True


def wait_for(what: str, check: Callable[[], Any], timeout: float = 120,
             interval: float = 0.2) -> Any:
    """base.wait_for, polling fast enough to catch a step in progress."""
    return base.wait_for(what, check, timeout, interval)


class FifoImage:
    """Glance serves an image's bytes from a FIFO the test feeds.

    Glance's file store reads the image file as it sends it; replacing the
    file with a FIFO makes every download stop after ``first`` bytes until
    :meth:`release`. Each download (a new reader) gets the bytes again
    from the start. :meth:`close` puts the real file back.
    """

    def __init__(self, lo: lay.Layout, image_id: str, first: int) -> None:
        self.path = lo.data / 'glance' / 'images' / image_id
        self.data = self.path.read_bytes()
        self.first = first
        self.released = threading.Event()
        self.readers = 0
        self._stop = False
        self.saved = self.path.with_name(image_id + '.real')
        os.rename(self.path, self.saved)
        os.mkfifo(self.path)
        self._thread = threading.Thread(target=self._feed, daemon=True)
        self._thread.start()

    def _feed(self) -> None:
        while not self._stop:
            try:
                fd = os.open(self.path, os.O_WRONLY)
            except OSError:
                return
            if self._stop:
                os.close(fd)
                return
            self.readers += 1
            try:
                with os.fdopen(fd, 'wb') as f:
                    f.write(self.data[:self.first])
                    f.flush()
                    self.released.wait()
                    f.write(self.data[self.first:])
            except OSError:      # the reader went away (BrokenPipe)
                continue

    def release(self) -> None:
        self.released.set()

    def close(self) -> None:
        self._stop = True
        self.released.set()
        # wake a writer blocked in open() with a reader of our own
        with contextlib.suppress(OSError):
            fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
            os.close(fd)
        self._thread.join(timeout=10)
        pathlib.Path(self.path).unlink(missing_ok=True)
        os.rename(self.saved, self.path)


def free_port() -> int:
    with contextlib.closing(socket.socket()) as s:
        s.bind((lay.HOST, 0))
        return s.getsockname()[1]


class Etcd:
    """A one-member etcd (Debian's etcd-server) on a temporary directory."""

    BINARY = '/usr/bin/etcd'

    def __init__(self, directory: pathlib.Path) -> None:
        if not os.path.exists(self.BINARY):
            raise AssertionError(
                f'{self.BINARY} is missing: ./run test installs the Debian '
                'package etcd-server (or: apt-get install -y etcd-server)')
        client, peer = free_port(), free_port()
        self.client_url = f'http://{lay.HOST}:{client}'
        peer_url = f'http://{lay.HOST}:{peer}'
        directory.mkdir(parents=True, exist_ok=True)
        self.log_path = directory / 'etcd.log'
        with open(self.log_path, 'ab') as log:
            self.proc = subprocess.Popen(
                [self.BINARY, '--name', 'dpm', '--data-dir',
                 str(directory / 'data'),
                 '--listen-client-urls', self.client_url,
                 '--advertise-client-urls', self.client_url,
                 '--listen-peer-urls', peer_url,
                 '--initial-advertise-peer-urls', peer_url,
                 '--initial-cluster', f'dpm={peer_url}'],
                stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True)
        wait_for('etcd healthy', self._healthy, timeout=60)

    def _healthy(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f'etcd exited; see {self.log_path}')
        try:
            # http:// on this host only
            with urllib.request.urlopen(  # noqa: S310
                    self.client_url + '/health', timeout=2) as resp:
                return b'true' in resp.read()
        except OSError:
            return False

    def tooz_url(self, lock_timeout: int) -> str:
        """Cinder's [coordination] backend_url (tooz's etcd3gw driver)."""
        return (f'etcd3+{self.client_url}?lock_timeout={lock_timeout}'
                f'&timeout={lock_timeout}')

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=15)
