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

Golden volumes are attached by the volume host alone. So for them this
module keeps one host object per volume host, under a name it can work
out again after a restart: the host name as the in-tree driver cleans it,
then ``-dpm-`` and eight hex digits of a hash of the host's ports. A
golden is mapped with one ``mkvdiskhostmap -host H VDISK``: without
``-scsi`` the cluster assigns the next available SCSI LUN id and returns
it (IBM, mkvdiskhostmap: "When you issue the mkvdiskhostmap command, the
assigned SCSI LUN ID number is returned"). Only if the host object is not
there is it made (``mkhost -force -fcwwpn P1:P2 -name H``, all ports in
one command) and the mapping made again. The target ports for the
connection info are asked once per process (``lsfabric -host H``, as the
in-tree code does; all the nodes' ports if none is logged in). The detach
is one ``rmvdiskhostmap -host H VDISK``; the host object stays.

Anything unexpected (the ports already on another host object, made by
hand or by the in-tree code for a non-golden volume; an answer lost)
hands the attach or the detach to the in-tree code, unchanged. A golden
is unmapped the way it was mapped: the module remembers which goldens it
mapped itself, and any other is detached the in-tree way. The one-command
unmap alone cannot tell: when its session drops and the retry answers
"does not exist", that means "the lost attempt removed it" only if the
mapping was there (:mod:`.ssh`); for a golden the in-tree code mapped to
a host object of its own (the kept one not made yet when the short way
failed) it would read as success and leave the in-tree mapping on the
array (found by the fault campaign).

What the operator sees: one host object per volume host, with its ports
and, between builds, no mappings. It may be removed by hand at any time;
the next build makes it again.
"""

from __future__ import annotations

import hashlib
import re
import threading
import unicodedata
from collections.abc import Callable
from typing import Any

from oslo_log import log as logging
from oslo_utils import excutils

LOG = logging.getLogger(__name__)

#: Map golden LUNs with one command each way once the host object is
#: known. False only for the benchmark's A/B
#: (``--ab svc.host_maps.LEAN=false``): the in-tree commands every time.
LEAN = True

InTree = Callable[[Any, dict[str, Any]], dict[str, Any]]


def _ports(connector: dict[str, Any]) -> frozenset[str]:
    return frozenset(w.upper() for w in connector.get('wwpns') or ())


def host_name(connector: dict[str, Any]) -> str:
    """The kept host object's name for ``connector``'s host and ports.

    The host name cleaned as the in-tree driver cleans it (ASCII; other
    than letters, digits, space, ``.``, ``-`` and ``_`` replaced by ``-``;
    ``_`` in front unless it starts with a letter), at most 50 characters,
    then ``-dpm-`` and 8 hex digits of the ports' SHA-256: 63 characters
    at most, the array's limit.
    """
    name = unicodedata.normalize('NFKD', str(connector.get('host') or
                                             'cinder')).encode(
        'ascii', 'replace').decode('ascii')
    name = re.sub(r'[^A-Za-z0-9 ._-]', '-', name)
    if not re.match('^[A-Za-z]', name):
        name = '_' + name
    digest = hashlib.sha256(
        ':'.join(sorted(_ports(connector))).encode()).hexdigest()[:8]
    return f'{name[:50]}-dpm-{digest}'


def _not_found(exc: Exception) -> bool:
    text = str(getattr(exc, 'msg', '') or exc)
    return 'CMMVC5753E' in text or 'CMMVC5754E' in text


class GoldenHostMaps:
    """The volume host's host object, for golden LUNs only."""

    def __init__(self, driver: Any) -> None:
        self.driver = driver
        self._lock = threading.Lock()
        #: kept host object name -> target port WWPNs (asked once)
        self._targets: dict[str, list[str]] = {}
        #: (host, volume id) of the goldens mapped here the short way
        self._mapped: set[tuple[str, str]] = set()

    def applies(self, volume: Any, connector: dict[str, Any] | None) -> bool:
        cache = getattr(self.driver, 'image_cache', None)
        return bool(LEAN and connector and _ports(connector) and
                    cache is not None and cache.is_golden(volume))

    def initialize(self, volume: Any, connector: dict[str, Any],
                   in_tree: InTree) -> dict[str, Any]:
        """``initialize_connection`` of a golden volume."""
        host = host_name(connector)
        try:
            lun = self._map(host, volume, connector)
        except Exception:
            LOG.info('Golden volume %(vol)s: mapping it to host %(host)s '
                     'failed; mapping it the in-tree way.',
                     {'vol': volume.id, 'host': host}, exc_info=True)
            return in_tree(volume, connector)
        try:
            targets = self._target_ports(host)
        except Exception:
            with excutils.save_and_reraise_exception():
                self._unmap_quietly(host, volume)
        with self._lock:
            self._mapped.add((host, volume.id))
        return {'driver_volume_type': 'fibre_channel',
                'data': {'target_discovered': False, 'target_lun': lun,
                         'volume_id': volume.id,
                         'target_wwn': list(targets),
                         'initiator_target_map': {
                             str(w): list(targets)
                             for w in connector['wwpns']}}}

    def terminate(self, volume: Any, connector: dict[str, Any],
                  in_tree: Callable[..., Any], **kwargs: Any) -> Any:
        """``terminate_connection`` of a golden volume: the host stays.

        Only for a golden mapped here the short way; any other the
        in-tree way (see the module's doc).
        """
        host = host_name(connector)
        with self._lock:
            short = (host, volume.id) in self._mapped
            self._mapped.discard((host, volume.id))
        if not short:
            return in_tree(volume, connector, **kwargs)
        try:
            self.driver._helpers.ssh.rmvdiskhostmap(host, volume.name)
            return None
        except Exception:
            LOG.info('Golden volume %(vol)s: unmapping it from host '
                     '%(host)s failed; unmapping it the in-tree way.',
                     {'vol': volume.id, 'host': host}, exc_info=True)
        return in_tree(volume, connector, **kwargs)

    def _map(self, host: str, volume: Any, connector: dict[str, Any]) -> int:
        ssh = self.driver._helpers.ssh
        cmd = ['svctask', 'mkvdiskhostmap', '-host', f'"{host}"',
               f'"{volume.name}"']
        try:
            return int(ssh.run_ssh_check_created(cmd))
        except Exception as exc:
            if not _not_found(exc):
                raise
        # the host object is not there (yet): made with all its ports
        try:
            ssh.run_ssh_check_created(
                ['svctask', 'mkhost', '-force', '-fcwwpn',
                 ':'.join(sorted(_ports(connector))), '-name', f'"{host}"'])
        except Exception:
            # made meanwhile by another volume service of this host, or
            # the ports are on another host object: the map says which
            LOG.debug('Making host %s failed.', host, exc_info=True)
        with self._lock:
            self._targets.pop(host, None)
        return int(ssh.run_ssh_check_created(cmd))

    def _target_ports(self, host: str) -> list[str]:
        with self._lock:
            known = self._targets.get(host)
        if known is not None:
            return known
        helpers = self.driver._helpers
        ports = helpers.get_conn_fc_wwpns(host)
        if not ports:
            # none logged in to the host's ports: all the nodes' ports, as
            # the in-tree code answers then
            for node in self.driver._state['storage_nodes'].values():
                ports.extend(node['WWPN'])
        with self._lock:
            self._targets[host] = list(ports)
        return list(ports)

    def _unmap_quietly(self, host: str, volume: Any) -> None:
        try:
            self.driver._helpers.ssh.rmvdiskhostmap(host, volume.name)
        except Exception:
            LOG.exception('Golden volume %(vol)s: removing its mapping to '
                          'host %(host)s failed; it may stay on the array.',
                          {'vol': volume.id, 'host': host})
