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
"""FlashCopy grains: bitmaps, the multiple-target cascade, what writes cost.

Sources (IBM Documentation, Spectrum Virtualize / SAN Volume Controller):

* "Grains and the FlashCopy bitmap": data moves between volumes in grains
  of 64 or 256 KiB; each mapping has one bit per grain, set when the grain
  is *split* (the target holds its own copy).
* "Multiple target FlashCopy" and the "Summary of the FlashCopy indirection
  layer algorithm" (Redbook SG24-8162, table 10-2): the active mappings
  (``copying`` or ``stopping``) of one source form a cascade ordered by
  start time. A write to the source copies the grain to the *newest*
  target only; older targets read a grain from the oldest newer target
  that split it, else from the source. A write to a target first copies
  the grain to the *next oldest* target if that one has not split it (its
  point-in-time image reads through the written target), then copies the
  grain into the written target unless the write covers the whole grain
  ("Writes to the target cause the grain to be copied from the source to
  the target unless the entire grain is being written", SG24-8068).
* "Thin-provisioned FlashCopy": with a thin-provisioned source "only the
  space that is used on the source volume is copied to the target volume".
  The same holds for copies a write causes: a grain the source had not
  allocated when the mapping started reads zeros and is not copied (the
  target allocates it).
* "Background copy": the copy runs from the grain with the highest LBA
  down to LBA 0; the stopping copy "copies every grain that is split on the
  stopping map to the next map (if one exists) which is dependent on that
  grain", at the cleaning rate.

Bitmaps are Python ints (bit ``g`` = grain ``g``), persisted compressed.
The LUN store keeps the bytes right on its own (copy-on-write files); this
module only decides which grains an array would copy and counts them.
"""

from __future__ import annotations

import base64
import logging
import zlib
from typing import Any

LOG = logging.getLogger(__name__)

Obj = dict[str, Any]

#: array counters (``LunStore.count``), bytes
BACKGROUND_COPY_COUNTER = 'svc_background_copy_bytes'
SPLIT_COUNTER = 'svc_fc_write_split_bytes'
CLEAN_COUNTER = 'svc_fc_cleaning_bytes'
ACTIVE = ('copying', 'stopping')
#: unit of a vdisk's own-capacity bitmap (the default grain, 256 KiB)
UNIT = 256 << 10


def load(text: str | None) -> int:
    if not text:
        return 0
    return int.from_bytes(zlib.decompress(base64.b64decode(text)), 'little')


def dump(bits: int) -> str:
    if not bits:
        return ''
    raw = bits.to_bytes((bits.bit_length() + 7) // 8, 'little')
    return base64.b64encode(zlib.compress(raw, 6)).decode()


def grain_bytes(m: Obj) -> int:
    return int(m['grainsize']) << 10


def grain_count(m: Obj, capacity: int) -> int:
    return -(-capacity // grain_bytes(m))


def grain_len(m: Obj, g: int, capacity: int) -> int:
    """Bytes of grain ``g`` (the last one may be short)."""
    gb = grain_bytes(m)
    return max(0, min(gb, capacity - g * gb))


def grains_of(m: Obj, extents: list[tuple[int, int]]) -> int:
    """Bitmap of the grains that ``extents`` (byte ranges) touch."""
    gb = grain_bytes(m)
    bits = 0
    for start, end in extents:
        if end <= start:
            continue
        g0, g1 = start // gb, -(-end // gb)
        bits |= (1 << g1) - (1 << g0)
    return bits


def mask(m: Obj, key: str) -> int:
    return load(m.get(key))


def set_mask(m: Obj, key: str, bits: int) -> None:
    m[key] = dump(bits)


def cascade(data: dict[str, Any], source_id: int) -> list[Obj]:
    """Active mappings of ``source_id``, oldest start first."""
    maps = [m for m in data['fcmaps'].values()
            if m['source'] == source_id and m['status'] in ACTIVE]
    return sorted(maps, key=lambda m: (int(m.get('seq', 0)), m['id']))


def next_oldest(data: dict[str, Any], m: Obj) -> Obj | None:
    """The active mapping of the same source started just before ``m``."""
    chain = cascade(data, m['source'])
    older = [o for o in chain if (int(o.get('seq', 0)), o['id'])
             < (int(m.get('seq', 0)), m['id'])]
    return older[-1] if older else None


def split(m: Obj, g: int, capacity: int, data: dict[str, Any],
          how: str) -> int:
    """Mark grain ``g`` split on ``m``; returns the bytes copied (``how``).

    ``how``: 'background', 'write' (copy caused by a host write),
    'clean' or 'overwrite' (a whole-grain write: no copy).
    """
    bits = mask(m, 'split')
    if bits >> g & 1:
        return 0
    set_mask(m, 'split', bits | 1 << g)
    n = grain_len(m, g, capacity)
    if m.get('todo_bits') and load(m['todo_bits']) >> g & 1:
        m['copied'] = float(m.get('copied', 0)) + n
    elif how != 'background':
        # The point-in-time image of this grain is an unallocated grain
        # of a thin source: it reads zeros, there is nothing to copy (the
        # target only allocates the grain).
        how = 'overwrite'
    tgt = data['vdisks'].get(str(m['target']))
    if tgt is not None:
        own(tgt, 1 << g)
    if how == 'overwrite':
        return 0
    key = {'background': 'bg_bytes', 'write': 'split_bytes',
           'clean': 'clean_bytes'}[how]
    m[key] = int(m.get(key, 0)) + n
    return n


def own(vdisk: Obj, bits: int) -> None:
    """``vdisk`` now holds these grains (256 KiB units) of its own."""
    vdisk['alloc'] = dump(load(vdisk.get('alloc')) | bits)


def own_bytes(vdisk: Obj) -> int:
    """Capacity ``vdisk`` holds of its own.

    Grains copied to it by FlashCopy or written by hosts through
    ``SVCArray.write``.
    """
    return min(int(vdisk['capacity']),
               load(vdisk.get('alloc')).bit_count() * UNIT)


def write_cost(data: dict[str, Any], vdisk: Obj, offset: int,
               length: int) -> dict[str, int]:
    """Apply the FlashCopy rules to a host write; returns bytes copied.

    ``{'write': n}``: grains the array copies before the write may land
    (source writes: to the newest target; target writes: to the next
    oldest target, then into the target for partial grains).
    """
    copied = 0
    capacity = int(vdisk['capacity'])
    end = min(capacity, offset + length)
    if end <= offset:
        return {'write': 0}
    # writes to a target of an active mapping
    for m in list(data['fcmaps'].values()):
        if m['target'] != vdisk['id'] or m['status'] not in ACTIVE:
            continue
        gb = grain_bytes(m)
        older = next_oldest(data, m)
        for g in range(offset // gb, -(-end // gb)):
            if older is not None:
                copied += split(older, g, capacity, data, 'write')
            g_start, g_end = g * gb, min(capacity, (g + 1) * gb)
            whole = offset <= g_start and end >= g_end
            copied += split(m, g, capacity, data,
                            'overwrite' if whole else 'write')
    # writes to the source of active mappings: newest target only
    chain = cascade(data, vdisk['id'])
    if chain:
        newest = chain[-1]
        gb = grain_bytes(newest)
        for g in range(offset // gb, -(-end // gb)):
            copied += split(newest, g, capacity, data, 'write')
    own(vdisk, (1 << -(-end // UNIT)) - (1 << offset // UNIT))
    return {'write': copied}


def dependent_grains(data: dict[str, Any], m: Obj) -> tuple[Obj | None, int]:
    """Grains the next oldest mapping reads through ``m``'s target."""
    older = next_oldest(data, m)
    if older is None:
        return None, 0
    return older, mask(m, 'split') & ~mask(older, 'split')


def advance(m: Obj, grains: int, bits_key: str, capacity: int,
            data: dict[str, Any], onto: Obj, how: str) -> int:
    """Copy up to ``grains`` grains of ``m[bits_key]``, highest LBA first.

    Grains already split on ``onto`` are skipped at no cost. Returns the
    bytes copied; the copied grains leave ``m[bits_key]``.
    """
    todo = mask(m, bits_key) & ~mask(onto, 'split')
    moved = 0
    while todo and grains > 0:
        g = todo.bit_length() - 1
        todo &= ~(1 << g)
        moved += split(onto, g, capacity, data, how)
        grains -= 1
    set_mask(m, bits_key, todo)
    return moved
