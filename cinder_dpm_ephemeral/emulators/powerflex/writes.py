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
"""What host writes cost an emulated PowerFlex system, in bytes.

PowerFlex snapshots are members of their source's vTree and share its
blocks; creating one copies no data, and removing a vTree member frees
its own blocks without moving others' (Dell PowerFlex Technical Overview,
snapshots and vTrees). Medium-granularity pools allocate in 1 MiB units.
Model (our stated assumption, Dell does not publish the write path): the
first write after sharing to an allocated 1 MiB unit that a volume still
shares with another vTree member gives it its own unit, copying the part
of the unit the write does not cover (a whole-unit write copies nothing).
Units a volume owns are tracked per volume; taking a snapshot makes the
source's units shared again.

Counters (``LunStore.count``): :data:`WRITE_COUNTER`; snapshots and
removals add 0 to :data:`SNAPSHOT_COUNTER` and :data:`REMOVE_COUNTER`,
which exist so a report can show that they were measured.
"""

from __future__ import annotations

import base64
import logging
import random
import zlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cinder_dpm_ephemeral.emulators.powerflex.state import PowerFlexArray

LOG = logging.getLogger(__name__)

UNIT = 1 << 20
WRITE_COUNTER = 'powerflex_write_copy_bytes'
SNAPSHOT_COUNTER = 'powerflex_snapshot_copy_bytes'
REMOVE_COUNTER = 'powerflex_remove_copy_bytes'


def _load(text: str | None) -> int:
    if not text:
        return 0
    return int.from_bytes(zlib.decompress(base64.b64decode(text)), 'little')


def _dump(bits: int) -> str:
    if not bits:
        return ''
    raw = bits.to_bytes((bits.bit_length() + 7) // 8, 'little')
    return base64.b64encode(zlib.compress(raw, 6)).decode()


def snapshot_taken(vol: dict[str, Any]) -> None:
    """The source of a new snapshot shares all its units again."""
    vol['own_units'] = ''


def write(array: PowerFlexArray, vol_id: str, offset: int,
          data: bytes, save: bool = True) -> dict[str, int]:
    """A host write to volume ``vol_id``; returns ``{'write': copied}``."""
    with array.lock:
        vol = array._volume(vol_id)
        peers = [v for v in array._vtree_members(vol['vtreeId'])
                 if v['id'] != vol_id]
        own = _load(vol.get('own_units'))
        allocated = 0
        for start, end in array.luns.allocated(vol_id):
            allocated |= (1 << -(-end // UNIT)) - (1 << start // UNIT)
        end = offset + len(data)
        copied = 0
        for u in range(offset // UNIT, -(-end // UNIT)):
            if own >> u & 1:
                continue
            own |= 1 << u
            if not peers or not allocated >> u & 1:
                continue
            covered = min(end, (u + 1) * UNIT) - max(offset, u * UNIT)
            copied += UNIT - covered
        vol['own_units'] = _dump(own)
        vol['own_bytes'] = own.bit_count() * UNIT
        if copied:
            array.luns.count(WRITE_COUNTER, copied)
        array.luns.write(vol_id, offset, data)
        if save:
            array._save()
        return {'write': copied}


def guest_write(array: PowerFlexArray, vol_id: str, share: float,
                block: int = 64 << 10, seed: int = 0,
                span: int | None = None) -> dict[str, int]:
    """A guest writes ``share`` of the volume's blocks (random, seeded).

    Blocks in the first ``span`` bytes (default: the whole volume).
    """
    rnd = random.Random(seed)
    with array.lock:
        size = int(array._volume(vol_id)['sizeInKb']) * 1024
        if span is not None:
            size = min(size, span)
        picks = sorted(rnd.sample(range(size // block),
                                  int(size // block * share)))
        copied = 0
        for b in picks:
            copied += write(array, vol_id, b * block,
                            rnd.randbytes(block), save=False)['write']
        array._save()
        return {'write': copied, 'written': len(picks) * block}


def byte_counters(array: PowerFlexArray) -> dict[str, int]:
    """The system's byte counters, every one present (0 if nothing)."""
    c = array.luns.counters()
    return {k: int(c.get(k, 0)) for k in (
        WRITE_COUNTER, SNAPSHOT_COUNTER, REMOVE_COUNTER)}
