"""Cinder volume driver for IBM Storwize/SVC over Fibre Channel, for DPM.

DPM partitions boot from FC LUNs. This driver is Cinder's in-tree Storwize
FC driver (its SSH client, CLI handling and FC connection code are reused,
not rewritten) plus what booting DPM partitions from Glance images needs.
"""

from __future__ import annotations

from typing import Any

from cinder import interface
from cinder.volume.drivers.ibm.storwize_svc import storwize_svc_fc
from oslo_log import log as logging

from cinder_dpm_ephemeral import emulation
from cinder_dpm_ephemeral import exception
from cinder_dpm_ephemeral.image_cache import cache
from cinder_dpm_ephemeral import opts
from cinder_dpm_ephemeral.svc import clones

LOG = logging.getLogger(__name__)


@interface.volumedriver
class StorwizeEphemeralDriver(emulation.EmulatedDataPathMixin,
                              storwize_svc_fc.StorwizeSVCFCDriver):
    """Storwize/SVC FC driver for DPM ephemeral root volumes.

    Version history:

    .. code-block:: none

        0.1.0 - Walking skeleton: in-tree FC driver with the emulation data
                path (dpm_ephemeral_emulator_state_dir).
        0.2.0 - clone_image: golden volume per image and pool, FlashCopy
                no-copy thin clones.
    """

    VERSION = '0.2.0'
    CI_WIKI_NAME = 'cinder-dpm-ephemeral_CI'

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.configuration.append_config_values(opts.emulation_opts)
        self.configuration.append_config_values(opts.image_cache_opts)
        self.image_cache = cache.GoldenImageCache(
            clones.SVCClones(self), self.configuration, self.db)

    @staticmethod
    def get_driver_options() -> list[Any]:
        return (storwize_svc_fc.StorwizeSVCFCDriver.get_driver_options() +
                list(opts.emulation_opts) + list(opts.image_cache_opts))

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
        # A golden volume that clones still depend on is refused (the
        # in-tree driver would turn its no-copy maps into full copies).
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

    def _emulated_lun_id(self, volume: Any) -> str:
        attrs = self._helpers.get_vdisk_attributes(volume.name)
        if not attrs:
            raise exception.EmulatedLunNotFound(
                volume_id=volume.id, lun=volume.name,
                state_dir=self.configuration.safe_get(
                    'dpm_ephemeral_emulator_state_dir'))
        return attrs['vdisk_UID']
