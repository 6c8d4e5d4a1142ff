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
"""Golden volumes whose build can never finish: found and removed.

A golden volume is built inside one volume service (``creating``, metadata
``state`` ``building``). If that service dies (SIGKILL, host crash, OOM)
the row stays ``creating`` and Cinder's own start-up clean-up does not see
it (it only cleans what its API started). The cache records who builds a
golden volume and when the build started (metadata ``builder``: the volume
service's host ``host@backend``, as in Cinder's service list;
``build_started``: UTC), and the periodic clean-up, whose first run is the
service's first stats report at start-up, decides by service and age, never
by status alone:

- built by this very service but not by this process: the service was
  restarted during the build (the process that built it is gone);
- built by another service that is down (no heartbeat within Cinder's
  ``service_down_time``) or no longer exists;
- a build older than :data:`BUILD_MAX_SECONDS` while no one holds the
  image's lock (a build hung where no service can notice it).

Such a golden volume is removed under the image's lock, taken without
waiting (a DLM lock of a dead holder expires with its lease; the next
clean-up tries again): its LUN (with any host mapping of the attach that
wrote it), its row, its quota and its share of the pool's allocated
capacity. A removal itself interrupted (``deleting``) is finished the same
way.
"""

from __future__ import annotations

import datetime
from typing import Any

from cinder import coordination
from cinder import exception
from cinder import objects
from oslo_config import cfg
from oslo_log import log as logging
from oslo_utils import timeutils

LOG = logging.getLogger(__name__)

MD_BUILDER = 'builder'
MD_BUILD_STARTED = 'build_started'

#: a build running longer than this with nobody holding the image's lock
#: is dead whatever its builder says (6 hours: generous for any image)
BUILD_MAX_SECONDS = 6 * 3600

_TIME_FORMAT = '%Y-%m-%dT%H:%M:%S.%f'


def now_text(offset_seconds: float = 0) -> str:
    """UTC now (plus ``offset_seconds``) as golden metadata records time."""
    t = timeutils.utcnow() + datetime.timedelta(seconds=offset_seconds)
    return t.strftime(_TIME_FORMAT)


def builder_metadata(driver: Any) -> dict[str, str]:
    """Metadata of a golden volume this service starts to build."""
    return {MD_BUILDER: str(driver.host), MD_BUILD_STARTED: now_text()}


def _started(golden: objects.Volume) -> datetime.datetime | None:
    text = golden.metadata.get(MD_BUILD_STARTED)
    if text:
        try:
            return datetime.datetime.strptime(text, _TIME_FORMAT)
        except ValueError:
            pass
    created = golden.created_at
    return created.replace(tzinfo=None) if created else None


def _service_state(ctx: Any, host: str) -> str | None:
    """Why the volume service ``host`` cannot be building, or None."""
    try:
        service = objects.Service.get_by_args(ctx, host, 'cinder-volume')
    except exception.ServiceNotFound:
        return f'its builder {host} is no longer a Cinder volume service'
    if not service.is_up:
        return (f'its builder {host} is down (no heartbeat within '
                f'service_down_time = {cfg.CONF.service_down_time} s)')
    return None


def dead_build(cache: Any, golden: objects.Volume) -> str | None:
    """Why the build of ``golden`` (``creating``) cannot finish, or None."""
    if golden.id in cache.building:
        return None                     # this process is building it now
    builder = golden.metadata.get(MD_BUILDER)
    me = str(cache.backend.driver.host)
    if builder == me:
        return (f'its builder is this volume service ({me}), restarted '
                f'during the build')
    if builder:
        why = _service_state(golden._context.elevated(), builder)
        if why:
            return why
    started = _started(golden)
    if started is not None:
        age = timeutils.delta_seconds(started, timeutils.utcnow())
        if age > BUILD_MAX_SECONDS:
            return (f'its build started {age:.0f} s ago, more than '
                    f'{BUILD_MAX_SECONDS} s')
    return None


def try_lock(golden: objects.Volume, image_id: str, pool: str | None
             ) -> Any:
    """The image's lock if free at once (released by the caller), or None."""
    lock = coordination.COORDINATOR.get_lock(
        f'dpm-golden-{image_id}-{pool or "default"}')
    return lock if lock.acquire(blocking=False) else None


def remove_dead(cache: Any, golden: objects.Volume, why: str) -> bool:
    """Remove ``golden``, whose build or removal cannot finish.

    True if removed; False if it is gone, finished meanwhile, or its
    image's lock is taken (the next clean-up looks again).
    """
    md = golden.metadata
    image_id = md.get('image_id', '')
    lock = try_lock(golden, image_id, md.get('pool') or None)
    if lock is None:
        LOG.info('Golden volume %(g)s of image %(img)s looks dead (%(why)s) '
                 'but its image\'s lock is taken; the next clean-up looks '
                 'again.', {'g': golden.id, 'img': image_id, 'why': why})
        return False
    try:
        try:
            golden.refresh()
        except exception.VolumeNotFound:
            return False
        if golden.status == 'creating':
            why = dead_build(cache, golden)   # finished or taken over?
            if not why:
                return False
        elif golden.status != 'deleting':
            return False
        LOG.warning('Removing golden volume %(g)s of image %(img)s '
                    '(status %(st)s): %(why)s. Its LUN, quota and '
                    'capacity go with it.',
                    {'g': golden.id, 'img': image_id, 'st': golden.status,
                     'why': why})
        if cache.backend.dependents(golden):
            # Never cloned while building; a removal interrupted after a
            # clone appeared keeps it until its last clone goes.
            golden.status = 'available'
            golden.save()
            cache._set_md(golden, {'full': 'true'})
            return False
        golden.status = 'deleting'
        golden.save()
        return bool(cache._destroy(golden))
    finally:
        lock.release()
