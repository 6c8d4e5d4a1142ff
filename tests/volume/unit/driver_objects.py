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
"""Cinder objects for tests that drive an in-tree driver directly."""

from __future__ import annotations

from typing import Any

from cinder import objects
from cinder.tests.unit import utils as test_utils


class DriverObjects:
    """Volumes and snapshots in Cinder's test database, made by the driver.

    The test case provides ``ctxt``, ``driver``, ``thin_type``,
    ``thick_type``, ``volume_host`` and ``VOLUME_SIZE`` (GiB).
    """

    ctxt: Any
    driver: Any
    thin_type: dict[str, Any]
    thick_type: dict[str, Any]
    volume_host: str
    VOLUME_SIZE: int

    def new_volume(self, size: int | None = None, thick: bool = False,
                   **kwargs: Any) -> objects.Volume:
        vtype = self.thick_type if thick else self.thin_type
        return test_utils.create_volume(
            self.ctxt, host=self.volume_host,
            size=self.VOLUME_SIZE if size is None else size,
            volume_type_id=vtype['id'], status='creating',
            testcase_instance=self, **kwargs)

    @staticmethod
    def apply(obj: Any, update: dict[str, Any] | None) -> Any:
        if update:
            obj.update(update)
            obj.save()
        return obj

    def create_volume(self, size: int | None = None, thick: bool = False,
                      **kwargs: Any) -> objects.Volume:
        vol = self.new_volume(size, thick, **kwargs)
        return self.apply(vol, self.driver.create_volume(vol))

    def create_snapshot(self, vol: objects.Volume) -> objects.Snapshot:
        snap = test_utils.create_snapshot(self.ctxt, vol.id,
                                          testcase_instance=self)
        return self.apply(snap, self.driver.create_snapshot(snap))
