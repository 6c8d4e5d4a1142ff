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
"""Cinder volume driver for Dell PowerFlex (ScaleIO), for DPM ephemeral use.

Cinder's in-tree PowerFlex driver (REST client, pools, SDC mapping) plus the
golden image cache: volumes from images are snapshots of a golden volume in
its vTree.
"""

from __future__ import annotations

import urllib.parse
from typing import Any

from cinder import exception as cinder_exception
from cinder import interface
from cinder.volume.drivers.dell_emc.powerflex import driver as powerflex
from cinder.volume.drivers.dell_emc.powerflex import rest_client
from cinder.volume.drivers.dell_emc.powerflex import utils as flex_utils
from oslo_log import log as logging

from cinder_dpm_ephemeral import emulation
from cinder_dpm_ephemeral.image_cache import driver as cache_driver
from cinder_dpm_ephemeral import reschedule
from cinder_dpm_ephemeral.powerflex import clones

LOG = logging.getLogger(__name__)


@interface.volumedriver
class PowerFlexEphemeralDriver(reschedule.LockedCreatesMixin,
                               cache_driver.GoldenCacheDriverMixin,
                               emulation.EmulatedDataPathMixin,
                               powerflex.PowerFlexDriver):
    """PowerFlex driver for DPM ephemeral root volumes.

    Version history:

    .. code-block:: none

        0.2.0 - clone_image: golden volume per image and pool, snapshots
                in the golden vTree; emulation data path.
        0.2.1 - A volume or snapshot the array made but whose answer was
                lost (timeout, 5xx after the fact) is found by its name
                and removed when its Cinder volume is deleted.
        0.2.2 - The clean-up after a reschedule removes the failed
                attempt's volume when the Cinder volume was deleted
                meanwhile.
        0.2.3 - Golden builds attach with the volume service's connector
                properties when they are at most 10 minutes old, and ask
                os-brick only when there are none or the attach fails.
        0.2.4 - Emulated data path: the volume service's own attaches map
                the LUN to the volume host on the array
                (initialize_connection with the emulated host's ports or
                SDC) and unmap it after, as on a real volume host.
        0.2.5 - The delete of a volume whose create succeeded (array id
                recorded) no longer looks its name up: names are unique
                on the array. One gateway round trip less per delete.
    """

    VERSION = '0.2.5'
    CI_WIKI_NAME = 'cinder-dpm-ephemeral_CI'

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._init_golden_cache(clones.PowerFlexClones(self))

    @staticmethod
    def get_driver_options() -> list[Any]:
        return (powerflex.PowerFlexDriver.get_driver_options() +
                cache_driver.GoldenCacheDriverMixin.cache_driver_options())

    def delete_volume(self, volume: Any) -> None:
        """Delete ``volume``, and whatever the array holds under its name.

        A create whose answer was lost (the gateway timed out or failed
        after the array made the volume or snapshot) leaves no
        ``provider_id``, or the one of an earlier attempt (Cinder
        reschedules a failed create to the same backend and deletes the
        earlier attempt's object only after the next attempt is on its
        way), while the array holds an object named after the volume.
        The in-tree delete removes only the recorded one: the object
        under the volume's name is found and removed too.

        Not asked for a volume whose create succeeded (``launched_at``
        set, which Cinder writes with ``available``) with its array id
        recorded: PowerFlex volume names are unique in the system, so
        no other object can have held the name while that create made
        its own, and none can take it after (a late attempt is refused
        the name). That saves one gateway round trip per delete.
        """
        if reschedule.rescheduled_create(volume):
            # see cinder_dpm_ephemeral.reschedule
            with reschedule.lock(volume):
                if not reschedule.newer_attempt(volume):
                    self._delete_by_id_and_name(volume)
            return
        self._delete_by_id_and_name(volume)

    def _delete_by_id_and_name(self, volume: Any) -> None:
        if volume.get('launched_at') and volume.provider_id:
            super().delete_volume(volume)
            return
        found = self.find_lun_by_name(volume.id)
        recorded = volume.provider_id
        if not recorded and found:
            LOG.warning('Volume %(vol)s has no provider_id but the array '
                        'holds %(lun)s under its name (its create\'s '
                        'answer was lost); removing it.',
                        {'vol': volume.id, 'lun': found})
            volume.provider_id = found
        super().delete_volume(volume)
        if recorded and found and found != recorded:
            LOG.warning('Volume %(vol)s: the array also holds %(lun)s under '
                        'its name (a create attempt whose answer was '
                        'lost); removing it.',
                        {'vol': volume.id, 'lun': found})
            self._get_client().remove_volume(found)

    def find_lun_by_name(self, object_id: str) -> str | None:
        """The array id of the volume or snapshot named after ``object_id``.

        The in-tree driver names what it creates ``id_to_base64(id)``. The
        gateway's ``getByName`` takes the name quoted twice, as os-brick's
        ScaleIO connector sends it. None if there is none; an error if
        the array cannot be asked (the caller must not assume it gone).
        """
        name = flex_utils.id_to_base64(object_id)
        quoted = urllib.parse.quote(urllib.parse.quote(name, ''), '')
        client = self._get_client()
        r, answer = client.execute_powerflex_get_request(
            '/types/Volume/instances/getByName::%(name)s', name=quoted)
        if r.status_code == 200 and isinstance(answer, str):
            return answer
        code = (answer or {}).get('errorCode') if isinstance(
            answer, dict) else None
        if code in (rest_client.VOLUME_NOT_FOUND_ERROR,
                    rest_client.OLD_VOLUME_NOT_FOUND_ERROR):
            return None
        raise cinder_exception.VolumeBackendAPIException(data=(
            f'Cannot tell whether the array holds a volume named {name} '
            f'(Cinder volume {object_id}): getByName answered '
            f'{r.status_code} {answer}; try the delete again'))

    def _emulated_lun_id(self, volume: Any,
                         connection: dict[str, Any] | None,
                         connector: dict[str, Any] | None) -> str:
        return emulation.powerflex_lun_id(self, volume, connection,
                                          connector)
