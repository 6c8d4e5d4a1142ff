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
"""The emulated CLI on its own: formats, errors, persistence, hooks."""

from __future__ import annotations

import json
import os
import threading
from unittest import mock

from cinder.volume.drivers.ibm.storwize_svc import storwize_svc_common

from cinder_dpm_ephemeral.emulators.svc import cli
from tests.volume.unit.emulators import svc_base
from tests.volume.unit.emulators.svc_base import GiB, POOL

W1, W2, W3 = '2100000E1E30E597', '2100000E1E30E598', '2100000E1E30E599'


class FormatTestCase(svc_base.ArrayTestCase):

    def test_quotes_and_prefixes(self) -> None:
        a = self.ok('svctask mkvdisk -name v1 -mdiskgrp pool0 -iogrp 0 '
                    '-size 1 -unit gb')
        self.assertEqual('Virtual Disk, id [0], successfully created\n', a)
        # the driver's argv before any shell: quotes kept
        out, err, status = self.array.run(
            ['svcinfo', 'lsvdisk', '-bytes', '-delim', '!', '"v1"'])
        self.assertEqual(0, status, err)
        self.assertIn('name!v1\n', out)
        # bare verb without svcinfo
        self.assertIn('name!v1', self.ok('lsvdisk -delim ! v1'))

    def test_concise_view(self) -> None:
        for name in ('a1', 'a2', 'b1'):
            self.ok('mkvdisk -name %s -mdiskgrp pool0 -iogrp io_grp0 '
                    '-size 512 -unit mb' % name)
        resp = self.info('svcinfo lsvdisk -bytes -delim !')
        self.assertEqual(['a1', 'a2', 'b1'], list(resp.select('name')))
        self.assertEqual({str(512 << 20)}, set(resp.select('capacity')))
        rows = self.ok('lsvdisk -delim ! -nohdr').splitlines()
        self.assertEqual(3, len(rows))
        self.assertTrue(rows[0].startswith('0!a1!0!io_grp0!online!'))
        # without -delim the columns are aligned with spaces
        out = self.ok('lsvdisk').splitlines()
        self.assertTrue(out[0].startswith('id name IO_group_id'))
        self.assertIn('512.00MB', out[1])

    def test_filtervalue(self) -> None:
        for name in ('a1', 'a2', 'b1'):
            self.ok('mkvdisk -name %s -mdiskgrp pool0 -iogrp 0 -size 1 '
                    '-unit gb' % name)
        resp = self.info('lsvdisk -delim ! -filtervalue name=a*')
        self.assertEqual(['a1', 'a2'], list(resp.select('name')))
        resp = self.info('lsvdisk -delim ! -filtervalue '
                         'name=a*:mdisk_grp_name=pool0')
        self.assertEqual(2, len(resp))
        uid = list(self.info('lsvdisk -delim !').select('vdisk_UID'))[2]
        resp = self.info('lsvdisk -delim ! -filtervalue vdisk_UID=%s' % uid)
        self.assertEqual(['b1'], list(resp.select('name')))
        # no match: no output at all, not even the header
        self.assertEqual('', self.ok('lsvdisk -delim ! -filtervalue name=zz'))
        self.fails('lsvdisk -filtervalue nosuchattr=1', 'CMMVC5741E')

    def test_detail_view_sections(self) -> None:
        self.ok('mkvdisk -name v1 -mdiskgrp pool0 -iogrp 0 -size 2 -unit gb '
                '-rsize 2% -autoexpand -warning 80% -grainsize 256 '
                '-easytier off')
        resp = self.info('lsvdisk -bytes -delim ! v1', with_header=False)
        self.assertEqual(2, len(resp))          # vdisk and its copy 0
        top, copy = resp[0], resp[1]
        self.assertEqual(str(2 * GiB), top['capacity'])
        self.assertEqual(POOL, top['mdisk_grp_name'])
        self.assertEqual('1', top['se_copy_count'])
        self.assertEqual(32, len(top['vdisk_UID']))
        self.assertTrue(top['vdisk_UID'].startswith('60050768'))
        self.assertEqual('0', copy['copy_id'])
        self.assertEqual('on', copy['autoexpand'])
        self.assertEqual('off', copy['easy_tier'])
        self.assertEqual(str((2 * GiB * 2 // 100 + 511) // 512 * 512),
                         copy['real_capacity'])
        # without -bytes: the CLI's units
        resp = self.info('lsvdisk -delim ! v1', with_header=False)
        self.assertEqual('2.00GB', resp[0]['capacity'])

    def test_system_views_parse(self) -> None:
        system = self.info('lssystem -delim !', with_header=False)[0]
        self.assertEqual(svc_base.SYSTEM, system['name'])
        self.assertTrue(system['code_level'].startswith('8.5.0.6 '))
        pool = self.info('lsmdiskgrp -bytes -delim ! pool0',
                         with_header=False)[0]
        self.assertEqual(str(64 * GiB), pool['capacity'])
        self.assertEqual(str(64 * GiB), pool['free_capacity'])
        self.assertEqual('no', pool['data_reduction'])
        nodes = self.info('lsnode -delim !')
        self.assertEqual(['node1', 'node2'], list(nodes.select('name')))
        iogrps = self.info('lsiogrp -delim !')
        self.assertEqual(['2', '0', '0', '0', '0'],
                         list(iogrps.select('node_count')))
        ports = self.info('lsportfc -delim ! -filtervalue node_id=2')
        self.assertEqual(2, len(ports))
        self.assertEqual({'active'}, set(ports.select('status')))
        members = self.info('lsfcportsetmember -delim !')
        self.assertEqual({'portset64'}, set(members.select('portset_name')))
        lic = self.info('lslicense -delim !', with_header=False)[0]
        self.assertEqual('0', lic['license_compression_enclosures'])
        gui = self.info('lsguicapabilities -delim !', with_header=False)[0]
        self.assertEqual('2145', gui['product_key'])

    def test_wwpns_are_stable_per_system_name(self) -> None:
        ports = list(self.info('lstargetportfc -delim !').select('WWPN'))
        self.assertEqual(8, len(set(ports)))
        other = cli.SVCArray(self.state_dir + '/other',
                             system_name=svc_base.SYSTEM)
        out, _, _ = other.run(['lstargetportfc', '-delim', '!'])
        self.assertEqual(ports, [r.split('!')[1]
                                 for r in out.splitlines()[1:]])
        third = cli.SVCArray(self.state_dir + '/third', system_name='x')
        out, _, _ = third.run(['lstargetportfc', '-delim', '!'])
        self.assertNotIn(ports[0], out)


class ErrorTestCase(svc_base.ArrayTestCase):

    def setUp(self) -> None:
        super().setUp()
        self.ok('mkvdisk -name v1 -mdiskgrp pool0 -iogrp 0 -size 1 -unit gb')

    def test_command_errors(self) -> None:
        self.fails('svctask frobnicate', 'CMMVC6051E')
        self.fails('svcinfo lsvdisk -bogus', 'CMMVC5709E')
        self.fails('mkvdisk -name v1 -mdiskgrp pool0 -iogrp 0 -size 1',
                   'CMMVC6035E')
        self.fails('mkvdisk -name 1abc -mdiskgrp pool0 -iogrp 0 -size 1',
                   'CMMVC6527E')
        self.fails('mkvdisk -name v2 -mdiskgrp nopool -iogrp 0 -size 1',
                   'CMMVC5754E')
        self.fails('mkvdisk -name v2 -iogrp 0 -size 1', 'CMMVC5707E')
        self.fails('rmvdisk nosuch', 'CMMVC5753E')
        self.fails('rmvdisk', 'CMMVC5701E')
        self.fails('lsvdisk -delim ! nosuch', 'CMMVC5754E')
        self.fails('lsmdiskgrp -bytes -delim ! nopool', 'CMMVC5754E')
        self.fails('lshost nosuch', 'CMMVC5754E')
        self.fails('expandvdisksize -size 1 -unit gb nosuch', 'CMMVC5753E')

    def test_lsvdisk_missing_is_none_for_driver(self) -> None:
        ssh = storwize_svc_common.StorwizeSSH(
            lambda cmd, check_exit_code=True, attempts=1:
            svc_base.run_ssh_on(self.array, cmd, check_exit_code))
        self.assertIsNone(ssh.lsvdisk('nosuch'))
        self.assertEqual('v1', ssh.lsvdisk('v1')['name'])

    def test_pool_capacity(self) -> None:
        # thick volumes take whole 1 GiB extents; thin ones their real size
        self.ok('mkvdisk -name t1 -mdiskgrp pool0 -iogrp 0 -size 62 -unit gb')
        self.fails('mkvdisk -name t2 -mdiskgrp pool0 -iogrp 0 -size 1025 '
                   '-unit mb', 'CMMVC5860E')
        self.ok('mkvdisk -name t2 -mdiskgrp pool0 -iogrp 0 -size 1 -unit gb')
        self.fails('mkvdisk -name t3 -mdiskgrp pool0 -iogrp 0 -size 1 '
                   '-unit gb', 'CMMVC5860E')
        # a big thin vdisk with a small real size still fits nowhere
        self.fails('mkvdisk -name t3 -mdiskgrp pool0 -iogrp 0 -size 100 '
                   '-unit gb -rsize 2%', 'CMMVC5860E')
        self.fails('expandvdisksize -size 1 -unit gb t2', 'CMMVC5860E')
        self.ok('rmvdisk t1')
        self.ok('expandvdisksize -size 1 -unit gb t2')
        self.ok('mkvdisk -name t3 -mdiskgrp pool0 -iogrp 0 -size 100 '
                '-unit gb -rsize 2% -autoexpand')
        pool = self.info('lsmdiskgrp -bytes -delim ! pool0',
                         with_header=False)[0]
        self.assertEqual(str(103 * GiB), pool['virtual_capacity'])

    def test_rmvdisk_in_use(self) -> None:
        self.ok('mkhost -name h1 -fcwwpn %s' % W1)
        self.ok('mkvdiskhostmap -host h1 v1')
        self.fails('rmvdisk v1', 'CMMVC5840E')
        self.ok('mkvdisk -name v2 -mdiskgrp pool0 -iogrp 0 -size 1 -unit gb')
        self.ok('mkfcmap -source v2 -target v1 -copyrate 0')
        self.fails('rmvdisk -removehostmappings v1', 'CMMVC5840E')
        self.fails('rmvdisk v2', 'CMMVC5840E')
        self.ok('rmvdisk -force v1')
        inv = self.inv()
        self.assertEqual([], inv['mappings'])
        self.assertEqual({}, inv['fcmaps'])
        self.assertEqual(['v2'], list(inv['vdisks']))
        self.assertEqual(1, len(inv['luns']))


class HostTestCase(svc_base.ArrayTestCase):

    def setUp(self) -> None:
        super().setUp()
        for name in ('v1', 'v2', 'v3'):
            self.ok('mkvdisk -name %s -mdiskgrp pool0 -iogrp 0 -size 1 '
                    '-unit gb' % name)

    def test_host_ports(self) -> None:
        self.assertEqual('Host, id [0], successfully created\n',
                         self.ok('mkhost -force -hbawwpn %s -name h1' % W1))
        self.ok('addhostport -force -hbawwpn %s h1' % W2.lower())
        self.fails('mkhost -name h2 -fcwwpn %s' % W2, 'CMMVC6035E')
        self.fails('addhostport -hbawwpn %s nosuch' % W3, 'CMMVC5753E')
        self.ok('mkhost -name h2 -fcwwpn %s' % W3)
        self.fails('mkhost -name h2 -fcwwpn 2100000E1E30E5AA', 'CMMVC6035E')
        self.fails('mkhost -name h3 -fcwwpn 12345', 'CMMVC5711E')
        detail = self.info('lshost -delim ! h1', with_header=False)[0]
        self.assertEqual([W1, W2], detail['WWPN'])
        self.assertEqual(['2', '2'], detail['node_logged_in_count'])
        hosts = self.info('lshost -delim !')
        self.assertEqual(['h1', 'h2'], list(hosts.select('name')))
        fabric = self.info('lsfabric -delim ! -wwpn %s' % W3)
        self.assertEqual({'h2'}, set(fabric.select('name')))
        self.assertEqual(4, len(fabric))          # 2 nodes x 2 NPIV ports
        fabric = self.info('lsfabric -delim ! -host h1')
        self.assertEqual(8, len(fabric))
        self.ok('rmhostport -fcwwpn %s h1' % W2)
        self.ok('chhost -name h1b h1')
        self.ok('rmhost h1b')
        self.assertEqual(['h2'], list(self.inv()['hosts']))

    def test_mappings(self) -> None:
        self.ok('mkhost -name h1 -fcwwpn %s' % W1)
        self.ok('mkhost -name h2 -fcwwpn %s' % W2)
        self.assertEqual(
            'Virtual Disk to Host map, id [0], successfully created\n',
            self.ok('mkvdiskhostmap -host h1 -scsi 0 v1'))
        self.fails('mkvdiskhostmap -host h1 -scsi 0 v2', 'CMMVC5879E')
        self.fails('mkvdiskhostmap -host h1 v1', 'CMMVC5878E')
        self.fails('mkvdiskhostmap -host h2 v1', 'CMMVC6071E')
        self.ok('mkvdiskhostmap -force -host h2 v1')
        self.ok('mkvdiskhostmap -host h1 v2')       # next free SCSI id: 1
        self.ok('mkvdiskhostmap -host h1 -scsi 5 v3')
        self.fails('mkvdiskhostmap -host nosuch v3', 'CMMVC5754E')
        hm = self.info('lshostvdiskmap -delim ! h1')
        self.assertEqual([('0', 'v1'), ('1', 'v2'), ('5', 'v3')],
                         list(hm.select('SCSI_id', 'vdisk_name')))
        # no host given: every host's mappings
        self.assertEqual(4, len(self.info('lshostvdiskmap -delim !')))
        vm = self.info('lsvdiskhostmap -delim ! v1')
        self.assertEqual(['h1', 'h2'], list(vm.select('host_name')))
        self.fails('rmhost h1', 'CMMVC5871E')
        self.ok('rmvdiskhostmap -host h1 v1')
        self.fails('rmvdiskhostmap -host h1 v1', 'CMMVC5842E')
        self.ok('rmhost -force h1')
        inv = self.inv()
        self.assertEqual([{'host': 'h2', 'vdisk': 'v1', 'scsi_id': 0}],
                         inv['mappings'])


class HooksTestCase(svc_base.ArrayTestCase):

    def test_inject_fault(self) -> None:
        self.array.inject_fault('mkvdisk', 2, 'CMMVC5786E The action failed '
                                'because the cluster is not in a stable '
                                'state.')
        cmd = 'mkvdisk -name v1 -mdiskgrp pool0 -iogrp 0 -size 1'
        self.fails(cmd, 'CMMVC5786E')
        self.fails(cmd, 'CMMVC5786E')
        self.ok('lsvdisk')                  # other verbs unaffected
        self.ok(cmd)
        self.assertEqual(['v1'], list(self.inv()['vdisks']))

    def test_fail_rate_and_latency(self) -> None:
        sleep = mock.Mock()
        array = self.make_array(fail_rate=0.5, seed=7, latency=0.25,
                                sleep=sleep)
        results = [array.run(['lsvdisk'])[2] for _ in range(200)]
        self.assertTrue(60 < results.count(1) < 140, results.count(1))
        self.assertEqual(200, sleep.call_count)
        sleep.assert_called_with(0.25)
        out, err, status = array.run(['lsvdisk'])
        if status:
            self.assertTrue(err.startswith('CMMVC5786E '), err)

    def test_run_never_raises(self) -> None:
        with mock.patch.object(cli.vdisk, 'lsvdisk',
                               side_effect=RuntimeError('boom')):
            handler = cli._VERBS['lsvdisk']
            with mock.patch.dict(cli._VERBS, {'lsvdisk': (
                    cli.vdisk.lsvdisk, handler[1], handler[2])}):
                out, err, status = self.array.run(['lsvdisk'])
        self.assertEqual(1, status)
        self.assertTrue(err.startswith('CMMVC'))

    def test_persistence(self) -> None:
        self.ok('mkvdisk -name v1 -mdiskgrp pool0 -iogrp 0 -size 1 -unit gb')
        self.ok('mkhost -name h1 -fcwwpn %s' % W1)
        self.ok('mkvdiskhostmap -host h1 v1')
        path = os.path.join(self.state_dir, 'svc-state.json')
        with open(path) as f:
            self.assertEqual(['v1'], [v['name'] for v in
                                      json.load(f)['vdisks'].values()])
        before = self.inv()
        again = self.make_array(pools={POOL: 1, 'pool1': GiB})
        after = svc_base.keyed(again.inventory())
        self.assertEqual(before['vdisks'], after['vdisks'])
        self.assertEqual(before['mappings'], after['mappings'])
        # the saved pool keeps its capacity; a new pool is added
        pools = self.info('lsmdiskgrp -delim ! -bytes')
        self.assertEqual([POOL], list(pools.select('name')))
        out, _, _ = again.run(['lsmdiskgrp', '-delim', '!', '-bytes'])
        self.assertIn('pool1', out)
        self.assertIn(str(64 * GiB), out)
        # ids and UIDs continue, never reused for a new vdisk's UID
        again.run(['rmvdisk', '-force', 'v1'])
        again.run('mkvdisk -name v2 -mdiskgrp pool0 -iogrp 0 -size 1'
                  .split())
        uids = {v['vdisk_UID'] for v in again.inventory()['vdisks']}
        self.assertNotIn(before['vdisks']['v1']['uid'], uids)

    def test_inventory_shape(self) -> None:
        self.ok('mkvdisk -name v1 -mdiskgrp pool0 -iogrp 0 -size 1 -unit gb')
        self.ok('mkvdisk -name v2 -mdiskgrp pool0 -iogrp 0 -size 1 -unit gb '
                '-rsize 2%')
        self.ok('mkhost -name h1 -fcwwpn %s:%s' % (W1, W2))
        self.ok('mkvdiskhostmap -host h1 -scsi 3 v1')
        self.ok('mkfcmap -source v1 -target v2 -copyrate 0')
        inv = self.array.inventory()
        (v1, v2) = inv['vdisks']
        self.assertEqual(('v1', GiB, POOL, False, GiB),
                         (v1['name'], v1['capacity'], v1['pool'],
                          v1['thin'], v1['real_capacity']))
        self.assertEqual([v1['vdisk_UID'], v2['vdisk_UID']], inv['luns'])
        self.assertEqual([{'name': 'h1', 'id': 0, 'wwpns': [W1, W2]}],
                         inv['hosts'])
        self.assertEqual([{'host_name': 'h1', 'vdisk_name': 'v1',
                           'scsi_id': 3}], inv['host_mappings'])
        (m,) = inv['fcmaps']
        self.assertEqual(('v1', 'v2', 0, 'idle_or_copied', ''),
                         (m['source'], m['target'], m['copy_rate'],
                          m['status'], m['group']))
        self.assertEqual(2, len(inv['nodes']))
        self.assertEqual(4, len(inv['nodes'][0]['wwpns']))
        (pool,) = inv['pools']
        self.assertEqual((POOL, 64 * GiB, 2), (pool['name'],
                                               pool['capacity'],
                                               pool['vdisk_count']))

    def test_concurrent_commands(self) -> None:
        errors: list[str] = []

        def worker(n: int) -> None:
            for i in range(10):
                out, err, status = self.array.run(
                    ['svctask', 'mkvdisk', '-name', 'v%d_%d' % (n, i),
                     '-mdiskgrp', POOL, '-iogrp', '0', '-size', '1',
                     '-rsize', '2%'])
                if status:
                    errors.append(err)

        threads = [threading.Thread(target=worker, args=(n,))
                   for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual([], errors)
        inv = self.inv()
        self.assertEqual(80, len(inv['vdisks']))
        self.assertEqual(list(range(80)),
                         sorted(v['id'] for v in inv['vdisks'].values()))
        self.assertEqual(80, len(set(inv['luns'])))
