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
"""How a partition reaches its Cinder volumes: one class per DPM route.

* :class:`HbaStorage` (z13, no ``dpm-storage-management`` feature): one
  virtual HBA per configured adapter port; the partition boots from the
  first HBA (``boot-device: storage-adapter``) with the target WWPN and
  LUN in its boot properties. Further LUNs need nothing on the HMC: the
  array maps them to the HBAs' WWPNs and the operating system finds them.
* :class:`StorageGroupStorage` (z14 and later, feature always on): one
  storage group per instance, named like its partition, with the
  configured ports as candidate adapter ports. Attaching it to the
  partition makes one virtual storage resource (a WWPN) per port. Each
  Cinder volume is a storage volume of the group, fulfilled with the
  target WWPN and LUN of a path that the HMC validated; the root volume is
  the ``usage: boot`` volume the partition boots from
  (``boot-device: storage-volume``).

Both present the same methods to the driver; every removal tolerates
objects that are already gone.
"""

import abc
import logging
from collections.abc import Mapping
from typing import Any

import zhmcclient

from nova_shim.virt.dpm import exception
from nova_shim.virt.dpm import volume
from nova_shim.virt.dpm.hmc import AdapterPort

LOG = logging.getLogger(__name__)

# Validate LUN Path reason codes meaning "not this path" (HMC WS API,
# Validate LUN Path: 484 target WWPN not reachable, 485 LUN not reachable).
PATH_UNREACHABLE = (484, 485)

BOOT_VOLUME_NAME = 'boot'


def hba_name(port: AdapterPort) -> str:
    adapter_id, index = port.mapping.rsplit(':', 1)
    return 'OpenStack_Port_%s_%s' % (adapter_id.lower(), index)


def volume_name(volume_id: str) -> str:
    return 'cinder-%s' % volume_id


class Storage(abc.ABC):
    """Initiators, boot device and LUNs of this subset's partitions."""

    route = ''

    def __init__(self, cpc: zhmcclient.Cpc, ports: list[AdapterPort],
                 ignore_list: list[str]) -> None:
        self.cpc = cpc
        self.ports = ports
        self.ignore = [volume.normalize_wwpn(w) for w in ignore_list]

    @abc.abstractmethod
    def create(self, part: zhmcclient.Partition, name: str,
               root_gib: float) -> None:
        """Give a new (stopped) partition its initiators."""

    @abc.abstractmethod
    def initiators(self, part: zhmcclient.Partition, name: str
                   ) -> list[tuple[str, AdapterPort]]:
        """(normalised WWPN, adapter port) per initiator, config order."""

    def wwpns(self, part: zhmcclient.Partition, name: str) -> list[str]:
        return [w for w, _ in self.initiators(part, name)]

    @abc.abstractmethod
    def set_boot(self, part: zhmcclient.Partition, name: str,
                 data: Mapping[str, Any], volume_id: str) -> dict[str, str]:
        """Point the partition's boot device at the root volume."""

    @abc.abstractmethod
    def attach(self, part: zhmcclient.Partition, name: str,
               data: Mapping[str, Any], volume_id: str,
               size_gib: float) -> None:
        """Make a further volume (ephemeral, swap, data) reachable."""

    @abc.abstractmethod
    def detach(self, part: zhmcclient.Partition, name: str,
               volume_id: str) -> None:
        """Undo :meth:`attach`; nothing when it is not attached."""

    @abc.abstractmethod
    def remove(self, part: zhmcclient.Partition | None, name: str) -> None:
        """Remove what :meth:`create` made; the partition may be gone."""

    def _no_target(self, name: str, volume_id: str, why: str
                   ) -> exception.BootTargetNotFound:
        return exception.BootTargetNotFound(
            instance=name, volume=volume_id,
            reason='%s (ignored targets: %s; [dpm] target_wwpn_ignore_list)'
                   % (why, ', '.join(self.ignore) or 'none'))


class HbaStorage(Storage):
    """Virtual HBAs (CPCs without dpm-storage-management)."""

    route = 'hba'

    def _hbas(self, part: zhmcclient.Partition
              ) -> dict[str, zhmcclient.Hba]:
        return {h.name: h for h in part.hbas.list()}

    def create(self, part: zhmcclient.Partition, name: str,
               root_gib: float) -> None:
        existing = self._hbas(part)
        for port in self.ports:
            hname = hba_name(port)
            if hname in existing:
                continue
            LOG.debug('Creating HBA %s on %s for %s', hname, name,
                      port.port_uri)
            part.hbas.create({'name': hname,
                              'adapter-port-uri': port.port_uri})

    def initiators(self, part: zhmcclient.Partition, name: str
                   ) -> list[tuple[str, AdapterPort]]:
        hbas = self._hbas(part)
        out = []
        for port in self.ports:
            hba = hbas.get(hba_name(port))
            if hba is not None:
                hba.pull_full_properties()
                out.append((volume.normalize_wwpn(hba.get_property('wwpn')),
                            port))
        return out

    def set_boot(self, part: zhmcclient.Partition, name: str,
                 data: Mapping[str, Any], volume_id: str) -> dict[str, str]:
        boot_port = self.ports[0]
        hba = self._hbas(part).get(hba_name(boot_port))
        if hba is None:
            raise self._no_target(name, volume_id, 'the boot HBA %s is '
                                  'missing' % hba_name(boot_port))
        hba.pull_full_properties()
        wwpn = volume.normalize_wwpn(hba.get_property('wwpn'))
        targets = volume.targets_for(data, wwpn, self.ignore)
        if not targets:
            raise self._no_target(name, volume_id, 'Cinder offers initiator '
                                  '%s no target WWPN' % wwpn)
        boot = {
            'boot-device': 'storage-adapter',
            'boot-storage-device': hba.uri,
            'boot-world-wide-port-name': targets[0],
            'boot-logical-unit-number': volume.fcp_lun(data['target_lun']),
        }
        LOG.info('Partition %s boots through HBA %s (%s) from target %s '
                 'LUN %s (volume %s)', name, hba.name, wwpn, targets[0],
                 boot['boot-logical-unit-number'], volume_id)
        part.update_properties(boot)
        return {'initiator': wwpn, 'target': targets[0],
                'lun': boot['boot-logical-unit-number']}

    def attach(self, part: zhmcclient.Partition, name: str,
               data: Mapping[str, Any], volume_id: str,
               size_gib: float) -> None:
        LOG.debug('Volume %s (LUN %s) reaches %s through its HBAs; nothing '
                  'to do on the HMC', volume_id, data.get('target_lun'), name)

    def detach(self, part: zhmcclient.Partition, name: str,
               volume_id: str) -> None:
        LOG.debug('Volume %s leaves %s when Cinder unmaps it', volume_id,
                  name)

    def remove(self, part: zhmcclient.Partition | None, name: str) -> None:
        if part is None:
            return
        for hba in part.hbas.list():
            LOG.debug('Deleting HBA %s of %s', hba.name, name)
            try:
                hba.delete()
            except zhmcclient.HTTPError as e:
                if e.http_status != 404:
                    raise


class StorageGroupStorage(Storage):
    """One storage group per instance (dpm-storage-management)."""

    route = 'storage-group'

    @property
    def _console(self) -> zhmcclient.Console:
        return self.cpc.manager.client.consoles.console

    def find_group(self, name: str) -> zhmcclient.StorageGroup | None:
        try:
            return self._console.storage_groups.find(name=name)
        except zhmcclient.NotFound:
            return None

    def _group(self, name: str) -> zhmcclient.StorageGroup:
        sg = self.find_group(name)
        if sg is None:
            raise exception.PartitionError(
                name=name, reason='its storage group is missing')
        return sg

    def create(self, part: zhmcclient.Partition, name: str,
               root_gib: float) -> None:
        sg = self.find_group(name)
        if sg is None:
            LOG.info('Creating storage group %s (%d candidate ports)', name,
                     len(self.ports))
            sg = self._console.storage_groups.create({
                'name': name,
                'description': part.get_property('description'),
                'cpc-uri': self.cpc.uri,
                'type': 'fcp',
                'shared': False,
                'connectivity': len(self.ports),
                'max-partitions': 1,
            })
            sg.add_candidate_adapter_ports([p.port for p in self.ports])
            sg.storage_volumes.create({
                'name': BOOT_VOLUME_NAME, 'usage': 'boot',
                'size': float(root_gib),
                'description': 'root volume of %s' % name})
        part.pull_full_properties()
        if sg.uri not in (part.get_property('storage-group-uris') or []):
            LOG.debug('Attaching storage group %s to %s', sg.name, name)
            part.attach_storage_group(sg)

    def initiators(self, part: zhmcclient.Partition, name: str
                   ) -> list[tuple[str, AdapterPort]]:
        sg = self._group(name)
        by_port: dict[str, str] = {}
        for vsr in sg.virtual_storage_resources.list(full_properties=True):
            if vsr.get_property('partition-uri') != part.uri:
                continue
            by_port[vsr.get_property('adapter-port-uri')] = (
                volume.normalize_wwpn(
                    vsr.get_property('world-wide-port-name')))
        return [(by_port[p.port_uri], p) for p in self.ports
                if p.port_uri in by_port]

    def _path(self, part: zhmcclient.Partition, name: str,
              data: Mapping[str, Any], volume_id: str
              ) -> tuple[str, AdapterPort, str]:
        """The first (initiator, port, target) that the HMC validates."""
        lun = volume.fcp_lun(data['target_lun'])
        tried = []
        for wwpn, port in self.initiators(part, name):
            for target in volume.targets_for(data, wwpn, self.ignore):
                try:
                    self.cpc.validate_lun_path(wwpn, port.port, target, lun)
                except zhmcclient.HTTPError as e:
                    if e.reason not in PATH_UNREACHABLE:
                        raise
                    tried.append('%s->%s: %s' % (wwpn, target, e.message))
                    continue
                return wwpn, port, target
        raise self._no_target(
            name, volume_id, 'no path validated (LUN %s; tried: %s)' % (
                lun, '; '.join(tried) or 'no initiator/target pair'))

    def _fulfill(self, sv: zhmcclient.StorageVolume,
                 part: zhmcclient.Partition, name: str,
                 data: Mapping[str, Any], volume_id: str) -> dict[str, str]:
        wwpn, port, target = self._path(part, name, data, volume_id)
        lun = volume.fcp_lun(data['target_lun'])
        sv.indicate_fulfillment_fcp(target, lun, port.port)
        return {'initiator': wwpn, 'target': target, 'lun': lun,
                'port': port.port_uri}

    def set_boot(self, part: zhmcclient.Partition, name: str,
                 data: Mapping[str, Any], volume_id: str) -> dict[str, str]:
        sg = self._group(name)
        sv = sg.storage_volumes.find(name=BOOT_VOLUME_NAME)
        path = self._fulfill(sv, part, name, data, volume_id)
        LOG.info('Partition %s boots from storage volume %s: target %s LUN '
                 '%s through %s (volume %s)', name, sv.uri, path['target'],
                 path['lun'], path['initiator'], volume_id)
        part.update_properties({'boot-device': 'storage-volume',
                                'boot-storage-volume': sv.uri})
        return path

    def attach(self, part: zhmcclient.Partition, name: str,
               data: Mapping[str, Any], volume_id: str,
               size_gib: float) -> None:
        sg = self._group(name)
        try:
            sv = sg.storage_volumes.find(name=volume_name(volume_id))
        except zhmcclient.NotFound:
            sv = sg.storage_volumes.create({
                'name': volume_name(volume_id), 'usage': 'data',
                'size': float(size_gib),
                'description': 'Cinder volume %s' % volume_id})
        path = self._fulfill(sv, part, name, data, volume_id)
        LOG.info('Volume %s is storage volume %s of %s: target %s LUN %s',
                 volume_id, sv.uri, name, path['target'], path['lun'])

    def detach(self, part: zhmcclient.Partition, name: str,
               volume_id: str) -> None:
        sg = self.find_group(name)
        if sg is None:
            return
        try:
            sv = sg.storage_volumes.find(name=volume_name(volume_id))
        except zhmcclient.NotFound:
            return
        LOG.info('Removing storage volume of volume %s from %s', volume_id,
                 name)
        sv.delete()

    def remove(self, part: zhmcclient.Partition | None, name: str) -> None:
        sg = self.find_group(name)
        if sg is None:
            return
        if part is not None:
            part.pull_full_properties()
            if sg.uri in (part.get_property('storage-group-uris') or []):
                LOG.debug('Detaching storage group %s from %s', sg.name,
                          name)
                part.detach_storage_group(sg)
        LOG.info('Deleting storage group %s', sg.name)
        try:
            sg.delete()
        except zhmcclient.HTTPError as e:
            if e.http_status != 404:
                raise
