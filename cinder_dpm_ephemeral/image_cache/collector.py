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
"""The volume service's long-lived objects set aside while a golden builds.

A golden build moves the image through this process: the raw stream
(:mod:`.writer`), the qcow2 conversion in file order (:mod:`.stream`),
the read-ahead (:mod:`.readahead`). Each chunk allocates a few container
objects, so CPython's cyclic garbage collector runs a score of times
during a 1 GiB build. Most of those are collections of the young
generations, a few milliseconds each. But now and then the oldest
generation comes due, and that collection walks every object the volume
service holds (Cinder, oslo, SQLAlchemy, eventlet), with the GIL held:
0.13-0.14 s in the benchmark's process, which runs Cinder's API and
scheduler too. A build it falls into is that much longer (one in about
ten 1 GiB builds; doc/benchmarks.md, "The slow copy steps").

:func:`set_aside` moves every object alive when a build begins into the
collector's permanent generation (``gc.freeze()``, a splice of the
collector's lists, whatever the heap's size) and back into the oldest
generation when the build ends (``gc.unfreeze()``). The collections
during the build still run, but walk only what was allocated since:
the build's own garbage is collected as before, while a reference cycle
among the older objects waits until the build ends, when those objects
are in the oldest generation again and its next collection finds it.
The full collection is moved out of the build, not avoided.

Concurrent builds (green threads) share one freeze, undone when the last
of them ends; objects allocated meanwhile are never frozen. Where
something else in the process froze objects already (a pre-forking
server's ``gc.freeze()``), this leaves the collector alone.
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator

#: False: builds leave the collector alone (``./run bench cold --ab
#: image_cache.collector.ENABLED=false`` measures the two)
ENABLED = True

_lock = threading.Lock()
#: builds under way that share the freeze (0: none frozen by us)
_holders = 0


@contextlib.contextmanager
def set_aside() -> Iterator[bool]:
    """Keep the objects alive now out of collections until the block ends.

    Yields whether this process's objects are set aside (False where
    :data:`ENABLED` is False or another freeze was found).
    """
    global _holders
    with _lock:
        if _holders:
            _holders += 1
            mine = True
        elif ENABLED and not gc.get_freeze_count():
            gc.freeze()
            _holders = 1
            mine = True
        else:
            mine = False
    try:
        yield mine
    finally:
        if mine:
            with _lock:
                _holders -= 1
                if not _holders:
                    gc.unfreeze()
