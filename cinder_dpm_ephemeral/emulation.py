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
"""The emulation data path shared by the SVC and PowerFlex drivers.

With ``dpm_ephemeral_emulator_state_dir`` set, every attach the volume
service makes for itself (image to volume, volume to image, generic copies)
opens the emulated LUN's file through os-brick's LOCAL connector, instead of
attaching over the array's protocol. Everything else (the array control
path, the connection info handed to Nova) is the production code, unchanged.
"""

from __future__ import annotations

import os
from typing import Any

from cinder import utils
from oslo_log import log as logging

from cinder_dpm_ephemeral import exception
from cinder_dpm_ephemeral.emulators import lunstore

LOG = logging.getLogger(__name__)


class EmulatedDataPathMixin:
    """Mix into a Cinder volume driver before the in-tree driver class.

    The driver provides ``_emulated_lun_id(volume)``: the emulator's LUN id
    of the array object behind ``volume``.
    """

    configuration: Any

    def _emulator_store(self) -> lunstore.LunStore | None:
        state_dir = self.configuration.safe_get(
            'dpm_ephemeral_emulator_state_dir')
        if not state_dir:
            return None
        if not os.path.isdir(state_dir):
            raise exception.EmulatorStateDirMissing(state_dir=state_dir)
        return lunstore.LunStore(state_dir)

    def _emulated_lun_id(self, volume: Any) -> str:
        raise NotImplementedError

    def _attach_volume(self, context: Any, volume: Any, properties: Any,
                       remote: bool = False) -> tuple[dict, Any]:
        store = self._emulator_store()
        if store is None or remote:
            return super()._attach_volume(  # type: ignore[misc]
                context, volume, properties, remote)
        lun = self._emulated_lun_id(volume)
        try:
            path = store.open_path(lun)
        except lunstore.LunNotFound:
            raise exception.EmulatedLunNotFound(
                volume_id=volume.id, state_dir=store.root.parent, lun=lun)
        conn = {'driver_volume_type': 'local',
                'data': {'device_path': path, 'emulated_lun': lun}}
        LOG.debug('Volume %(vol)s: emulated attach of LUN %(lun)s at '
                  '%(path)s', {'vol': volume.id, 'lun': lun, 'path': path})
        return self._connect_device(conn), volume  # type: ignore[attr-defined]

    def _detach_volume(self, context: Any, attach_info: Any, volume: Any,
                       properties: Any, force: bool = False,
                       remote: bool = False,
                       ignore_errors: bool = False) -> None:
        conn = (attach_info or {}).get('conn') or {}
        lun = conn.get('data', {}).get('emulated_lun')
        if lun is None:
            return super()._detach_volume(  # type: ignore[misc]
                context, attach_info, volume, properties, force=force,
                remote=remote, ignore_errors=ignore_errors)
        attach_info['connector'].disconnect_volume(
            conn['data'], attach_info['device'], force=force,
            ignore_errors=ignore_errors)
        store = self._emulator_store()
        if store is None:
            return
        # qemu-img convert (Cinder's own copy, without -n) recreates a
        # regular file at the image's size; a LUN keeps its own size. The
        # LUN file is root's, like a device: resized through the root
        # helper, as Cinder does what needs root.
        path = conn['data']['device_path']
        size = store.size(lun)
        if not os.path.isfile(path):
            return      # a device (an injected write error): no size to fix
        if os.stat(path).st_size != size:
            utils.execute('truncate', '-s', str(size), path,
                          run_as_root=True)
