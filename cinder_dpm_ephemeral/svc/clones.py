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
"""SVC FlashCopy as the golden image cache's clone interface.

A clone is a FlashCopy mapping from the golden vdisk to a new vdisk made
as the volume's type asks (thin by default), with copy rate 0, named
``dpmc-<volume id>``: no background copy, so the clone costs no array
bandwidth; see :meth:`SVCClones.thin_clone` for thick types and QoS, and
:meth:`SVCClones.supports` for the types left to the in-tree path.
Creating one takes three CLI commands (mkvdisk, mkfcmap, startfcmap -prep;
a fourth, chvdisk, for a QoS type) and deleting it two (lsvdiskfcmappings,
rmvdisk -force); the in-tree driver takes about twice as many for each.
The golden vdisk itself is never deleted while maps remain: the in-tree
driver would turn them into full copies (copy rate 50) and wait for them.
"""

from __future__ import annotations

import math
from typing import Any

from cinder import context
from cinder import exception
from cinder.objects import fields
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
#: "The specified object does not exist ..." (IBM CLI messages)
ERR_NOT_FOUND = ('CMMVC5753E', 'CMMVC5754E')
#: names the no-copy FlashCopy map of each thin clone (63 characters max)
CLONE_MAP_PREFIX = 'dpmc-'


def clone_map_name(volume: Any) -> str:
    return f'{CLONE_MAP_PREFIX}{volume.id}'


class SVCClones(cache_driver.ArrayClones):
    """The golden cache's array contract on SVC.

    :class:`cinder_dpm_ephemeral.image_cache.backend.CloneBackend`.
    """

    max_clones_per_golden = SVC_FCMAP_SOURCE_LIMIT

    def golden_size_gb(self, virtual_size: int) -> int:
        return max(1, math.ceil(virtual_size / GiB))

    def supports(self, volume: Any) -> str | None:
        """Why a no-copy FlashCopy target cannot be ``volume``, or None.

        Asked before anything is created. A target vdisk can take any
        pool, I/O group, thin or thick allocation, compression, Easy Tier
        and QoS a type asks for (:meth:`thin_clone` gives them as the
        in-tree create does). Not what makes a second copy or a remote
        relationship of the volume: replication, HyperSwap, mirrored pools
        (the in-tree driver builds those around a vdisk that holds its own
        data); nor anything while the backend is failed over.
        """
        why = super().supports(volume)
        if why:
            return why
        d = self.driver
        if d._active_backend_id:
            return 'the backend is failed over to its replication target'
        opts = d._get_vdisk_params(volume.volume_type_id)
        if opts['volume_topology'] == 'hyperswap':
            return 'HyperSwap volume types are not cloned from golden volumes'
        if d._get_volume_replicated_type(context.get_admin_context(),
                                         volume):
            return ('replicated volume types are not cloned from golden '
                    'volumes')
        if opts['mirror_pool'] or opts['aux_mirror_pool']:
            return ('mirrored volume types (mirror_pool) are not cloned '
                    'from golden volumes')
        return None

    def reads_zeros(self, golden: Any) -> bool:
        """Whether the golden vdisk reads zeros where never written.

        A thin-provisioned, compressed or deduplicated copy has no extents
        behind unwritten grains: it reads zeros there (IBM, "Thin-provisioned
        volumes": a read of a grain never written returns zeros). A golden
        whose type makes it thin (``rsize`` not -1: the in-tree
        ``create_volume`` that made it then passed ``-rsize``, and the
        array made it thin or refused it) needs no question. Any other is
        asked of the array (``lsvdisk``): a fully allocated vdisk reads
        zeros only if it was formatted (``mkvdisk`` formats by default;
        not with ``-nofmtdisk``, which Cinder passes when
        ``storwize_svc_vol_nofmtdisk`` or the type's ``drivers:nofmtdisk``
        is set).
        """
        opts = self.driver._get_vdisk_params(
            golden.volume_type_id,
            volume_metadata=golden.get('volume_metadata'))
        if opts['rsize'] != -1:
            return True
        attrs = self.driver._helpers.get_vdisk_attributes(golden.name)
        if not attrs:
            raise exception.VolumeBackendAPIException(data=(
                f'Golden volume {golden.id}: vdisk {golden.name} not found '
                f'on the array; cannot tell whether it reads zeros'))
        for key in ('se_copy_count', 'compressed_copy_count',
                    'deduplicated_copy_count'):
            if attrs.get(key) not in (None, '', '0'):
                return True
        return attrs.get('formatted') == 'yes'

    def extension_reads_zeros(self, golden: Any, volume: Any) -> bool:
        """True: a larger clone's extension is formatted as it is added.

        :meth:`_extend` grows an unformatted target with ``expandvdisksize
        -fmtdisk``; a thin target has nothing behind unwritten grains.
        """
        return True

    def thin_clone(self, golden: Any, volume: Any) -> dict | None:
        """A no-copy FlashCopy target of ``golden`` with ``volume``'s type.

        The target vdisk is made the way the in-tree ``create_volume``
        makes one (``_get_vdisk_params``: I/O group, thin ``rsize`` or
        fully allocated, compression, grain size, Easy Tier), then gets
        the type's QoS (``chvdisk -rate``) as an in-tree clone does.

        A thick (``rsize`` -1) type gets a fully allocated target: the
        capacity the operator asked to reserve is reserved, so such a
        clone saves no capacity, but it still saves the copy: no data
        moves (copy rate 0) and it reads the golden until written. The
        extension of a larger volume is formatted (``-fmtdisk``) when the
        target is not, so it never shows another volume's old data.
        """
        d = self.driver
        h = d._helpers
        opts = d._get_vdisk_params(
            volume.volume_type_id,
            volume_metadata=volume.get('volume_metadata'))
        pool = volume_utils.extract_host(volume.host, 'pool')
        opts['iogrp'] = d._helpers.select_io_group(d._state, opts, pool)
        # Three commands: the target vdisk (the golden's size, as FlashCopy
        # wants), a named no-copy map, and its start with the prepare
        # folded in (no prestartfcmap, no polling for "prepared").
        h.create_vdisk(volume.name, str(golden.size), 'gb', pool, opts)
        model_update: dict[str, Any] = {}
        try:
            map_id = h.ssh.run_ssh_check_created(
                ['svctask', 'mkfcmap', '-name', clone_map_name(volume),
                 '-source', '"%s"' % golden.name,
                 '-target', '"%s"' % volume.name, '-copyrate', '0'])
            h.ssh.run_ssh_assert_no_output(
                ['svctask', 'startfcmap', '-prep', map_id])
            if volume.size > golden.size:
                self._extend(volume, volume.size - golden.size,
                             formatted=opts['rsize'] != -1
                             or not opts['nofmtdisk'])
            if opts['qos']:
                h.add_vdisk_qos(volume.name, opts['qos'], volume.size)
                model_update = d._qos_model_update(model_update, volume)
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
        model_update['replication_status'] = (
            fields.ReplicationStatus.NOT_CAPABLE)
        return model_update

    def _extend(self, volume: Any, gb: int, formatted: bool) -> None:
        if formatted:
            self.driver._helpers.extend_vdisk(volume.name, gb)
            return
        # New extents of an unformatted fully allocated vdisk hold old
        # data: have the array format them (IBM Documentation,
        # expandvdisksize -fmtdisk).
        self.driver._helpers.ssh.run_ssh_assert_no_output(
            ['svctask', 'expandvdisksize', '-size', str(gb), '-unit', 'gb',
             '-fmtdisk', '"%s"' % volume.name])

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
        except exception.VolumeBackendAPIException as exc:
            if _not_found(exc):
                return False    # gone: the in-tree path knows what to do
            # Anything else (a busy cluster, a dropped session) says
            # nothing about the vdisk: the delete fails and is retried.
            # The in-tree path would treat a thin clone as a full volume
            # (stop and remove its map, rmvdisk without -force) and,
            # faulted half-way, strand the map.
            raise
        if [row['name'] for row in rows] != [clone_map_name(volume)]:
            return False
        d._helpers.ssh.rmvdisk(volume.name, force_unmap=True,
                               force_delete=True)
        d._vdiskcopyops.pop(volume.id, None)
        return True

    def dependents(self, golden: Any) -> int:
        try:
            return len(self.driver._helpers._get_vdisk_fc_mappings(
                golden.name))
        except exception.VolumeBackendAPIException as exc:
            if _not_found(exc):
                # Gone already (its delete took effect, its answer was
                # lost): nothing depends on it.
                return 0
            raise

    def clone_counts(self, goldens: list[Any]) -> dict[str, int]:
        """FlashCopy maps of each golden vdisk, from one ``lsfcmap``.

        ``lsfcmap`` without an object lists every map of the cluster with
        its source and target vdisk names (IBM Documentation, lsfcmap);
        counting the maps a golden is the source or target of gives what
        ``lsvdiskfcmappings`` of each golden would, in one command
        instead of one per golden volume.
        """
        if not goldens:
            return {}
        names = {g.name: g.id for g in goldens}
        counts = dict.fromkeys(names.values(), 0)
        rows = self.driver._helpers.ssh.run_ssh_info(
            ['svcinfo', 'lsfcmap', '-delim', '!'], with_header=True)
        for row in rows:
            for key in ('source_vdisk_name', 'target_vdisk_name'):
                golden_id = names.get(row.get(key))
                if golden_id is not None:
                    counts[golden_id] += 1
        return counts

    def delete_golden_lun(self, golden: Any) -> None:
        """Delete the golden vdisk only if no FlashCopy map uses it.

        ``rmvdisk`` without ``-force``: the SVC itself refuses (CMMVC5840E)
        a vdisk that is part of a FlashCopy mapping, so a clone mapped
        since the cache last looked keeps its source. The in-tree delete
        would instead turn every no-copy map into a full background copy
        and wait for it. A vdisk already gone counts as deleted.
        """
        h = self.driver._helpers
        if not h.get_vdisk_attributes(golden.name):
            return
        try:
            h.ssh.rmvdisk(golden.name, force_unmap=True, force_delete=False)
        except exception.VolumeBackendAPIException as exc:
            if 'CMMVC5840E' in str(exc):
                raise exception.VolumeIsBusy(volume_name=golden.name)
            raise

    def is_clone_limit(self, error: Exception) -> bool:
        text = str(error)
        return any(code in text for code in ERR_FCMAP_LIMIT)


def _not_found(error: Exception) -> bool:
    return any(code in str(error) for code in ERR_NOT_FOUND)
