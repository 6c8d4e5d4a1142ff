"""SVC FlashCopy as the golden image cache's clone interface.

A clone is a FlashCopy mapping from the golden vdisk to a new thin vdisk
with copy rate 0: no background copy, so the clone costs no array bandwidth
and can be deleted at once (the in-tree driver stops and removes a copy-rate
0 map whose target it deletes). The golden vdisk itself is never deleted
while maps remain: the in-tree driver would turn them into full copies
(copy rate 50) and wait for them.
"""

from __future__ import annotations

import math
from typing import Any

from cinder.volume import volume_utils
from oslo_log import log as logging

from cinder_dpm_ephemeral.image_cache import driver as cache_driver

LOG = logging.getLogger(__name__)

GiB = 1024 ** 3

# "The FlashCopy mapping or consistency group could not be created because
# the maximum number of mappings (256) for the source volume was reached."
SVC_FCMAP_SOURCE_LIMIT = 256
ERR_FCMAP_LIMIT = ('CMMVC6432E', 'CMMVC5878E', 'CMMVC6425E')


class SVCClones(cache_driver.ArrayClones):
    """:class:`cinder_dpm_ephemeral.image_cache.cache.CloneBackend` on SVC."""

    max_clones_per_golden = SVC_FCMAP_SOURCE_LIMIT

    def golden_size_gb(self, virtual_size: int) -> int:
        return max(1, math.ceil(virtual_size / GiB))

    def thin_clone(self, golden: Any, volume: Any) -> dict | None:
        d = self.driver
        opts = d._get_vdisk_params(volume.volume_type_id)
        if opts.get('rsize', -1) == -1:
            # A no-copy target only ever holds what the guest writes.
            opts['rsize'] = d.configuration.storwize_svc_vol_rsize
            opts['autoexpand'] = True
        pool = volume_utils.extract_host(volume.host, 'pool')
        d._helpers.create_copy(golden.name, volume.name, golden.id,
                               d.configuration, opts, False, d._state,
                               pool=pool)
        if volume.size > golden.size:
            try:
                d._helpers.extend_vdisk(volume.name,
                                        volume.size - golden.size)
            except Exception:
                LOG.exception('Extending clone %s failed; removing it.',
                              volume.id)
                d._helpers.delete_vdisk(volume.name, force_unmap=False,
                                        force_delete=True)
                raise
        return None

    def dependents(self, golden: Any) -> int:
        return len(self.driver._helpers._get_vdisk_fc_mappings(golden.name))

    def is_clone_limit(self, error: Exception) -> bool:
        text = str(error)
        return any(code in text for code in ERR_FCMAP_LIMIT)
