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
"""Nova's functional harness with the DPM boot-from-volume filter in it.

* ``build_paste_config`` writes Nova 34's own api-paste.ini (the one the
  wheel installs) with the project's snippet (etc/nova/api-paste-dpm-bfv.ini)
  merged in, so the tests run the pipeline an operator would deploy.
* ``RecordingCinder`` completes Nova's CinderFixture where the field notes
  found it short: it records every volume create (with its volume type,
  image and snapshot) and delete, implements delete, ignores an attachment
  that is already gone (as the real client ignores a 404), answers the
  volume type list from a mutable list, and answers
  ``GET /types/default`` per project like Cinder 3.62 does.
"""

from importlib import metadata
import os
import pathlib
import re
import threading
import time
from typing import Any

import fixtures
from nova import exception

REPO = pathlib.Path(__file__).resolve().parents[3]
SNIPPET = REPO / 'etc' / 'nova' / 'api-paste-dpm-bfv.ini'
COMPOSITES = ('openstack_compute_api_v21',
              'openstack_compute_api_v21_legacy_v2_compatible')


def nova_paste_ini() -> pathlib.Path:
    """The api-paste.ini the nova wheel installs (``<venv>/etc/nova``)."""
    for f in metadata.distribution('nova').files or []:
        if str(f).replace('\\', '/').endswith('etc/nova/api-paste.ini'):
            return pathlib.Path(str(f.locate()))
    raise RuntimeError('the nova distribution ships no etc/nova/api-paste.ini')


def _sections(text: str) -> dict[str, str]:
    parts = re.split(r'^\[([^\]]+)\]\s*$', text, flags=re.M)
    return {name: body for name, body in zip(parts[1::2], parts[2::2],
                                             strict=True)}


def merged_paste_text() -> str:
    """Nova's api-paste.ini with the snippet's composites and filter."""
    ours = _sections(SNIPPET.read_text())
    text = nova_paste_ini().read_text()
    for name in COMPOSITES:
        wanted = re.search(r'^keystone = .*$', ours['composite:' + name],
                           flags=re.M).group(0)
        pattern = re.compile(r'(^\[composite:%s\]\s*$.*?)^keystone = [^\n]*$'
                             % re.escape(name), flags=re.M | re.S)
        text, count = pattern.subn(
            lambda m, w=wanted: m.group(1) + w, text, count=1)
        if count != 1:
            raise RuntimeError('composite %s not found in Nova\'s paste '
                               'config' % name)
    return text + '\n[filter:dpm_bfv]' + ours['filter:dpm_bfv']


def build_paste_config(directory: str) -> str:
    path = os.path.join(directory, 'api-paste.ini')
    with open(path, 'w') as f:
        f.write(merged_paste_text())
    return path


class _Type:
    def __init__(self, vtype: dict[str, str]) -> None:
        self.id = vtype['id']
        self.name = vtype['name']


class _Encryption:
    def __init__(self, info: dict[str, Any]) -> None:
        self._info = info


class _EncryptionTypes:
    """``GET /types/{id}/encryption``: admin only, as Cinder's policy."""

    def __init__(self, owner: 'RecordingCinder', context: Any) -> None:
        self._owner = owner
        self._context = context

    def get(self, type_id: str) -> _Encryption:
        if not self._context.is_admin:
            raise exception.Forbidden()
        self._owner.encryption_lookups += 1
        for vtype in self._owner.volume_types:
            if vtype['id'] == type_id:
                provider = self._owner.encrypted_types.get(vtype['name'])
                return _Encryption(
                    {'volume_type_id': type_id, 'provider': provider,
                     'cipher': 'aes-xts-plain64', 'key_size': 256,
                     'control_location': 'front-end',
                     'encryption_id': type_id[::-1]} if provider else {})
        raise exception.VolumeTypeNotFound(id_or_name=type_id)


class _FakeCinderClient:
    """The cinderclient calls the filter makes itself."""

    def __init__(self, owner: 'RecordingCinder', context: Any) -> None:
        self.volume_types = self
        self.volume_encryption_types = _EncryptionTypes(owner, context)
        self._owner = owner
        self._context = context

    def default(self) -> _Type:
        self._owner.default_type_lookups += 1
        name = self._owner.project_defaults.get(
            self._context.project_id, self._owner.cinder_default_type)
        for vtype in self._owner.volume_types:
            if vtype['name'] == name:
                return _Type(vtype)
        raise exception.VolumeTypeNotFound(id_or_name=name)


class RecordingCinder(fixtures.Fixture):
    """Records what Nova asks of Cinder; see the module documentation."""

    def __init__(self, cinder: Any) -> None:
        super().__init__()
        self.cinder = cinder  # the CinderFixture the harness started
        self.lock = threading.Lock()
        self.created: dict[str, dict[str, Any]] = {}
        self.deleted: list[str] = []
        self.volume_types = [
            {'id': '5f9204ec-3e94-4f27-9beb-fe7bb73b6eb9', 'name': 'lvm-1'},
            {'id': '0b0ec5b4-43a9-4cd5-9ab0-8e4c71d7e0d0', 'name': 'dpm-svc'},
        ]
        self.cinder_default_type = 'lvm-1'
        self.project_defaults: dict[str, str] = {}
        self.default_type_lookups = 0
        # type name -> encryption provider (e.g. 'luks')
        self.encrypted_types: dict[str, str] = {}
        self.encryption_lookups = 0

    def _setUp(self) -> None:
        patch = {
            'create': self._create, 'delete': self._delete,
            'attachment_delete': self._attachment_delete,
            'get_all_volume_types': self._get_all_volume_types,
        }
        for name, impl in patch.items():
            self.useFixture(fixtures.MockPatch(
                'nova.volume.cinder.API.' + name, side_effect=impl,
                autospec=False))
        self.useFixture(fixtures.MockPatch(
            'nova.volume.cinder.cinderclient',
            side_effect=lambda context, *a, **kw: _FakeCinderClient(
                self, context)))

    def _create(self, context: Any, size: int, name: str, description: str,
                snapshot: Any = None, image_id: str | None = None,
                volume_type: str | None = None, metadata: Any = None,
                availability_zone: str | None = None) -> dict[str, Any]:
        volume = self.cinder.fake_vol_create(
            context, size, name, description, snapshot=snapshot,
            image_id=image_id, volume_type=volume_type, metadata=metadata,
            availability_zone=availability_zone)
        volume['volume_type'] = volume_type
        with self.lock:
            self.created[volume['id']] = {
                'size': size, 'volume_type': volume_type,
                'image_id': image_id,
                'snapshot_id': snapshot['id'] if snapshot else None,
                'project_id': context.project_id}
        return volume

    def _delete(self, context: Any, volume_id: str) -> None:
        with self.lock:
            if volume_id not in self.cinder.volumes:
                raise exception.VolumeNotFound(volume_id=volume_id)
            del self.cinder.volumes[volume_id]
            self.deleted.append(volume_id)

    def _attachment_delete(self, context: Any, attachment_id: str) -> None:
        try:
            self.cinder.fake_attachment_delete(context, attachment_id)
        except Exception:  # noqa: S110 - the real client ignores a 404
            pass

    def _get_all_volume_types(self, context: Any) -> list[dict[str, str]]:
        return [dict(t) for t in self.volume_types]


def temp_dir(test: Any) -> str:
    return test.useFixture(fixtures.TempDir()).path


# -- Cinder stand-in backed by the SVC emulator (DPM compute tests) ----------

BOOT_RECORD = b'\0' * 510 + b'\x55\xaa'  # DOS MBR signature (first block)


class SVCCinder(RecordingCinder):
    """``RecordingCinder`` whose volumes live on an in-process SVC emulator.

    Every volume is a vdisk (a root volume made from an image gets a boot
    record in its first block, as an image copy would leave one); Nova's
    ``attachment_update`` with a connector creates the SVC host for the
    connector's WWPNs (``mkhost -fcwwpn``) and maps the vdisk to it with
    the next free SCSI id from 1 (``mkvdiskhostmap -scsi``), and answers
    the ``fibre_channel`` connection info Cinder's Storwize driver gives:
    ``target_wwn`` (the SVC's host-I/O ports), ``target_lun`` and
    ``initiator_target_map`` keyed by the connector's WWPNs as sent.
    ``attachment_delete`` unmaps (and removes a host left without
    mappings), volume delete removes the vdisk. Later issues replace this
    with real Cinder and the in-tree Storwize driver.
    """

    def __init__(self, cinder: Any, svc: Any,
                 boot_record: bytes = BOOT_RECORD) -> None:
        super().__init__(cinder)
        self.svc = svc
        self.boot_record = boot_record
        self.maps: dict[str, tuple[str, str]] = {}  # attachment: host, vdisk
        # A volume from an image stays 'downloading' this many seconds
        # (a golden volume being built), and Cinder refuses its delete.
        self.image_copy_seconds = 0.0
        self._ready_at: dict[str, float] = {}
        self.refused_deletes: list[str] = []
        # Cinder says 'encrypted' in the connection info (encryption key).
        self.encrypted_volumes = False

    def _setUp(self) -> None:
        super()._setUp()
        self.useFixture(fixtures.MockPatch(
            'nova.volume.cinder.API.attachment_update',
            side_effect=self._attachment_update, autospec=False))
        self.useFixture(fixtures.MockPatch(
            'nova.volume.cinder.API.get', side_effect=self._get,
            autospec=False))

    def _busy(self, volume_id: str) -> bool:
        """Whether the volume is still being made from its image."""
        with self.lock:
            ready = self._ready_at.get(volume_id)
            if ready is not None and time.monotonic() >= ready:
                del self._ready_at[volume_id]
                ready = None
            return ready is not None

    def _get(self, context: Any, volume_id: str,
             microversion: Any = None) -> dict[str, Any]:
        busy = self._busy(volume_id)
        volume = self.cinder.fake_get(context, volume_id, microversion)
        if busy:
            volume = dict(volume, status='downloading')
        return volume

    def cli(self, *argv: str) -> str:
        out, err, status = self.svc.run(list(argv))
        if status:
            raise RuntimeError('SVC emulator: %s: %s' % (' '.join(argv), err))
        return out

    @staticmethod
    def vdisk_name(volume_id: str) -> str:
        return 'volume-%s' % volume_id

    def _create(self, context: Any, size: int, name: str, description: str,
                snapshot: Any = None, image_id: str | None = None,
                volume_type: str | None = None, metadata: Any = None,
                availability_zone: str | None = None) -> dict[str, Any]:
        volume = super()._create(
            context, size, name, description, snapshot=snapshot,
            image_id=image_id, volume_type=volume_type, metadata=metadata,
            availability_zone=availability_zone)
        vname = self.vdisk_name(volume['id'])
        with self.lock:
            self.cli('mkvdisk', '-name', vname, '-mdiskgrp', 'pool0',
                     '-iogrp', '0', '-size', str(size), '-unit', 'gb',
                     '-rsize', '2%', '-autoexpand')
            if image_id:
                uid = self.svc.state.by_name('vdisks', vname)['uid']
                with open(self.svc.luns.open_path(uid), 'r+b') as f:
                    f.write(self.boot_record)
            if image_id and self.image_copy_seconds:
                volume = dict(volume, status='downloading')
                self._ready_at[volume['id']] = (time.monotonic() +
                                                self.image_copy_seconds)
        return volume

    def _delete(self, context: Any, volume_id: str) -> None:
        if self._busy(volume_id):
            with self.lock:
                self.refused_deletes.append(volume_id)
                # Cinder's API answers 400, which Nova translates so
                raise exception.InvalidVolume(
                    reason='Volume status must be available or error or '
                           'error_restoring or error_extending or '
                           'error_managing and must not be migrating, '
                           'attached, belong to a group, have snapshots, '
                           'awaiting a transfer, or be disassociated from '
                           'snapshots after volume transfer.')
        super()._delete(context, volume_id)
        with self.lock:
            if self.svc.state.by_name('vdisks',
                                      self.vdisk_name(volume_id)):
                self.cli('rmvdisk', '-removehostmappings',
                         self.vdisk_name(volume_id))

    def target_wwpns(self) -> list[str]:
        return [p['npiv_WWPN'] for n in self.svc.state.data['nodes']
                for p in n['ports']]

    def _attachment_update(self, context: Any, attachment_id: str,
                           connector: dict[str, Any],
                           mountpoint: str | None = None) -> dict[str, Any]:
        ref = self.cinder.fake_attachment_update(
            context, attachment_id, connector, mountpoint)
        volume_id, _, _ = self.cinder._find_attachment(attachment_id)
        wwpns = [w.upper() for w in connector['wwpns']]
        vname = self.vdisk_name(volume_id)
        with self.lock:
            host = self.svc.state.host_of_wwpn(wwpns[0])
            if host is None:
                # SVC names: at most 63 characters, first one a letter
                hname = 'dpm-' + connector['host'][-36:]
                self.cli('mkhost', '-name', hname, '-fcwwpn',
                         ':'.join(wwpns), '-force')
                host = self.svc.state.by_name('hosts', hname)
            used = {m['scsi'] for m in
                    self.svc.state.hostmaps_of_host(host['id'])}
            scsi = min(set(range(1, len(used) + 2)) - used)
            self.cli('mkvdiskhostmap', '-host', host['name'], '-scsi',
                     str(scsi), vname)
            self.maps[attachment_id] = (host['name'], vname)
        targets = self.target_wwpns()
        ref['connection_info'] = {
            'driver_volume_type': 'fibre_channel',
            'serial': volume_id,
            'data': {
                'target_discovered': False,
                'target_lun': scsi,
                'target_wwn': targets,
                'initiator_target_map': {w: targets
                                         for w in connector['wwpns']},
                'volume_id': volume_id,
                'discard': False,
                'encrypted': self.encrypted_volumes,
            },
        }
        return ref

    def _attachment_delete(self, context: Any, attachment_id: str) -> None:
        super()._attachment_delete(context, attachment_id)
        with self.lock:
            mapped = self.maps.pop(attachment_id, None)
            if mapped is None:
                return
            hname, vname = mapped
            if self.svc.state.by_name('vdisks', vname):
                self.cli('rmvdiskhostmap', '-host', hname, vname)
            host = self.svc.state.by_name('hosts', hname)
            if host and not self.svc.state.hostmaps_of_host(host['id']):
                self.cli('rmhost', hname)

    def host_maps(self) -> dict[str, list[tuple[int, str]]]:
        """SVC host name: [(SCSI id, vdisk name)] (what IPL resolves)."""
        data = self.svc.state.data
        out: dict[str, list[tuple[int, str]]] = {}
        for m in data['hostmaps']:
            host = data['hosts'][str(m['host'])]
            vdisk = data['vdisks'][str(m['vdisk'])]
            out.setdefault(host['name'], []).append((m['scsi'],
                                                     vdisk['name']))
        return out
