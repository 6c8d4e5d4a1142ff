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


class _FakeCinderClient:
    """The one cinderclient call the filter makes itself."""

    def __init__(self, owner: 'RecordingCinder', context: Any) -> None:
        self.volume_types = self
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
