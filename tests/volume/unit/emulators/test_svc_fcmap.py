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
"""FlashCopy on the emulated SVC: states, background copy, limits."""

from __future__ import annotations

import ddt

from cinder_dpm_ephemeral.emulators.svc import fcmap
from tests.volume.unit.emulators import svc_base
from tests.volume.unit.emulators.svc_base import GiB

MiB = 1 << 20


@ddt.ddt
class CopyRateTestCase(svc_base.ArrayTestCase):

    @ddt.data((0, 0), (1, 128 << 10), (10, 128 << 10), (11, 256 << 10),
              (41, 2 * MiB), (50, 2 * MiB), (51, 4 * MiB), (60, 4 * MiB),
              (70, 8 * MiB), (80, 16 * MiB), (90, 32 * MiB),
              (100, 64 * MiB), (110, 128 * MiB), (120, 256 * MiB),
              (130, 512 * MiB), (140, GiB), (150, 2 * GiB))
    @ddt.unpack
    def test_table(self, rate: int, bps: int) -> None:
        self.assertEqual(bps, fcmap.rate_bps(rate))


class FlashCopyTestCase(svc_base.ArrayTestCase):

    def setUp(self) -> None:
        super().setUp()
        # a fully allocated source: background copy moves every grain
        self.ok('mkvdisk -name src -mdiskgrp pool0 -iogrp 0 -size 1 '
                '-unit gb')
        for name in ('tgt', 'tgt2'):
            self.ok('mkvdisk -name %s -mdiskgrp pool0 -iogrp 0 -size 1 '
                    '-unit gb -rsize 2%% -autoexpand' % name)

    def fcmap(self, ref: str = '0') -> dict[str, str]:
        resp = self.info('lsfcmap -delim ! -filtervalue id=%s' % ref)
        return resp[0] if len(resp) else {}

    def uid(self, name: str) -> str:
        return self.inv()['vdisks'][name]['uid']

    def test_clone_lifecycle(self) -> None:
        self.assertEqual(
            'FlashCopy Mapping, id [0], successfully created\n',
            self.ok('mkfcmap -source src -target tgt -copyrate 100 '
                    '-autodelete -cleanrate 50'))
        m = self.fcmap()
        self.assertEqual(('idle_or_copied', '0', '100'),
                         (m['status'], m['progress'], m['copy_rate']))
        self.fails('startfcmap 0', 'CMMVC5903E')     # not prepared
        self.ok('prestartfcmap 0')
        self.assertEqual('prepared', self.fcmap()['status'])
        with open(self.array.luns.open_path(self.uid('src')), 'r+b') as f:
            f.write(b'point in time')
        self.ok('startfcmap 0')
        self.fails('startfcmap 0', 'CMMVC5907E')
        with open(self.array.luns.open_path(self.uid('src')), 'r+b') as f:
            f.write(b'changed after')
        m = self.fcmap()
        self.assertEqual(('copying', '0'), (m['status'], m['progress']))
        # 64 MiB/s: 25% of 1 GiB after 4 s
        self.clock.advance(4)
        self.assertEqual('25', self.fcmap()['progress'])
        vd = self.info('lsvdisk -delim ! src', with_header=False)[0]
        self.assertEqual(('0', 'fcmap0', '1'),
                         (vd['FC_id'], vd['FC_name'], vd['fc_map_count']))
        self.clock.advance(12)
        self.assertEqual({}, self.fcmap())          # autodeleted at 100%
        self.assertEqual('', self.ok('lsvdiskfcmappings -delim ! tgt'))
        self.assertEqual(GiB, self.array.luns.counters()[
            fcmap.BACKGROUND_COPY_COUNTER])
        with open(self.array.luns.open_path(self.uid('tgt')), 'rb') as f:
            self.assertEqual(b'point in time', f.read(13))

    def test_no_autodelete_stays_idle_or_copied(self) -> None:
        self.ok('mkfcmap -source src -target tgt -copyrate 150')
        self.ok('startfcmap -prep 0')
        self.clock.advance(1)
        m = self.fcmap()
        self.assertEqual(('idle_or_copied', '100'),
                         (m['status'], m['progress']))
        self.fails('stopfcmap 0', 'CMMVC5912E')
        self.ok('rmfcmap 0')
        self.assertEqual({}, self.inv()['fcmaps'])

    def test_snapshot_copy_rate_zero(self) -> None:
        self.ok('mkfcmap -source src -target tgt -copyrate 0')
        self.ok('prestartfcmap 0')
        self.ok('startfcmap 0')
        self.clock.advance(10 ** 6)
        m = self.fcmap()
        self.assertEqual(('copying', '0', '0'),
                         (m['status'], m['progress'], m['copy_rate']))
        self.fails('rmfcmap -force 0', 'CMMVC5903E')
        # what the driver does before deleting the source: copy it out
        self.ok('chfcmap -copyrate 50 -autodelete on 0')
        self.clock.advance(256)
        self.assertEqual('50', self.fcmap()['progress'])
        self.clock.advance(256)
        self.assertEqual({}, self.fcmap())

    def test_stop_and_remove(self) -> None:
        self.ok('mkfcmap -source src -target tgt -copyrate 50')
        self.ok('startfcmap -prep 0')
        self.clock.advance(10)
        self.ok('stopfcmap 0')
        self.assertEqual('stopped', self.fcmap()['status'])
        self.fails('stopfcmap 0', 'CMMVC5912E')
        self.fails('rmfcmap 0', 'CMMVC5903E')     # target inconsistent
        self.ok('prestartfcmap 0')                 # can be restarted
        self.ok('stopfcmap 0')
        self.ok('rmfcmap -force 0')
        self.fails('rmfcmap -force 0', 'CMMVC5753E')
        self.fails('prestartfcmap 7', 'CMMVC5753E')

    def test_create_errors(self) -> None:
        self.fails('mkfcmap -source src -target src', 'CMMVC6303E')
        self.fails('mkfcmap -source src -target nosuch', 'CMMVC5754E')
        self.fails('mkfcmap -source src', 'CMMVC5707E')
        self.ok('mkvdisk -name big -mdiskgrp pool0 -iogrp 0 -size 2 -unit gb '
                '-rsize 2%')
        self.fails('mkfcmap -source src -target big', 'CMMVC5924E')
        self.ok('mkfcmap -source src -target tgt')
        self.fails('mkfcmap -source src -target tgt', 'CMMVC6466E')
        self.fails('mkfcmap -source src -target tgt2 -copyrate 151',
                   'CMMVC5711E')
        self.fails('mkfcmap -source src -target tgt2 -consistgrp nosuch',
                   'CMMVC5754E')

    def test_at_most_256_targets_per_source(self) -> None:
        for i in range(256):
            self.ok('mkvdisk -name t%d -mdiskgrp pool0 -iogrp 0 -size 1 '
                    '-unit gb -rsize 0%%' % i)
            self.ok('mkfcmap -source src -target t%d -copyrate 0' % i)
        self.fails('mkfcmap -source src -target tgt', 'CMMVC6425E')
        # another source is not limited
        self.ok('mkfcmap -source tgt2 -target tgt')
        vd = self.info('lsvdisk -delim ! src', with_header=False)[0]
        self.assertEqual(('many', '256'), (vd['FC_id'], vd['fc_map_count']))

    def test_time_scale(self) -> None:
        # 1000x: a second of wall clock is 1000 s of copying at 2 MiB/s
        self.array = self.make_array(time_scale=1000)
        self.ok('mkfcmap -source src -target tgt -copyrate 50')
        self.ok('startfcmap -prep 0')
        self.clock.advance(0.256)
        self.assertEqual('50', self.fcmap()['progress'])
        self.clock.advance(0.256)
        m = self.fcmap()
        self.assertEqual(('idle_or_copied', '100'),
                         (m['status'], m['progress']))

    def test_source_limit_is_configurable(self) -> None:
        self.array = self.make_array(fcmap_source_limit=1)
        self.ok('mkfcmap -source src -target tgt -copyrate 0')
        self.fails('mkfcmap -source src -target tgt2 -copyrate 0',
                   'CMMVC6425E')

    def test_restore_reverts_source(self) -> None:
        with open(self.array.luns.open_path(self.uid('src')), 'r+b') as f:
            f.write(b'version 1')
        self.ok('mkfcmap -source src -target tgt -copyrate 0')
        self.ok('startfcmap -prep 0')
        with open(self.array.luns.open_path(self.uid('src')), 'r+b') as f:
            f.write(b'version 2')
        # revert: the snapshot is the source of a restore mapping
        self.ok('mkfcmap -source tgt -target src -copyrate 50 -autodelete')
        self.ok('prestartfcmap -restore 1')
        self.ok('startfcmap -restore 1')
        self.assertEqual('yes', self.fcmap('1')['restoring'])
        with open(self.array.luns.open_path(self.uid('src')), 'rb') as f:
            self.assertEqual(b'version 1', f.read(9))
        self.clock.advance(1024)
        self.assertEqual({}, self.fcmap('1'))
        self.assertEqual('copying', self.fcmap('0')['status'])

    def test_copy_progress_survives_restart(self) -> None:
        self.ok('mkfcmap -source src -target tgt -copyrate 50 -autodelete')
        self.ok('startfcmap -prep 0')
        self.clock.advance(128)
        self.assertEqual('25', self.fcmap()['progress'])
        self.array = self.make_array()
        self.clock.advance(128)
        self.assertEqual('50', self.fcmap()['progress'])
        detail = self.info('lsfcmap -delim ! 0', with_header=False)[0]
        self.assertEqual(('on', '50', '256'),
                         (detail['autodelete'], detail['clean_rate'],
                          detail['grain_size']))

    def test_consistency_group(self) -> None:
        self.assertEqual(
            'FlashCopy Consistency Group, id [1], successfully created\n',
            self.ok('mkfcconsistgrp -name cg1'))
        self.fails('mkfcconsistgrp -name cg1', 'CMMVC6035E')
        self.ok('mkfcmap -source src -target tgt -copyrate 0 -consistgrp cg1')
        self.ok('mkfcmap -source src -target tgt2 -copyrate 0 '
                '-consistgrp 1')
        grp = self.info('lsfcconsistgrp -delim ! cg1', with_header=False)[0]
        self.assertEqual('idle_or_copied', grp['status'])
        self.assertEqual(['0', '1'], grp['FC_mapping_id'])
        self.fails('prestartfcmap 0', 'CMMVC5903E')   # maps in a group
        self.ok('prestartfcconsistgrp cg1')
        grp = self.info('lsfcconsistgrp -delim ! cg1', with_header=False)[0]
        self.assertEqual('prepared', grp['status'])
        self.ok('startfcconsistgrp cg1')
        self.assertEqual({'copying'}, {m['status'] for m in
                                       self.array.inventory()['fcmaps']})
        self.assertEqual('cg1', self.fcmap('1')['group_name'])
        # the driver drops the group right after starting it
        self.ok('rmfcconsistgrp -force cg1')
        self.assertEqual('', self.fcmap('1')['group_name'])
        self.assertEqual([], self.inv()['fcconsistgrps'])
        self.fails('lsfcconsistgrp -delim ! cg1', 'CMMVC5754E')
