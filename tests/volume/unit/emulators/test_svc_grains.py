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
"""FlashCopy grains on the emulated SVC: what the array copies, and when.

Each test cites the IBM Documentation page whose behaviour it pins.
"""

from __future__ import annotations

from unittest import mock

from cinder_dpm_ephemeral.emulators.svc import fcmap, grains
from tests.volume.unit.emulators import svc_base

KiB = 1 << 10
MiB = 1 << 20
GRAIN = 256 * KiB


class GrainTestCase(svc_base.ArrayTestCase):

    def vdisk(self, name: str, thin: bool = True) -> None:
        self.ok('mkvdisk -name %s -mdiskgrp pool0 -iogrp 0 -size 64 '
                '-unit mb%s' % (name, ' -rsize 0%' if thin else ''))

    def fcmap(self, ref: str) -> dict[str, str]:
        return self.info('lsfcmap -delim ! %s' % ref, with_header=False)[0]

    def counter(self, name: str) -> int:
        return self.array.luns.counters().get(name, 0)

    def nocopy_targets(self, n: int) -> None:
        """Targets t1 (oldest) .. tn (newest) of no-copy maps from src."""
        for i in range(1, n + 1):
            self.vdisk('t%d' % i)
            self.ok('mkfcmap -source src -target t%d -copyrate 0 '
                    '-name m%d' % (i, i))
            self.ok('startfcmap -prep m%d' % i)
            self.clock.advance(1)


class ThinSourceTestCase(GrainTestCase):
    """Thin sources copy only what they hold.

    IBM, "Thin-provisioned FlashCopy": "If you are using only
    thin-provisioned source, only the space that is used on the source
    volume is copied to the target volume."
    """

    def test_background_copy_moves_only_allocated_grains(self) -> None:
        self.vdisk('src')
        self.vdisk('tgt')
        for g in (0, 100, 200):
            self.array.write('src', g * GRAIN + 10, b'data')
        self.ok('mkfcmap -source src -target tgt -copyrate 50 -name m')
        self.ok('startfcmap -prep m')
        # 2 MiB/s = 8 grains/s: 3 grains take 3/8 s, not the 32 s of
        # the whole 64 MiB
        self.clock.advance(0.25)
        self.assertEqual(('copying', '66'),
                         (self.fcmap('m')['status'],
                          self.fcmap('m')['progress']))
        self.clock.advance(0.25)
        self.assertEqual('idle_or_copied', self.fcmap('m')['status'])
        self.assertEqual(3 * GRAIN,
                         self.counter(grains.BACKGROUND_COPY_COUNTER))
        self.assertEqual(b'data', self.array.luns.read(
            self.inv()['vdisks']['tgt']['uid'], 200 * GRAIN + 10, 4))

    def test_empty_thin_source_copies_nothing(self) -> None:
        self.vdisk('src')
        self.vdisk('tgt')
        self.ok('mkfcmap -source src -target tgt -copyrate 100 -name m '
                '-autodelete')
        self.ok('startfcmap -prep m')
        self.clock.advance(0.01)
        self.assertEqual({}, self.inv()['fcmaps'])
        self.assertEqual(0, self.counter(grains.BACKGROUND_COPY_COUNTER))

    def test_writes_over_unallocated_source_grains_copy_nothing(self) -> None:
        # the target's image of such a grain is zeros: no data to copy,
        # the written target (and the older one) only allocate it
        self.vdisk('src')
        self.array.write('src', 0, b'image')
        self.nocopy_targets(2)
        self.assertEqual({'write': 0},
                         self.array.write('t2', 10 * GRAIN + 5, b'guest'))
        self.assertEqual({'write': 2 * GRAIN},
                         self.array.write('t2', 5, b'guest'))
        own = self.array.fc_bytes()
        self.assertEqual((2 * GRAIN, 2 * GRAIN),
                         (own['t2']['own'], own['t1']['own']))

    def test_fully_allocated_source_copies_every_grain(self) -> None:
        self.vdisk('src', thin=False)
        self.vdisk('tgt')
        self.ok('mkfcmap -source src -target tgt -copyrate 100 -name m')
        self.ok('startfcmap -prep m')
        self.clock.advance(1.01)        # 64 MiB at 64 MiB/s
        self.assertEqual('idle_or_copied', self.fcmap('m')['status'])
        self.assertEqual(64 * MiB,
                         self.counter(grains.BACKGROUND_COPY_COUNTER))

    def test_background_copy_runs_from_the_highest_lba(self) -> None:
        # IBM, "Background copy": "The background copy starts with the
        # grain that contains the highest logical block numbers (LBAs)
        # and works in reverse towards the grain that contains LBA 0."
        self.vdisk('src', thin=False)
        self.vdisk('tgt')
        self.ok('mkfcmap -source src -target tgt -copyrate 50 -name m')
        self.ok('startfcmap -prep m')
        self.clock.advance(1)           # 8 of 256 grains: the top ones
        top = self.array.write('src', 255 * GRAIN, b'x')
        bottom = self.array.write('src', 0, b'x')
        self.assertEqual(({'write': 0}, {'write': GRAIN}), (top, bottom))


class MultipleTargetTestCase(GrainTestCase):
    """Several no-copy maps from one source: the cascade.

    IBM, "Multiple target FlashCopy" and the indirection layer table
    (SG24-8162 table 10-2; "Grains and the FlashCopy bitmap").
    """

    def setUp(self) -> None:
        super().setUp()
        self.vdisk('src', thin=False)
        self.nocopy_targets(3)

    def test_unwritten_clones_copy_nothing(self) -> None:
        self.clock.advance(10 ** 6)
        self.assertEqual({}, {k: v for k, v in self.array.luns.counters()
                              .items() if k.startswith('svc_')})

    def test_source_write_copies_to_the_newest_target_only(self) -> None:
        # "the write to the source volume does not cause its data to be
        # copied to all of the targets. Instead, it is copied to the
        # newest target volume only."
        self.assertEqual({'write': GRAIN},
                         self.array.write('src', 5, b'new'))
        self.assertEqual({'write': 0}, self.array.write('src', 9, b'again'))
        inv = self.inv()
        self.assertEqual([0, 0, GRAIN], [m['write_split_bytes']
                                         for m in inv['fcmaps'].values()])
        # every target still reads its point-in-time image
        for t in ('t1', 't2', 't3'):
            self.assertEqual(bytes(3), self.array.luns.read(
                inv['vdisks'][t]['uid'], 5, 3))

    def test_partial_target_write_copies_two_grains(self) -> None:
        # "If the grain is not copied to the next oldest target for this
        # source, copy the grain to the next oldest target. Then, write to
        # the target"; the written target gets the grain first unless the
        # whole grain is written.
        self.assertEqual({'write': 2 * GRAIN},
                         self.array.write('t2', 7 * GRAIN + 1, b'guest'))
        self.assertEqual({'write': 0},
                         self.array.write('t2', 7 * GRAIN + 9, b'guest'))
        self.assertEqual(2 * GRAIN, self.counter(grains.SPLIT_COUNTER))

    def test_whole_grain_target_write_copies_only_for_the_older(self) -> None:
        self.assertEqual({'write': GRAIN},
                         self.array.write('t3', 4 * GRAIN, bytes(GRAIN)))
        # the oldest target has no older one to preserve
        self.assertEqual({'write': 0},
                         self.array.write('t1', 4 * GRAIN, bytes(GRAIN)))
        # each of the three now holds that grain of its own
        own = self.array.fc_bytes()
        self.assertEqual((GRAIN, GRAIN, GRAIN, 0),
                         (own['t3']['own'], own['t2']['own'],
                          own['t1']['own'], own['src']['own']))

    def test_guest_write_share(self) -> None:
        cost = self.array.guest_write('t2', 0.5, block=GRAIN, seed=1)
        self.assertEqual(32 * MiB, cost['written'])
        # every written grain: one copy to t1, one into t2 is not needed
        # (whole-grain writes)
        self.assertEqual(32 * MiB, cost['write'])
        self.assertEqual(32 * MiB, self.array.fc_bytes()['t2']['own'])

    def test_dependent_mappings(self) -> None:
        self.assertEqual(['0', '1', '2'], [
            self.fcmap('m%d' % i)['dependent_mappings'] for i in (1, 2, 3)])

    def test_stopping_cleans_at_the_cleaning_rate(self) -> None:
        # IBM, FlashCopy mapping states: "Stopping: the mapping is copying
        # data to another mapping"; "The stopping copy operation copies
        # every grain that is split on the stopping map to the next map
        # (if one exists) which is dependent on that grain" (clean rate).
        for g in range(16):
            self.array.write('src', g * GRAIN, b'w')     # split on t3
        self.ok('chfcmap -cleanrate 50 m3')              # 8 grains/s
        self.ok('stopfcmap m3')
        self.assertEqual(('stopping', '0'),
                         (self.fcmap('m3')['status'],
                          self.fcmap('m3')['clean_progress']))
        self.fails('rmfcmap m3', 'CMMVC5903E')
        self.clock.advance(1)
        self.assertEqual(('stopping', '50'),
                         (self.fcmap('m3')['status'],
                          self.fcmap('m3')['clean_progress']))
        self.clock.advance(1)
        self.assertEqual('stopped', self.fcmap('m3')['status'])
        self.assertEqual(16 * GRAIN, self.counter(grains.CLEAN_COUNTER))
        # t2 now holds the grains t1 reads: a source write costs nothing
        # for them, the newest active target (t2) already has them
        self.assertEqual({'write': 0}, self.array.write('src', 0, b'z'))

    def test_oldest_map_stops_at_once(self) -> None:
        self.array.write('src', 0, b'w')
        self.ok('stopfcmap m1')
        self.assertEqual('stopped', self.fcmap('m1')['status'])
        self.assertEqual(0, self.counter(grains.CLEAN_COUNTER))

    def test_force_stop_stops_the_dependent_map(self) -> None:
        self.array.write('src', 0, b'w')
        self.ok('stopfcmap -force m3')
        self.assertEqual(('stopped', 'stopped', 'copying'),
                         tuple(self.fcmap('m%d' % i)['status']
                               for i in (3, 2, 1)))

    def test_target_of_stopped_map_is_offline(self) -> None:
        self.ok('stopfcmap m1')
        self.assertRaisesRegex(OSError, 'offline', self.array.write,
                               't1', 0, b'x')


class LimitsTestCase(GrainTestCase):
    """FlashCopy limits.

    IBM configuration limits (SG24-8162 10.3): 512 mappings per
    consistency group, 4096 per system (V5000 Gen2, 8.1.0), 256 targets
    per source (the last is pinned in test_svc_fcmap).
    """

    def test_consistency_group_and_system_limits(self) -> None:
        self.vdisk('src')
        for name in ('a', 'b', 'c'):
            self.vdisk(name)
        self.ok('mkfcconsistgrp -name cg')
        with mock.patch.object(fcmap, 'MAX_MAPS_PER_CONSISTGRP', 1):
            self.ok('mkfcmap -source src -target a -consistgrp cg')
            self.fails('mkfcmap -source src -target b -consistgrp cg',
                       'CMMVC6425E')
        with mock.patch.object(fcmap, 'MAX_MAPS_PER_SYSTEM', 2):
            self.ok('mkfcmap -source src -target b')
            self.fails('mkfcmap -source src -target c', 'CMMVC6425E')
        self.assertEqual((512, 4096, 256),
                         (fcmap.MAX_MAPS_PER_CONSISTGRP,
                          fcmap.MAX_MAPS_PER_SYSTEM,
                          fcmap.MAX_TARGETS_PER_SOURCE))
