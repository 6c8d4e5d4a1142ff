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
"""Golden LUNs mapped to the volume host with one CLI command each way.

A golden build writes the image through the volume host: Cinder's
``_attach_volume`` calls the driver's ``initialize_connection`` with the
host's connector properties, and ``terminate_connection`` after. The
in-tree Storwize FC code makes the host object every time and removes it
with its last mapping, and asks the array what it could know: ``lshost``
(and ``lshost`` of every host when its cache is empty), ``mkhost``,
``addhostport`` per further port, ``lsvdisk``, ``lsvdiskhostmap``,
``lshostvdiskmap`` (a free SCSI id), ``mkvdiskhostmap``, ``lsfabric``;
then three ``lsvdiskhostmap``, ``rmvdiskhostmap``, ``lshostvdiskmap`` and
``rmhost``. 14 commands or more per build, each a round trip to the
cluster.

Golden volumes are attached by the volume host alone. So for them the
first attach with given host ports runs the in-tree code, and the host
object it made (or found) is remembered with the target ports it
answered, and kept. Every later attach is one ``mkvdiskhostmap -host H
VDISK``: without ``-scsi`` the cluster assigns the next available SCSI
LUN id and returns it (IBM, mkvdiskhostmap: "When you issue the
mkvdiskhostmap command, the assigned SCSI LUN ID number is returned").
The detach is one ``rmvdiskhostmap -host H VDISK``. Should either fail
(the host object removed meanwhile, by hand or by the in-tree detach of
another volume of this host; an answer lost), the in-tree code runs
instead, as on the first attach.

What the operator sees: one host object per volume host, named as the
in-tree driver names it (the host name and eight digits), with the volume
host's ports. It holds mappings only while a build writes, and it stays
between builds, like a host defined by hand.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from oslo_log import log as logging

LOG = logging.getLogger(__name__)

#: Map golden LUNs with one command each way once the host object is
#: known. False only for the benchmark's A/B
#: (``--ab svc.host_maps.LEAN=false``): the in-tree commands every time.
LEAN = True

InTree = Callable[[Any, dict[str, Any]], dict[str, Any]]


def _ports(connector: dict[str, Any]) -> frozenset[str]:
    return frozenset(w.upper() for w in connector.get('wwpns') or ())


class GoldenHostMaps:
    """The volume host's host object, for golden LUNs only."""

    def __init__(self, driver: Any) -> None:
        self.driver = driver
        self._lock = threading.Lock()
        #: host ports -> (host object name, target port WWPNs)
        self._hosts: dict[frozenset[str], tuple[str, list[str]]] = {}

    def applies(self, volume: Any, connector: dict[str, Any] | None) -> bool:
        cache = getattr(self.driver, 'image_cache', None)
        return bool(LEAN and connector and _ports(connector) and
                    cache is not None and cache.is_golden(volume))

    def _known(self, connector: dict[str, Any]
               ) -> tuple[str, list[str]] | None:
        with self._lock:
            return self._hosts.get(_ports(connector))

    def _forget(self, connector: dict[str, Any]) -> None:
        with self._lock:
            self._hosts.pop(_ports(connector), None)

    def initialize(self, volume: Any, connector: dict[str, Any],
                   in_tree: InTree) -> dict[str, Any]:
        """``initialize_connection`` of a golden volume."""
        known = self._known(connector)
        if known is not None:
            host, targets = known
            ssh = self.driver._helpers.ssh
            try:
                lun = ssh.run_ssh_check_created(
                    ['svctask', 'mkvdiskhostmap', '-host', f'"{host}"',
                     f'"{volume.name}"'])
            except Exception:
                LOG.info('Golden volume %(vol)s: mapping it to host '
                         '%(host)s failed; mapping it the in-tree way.',
                         {'vol': volume.id, 'host': host}, exc_info=True)
                self._forget(connector)
            else:
                return self._connection(volume, connector, int(lun),
                                        targets)
        conn = in_tree(volume, connector)
        host = self._host_of(connector)
        if host is not None:
            with self._lock:
                self._hosts[_ports(connector)] = (
                    host, list(conn['data'].get('target_wwn') or []))
        return conn

    def terminate(self, volume: Any, connector: dict[str, Any],
                  in_tree: Callable[..., Any], **kwargs: Any) -> Any:
        """``terminate_connection`` of a golden volume: the host stays."""
        known = self._known(connector)
        if known is not None:
            try:
                self.driver._helpers.ssh.rmvdiskhostmap(known[0],
                                                        volume.name)
                return None
            except Exception:
                LOG.info('Golden volume %(vol)s: unmapping it from host '
                         '%(host)s failed; unmapping it the in-tree way.',
                         {'vol': volume.id, 'host': known[0]},
                         exc_info=True)
                self._forget(connector)
        return in_tree(volume, connector, **kwargs)

    def _host_of(self, connector: dict[str, Any]) -> str | None:
        """The host object the in-tree code just used (its own cache)."""
        info = self.driver._helpers.Host_connector_info.get('FC', {})
        names = {info.get(w) for w in _ports(connector)}
        names.discard(None)
        return names.pop() if len(names) == 1 else None

    @staticmethod
    def _connection(volume: Any, connector: dict[str, Any], lun: int,
                    targets: list[str]) -> dict[str, Any]:
        """The connection info the in-tree code returns for FC."""
        return {'driver_volume_type': 'fibre_channel',
                'data': {'target_discovered': False, 'target_lun': lun,
                         'volume_id': volume.id,
                         'target_wwn': list(targets),
                         'initiator_target_map': {
                             str(w): list(targets)
                             for w in connector['wwpns']}}}
