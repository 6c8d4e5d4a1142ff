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
"""What both array drivers share to use the golden image cache."""

from __future__ import annotations

from typing import Any

from cinder import exception
from cinder.message import api as message_api
from cinder.message import message_field
from oslo_log import log as logging

from cinder_dpm_ephemeral import cache_stats
from cinder_dpm_ephemeral.image_cache import backend
from cinder_dpm_ephemeral.image_cache import cache
from cinder_dpm_ephemeral.image_cache import checks
from cinder_dpm_ephemeral.image_cache import writer
from cinder_dpm_ephemeral import opts
from cinder_dpm_ephemeral import security

LOG = logging.getLogger(__name__)


class ArrayClones:
    """The parts of a :class:`backend.CloneBackend` common to all arrays.

    A golden LUN is an ordinary volume of the driver, and images are written
    onto it through the driver's own attach. Subclasses add the array's
    thin clone, its dependents count and its size rules.
    """

    max_clones_per_golden: int

    def __init__(self, driver: Any) -> None:
        self.driver = driver

    def create_golden_lun(self, golden: Any) -> dict | None:
        return self.driver.create_volume(golden)

    def write_image(self, context: Any, golden: Any, image_file: str,
                    image_format: str, reads_zeros: Any = False,
                    info: Any = None, connector: Any = None,
                    detach_later: Any = None) -> None:
        writer.write_image(self.driver, context, golden, image_file,
                           image_format, golden.metadata.get(cache.MD_IMAGE),
                           reads_zeros,
                           int(golden.metadata[cache.MD_VIRTUAL]), info,
                           connector, detach_later)

    def supports(self, volume: Any) -> str | None:
        """Why a thin clone cannot serve ``volume``'s type, or None.

        Arrays refine this; what no thin clone of this cache can give is
        refused here for all of them.
        """
        if volume.encryption_key_id:
            return 'encrypted volumes are not cloned from golden volumes'
        if getattr(volume, 'multiattach', False):
            return 'multiattach volumes are not cloned from golden volumes'
        return None

    def reads_zeros(self, golden: Any) -> bool:
        """Unknown: assume the LUN does not read zeros (zeros written)."""
        return False

    def extension_reads_zeros(self, golden: Any, volume: Any) -> bool:
        """Whether a clone larger than ``golden`` reads zeros past it."""
        return self.reads_zeros(golden)

    def clone_counts(self, goldens: list[Any]) -> dict[str, int]:
        """One :meth:`dependents` call per golden volume.

        Arrays that can list what depends on many volumes at once
        override this.
        """
        return {g.id: self.dependents(g) for g in goldens}

    def delete_golden_lun(self, golden: Any) -> None:
        self.driver.delete_volume(golden)

    def delete_clone(self, volume: Any) -> bool:
        """Delete ``volume`` the array's quick way if it is a thin clone.

        False: not handled here, the in-tree driver deletes it.
        """
        return False


class GoldenCacheDriverMixin:
    """Mix into a volume driver before the in-tree driver class.

    Call :meth:`_init_golden_cache` from ``__init__`` after the in-tree
    driver's own.
    """

    configuration: Any
    db: Any
    host: str
    image_cache: cache.GoldenImageCache

    def _init_golden_cache(self, clones: backend.CloneBackend) -> None:
        self.configuration.append_config_values(opts.emulation_opts)
        self.configuration.append_config_values(opts.image_cache_opts)
        self.image_cache = cache.GoldenImageCache(clones, self.configuration,
                                                  self.db)

    @staticmethod
    def cache_driver_options() -> list[Any]:
        return list(opts.emulation_opts) + list(opts.image_cache_opts)

    def do_setup(self, context: Any) -> None:
        # (called by the volume manager's init_host: its allocated
        # capacity is told of golden volumes made away from its calls)
        self.image_cache.capacity.bind()
        with security.explained(self.configuration):
            super().do_setup(context)  # type: ignore[misc]

    def check_for_setup_error(self) -> None:
        with security.explained(self.configuration):
            super().check_for_setup_error()  # type: ignore[misc]
        for warning in security.insecure_settings(self.configuration):
            LOG.warning('%s.', warning)
        for problem in checks.setup_problems(self.configuration):
            LOG.warning('Backend %(backend)s: %(problem)s.',
                        {'backend': self.configuration.config_group,
                         'problem': problem})

    def clone_image(self, context: Any, volume: Any, image_location: Any,
                    image_meta: dict, image_service: Any) -> tuple:
        try:
            return self.image_cache.clone_image(context, volume, image_meta,
                                                image_service)
        except exception.ImageUnacceptable as exc:
            # Cinder records no user message when clone_image refuses an
            # image (only its own download path does): say it here, with
            # the closest of Cinder's fixed texts; the reason is logged.
            LOG.error('Volume %(vol)s: %(exc)s', {'vol': volume.id,
                                                  'exc': exc})
            detail = (message_field.Detail.NOT_ENOUGH_SPACE_FOR_IMAGE
                      if 'larger than the requested volume' in str(exc)
                      else message_field.Detail.IMAGE_FORMAT_UNACCEPTABLE)
            message_api.API().create(
                context, message_field.Action.COPY_IMAGE_TO_VOLUME,
                resource_uuid=volume.id, detail=detail)
            raise

    def _update_volume_stats(self) -> None:
        super()._update_volume_stats()  # type: ignore[misc]
        self.image_cache.periodic(
            self.host, self.configuration.safe_get(
                'dpm_ephemeral_image_cache_cleanup_interval') or 0)
        # golden volumes, GiB and clones per pool (cinder get-pools --detail)
        cache_stats.pool_figures(self.image_cache, self.host,
                                 self._stats.get('pools') or [])

    def delete_volume(self, volume: Any) -> None:
        # A golden volume that clones still depend on is refused (on SVC
        # the in-tree driver would turn its no-copy maps into full copies).
        self.image_cache.check_deletable(volume)
        golden = self.image_cache.is_golden(volume)
        if golden or not self.image_cache.backend.delete_clone(volume):
            super().delete_volume(volume)  # type: ignore[misc]
        if not golden:
            # A clone is gone: a stale golden may now have no dependents.
            try:
                self.image_cache.after_clone_deleted(volume.host)
            except Exception:
                LOG.exception('Golden cache clean-up after deleting %s '
                              'failed; the periodic clean-up will retry.',
                              volume.id)
