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
"""Partitions of one CPC subset: names, lifecycle, power state.

A subset (one nova-compute, ``[DEFAULT] host``) owns the partitions named
``OpenStack-<host>-<instance uuid>``; partitions of other subsets and
partitions not made by OpenStack are never listed, started or deleted.
"""

import logging
import re
from typing import Any

import zhmcclient
from nova import exception as nova_exception
from nova.compute import power_state

from nova_shim.virt.dpm import exception
from nova_shim.virt.dpm.hmc import PARTITION_PREFIX

LOG = logging.getLogger(__name__)

_UUID = r'[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}'

# HMC partition "status" values (HMC WS API, Partition object) to Nova.
POWER_STATES = {
    'active': power_state.RUNNING,
    'degraded': power_state.RUNNING,
    'stopped': power_state.SHUTDOWN,
    'reservation-error': power_state.SHUTDOWN,
    'paused': power_state.PAUSED,
    'terminated': power_state.CRASHED,
    'starting': power_state.NOSTATE,
    'stopping': power_state.NOSTATE,
    'communications-not-active': power_state.NOSTATE,
    'status-check': power_state.NOSTATE,
}
RUNNING_STATES = ('active', 'degraded')
# Stop Partition is accepted in these states (HMC WS API, Stop Partition).
STOPPABLE_STATES = ('active', 'degraded', 'paused', 'terminated',
                    'starting', 'status-check', 'reservation-error')


def partition_name(host: str, instance_uuid: str) -> str:
    return '%s%s-%s' % (PARTITION_PREFIX, host, instance_uuid)


def description(host: str) -> str:
    return 'OpenStack CPCSubset=%s' % host


def job_gone(exc: zhmcclient.HTTPError) -> bool:
    """The job's status answered 404: its result was deleted unread.

    zhmcclient's ``wait_for_completion`` deletes a completed job's status
    (Delete Completed Job Status) right after reading it; when that
    DELETE's answer is lost it polls the job again, and the HMC answers
    404 for a job it has already deleted. The operation did complete; how
    it ended is read from the object itself.
    """
    return (exc.http_status == 404 and
            (getattr(exc, 'request_uri', '') or '').startswith('/api/jobs/'))


class Partitions:
    """The partitions of one subset of one CPC."""

    def __init__(self, cpc: zhmcclient.Cpc, host: str,
                 start_timeout: int, stop_timeout: int) -> None:
        self.cpc = cpc
        self.host = host
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self._name_re = re.compile(
            '^%s(%s)$' % (re.escape(PARTITION_PREFIX + host + '-'), _UUID))

    def name(self, instance_uuid: str) -> str:
        return partition_name(self.host, instance_uuid)

    # -- lookup ------------------------------------------------------------
    def find(self, instance_uuid: str, fresh: bool = False
             ) -> zhmcclient.Partition | None:
        """The instance's partition, or None.

        zhmcclient finds a name in its name-to-URI cache, which a delete
        whose answer was lost leaves holding the deleted partition (the
        next GET of it answers 404, ``CeasedExistence``); ``fresh`` asks
        the HMC instead.
        """
        if fresh:
            self.cpc.partitions.invalidate_cache()
        try:
            return self.cpc.partitions.find(name=self.name(instance_uuid))
        except zhmcclient.NotFound:
            return None

    def get(self, instance_uuid: str) -> zhmcclient.Partition:
        """The instance's partition; InstanceNotFound when it is gone."""
        part = self.find(instance_uuid)
        if part is None:
            raise nova_exception.InstanceNotFound(instance_id=instance_uuid)
        return part

    def owned(self, full_properties: bool = False
              ) -> dict[str, zhmcclient.Partition]:
        """This subset's partitions by instance uuid (one HMC request)."""
        out = {}
        for part in self.cpc.partitions.list(
                full_properties=full_properties):
            match = self._name_re.match(part.name)
            if match:
                out[match.group(1)] = part
        return out

    def uuids(self) -> list[str]:
        """Instance uuids of this subset's partitions."""
        return list(self.owned())

    # -- lifecycle ---------------------------------------------------------
    def create(self, instance_uuid: str, vcpus: int, memory_mb: int
               ) -> zhmcclient.Partition:
        """A stopped partition with the flavor's IFLs and memory."""
        props = {
            'name': self.name(instance_uuid),
            'description': description(self.host),
            'ifl-processors': vcpus,
            'initial-memory': memory_mb,
            'maximum-memory': memory_mb,
            'processor-mode': 'shared',
        }
        LOG.info('Creating partition %s (%d IFL, %d MiB) on CPC %s',
                 props['name'], vcpus, memory_mb, self.cpc.name)
        return self.cpc.partitions.create(props)

    @staticmethod
    def status(part: zhmcclient.Partition) -> str:
        part.pull_full_properties()
        return part.get_property('status')

    def start(self, part: zhmcclient.Partition) -> None:
        status = self.status(part)
        if status in RUNNING_STATES:
            LOG.debug('Partition %s is already %s', part.name, status)
            return
        if status in ('paused', 'terminated', 'reservation-error'):
            # Start Partition needs a stopped partition (HMC WS API).
            self.stop(part)
        LOG.info('Starting partition %s', part.name)
        try:
            part.start(operation_timeout=self.start_timeout,
                       status_timeout=self.start_timeout)
        except zhmcclient.HTTPError as e:
            if not job_gone(e):
                raise
            LOG.info('Partition %s: the Start Partition job was gone '
                     'before its result was read; looking at the '
                     'partition instead (%s)', part.name, e)
        status = self.status(part)
        if status not in RUNNING_STATES:
            raise exception.PartitionError(
                name=part.name,
                reason='status %s after Start Partition (expected active)'
                       % status)

    def stop(self, part: zhmcclient.Partition) -> None:
        status = self.status(part)
        if status not in STOPPABLE_STATES:
            LOG.debug('Partition %s is %s: nothing to stop', part.name,
                      status)
            return
        LOG.info('Stopping partition %s (status %s)', part.name, status)
        try:
            part.stop(operation_timeout=self.stop_timeout,
                      status_timeout=self.stop_timeout)
        except zhmcclient.HTTPError as e:
            # 409,1: the partition's status does not allow the operation,
            # i.e. it stopped meanwhile (HMC WS API, Stop Partition).
            if e.http_status == 409 and e.reason == 1:
                LOG.debug('Partition %s was already stopped: %s', part.name,
                          e)
                return
            if not job_gone(e):
                raise
            status = self.status(part)
            if status in STOPPABLE_STATES:
                raise exception.PartitionError(
                    name=part.name,
                    reason='status %s after Stop Partition (expected '
                           'stopped)' % status)

    def delete(self, part: zhmcclient.Partition) -> None:
        self.stop(part)
        LOG.info('Deleting partition %s', part.name)
        try:
            part.delete()
        except zhmcclient.HTTPError as e:
            if e.http_status != 404:
                raise
            LOG.debug('Partition %s was already deleted', part.name)

    def power_state(self, part: zhmcclient.Partition) -> int:
        return POWER_STATES.get(self.status(part), power_state.NOSTATE)

    def info(self, part: zhmcclient.Partition) -> dict[str, Any]:
        part.pull_full_properties()
        return {k: part.get_property(k) for k in (
            'name', 'status', 'object-id', 'ifl-processors',
            'initial-memory', 'boot-device')}
