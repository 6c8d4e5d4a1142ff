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
"""A golden build's detach, beside the first clone instead of before it.

A golden LUN is attached to the volume host while the image is written
onto it. Once the image is durable there (the raw writer's ``fsync``,
``qemu-img``'s flush as it closes the device), the detach (os-brick
disconnects the device; the array removes the host mapping: one
``rmvdiskhostmap`` on the SVC, one ``removeMappedSdc`` on PowerFlex) no
longer guards the data, only the host's view of the LUN. With
``dpm_ephemeral_detach_beside_clone`` (the default) the golden is marked
ready first and the detach runs beside the first clone's array calls; the
volume that asked for the build becomes available only once both are done
(:func:`wait`), so an API user never sees the mapping.

What would leave a mapping behind is recorded first: the golden's metadata
``detach_pending`` names the volume service that owes the detach, written
with ``state: ready`` in one update. It is removed once the detach is
done. A detach that fails, or a service that restarts before it, leaves
the record: that service's periodic clean-up (its first run is at start-up)
removes the mapping with this host's connector properties and then the
record (:func:`redo`). Removing a golden waits for its detach; the
array's delete takes any mapping with it in any case.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cinder import exception
from cinder import objects
from oslo_log import log as logging

from cinder_dpm_ephemeral.image_cache import writer

LOG = logging.getLogger(__name__)

#: the volume service (``host@backend``) that still owes the golden's
#: build its detach
MD_DETACH_PENDING = 'detach_pending'


def wanted(cache: Any) -> bool:
    """Whether builds detach beside the first clone."""
    return bool(cache.configuration.safe_get(
        'dpm_ephemeral_detach_beside_clone'))


def owed_by(cache: Any) -> dict[str, str]:
    """The metadata recording that this service owes a detach."""
    return {MD_DETACH_PENDING: str(cache.backend.driver.host)}


def start(cache: Any, golden: objects.Volume,
          later: list[Callable[[], None]]) -> None:
    """Run the detaches in ``later`` beside the caller (once recorded)."""
    if later:
        fns = list(later)
        later.clear()
        cache.detaching[golden.id] = writer.Soon(_detach, cache, golden.id,
                                                 golden._context, fns)


def run_now(golden: objects.Volume,
            later: list[Callable[[], None]]) -> None:
    """Run the detaches in ``later`` here; errors are logged only.

    For a build that failed after its write, or whose golden could not be
    marked ready: the caller is raising its own error.
    """
    while later:
        fn = later.pop()
        try:
            fn()
        except Exception:
            LOG.exception('Golden volume %s: detaching it from this host '
                          'failed; removing the golden removes its host '
                          'mapping.', golden.id)


def _detach(cache: Any, golden_id: str, ctx: Any,
            fns: list[Callable[[], None]]) -> bool:
    """Detach, then drop the record; False (logged) if the detach failed."""
    try:
        for fn in fns:
            fn()
    except Exception:
        LOG.warning('Golden volume %s: its detach from this host after '
                    'its build failed; its host mapping stays until the '
                    'periodic clean-up removes it (metadata %s).',
                    golden_id, MD_DETACH_PENDING, exc_info=True)
        return False
    forget(cache, ctx, golden_id)
    return True


def forget(cache: Any, ctx: Any, golden_id: str) -> None:
    """Drop the record of an owed detach (none: nothing to do)."""
    try:
        cache.db.volume_metadata_delete(ctx, golden_id, MD_DETACH_PENDING)
    except (exception.VolumeNotFound, exception.VolumeMetadataNotFound):
        pass        # removed meanwhile, with its metadata


def wait(cache: Any, golden_id: str) -> bool | None:
    """Wait for the golden's detach if one is under way in this process.

    True: done; False: failed (left to the clean-up); None: none under way.
    """
    soon = cache.detaching.get(golden_id)
    if soon is None:
        return None
    try:
        return bool(soon.result())
    finally:
        # only once it is done: until then the clean-up leaves it alone
        cache.detaching.pop(golden_id, None)


def redo(cache: Any, golden: objects.Volume) -> bool:
    """Remove the host mapping a build of this service left; True if done.

    Only for a golden whose ``detach_pending`` names this service and
    whose detach is not under way in this process.
    """
    me = str(cache.backend.driver.host)
    if (golden.metadata.get(MD_DETACH_PENDING) != me or
            golden.id in cache.detaching or writer.is_held(golden.id)):
        return False
    golden.refresh()            # (a detach that just ended dropped it)
    if golden.metadata.get(MD_DETACH_PENDING) != me:
        return False
    driver = cache.backend.driver
    LOG.info('Golden volume %s: removing the host mapping its build left '
             '(its detach failed or this service restarted before it).',
             golden.id)
    properties = (writer.recent_connector(driver) or
                  writer.connector_properties(driver))
    driver.unmap_from_volume_host(golden._context, golden, properties)
    forget(cache, golden._context, golden.id)
    return True
