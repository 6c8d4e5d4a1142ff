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
"""What the golden cache needs from an array: :class:`CloneBackend`.

Each array implements it (``svc/clones.py``, ``powerflex/clones.py``, on
the common part in ``image_cache/driver.py``'s ``ArrayClones``); the
cache (``image_cache/cache.py``) knows arrays only through it.
"""

from __future__ import annotations

from typing import Any, Protocol

from cinder import objects


class CloneBackend(Protocol):
    """What the cache needs from an array driver."""

    #: most thin clones one golden volume may have (array limit)
    max_clones_per_golden: int
    #: the Cinder volume driver (attaches volumes for image writes)
    driver: Any

    def golden_size_gb(self, virtual_size: int) -> int:
        """Size of a golden LUN for an image of ``virtual_size`` bytes."""

    def create_golden_lun(self, golden: objects.Volume) -> dict | None:
        """Create the array object for ``golden``; returns a model update."""

    def write_image(self, context: Any, golden: objects.Volume,
                    image_file: str, image_format: str,
                    reads_zeros: Any = False, info: Any = None,
                    connector: Any = None, detach_later: Any = None) -> None:
        """Convert ``image_file`` into the golden LUN (raw).

        ``reads_zeros`` and ``connector`` may be :class:`writer.Soon`;
        ``detach_later`` as for :func:`writer.attached`.
        """

    def thin_clone(self, golden: objects.Volume,
                   volume: objects.Volume) -> dict | None:
        """Array-side thin clone of ``golden`` as ``volume``, at its size."""

    def dependents(self, golden: objects.Volume) -> int:
        """Array objects that still share data with ``golden``."""

    def clone_counts(self, goldens: list[objects.Volume]) -> dict[str, int]:
        """:meth:`dependents` of each of ``goldens`` by volume id.

        In a fixed number of array calls, whatever the number of golden
        volumes: the stats update asks it every polling interval.
        """

    def delete_golden_lun(self, golden: objects.Volume) -> None:
        """Delete the array object of ``golden`` (no dependents left)."""

    def is_clone_limit(self, error: Exception) -> bool:
        """Whether ``error`` says ``golden`` cannot take another clone."""

    def delete_clone(self, volume: objects.Volume) -> bool:
        """Delete a thin clone the array's quick way; False: not handled."""

    def supports(self, volume: objects.Volume) -> str | None:
        """Why a thin clone cannot serve ``volume``'s type, or None.

        Cinder's own path serves the volumes a thin clone cannot.
        """

    def reads_zeros(self, golden: objects.Volume) -> bool:
        """Whether ``golden``'s LUN reads zeros where never written."""

    def extension_reads_zeros(self, golden: objects.Volume,
                              volume: objects.Volume) -> bool:
        """Whether a clone larger than ``golden`` reads zeros past it."""
