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
from cinder_dpm_ephemeral.image_cache import cache
from cinder_dpm_ephemeral import opts
from cinder_dpm_ephemeral.powerflex import clones

LOG = logging.getLogger(__name__)


@interface.volumedriver
class PowerFlexEphemeralDriver(emulation.EmulatedDataPathMixin,
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
        self.configuration.append_config_values(opts.emulation_opts)
        self.configuration.append_config_values(opts.image_cache_opts)
        self.image_cache = cache.GoldenImageCache(
            clones.PowerFlexClones(self), self.configuration, self.db)

    @staticmethod
    def get_driver_options() -> list[Any]:
        return (powerflex.PowerFlexDriver.get_driver_options() +
                list(opts.emulation_opts) + list(opts.image_cache_opts))

    def _emulated_lun_id(self, volume: Any) -> str:
        if not volume.provider_id:
            raise exception.EmulatedLunNotFound(
                volume_id=volume.id, lun='(no provider_id)',
                state_dir=self.configuration.safe_get(
                    'dpm_ephemeral_emulator_state_dir'))
        return volume.provider_id

    def clone_image(self, context: Any, volume: Any, image_location: Any,
                    image_meta: dict, image_service: Any) -> tuple:
        return self.image_cache.clone_image(context, volume, image_meta,
                                            image_service)

    def _update_volume_stats(self) -> None:
        super()._update_volume_stats()
        self.image_cache.periodic(
            self.host, self.configuration.safe_get(
                'dpm_ephemeral_image_cache_cleanup_interval') or 0)

    def delete_volume(self, volume: Any) -> None:
        self.image_cache.check_deletable(volume)
        super().delete_volume(volume)
        if not self.image_cache.is_golden(volume):
            # A clone is gone: a stale golden may now have no dependents.
            try:
                self.image_cache.after_clone_deleted(volume.host)
            except Exception:
                LOG.exception('Golden cache clean-up after deleting %s '
                              'failed; the periodic clean-up will retry.',
                              volume.id)
