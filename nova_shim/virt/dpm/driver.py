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
"""``DPMDriver``: Nova 34's compute driver for IBM Z / LinuxONE in DPM mode.

Instances are partitions of one CPC subset that boot from Cinder Fibre
Channel volumes (the nova-api filter ``dpm_bfv`` turns image boots into
volume boots). Nova loads it as ``compute_driver = dpm.DPMDriver`` through
the ``nova.virt.dpm`` package this project ships.

Build flow in Nova 34's terms:

1. ``prepare_for_spawn`` (before Nova attaches volumes): the partition and
   its initiators (virtual HBAs, or a storage group attached to it), so
   that ``get_volume_connector`` returns the partition's WWPNs when Nova
   asks Cinder to map the volumes.
2. ``spawn``: boot device from the root volume (``boot_index`` 0), further
   volumes (the filter's ephemeral and swap volumes) as further LUNs, start.
3. ``failed_spawn_cleanup`` / ``destroy``: partition, HBAs or storage group
   removed; both succeed when things are already gone. When the build
   failed because Nova stopped waiting for a volume Cinder was still
   creating, ``failed_spawn_cleanup`` also waits for that volume and
   deletes it (``volume_wait``), so that it does not leak.

Encrypted volumes are refused (a partition has no host OS to open LUKS).
"""

import logging
import sys
from typing import Any

import os_resource_classes as orc
import zhmcclient
from nova import context as nova_context
from nova.objects import fields
from nova.virt import driver
from nova.virt import hardware
from oslo_config import cfg

from nova_shim.virt.dpm import conf as dpm_conf
from nova_shim.virt.dpm import exception
from nova_shim.virt.dpm import hmc
from nova_shim.virt.dpm import partition
from nova_shim.virt.dpm import storage
from nova_shim.virt.dpm import volume
from nova_shim.virt.dpm import volume_wait

LOG = logging.getLogger(__name__)
CONF = cfg.CONF
dpm_conf.register_opts(CONF)

HYPERVISOR_TYPE = 'PRSM'
FILTER_HINT = ('boot it from a volume: the nova-api paste filter dpm_bfv '
               '(nova_shim.api.bfv_filter) does that for flavors with '
               'dpm:boot_from_volume=true or capabilities:hypervisor_type='
               'PRSM')


def se_version_number(version: str | None) -> int:
    """'2.16.0' -> 2016000 (Nova's hypervisor_version is an int)."""
    if not version:
        return 0
    parts = (version.split('.') + ['0', '0'])[:3]
    major, minor, micro = (int(p) for p in parts)
    return major * 1000000 + minor * 1000 + micro


class DPMDriver(driver.ComputeDriver):
    """Partitions of one CPC subset, booted from Cinder FC volumes."""

    capabilities = dict(driver.ComputeDriver.capabilities)

    def __init__(self, virtapi: Any, read_only: bool = False) -> None:
        super().__init__(virtapi)
        self._session: zhmcclient.Session | None = None
        self._cpc: zhmcclient.Cpc | None = None
        self._partitions: partition.Partitions | None = None
        self._storage: storage.Storage | None = None

    # -- host --------------------------------------------------------------
    def init_host(self, host: str) -> None:
        hmc.check_config(CONF)
        group = CONF.dpm
        self._session = hmc.make_session(CONF)
        client = zhmcclient.Client(self._session)
        cpc = hmc.find_cpc(client, CONF)
        ports = hmc.resolve_adapter_ports(cpc, CONF)
        route = (storage.StorageGroupStorage if hmc.uses_storage_groups(cpc)
                 else storage.HbaStorage)
        self._cpc = cpc
        self._storage = route(cpc, ports, group.target_wwpn_ignore_list)
        self._partitions = partition.Partitions(
            cpc, CONF.host, group.partition_start_timeout,
            group.partition_stop_timeout)
        LOG.info('DPM subset %s: CPC %s, %d IFL, %d MiB, %s route over %s',
                 CONF.host, cpc.name, group.max_processors,
                 group.max_memory, self._storage.route,
                 ', '.join(p.mapping for p in ports))

    def cleanup_host(self, host: str) -> None:
        if self._session is not None:
            try:
                self._session.logoff()
            except zhmcclient.Error as e:
                LOG.debug('HMC logoff failed: %s', e)

    @property
    def parts(self) -> partition.Partitions:
        if self._partitions is None:
            raise exception.DPMDriverError(reason='init_host has not run')
        return self._partitions

    @property
    def store(self) -> storage.Storage:
        if self._storage is None:
            raise exception.DPMDriverError(reason='init_host has not run')
        return self._storage

    @property
    def route(self) -> str:
        return self.store.route

    # -- resources ---------------------------------------------------------
    def get_available_nodes(self, refresh: bool = False) -> list[str]:
        return [CONF.host]

    def _used(self) -> tuple[int, int]:
        vcpus = memory = 0
        for part in self.parts.owned(full_properties=True).values():
            vcpus += part.get_property('ifl-processors') or 0
            memory += part.get_property('initial-memory') or 0
        return vcpus, memory

    def get_available_resource(self, nodename: str) -> dict[str, Any]:
        group = CONF.dpm
        vcpus_used, memory_used = self._used()
        return {
            'vcpus': group.max_processors,
            'memory_mb': group.max_memory,
            'local_gb': 0,
            'vcpus_used': vcpus_used,
            'memory_mb_used': memory_used,
            'local_gb_used': 0,
            'hypervisor_type': HYPERVISOR_TYPE,
            'hypervisor_version': se_version_number(
                self._cpc.get_property('se-version') if self._cpc else None),
            'hypervisor_hostname': CONF.host,
            'cpu_info': '',
            'disk_available_least': 0,
            'numa_topology': None,
            'supported_instances': [(fields.Architecture.S390X,
                                     fields.HVType.PRSM,
                                     fields.VMMode.HVM)],
        }

    def update_provider_tree(self, provider_tree: Any, nodename: str,
                             allocations: Any = None) -> None:
        group = CONF.dpm
        inv = provider_tree.data(nodename).inventory
        ratios = self._get_allocation_ratios(inv)
        inventory = {
            orc.VCPU: {
                'total': group.max_processors, 'min_unit': 1,
                'max_unit': group.max_processors, 'step_size': 1,
                'allocation_ratio': ratios[orc.VCPU],
                'reserved': CONF.reserved_host_cpus,
            },
            orc.MEMORY_MB: {
                'total': group.max_memory, 'min_unit': 1,
                'max_unit': group.max_memory, 'step_size': 1,
                'allocation_ratio': ratios[orc.MEMORY_MB],
                'reserved': CONF.reserved_host_memory_mb,
            },
        }
        # No DISK_GB: partitions have no local disk (volume-backed only).
        provider_tree.update_inventory(nodename, inventory)

    # -- instances ---------------------------------------------------------
    def list_instance_uuids(self) -> list[str]:
        return self.parts.uuids()

    def list_instances(self) -> list[str]:
        return [self.parts.name(u) for u in self.parts.uuids()]

    def instance_exists(self, instance: Any) -> bool:
        return self.parts.find(instance.uuid) is not None

    def get_info(self, instance: Any, use_cache: bool = True
                 ) -> hardware.InstanceInfo:
        part = self.parts.get(instance.uuid)
        return hardware.InstanceInfo(
            state=self.parts.power_state(part),
            internal_id=part.get_property('object-id'))

    # -- volumes -----------------------------------------------------------
    def get_volume_connector(self, instance: Any) -> dict[str, Any]:
        part = self.parts.get(instance.uuid)
        name = self.parts.name(instance.uuid)
        wwpns = self.store.wwpns(part, name)
        if not wwpns:
            raise exception.PartitionError(
                name=name, reason='has no initiator WWPN (HBAs or storage '
                                  'group missing)')
        # 'host' is what the array names its host object after: the
        # instance uuid (36 characters, one per partition, as nova-dpm
        # did). The partition name (up to 64) would not fit: Cinder's
        # Storwize driver appends '-' and 8 digits to the first 55
        # characters, past the SVC's 63 (CMMVC6527E).
        return {'host': instance.uuid, 'wwpns': wwpns, 'platform': 's390x',
                'os_type': 'linux', 'multipath': False}

    def attach_volume(self, context: Any, connection_info: dict[str, Any],
                      instance: Any, mountpoint: str, disk_bus: Any = None,
                      device_type: Any = None, encryption: Any = None
                      ) -> None:
        bdm = {'connection_info': connection_info}
        self._refuse_encrypted(instance, bdm, encryption)
        data = self._fc_data(instance, bdm)
        part = self.parts.get(instance.uuid)
        # Nova gives no size here; a storage volume's size is the minimum
        # the HMC expects of the LUN it is fulfilled with.
        self.store.attach(part, self.parts.name(instance.uuid), data,
                          volume.bdm_volume_id(bdm) or '', 1.0)

    def detach_volume(self, context: Any, connection_info: dict[str, Any],
                      instance: Any, mountpoint: str, encryption: Any = None
                      ) -> None:
        volume_id = volume.bdm_volume_id({'connection_info': connection_info})
        part = self.parts.find(instance.uuid)
        if part is None or not volume_id:
            return
        self.store.detach(part, self.parts.name(instance.uuid), volume_id)

    @staticmethod
    def _refuse_encrypted(instance: Any, bdm: Any,
                          encryption: Any = None) -> None:
        why = volume.encrypted(bdm, encryption)
        if why:
            LOG.error('Instance %s: refusing encrypted volume %s (%s)',
                      instance.uuid, volume.bdm_volume_id(bdm), why)
            raise exception.EncryptedVolumeRefused(
                why=why,
                volume_id=volume.bdm_volume_id(bdm) or '?',
                volume_type='encrypted')

    @staticmethod
    def _fc_data(instance: Any, bdm: Any) -> dict[str, Any]:
        try:
            return volume.fc_data(bdm)
        except ValueError as e:
            raise exception.UnsupportedVolume(instance=instance.uuid,
                                              reason=str(e))

    # -- lifecycle ---------------------------------------------------------
    def prepare_for_spawn(self, instance: Any) -> None:
        """Create the partition and its storage, tried again from scratch.

        After an HMC error or a lost answer (the partition's create may
        have taken effect) what was made is removed and the preparation
        runs again, up to ``[dpm] hmc_retries`` more times.
        """
        self._again('Preparing', instance, self._prepare_once)

    def _prepare_once(self, instance: Any) -> None:
        name = self.parts.name(instance.uuid)
        part = self.parts.find(instance.uuid)
        try:
            if part is None:
                part = self.parts.create(instance.uuid, instance.flavor.vcpus,
                                         instance.flavor.memory_mb)
            self.store.create(part, name, max(1, instance.flavor.root_gb))
        except Exception:
            LOG.exception('Preparing partition %s failed; removing it', name)
            self._remove(instance)
            raise

    def failed_spawn_cleanup(self, instance: Any) -> None:
        # Nova calls this while it handles the build's failure: when that
        # is Nova giving up on a volume Cinder is still creating, the
        # volume is not in the block device mapping and would leak.
        abandoned = volume_wait.abandoned_volume(sys.exc_info()[1])
        if abandoned is None:
            self._remove(instance)
            return
        try:
            self._remove(instance)
        except Exception:
            # The volume matters more here; Nova's destroy at the server's
            # delete removes the partition again.
            LOG.exception('Instance %s: removing its partition failed',
                          instance.uuid)
        timeout = CONF.dpm.volume_settle_timeout
        LOG.warning('Instance %s: Nova stopped waiting for volume %s after '
                    '%d s, still %s in Cinder; waiting up to %d s ([dpm] '
                    'volume_settle_timeout) for it to settle, to delete it',
                    instance.uuid, abandoned.volume_id, abandoned.seconds,
                    abandoned.status, timeout)
        context = (getattr(instance, '_context', None) or
                   nova_context.get_admin_context())
        outcome = volume_wait.settle_and_delete(
            context, abandoned, timeout,
            CONF.block_device_allocate_retries_interval)
        reason = volume_wait.reason(outcome)
        (LOG.warning if outcome.deleted else LOG.error)(
            'Instance %s: %s (waited %d s more here; last status %s)',
            instance.uuid, reason, outcome.waited, outcome.status or 'gone')
        raise exception.VolumeAbandoned(instance_uuid=instance.uuid,
                                        reason=reason)

    def _check_volume_backed(self, instance: Any,
                             block_device_info: Any) -> Any:
        info = block_device_info or {}
        # Nova 34 lists an image boot's local root disk under 'image'
        # (an instance booted from a volume may still carry an image_ref).
        if info.get('image'):
            raise exception.UnsupportedVolume(
                instance=instance.uuid,
                reason='it boots from a local image disk, but DPM '
                       'partitions have no local disk; %s.' % FILTER_HINT)
        # Nova 34's API adds the flavor's own local blank ephemeral and
        # swap mappings even when the filter made them volumes
        # (doc/nova-filter.md): they are ignored, the volumes stand in.
        local = len(info.get('ephemerals') or []) + (
            1 if driver.block_device_info_get_swap(info).get('swap_size')
            else 0)
        if local:
            LOG.debug('Instance %s: %d local blank mapping(s) ignored (no '
                      'local disk; the filter\'s volumes stand in)',
                      instance.uuid, local)
        root = volume.root_bdm(info)
        if root is None:
            raise exception.UnsupportedVolume(
                instance=instance.uuid,
                reason='it has no root volume (block device mapping with '
                       'boot_index 0); %s.' % FILTER_HINT)
        return root

    def spawn(self, context: Any, instance: Any, image_meta: Any,
              injected_files: Any, admin_password: Any, allocations: Any,
              network_info: Any = None, block_device_info: Any = None,
              power_on: bool = True, accel_info: Any = None) -> None:
        root = self._check_volume_backed(instance, block_device_info)
        try:
            for bdm in volume.volume_bdms(block_device_info):
                self._refuse_encrypted(instance, bdm)
        except exception.EncryptedVolumeRefused:
            self._remove(instance)
            raise
        data = self._fc_data(instance, root)
        extras = [(b, self._fc_data(instance, b))
                  for b in volume.extra_bdms(block_device_info)]
        if network_info:
            LOG.warning('Instance %s: the DPM driver creates no NICs yet; '
                        '%d network interface(s) ignored', instance.uuid,
                        len(network_info))
        name = self.parts.name(instance.uuid)
        # Each step is run again after a transient HMC error, the partition
        # kept: its HBAs' WWPNs are those Cinder mapped the volumes to,
        # so it cannot be made again here. Setting the boot volume sets
        # the same properties again; start looks at the status first.
        try:
            part = self.parts.find(instance.uuid)
            if part is None:  # prepare_for_spawn did not run (or failed)
                self.prepare_for_spawn(instance)
                part = self.parts.get(instance.uuid)
            self._again('Setting the boot volume of', instance,
                        lambda _i: self.store.set_boot(
                            part, name, data,
                            volume.bdm_volume_id(root) or ''))
            for bdm, extra in extras:
                self._again('Attaching a volume to', instance,
                            lambda _i, b=bdm, e=extra: self.store.attach(
                                part, name, e,
                                volume.bdm_volume_id(b) or '',
                                float(_volume_size(b) or 1)))
            if power_on:
                self._again('Starting', instance,
                            lambda _i: self.parts.start(part))
        except Exception:
            LOG.exception('Spawning %s failed; removing its partition', name)
            self._remove(instance)
            raise

    def _remove(self, instance: Any) -> None:
        """Stop and delete the partition and its storage, tried again.

        Each step looks at the HMC first (is the partition there, running,
        its storage group attached?), so after an HMC error or an answer
        lost on the way, the whole removal is run again: a step that had
        taken effect is found done, one that had not is done. Tries
        ``[dpm] hmc_retries`` more times, waiting ``hmc_retry_interval``
        (doubled each time) in between.
        """
        self._again('Removing', instance, self._remove_once)

    @staticmethod
    def _again(what: str, instance: Any, step: Any) -> None:
        """``step(instance)``, run again after a transient HMC error.

        Transient as :func:`hmc.transient` says; ``[dpm] hmc_retries``
        more times, ``hmc_retry_interval`` (doubled each time) in
        between. ``step`` must be safe to run again.
        """
        group = CONF[dpm_conf.DPM_GROUP]
        hmc.call_again(lambda: step(instance), group.hmc_retries,
                       group.hmc_retry_interval, hmc.transient,
                       '%s the partition of instance %s' % (what,
                                                            instance.uuid))

    def _remove_once(self, instance: Any) -> None:
        name = self.parts.name(instance.uuid)
        # fresh: after a lost answer the partition may be gone already
        part = self.parts.find(instance.uuid, fresh=True)
        if part is not None:
            self.parts.stop(part)
        self.store.remove(part, name)
        if part is not None:
            self.parts.delete(part)
        else:
            LOG.debug('Partition %s is already gone', name)

    def destroy(self, context: Any, instance: Any, network_info: Any,
                block_device_info: Any = None, destroy_disks: bool = True,
                destroy_secrets: bool = True) -> None:
        if self.parts.find(instance.uuid) is None:
            LOG.warning('Partition of instance %s not found on CPC %s; '
                        'nothing to destroy', instance.uuid,
                        self._cpc.name if self._cpc else '?')
        self._remove(instance)

    def cleanup(self, context: Any, instance: Any, network_info: Any,
                block_device_info: Any = None, destroy_disks: bool = True,
                migrate_data: Any = None, destroy_vifs: bool = True,
                destroy_secrets: bool = True) -> None:
        self._remove(instance)

    def power_off(self, instance: Any, timeout: int = 0,
                  retry_interval: int = 0) -> None:
        # Stop Partition has no graceful mode: Nova's clean-shutdown
        # timeout cannot be honoured.
        self.parts.stop(self.parts.get(instance.uuid))

    def power_on(self, context: Any, instance: Any, network_info: Any,
                 block_device_info: Any = None, accel_info: Any = None,
                 share_info: Any = None) -> None:
        self.parts.start(self.parts.get(instance.uuid))

    def reboot(self, context: Any, instance: Any, network_info: Any,
               reboot_type: str, block_device_info: Any = None,
               bad_volumes_callback: Any = None, accel_info: Any = None,
               share_info: Any = None) -> None:
        # No guest agent: SOFT and HARD are both stop plus start.
        part = self.parts.get(instance.uuid)
        self.parts.stop(part)
        self.parts.start(part)


def _volume_size(bdm: Any) -> int | None:
    size = getattr(bdm, 'volume_size', None)
    if size is None and hasattr(bdm, 'get'):
        size = bdm.get('volume_size')
    return size
