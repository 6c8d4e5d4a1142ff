"""SVC FlashCopy as the golden image cache's clone interface.

A clone is a FlashCopy mapping from the golden vdisk to a new thin vdisk
with copy rate 0, named ``dpmc-<volume id>``: no background copy, so the
clone costs no array bandwidth. Creating one takes three CLI commands
(mkvdisk, mkfcmap, startfcmap -prep) and deleting it two (lsvdiskfcmappings,
rmvdisk -force); the in-tree driver takes about twice as many for each.
The golden vdisk itself is never deleted while maps remain: the in-tree
driver would turn them into full copies (copy rate 50) and wait for them.
"""

from __future__ import annotations

import math
from typing import Any

from cinder import exception
from cinder.volume import volume_utils
from oslo_log import log as logging
from oslo_utils import excutils

from cinder_dpm_ephemeral.image_cache import driver as cache_driver

LOG = logging.getLogger(__name__)

GiB = 1024 ** 3

# "The FlashCopy mapping or consistency group could not be created because
# the maximum number of mappings (256) for the source volume was reached."
SVC_FCMAP_SOURCE_LIMIT = 256
ERR_FCMAP_LIMIT = ('CMMVC6432E', 'CMMVC5878E', 'CMMVC6425E')
#: names the no-copy FlashCopy map of each thin clone (63 characters max)
CLONE_MAP_PREFIX = 'dpmc-'


def clone_map_name(volume: Any) -> str:
    return f'{CLONE_MAP_PREFIX}{volume.id}'


class SVCClones(cache_driver.ArrayClones):
    """:class:`cinder_dpm_ephemeral.image_cache.cache.CloneBackend` on SVC."""

    max_clones_per_golden = SVC_FCMAP_SOURCE_LIMIT

    def golden_size_gb(self, virtual_size: int) -> int:
        return max(1, math.ceil(virtual_size / GiB))

    def thin_clone(self, golden: Any, volume: Any) -> dict | None:
        d = self.driver
        h = d._helpers
        opts = d._get_vdisk_params(volume.volume_type_id)
        if opts.get('rsize', -1) == -1:
            # A no-copy target only ever holds what the guest writes.
            opts['rsize'] = d.configuration.storwize_svc_vol_rsize
            opts['autoexpand'] = True
        pool = volume_utils.extract_host(volume.host, 'pool')
        # Three commands: the target vdisk (the golden's size, as FlashCopy
        # wants), a named no-copy map, and its start with the prepare
        # folded in (no prestartfcmap, no polling for "prepared").
        h.create_vdisk(volume.name, str(golden.size), 'gb', pool, opts)
        try:
            map_id = h.ssh.run_ssh_check_created(
                ['svctask', 'mkfcmap', '-name', clone_map_name(volume),
                 '-source', '"%s"' % golden.name,
                 '-target', '"%s"' % volume.name, '-copyrate', '0'])
            h.ssh.run_ssh_assert_no_output(
                ['svctask', 'startfcmap', '-prep', map_id])
            if volume.size > golden.size:
                h.extend_vdisk(volume.name, volume.size - golden.size)
        except Exception:
            with excutils.save_and_reraise_exception():
                LOG.info('Thin clone %s of golden volume %s failed; removing '
                         'its vdisk and map.', volume.id, golden.id)
                try:
                    # -force: the map goes with the vdisk, whatever state
                    # it reached.
                    h.ssh.rmvdisk(volume.name, force_unmap=True,
                                  force_delete=True)
                except Exception:
                    LOG.exception('Removing vdisk %s after a failed clone '
                                  'failed: remove it by hand.', volume.name)
        return None

    def delete_clone(self, volume: Any) -> bool:
        """Delete a thin clone in two commands, if ``volume`` is one.

        A vdisk whose only FlashCopy map is the no-copy map this driver
        named for it holds nothing anyone else depends on: ``rmvdisk
        -force`` removes it with its map (and any host mapping). Anything
        else (no such map, other maps, snapshots of the clone, a clone
        made before maps were named, replication) takes the in-tree path.
        """
        d = self.driver
        if (d._active_backend_id or d.is_volume_hyperswap(volume) or
                volume.replication_status not in (None, 'not-capable',
                                                  'disabled')):
            return False
        try:
            rows = d._helpers.ssh.lsvdiskfcmappings(volume.name)
        except exception.VolumeBackendAPIException:
            return False        # gone or unreadable: the in-tree path knows
        if [row['name'] for row in rows] != [clone_map_name(volume)]:
            return False
        d._helpers.ssh.rmvdisk(volume.name, force_unmap=True,
                               force_delete=True)
        d._vdiskcopyops.pop(volume.id, None)
        return True

    def dependents(self, golden: Any) -> int:
        return len(self.driver._helpers._get_vdisk_fc_mappings(golden.name))

    def is_clone_limit(self, error: Exception) -> bool:
        text = str(error)
        return any(code in text for code in ERR_FCMAP_LIMIT)
