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
from oslo_utils import excutils

from cinder_dpm_ephemeral import emulation
from cinder_dpm_ephemeral.image_cache import driver as cache_driver
from cinder_dpm_ephemeral import reschedule
from cinder_dpm_ephemeral.svc import clones
from cinder_dpm_ephemeral.svc import helpers
from cinder_dpm_ephemeral.svc import host_maps
from cinder_dpm_ephemeral.svc import ssh as svc_ssh

LOG = logging.getLogger(__name__)


@interface.volumedriver
class StorwizeEphemeralDriver(reschedule.LockedCreatesMixin,
                              cache_driver.GoldenCacheDriverMixin,
                              emulation.EmulatedDataPathMixin,
                              storwize_svc_fc.StorwizeSVCFCDriver):
    """Storwize/SVC FC driver for DPM ephemeral root volumes.

    Version history:

    .. code-block:: none

        0.1.0 - Walking skeleton: in-tree FC driver with the emulation data
                path (dpm_ephemeral_emulator_state_dir).
        0.2.0 - clone_image: golden volume per image and pool, FlashCopy
                no-copy thin clones.
        0.2.1 - CLI commands: a lost SSH session is an error (not an empty
                success); busy-cluster answers and lost sessions of
                listings and removals retried (svc/ssh.py). A failed
                initialize_connection removes the mapping and host it
                may have made. The clean-up Cinder runs after rescheduling
                a failed create leaves the LUN to the volume's own delete.
        0.2.2 - Busy answers retried for commands run with
                check_exit_code=False too (lsvdisk); the clean-up after a
                reschedule removes the failed attempt's LUN when the
                volume was deleted meanwhile.
        0.2.3 - A new vdisk's I/O group is asked of the array (lsiogrp)
                only when the volume type allows more than one
                (svc/helpers.py).
        0.2.4 - Golden builds attach with the volume service's connector
                properties when they are at most 10 minutes old, and ask
                os-brick only when there are none or the attach fails.
        0.2.5 - Emulated data path: the volume service's own attaches map
                the LUN to the volume host on the array
                (initialize_connection with the emulated host's ports or
                SDC) and unmap it after, as on a real volume host.
        0.2.6 - Golden LUNs are mapped to the volume host with one
                mkvdiskhostmap and unmapped with one rmvdiskhostmap; the
                volume host's host object is kept under a name derived
                from its ports (svc/host_maps.py).
        0.2.7 - A golden mapped the in-tree way (the one-command map
                failed) is unmapped the in-tree way.
    """

    VERSION = '0.2.8'
    CI_WIKI_NAME = 'cinder-dpm-ephemeral_CI'

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # the in-tree helpers, asking lsiogrp only when there is a choice
        self._master_backend_helpers = helpers.StorwizeEphemeralHelpers(
            self._run_ssh)
        self._helpers = self._master_backend_helpers
        self._init_golden_cache(clones.SVCClones(self))
        self._golden_host_maps = host_maps.GoldenHostMaps(self)

    @staticmethod
    def get_driver_options() -> list[Any]:
        return (storwize_svc_fc.StorwizeSVCFCDriver.get_driver_options() +
                cache_driver.GoldenCacheDriverMixin.cache_driver_options())

    def _ssh_execute(self, sshpool: Any, command: str,
                     check_exit_code: bool = True,
                     attempts: int = 1) -> tuple[str, str]:
        """One CLI command; see :mod:`cinder_dpm_ephemeral.svc.ssh`."""
        def once() -> tuple[str, str]:
            with sshpool.item() as ssh:
                return svc_ssh.execute(ssh, command, check_exit_code)
        return svc_ssh.run(once, command)

    def initialize_connection(self, volume: Any, connector: Any) -> Any:
        """The in-tree connection; a golden's with one command.

        A golden volume is mapped to the volume host's kept host object
        with one ``mkvdiskhostmap`` (:mod:`.host_maps`, which makes that
        host object when it is missing); any other volume, and a golden
        whose short way failed, the in-tree way
        (:meth:`_initialize_in_tree`).
        """
        if self._golden_host_maps.applies(volume, connector):
            return self._golden_host_maps.initialize(
                volume, connector, self._initialize_in_tree)
        return self._initialize_in_tree(volume, connector)

    def terminate_connection(self, volume: Any, connector: Any,
                             **kwargs: Any) -> Any:
        """A golden's mapping removed with one command; the host stays."""
        if self._golden_host_maps.applies(volume, connector):
            return self._golden_host_maps.terminate(
                volume, connector, super().terminate_connection, **kwargs)
        return super().terminate_connection(volume, connector, **kwargs)

    def _initialize_in_tree(self, volume: Any, connector: Any) -> Any:
        """The in-tree connection, undone if it fails half-way.

        The in-tree code makes the host (``mkhost``), then the mapping
        (``mkvdiskhostmap``), and cleans up nothing when a later step
        fails: the host, or a mapping whose answer was lost, stays with
        no attachment to own it. They are removed the way a detach
        removes them (the mapping, then the host if nothing else is
        mapped to it). Volumes here are attached once (DPM root and
        ephemeral volumes are not multiattach).
        """
        try:
            return super().initialize_connection(volume, connector)
        except Exception:
            with excutils.save_and_reraise_exception():
                try:
                    super().terminate_connection(volume, connector)
                except Exception:
                    LOG.exception('Volume %s: undoing a failed connection '
                                  'failed; a host or host mapping may be '
                                  'left on the array.', volume.id)

    def delete_volume(self, volume: Any) -> None:
        if reschedule.rescheduled_create(volume):
            # see cinder_dpm_ephemeral.reschedule
            with reschedule.lock(volume):
                if not reschedule.newer_attempt(volume):
                    super().delete_volume(volume)
            return
        super().delete_volume(volume)

    def _emulated_lun_id(self, volume: Any,
                         connection: dict[str, Any] | None,
                         connector: dict[str, Any] | None) -> str:
        return emulation.svc_lun_id(self, volume, connection, connector)
