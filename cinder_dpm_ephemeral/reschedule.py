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
"""Cinder's clean-up after it reschedules a failed create.

When a create fails, Cinder's volume manager (``OnFailureRescheduleTask``
in ``cinder/volume/flows/manager/create_volume.py``) clears the volume's
host, casts the create to the scheduler again, and only then calls the
driver's ``delete_volume`` "just in case volume was already created at
the backend". With one backend the next attempt lands on the same volume
service and may create the volume's LUN, under the same name, while that
delete runs (its retries take seconds) or before it starts: the delete
then removes the *new* attempt's LUN and the volume becomes ``available``
with nothing behind it. Skipping that delete is no answer either: once
the attempts are used up the volume is left in ``error`` with no host,
and Cinder deletes such a volume without asking the driver, so the
failed attempt's LUN (whose create answer was lost) would leak. Both
found by the fault campaign (doc/faults.md).

So the drivers serialize the two per volume (:func:`lock`, a Cinder
coordination lock, distributed with a DLM): creates run under it, and
the clean-up after a reschedule takes it, then looks at the database:
if the scheduler has already given the volume a host again, a newer
attempt owns the name and nothing is deleted (a leftover then makes that
attempt fail, and is removed by a later clean-up or the volume's
delete); otherwise the failed attempt's leftovers are removed before any
newer attempt can create anything.
"""

from __future__ import annotations

from typing import Any

from cinder import context as cinder_context
from cinder import coordination
from cinder import exception
from cinder import objects
from oslo_log import log as logging

LOG = logging.getLogger(__name__)


def lock(volume: Any) -> Any:
    """The lock a volume's creates and its reschedule clean-up share."""
    return coordination.COORDINATOR.get_lock(f'dpm-create-{volume.id}')


class LockedCreatesMixin:
    """A driver's creates under the volume's :func:`lock` (first base)."""

    def create_volume(self, volume: Any) -> Any:
        with lock(volume):
            return super().create_volume(volume)  # type: ignore[misc]

    def clone_image(self, context: Any, volume: Any, image_location: Any,
                    image_meta: dict, image_service: Any) -> tuple:
        with lock(volume):
            return super().clone_image(  # type: ignore[misc]
                context, volume, image_location, image_meta, image_service)


def rescheduled_create(volume: Any) -> bool:
    """True for the delete Cinder runs after rescheduling a create.

    Only then does a volume reach the driver's ``delete_volume`` with no
    host (cleared by the reschedule) while ``creating``; a volume the
    user deletes through a volume service always has its host.
    """
    return not volume.get('host') and volume.get('status') == 'creating'


def newer_attempt(volume: Any) -> bool:
    """Whether the scheduler has sent the create somewhere again."""
    try:
        fresh = objects.Volume.get_by_id(
            cinder_context.get_admin_context(), volume.id)
    except exception.VolumeNotFound:
        # Deleted meanwhile: no attempt can follow. A volume in error
        # with no host is deleted without the driver, so what the failed
        # attempt made is removed here or nowhere.
        return False
    if fresh.host:
        LOG.info('Volume %s: a newer create attempt is scheduled; the '
                 'clean-up of the failed one deletes nothing.', volume.id)
        return True
    return False
