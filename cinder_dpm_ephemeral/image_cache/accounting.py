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
"""Golden volumes in Cinder's books: quota and allocated capacity.

Golden volumes are counted exactly as Cinder counts the volumes of its own
image-volume cache (``VolumeManager._clone_image_volume``): quota
(``volumes``, ``gigabytes`` and the per-type resources) is reserved and
committed for the internal tenant when the golden volume row is created,
and released when the cache removes it (a golden removed through the API
is released by Cinder's own delete). ``cinder-manage quota check`` then
finds the internal tenant's usage equal to its volumes.

The pool's ``allocated_capacity_gb`` (what the scheduler weighs, and what
``over_subscription_ratio`` is checked against) is the volume manager's
own counter, which it keeps for the volumes it creates and deletes itself;
a golden volume is created by the driver, so the manager is told here, as
soon as the golden volume exists and when it is gone. (At start the
manager recounts every volume row of the host, golden ones included.)
"""

from __future__ import annotations

import gc
import sys
from typing import Any

from cinder import exception
from cinder import objects
from cinder import quota
from oslo_log import log as logging

LOG = logging.getLogger(__name__)
QUOTAS = quota.QUOTAS


def _opts(golden: objects.Volume, sign: int) -> dict[str, int]:
    opts: dict[str, Any] = {'volumes': sign, 'gigabytes': sign * golden.size}
    QUOTAS.add_volume_type_opts(golden._context, opts,
                                golden.volume_type_id)
    return opts


def reserve(ictx: Any, golden: objects.Volume) -> list | None:
    """Reserve the internal tenant's quota for ``golden`` (not yet saved).

    Raises :class:`cinder.exception.OverQuota` with the usual detail when
    the internal tenant has no room; the caller falls back to Cinder's own
    path then.
    """
    return QUOTAS.reserve(ictx, project_id=ictx.project_id,
                          **_opts(golden, 1))


def commit(ictx: Any, reservations: list | None) -> None:
    if reservations:
        QUOTAS.commit(ictx, reservations, project_id=ictx.project_id)


def rollback(ictx: Any, reservations: list | None) -> None:
    if reservations:
        QUOTAS.rollback(ictx, reservations, project_id=ictx.project_id)


def release(golden: objects.Volume) -> None:
    """Give back the quota of a golden volume the cache removes."""
    ctx = golden._context
    try:
        res = QUOTAS.reserve(ctx, project_id=golden.project_id,
                             **_opts(golden, -1))
        QUOTAS.commit(ctx, res, project_id=golden.project_id)
    except exception.CinderException:
        LOG.exception('Could not release the quota of golden volume %s; '
                      '"cinder-manage quota sync" repairs it.', golden.id)


class CapacityBook:
    """The volume manager's ``allocated_capacity_gb``, told by the driver.

    Cinder hands a driver no reference to its manager. The manager that
    owns ``driver`` is taken from the stack when the manager sets the
    driver up (:meth:`bind`, from the driver's ``do_setup``, which the
    manager's ``init_host`` calls), since spare LUNs are made in the
    background, in no manager call. Failing that it is looked for among
    the callers on the stack (a build or removal inside create_volume,
    delete_volume, the stats report) and among the objects that refer to
    the driver. Without one (the operator's command, a driver used on its
    own) nothing is counted; the manager counts every volume of its host
    again when it starts.
    """

    def __init__(self, driver: Any) -> None:
        self._driver = driver
        self._manager: Any = None

    def bind(self) -> None:
        """Remember the volume manager that is calling the driver now."""
        if self._manager is None:
            self._manager = self._on_stack()

    def _owns(self, obj: Any) -> bool:
        from cinder.volume import manager as volume_manager
        return (isinstance(obj, volume_manager.VolumeManager) and
                obj.driver is self._driver)

    def _on_stack(self) -> Any:
        frame = sys._getframe(2)
        while frame is not None:
            obj = frame.f_locals.get('self')
            for candidate in (obj, getattr(obj, 'manager', None)):
                if candidate is not None and self._owns(candidate):
                    return candidate
            frame = frame.f_back
        return None

    def _referring(self) -> Any:
        for ref in gc.get_referrers(self._driver):
            owners = [ref] + (gc.get_referrers(ref)
                              if isinstance(ref, dict) else [])
            for owner in owners:
                if self._owns(owner):
                    return owner
        return None

    def _find_manager(self) -> Any:
        if self._manager is None:
            self._manager = self._on_stack() or self._referring()
            if self._manager is None:
                LOG.info('No volume manager owns this driver: golden '
                         'volumes are not added to allocated_capacity_gb '
                         'until the volume service counts them at its '
                         'next start.')
        return self._manager

    def add(self, golden: objects.Volume) -> None:
        manager = self._find_manager()
        if manager is not None:
            manager._update_allocated_capacity(golden)

    def remove(self, golden: objects.Volume) -> None:
        manager = self._find_manager()
        if manager is not None:
            manager._update_allocated_capacity(golden, decrement=True)
