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
"""A volume Nova stopped waiting for: wait for it to settle, delete it.

Nova 34 creates a server's root volume from the image itself
(``nova/virt/block_device.py`` ``_create_volume``) and polls Cinder
``block_device_allocate_retries`` times. When the volume is still
``creating`` or ``downloading`` after that (a golden volume being built
for a large image), ``VolumeNotCreated`` is raised *before* the volume id
is stored in the block device mapping; Nova's one delete attempt is
refused by Cinder (a volume in those states cannot be deleted), and its
later clean-up (``_cleanup_volumes``) no longer knows the volume. The
volume becomes ``available`` later and stays in the user's project,
counted in its quota, with no server.

The compute manager calls the driver's ``failed_spawn_cleanup`` while it
handles that failure (``_build_resources``: ``InvalidBDM`` raised from
``VolumeNotCreated``, which carries the volume id). ``abandoned_volume``
finds it there; ``settle_and_delete`` waits (``[dpm]
volume_settle_timeout``) for the volume to leave ``creating`` or
``downloading`` and deletes it; ``reason`` is the build fault's text
(Nova stores 255 characters of it, the message shown by ``server show``).
"""

import dataclasses
import logging
import time
from typing import Any

from nova import exception as nova_exception
from nova.volume import cinder

LOG = logging.getLogger(__name__)

#: Volume states Nova keeps waiting through and Cinder refuses to delete.
IN_PROGRESS = ('creating', 'downloading')
#: The way out that the fault names (the fault keeps 255 characters).
FIX = ('Fix: more block_device_allocate_retries or cinder-dpm-ephemeral '
       'cache warm')


@dataclasses.dataclass
class Abandoned:
    """What Nova's ``VolumeNotCreated`` said about the volume."""
    volume_id: str
    status: str
    seconds: int


@dataclasses.dataclass
class Outcome:
    """What became of an abandoned volume."""
    volume: Abandoned
    deleted: bool
    status: str          # the last status seen ('' if the volume is gone)
    waited: float        # seconds spent here
    error: str = ''      # why the delete failed, if it did


def abandoned_volume(exc: BaseException | None) -> Abandoned | None:
    """The volume of a ``VolumeNotCreated`` in ``exc``'s chain, still busy.

    None when the failure being handled is not Nova giving up on a volume
    that Cinder is still creating (one that ended ``error`` Nova deletes
    itself).
    """
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, nova_exception.VolumeNotCreated):
            kwargs = getattr(exc, 'kwargs', {}) or {}
            status = str(kwargs.get('volume_status') or '')
            if kwargs.get('volume_id') and status in IN_PROGRESS:
                return Abandoned(volume_id=str(kwargs['volume_id']),
                                 status=status,
                                 seconds=int(kwargs.get('seconds') or 0))
            return None
        exc = exc.__cause__ or exc.__context__
    return None


def _status(api: Any, context: Any, volume_id: str) -> str:
    try:
        return str(api.get(context, volume_id)['status'])
    except nova_exception.VolumeNotFound:
        return ''


def settle_and_delete(context: Any, volume: Abandoned, timeout: float,
                      interval: float, api: Any = None) -> Outcome:
    """Wait up to ``timeout`` s for ``volume`` to settle, then delete it."""
    api = api or cinder.API()
    start = time.monotonic()
    status = volume.status
    while True:
        try:
            status = _status(api, context, volume.volume_id)
        except Exception as exc:
            LOG.warning('Volume %s: status not readable from Cinder (%s); '
                        'trying again', volume.volume_id, exc)
        if status not in IN_PROGRESS:
            break
        if time.monotonic() - start >= timeout:
            return Outcome(volume, deleted=False, status=status,
                           waited=time.monotonic() - start)
        time.sleep(max(0.5, interval))
    waited = time.monotonic() - start
    if not status:
        return Outcome(volume, deleted=True, status='', waited=waited)
    try:
        api.delete(context, volume.volume_id)
    except nova_exception.VolumeNotFound:
        pass
    except Exception as exc:
        LOG.error('Volume %s (%s) could not be deleted: %s; delete it with '
                  'openstack volume delete %s', volume.volume_id, status,
                  exc, volume.volume_id)
        return Outcome(volume, deleted=False, status=status, waited=waited,
                       error=str(exc))
    return Outcome(volume, deleted=True, status=status, waited=waited)


def reason(outcome: Outcome) -> str:
    """The build fault: the volume, its status, the waits, the fix.

    At most 190 characters: Nova prefixes "Build of instance <uuid>
    aborted: " and keeps 255 characters of an instance fault.
    """
    vol = outcome.volume
    head = ('volume %s was %s when Nova gave up (%d s)'
            % (vol.volume_id, vol.status, vol.seconds))
    if outcome.deleted:
        return '%s; deleted. %s' % (head, FIX)
    if outcome.error:
        return '%s; delete failed: delete it. %s' % (head, FIX)
    # Still in progress after [dpm] volume_settle_timeout (in the log).
    return '%s; delete it when it settles. %s' % (head, FIX)
