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
"""Exceptions of the cinder-dpm-ephemeral volume drivers.

All derive from Cinder's own, so the volume manager handles them as any
driver error: the volume goes to ``error`` with the message below.
"""

from cinder import exception
from cinder.i18n import _


class EmulatedLunNotFound(exception.VolumeDriverException):
    message = _('Volume %(volume_id)s has no LUN in the emulator state '
                'directory %(state_dir)s (array object %(lun)s). Check that '
                'dpm_ephemeral_emulator_state_dir names the state directory '
                'of the emulator this backend talks to.')


class EmulatedDeviceNotFound(exception.VolumeDriverException):
    message = _('Volume %(volume_id)s: this host finds no device at SCSI '
                'LUN id %(lun)s behind its ports %(wwpns)s: the emulated '
                'array in %(state_dir)s maps nothing there to a host object '
                'with those ports (as on a real host, whose Fibre Channel '
                'scan would find nothing). Check the host mappings with '
                '"lshostvdiskmap" on the emulator.')


class EmulatedSdcDeviceNotFound(exception.VolumeDriverException):
    message = _('Volume %(volume_id)s: this host\'s SDC %(sdc)s shows no '
                'device for PowerFlex volume %(vol)s: the emulated system in '
                '%(state_dir)s does not map that volume to this SDC (as on a '
                'real host, where the SDC makes devices only for the volumes '
                'mapped to it). Check the volume\'s mappedSdcInfo on the '
                'emulator.')


class EmulatorStateDirMissing(exception.VolumeDriverException):
    message = _('dpm_ephemeral_emulator_state_dir = %(state_dir)s is not a '
                'directory. Start the emulator with --state-dir %(state_dir)s '
                'or unset the option to use the real array data path.')


class EmulatedVolumeHostUnknown(exception.VolumeDriverException):
    message = _('The emulator state directory %(state_dir)s names no '
                'emulated volume host (volume-host.json), and this service '
                'could not make one: %(reason)s. Start the emulator once '
                '(it writes the file) or let the volume service write in '
                'that directory.')


class GoldenCacheExhausted(exception.VolumeBackendAPIException):
    message = _('Could not clone image %(image_id)s for volume %(volume_id)s: '
                'every golden volume stayed at the array\'s clone limit. '
                'Check the array for FlashCopy maps or snapshots that are not '
                'tied to Cinder volumes.')
