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
attaching over the array's protocol. The array's side of that attach is the
production code, unchanged: the driver's ``initialize_connection`` maps the
LUN to the volume host (an SVC host object and host mapping, a PowerFlex
SDC mapping) and ``terminate_connection`` unmaps it, with the host's
connector properties completed by the emulated host's ports and SDC
(:mod:`.emulators.volume_host`). Only finding the device differs: the LUN's
file, where os-brick would scan the fabric. It is found as the scan finds
it, from what ``initialize_connection`` answered, with no command to the
array (a real attach makes none there): on SVC the vdisk mapped at the
answered SCSI LUN id to the host's ports, so an attach whose mapping is
missing or wrong finds no device or another LUN, as on a real host; on
PowerFlex the volume id the SDC mapping is for. Everything else (the
connection info handed to Nova, the whole control path) is the production
code.
"""

from __future__ import annotations

import os
from typing import Any

from cinder import exception as cinder_exception
from cinder import utils
from oslo_log import log as logging
from oslo_utils import excutils

from cinder_dpm_ephemeral import exception
from cinder_dpm_ephemeral.emulators import lunstore
from cinder_dpm_ephemeral.emulators.powerflex import state as powerflex_state
from cinder_dpm_ephemeral.emulators.svc import state as svc_state
from cinder_dpm_ephemeral.emulators import volume_host

LOG = logging.getLogger(__name__)

#: Map the LUN to the volume host around the service's own attaches (the
#: array's side of a real attach). False only for the benchmark's A/B
#: (``./run bench cold --ab emulation.MAP_TO_VOLUME_HOST=false``): the
#: emulation as it was before, with no host, mapping or unmapping.
MAP_TO_VOLUME_HOST = True


def svc_lun_id(driver: Any, volume: Any, connection: dict[str, Any] | None,
               connector: dict[str, Any] | None) -> str:
    """The emulated LUN of an SVC ``volume``, found as an FC scan finds it.

    The vdisk the array maps at the answered SCSI LUN id to the host
    object holding the host's ports (:func:`.emulators.svc.state.
    lun_seen_by`); no command to the array. Unmapped (``connection``
    None: ``MAP_TO_VOLUME_HOST`` off), the vdisk is asked for by name.
    """
    state_dir = driver.configuration.safe_get(
        'dpm_ephemeral_emulator_state_dir')
    if connection is None or connector is None:
        attrs = driver._helpers.get_vdisk_attributes(volume.name)
        if not attrs:
            raise exception.EmulatedLunNotFound(
                volume_id=volume.id, lun=volume.name, state_dir=state_dir)
        return attrs['vdisk_UID']
    lun = (connection.get('data') or {}).get('target_lun')
    wwpns = list(connector.get('wwpns') or [])
    uid = svc_state.lun_seen_by(state_dir, wwpns, lun)
    if uid is None:
        raise exception.EmulatedDeviceNotFound(
            volume_id=volume.id, lun=lun, wwpns=', '.join(wwpns),
            state_dir=state_dir)
    return uid


def powerflex_lun_id(driver: Any, volume: Any,
                     connection: dict[str, Any] | None,
                     connector: dict[str, Any] | None) -> str:
    """The emulated LUN of a PowerFlex ``volume``, as the SDC shows it.

    The volume the connection names, if the array maps it to this host's
    SDC (:func:`.emulators.powerflex.state.volume_seen_by`): a real SDC
    has no device for a volume not mapped to it. Unmapped
    (``MAP_TO_VOLUME_HOST`` off), the volume's recorded id.
    """
    state_dir = driver.configuration.safe_get(
        'dpm_ephemeral_emulator_state_dir')
    if not volume.provider_id:
        raise exception.EmulatedLunNotFound(
            volume_id=volume.id, lun='(no provider_id)', state_dir=state_dir)
    if connection is None or connector is None:
        return volume.provider_id
    vol_id = (connection.get('data') or {}).get('scaleIO_volume_id')
    guid = str(connector.get('sdc_guid') or '')
    if not vol_id or not powerflex_state.volume_seen_by(state_dir, guid,
                                                        vol_id):
        raise exception.EmulatedSdcDeviceNotFound(
            volume_id=volume.id, vol=vol_id, sdc=guid, state_dir=state_dir)
    return vol_id


class EmulatedDataPathMixin:
    """Mix into a Cinder volume driver before the in-tree driver class.

    The driver provides ``_emulated_lun_id(volume, connection, connector)``:
    the emulator's LUN id of the array object behind ``volume``, found as
    the host finds its device: from ``connection``, what
    ``initialize_connection`` answered for the host's ``connector``
    properties (both None when the LUN was not mapped,
    ``MAP_TO_VOLUME_HOST`` off).
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

    def _emulated_lun_id(self, volume: Any,
                         connection: dict[str, Any] | None,
                         connector: dict[str, Any] | None) -> str:
        raise NotImplementedError

    def _attach_volume(self, context: Any, volume: Any, properties: Any,
                       remote: bool = False) -> tuple[dict, Any]:
        store = self._emulator_store()
        if store is None or remote:
            return super()._attach_volume(  # type: ignore[misc]
                context, volume, properties, remote)
        # The array maps the LUN to this host, as for a real attach (the
        # in-tree drivers' create_export does nothing on either array).
        props = connection = None
        if MAP_TO_VOLUME_HOST:
            props = self._volume_host_connector(store, properties)
            connection = self.initialize_connection(  # type: ignore
                volume, props)
        try:
            lun = self._emulated_lun_id(volume, connection, props)
            try:
                path = store.open_path(lun)
            except lunstore.LunNotFound:
                raise exception.EmulatedLunNotFound(
                    volume_id=volume.id, state_dir=store.root.parent,
                    lun=lun)
            conn = {'driver_volume_type': 'local',
                    'data': {'device_path': path, 'emulated_lun': lun,
                             'emulated_connector': props}}
            LOG.debug('Volume %(vol)s: emulated attach of LUN %(lun)s at '
                      '%(path)s', {'vol': volume.id, 'lun': lun,
                                   'path': path})
            return (self._connect_device(conn),  # type: ignore[attr-defined]
                    volume)
        except Exception:
            with excutils.save_and_reraise_exception():
                if props is not None:
                    self._emulated_unmap(volume, props)

    @staticmethod
    def _volume_host_connector(store: lunstore.LunStore,
                               properties: Any) -> dict[str, Any]:
        """The emulated volume host's connector (its FC ports, SDC)."""
        try:
            return volume_host.connector(store.root.parent, properties)
        except OSError as err:
            raise exception.EmulatedVolumeHostUnknown(
                state_dir=store.root.parent, reason=err)

    def unmap_from_volume_host(self, context: Any, volume: Any,
                               properties: Any) -> None:
        """Remove the host mapping a detach that never ran left behind.

        The array's side of Cinder's own ``_detach_volume``
        (``terminate_connection``, ``remove_export``), for a golden
        whose build's detach failed or was cut short by a restart;
        ``properties``: this host's os-brick connector properties. A
        device node a dead process left on a real host is not removed
        here (there is no attach to disconnect), as after a crash during
        Cinder's own image copies.
        """
        store = self._emulator_store()
        if store is not None and MAP_TO_VOLUME_HOST:
            properties = self._volume_host_connector(store, properties)
        self.terminate_connection(  # type: ignore[attr-defined]
            volume, properties, force=True)
        self.remove_export(context, volume)  # type: ignore[attr-defined]

    def _emulated_unmap(self, volume: Any, props: dict[str, Any]) -> None:
        """Undo the array's side of an attach that failed; never raises."""
        try:
            self.terminate_connection(  # type: ignore[attr-defined]
                volume, props, force=True)
        except Exception:
            LOG.exception('Volume %s: unmapping it from this host after a '
                          'failed attach failed; its host mapping may be '
                          'left on the array.', volume.id)

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
        try:
            self._emulated_fix_size(conn, lun)
        finally:
            props = conn['data'].get('emulated_connector')
            if props is not None:
                # as Cinder's own _detach_volume: a failed unmap fails the
                # detach (and whatever the attach was for)
                try:
                    self.terminate_connection(  # type: ignore[attr-defined]
                        volume, props, force=force)
                except Exception as err:
                    raise cinder_exception.VolumeBackendAPIException(
                        data=f'Volume {volume.id}: unmapping it from this '
                             f'host failed: {err}') from err

    def _emulated_fix_size(self, conn: dict[str, Any], lun: str) -> None:
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
