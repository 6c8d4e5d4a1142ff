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

from typing import Any

from cinder import interface
from cinder.volume.drivers.dell_emc.powerflex import driver as powerflex
from oslo_log import log as logging

from cinder_dpm_ephemeral import emulation
from cinder_dpm_ephemeral import exception
from cinder_dpm_ephemeral.image_cache import driver as cache_driver
from cinder_dpm_ephemeral.powerflex import clones

LOG = logging.getLogger(__name__)


@interface.volumedriver
class PowerFlexEphemeralDriver(cache_driver.GoldenCacheDriverMixin,
                               emulation.EmulatedDataPathMixin,
                               powerflex.PowerFlexDriver):
    """PowerFlex driver for DPM ephemeral root volumes.

    Version history:

    .. code-block:: none

        0.2.0 - clone_image: golden volume per image and pool, snapshots
                in the golden vTree; emulation data path.
    """

    VERSION = '0.2.0'
    CI_WIKI_NAME = 'cinder-dpm-ephemeral_CI'

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._init_golden_cache(clones.PowerFlexClones(self))

    @staticmethod
    def get_driver_options() -> list[Any]:
        return (powerflex.PowerFlexDriver.get_driver_options() +
                cache_driver.GoldenCacheDriverMixin.cache_driver_options())

    def _emulated_lun_id(self, volume: Any) -> str:
        if not volume.provider_id:
            raise exception.EmulatedLunNotFound(
                volume_id=volume.id, lun='(no provider_id)',
                state_dir=self.configuration.safe_get(
                    'dpm_ephemeral_emulator_state_dir'))
        return volume.provider_id
