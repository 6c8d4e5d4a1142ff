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
"""Which golden volumes LRU eviction takes, over the count and size limits.

Least recently used first, except a golden volume that is in use right
now: one this process has just built (its first clone is made after the
image's lock is released) and one cloned within the last minutes that still
has clones. Retiring such a golden volume (marking it so no new clone uses
it) would only make the next create of its image build another: a storm
over more images than ``dpm_ephemeral_image_cache_max_count`` then built
one golden volume per create, up to the internal tenant's quota, and
copied the rest the slow way (``test_races``). Those are kept usable and
looked at again when a clone is deleted.
"""

from __future__ import annotations

import datetime
from typing import Any

from oslo_utils import timeutils

#: how long after its last clone a golden volume counts as in use
IN_USE_SECONDS = 120


def victims(cache: Any, live: list[Any], max_count: int,
            max_gb: int) -> list[Any]:
    """Remove and return from ``live`` what eviction should take.

    ``live`` is sorted least recently used first; what is left in it is
    within the limits unless golden volumes in use keep it over them.
    """
    recent = (timeutils.utcnow() - datetime.timedelta(
        seconds=IN_USE_SECONDS)).strftime('%Y-%m-%dT%H:%M:%S.%f')
    out = []
    for g in list(live):
        if not ((max_count and len(live) > max_count) or
                (max_gb and sum(v.size for v in live) > max_gb)):
            break
        if g.id in cache.building or (
                g.metadata.get('last_used', '') >= recent and
                cache.backend.dependents(g)):
            cache.cleanup_pending = True
            continue
        live.remove(g)
        out.append(g)
    return out
