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
"""What a real HMC refuses, the emulator refuses (in-process model)."""

from __future__ import annotations

import zhmcclient

from tests.compute.unit.emulators_hmc import base
from tests.compute.unit.emulators_hmc.base import LUN1, PART_PROPS


class TestPartitionRules(base.HMCTestCase):

    def test_duplicate_name_refused_on_same_cpc(self) -> None:
        self.partition(self.z14, 'p1')
        msg = self.refused(400, 8, self.partition, self.z14, 'p1')
        self.assertIn("'p1' already exists on CPC CPC1", msg)
        self.assertEqual(['p1'],
                         [p.name for p in self.z14.partitions.list()])
        # unique per hosting CPC only
        self.partition(self.z13, 'p1')

    def test_rename_to_existing_name_refused(self) -> None:
        self.partition(self.z14, 'p1')
        p2 = self.partition(self.z14, 'p2')
        self.refused(400, 8, p2.update_properties, {'name': 'p1'})
        p2.update_properties({'name': 'p2'})  # its own name is fine
        p2.update_properties({'name': 'p3'})
        self.assertEqual({'p1', 'p3'},
                         {p.name for p in self.z14.partitions.list()})

    def test_name_length_1_to_64(self) -> None:
        self.partition(self.z14, 'x' * 64)
        msg = self.refused(400, 7, self.partition, self.z14, 'y' * 65)
        self.assertIn('1 to 64 characters', msg)
        self.refused(400, 7, self.partition, self.z14, '')
        # the nova-dpm naming with a 17-character host fits exactly
        self.partition(self.z14, f'OpenStack-{"h" * 17}-{base.UUID}')
        self.refused(400, 7, self.partition, self.z14,
                     f'OpenStack-{"h" * 18}-{base.UUID}')

    def test_boot_device_values(self) -> None:
        part = self.partition(self.z14)
        msg = self.refused(400, 7, part.update_properties,
                           {'boot-device': 'bogus-value'})
        self.assertIn('storage-volume', msg)
        self.refused(400, 7, self.z14.partitions.create,
                     dict(PART_PROPS, name='b', **{'boot-device': 'disk'}))
        # storage-adapter is the z13 route, storage-volume the z14 one
        self.refused(400, 7, part.update_properties,
                     {'boot-device': 'storage-adapter'})
        z13 = self.partition(self.z13)
        self.refused(400, 7, z13.update_properties,
                     {'boot-device': 'storage-volume'})
        part.update_properties({'boot-device': 'none'})

    def test_boot_wwpn_and_lun_format(self) -> None:
        part, hba = self.hba_partition()
        self.refused(400, 7, part.update_properties,
                     {'boot-world-wide-port-name': '0x500507680b21ac8a'})
        self.refused(400, 7, part.update_properties,
                     {'boot-logical-unit-number': '00010000000000000'})
        self.refused(400, 7, part.update_properties,
                     {'boot-logical-unit-number': 'LUN1'})
        self.refused(400, 7, part.update_properties,
                     {'boot-storage-device': '/api/partitions/x/hbas/1'})
        self.set_hba_boot(part, hba, '500507680B21AC8A', LUN1)

    def test_read_only_properties_refused(self) -> None:
        part = self.partition(self.z14)
        self.refused(400, 7, part.update_properties, {'status': 'active'})
        self.assertEqual('stopped', self.status(part))

    def test_delete_active_partition_refused(self) -> None:
        # no SAN behind this session: a start only checks the settings
        session = base.hmc.faked_session(base.hmc.cpc_definition(
            'CPC13', storage_groups=False))
        cpc = zhmcclient.Client(session).cpcs.find(name='CPC13')
        p = cpc.partitions.create(dict(PART_PROPS, name='p'))
        h = p.hbas.create({'name': 'h', 'adapter-port-uri':
                           self.ports(cpc)[0].uri})
        self.set_hba_boot(p, h, '500507680B21AC8A', LUN1)
        p.start()
        self.assertEqual('active', self.status(p))
        self.refused(409, 1, p.delete)
        self.refused(409, 1, p.start)
        p.stop()
        self.refused(409, 1, p.stop)
        p.delete()
        self.assertEqual([], cpc.partitions.list())


class TestHbaRules(base.HMCTestCase):

    def test_hbas_only_on_stopped_partitions(self) -> None:
        session = base.hmc.faked_session(base.hmc.cpc_definition(
            'CPC13', storage_groups=False))
        cpc = zhmcclient.Client(session).cpcs.find(name='CPC13')
        port = self.ports(cpc)[0]
        p = cpc.partitions.create(dict(PART_PROPS, name='p'))
        h = p.hbas.create({'name': 'h', 'adapter-port-uri': port.uri})
        self.set_hba_boot(p, h, '500507680B21AC8A', LUN1)
        p.start()
        msg = self.refused(409, 1, p.hbas.create,
                           {'name': 'h2', 'adapter-port-uri': port.uri})
        self.assertIn('active', msg)
        self.refused(409, 1, h.delete)
        p.stop()
        p.hbas.create({'name': 'h2', 'adapter-port-uri': port.uri})
        h.delete()
        self.assertEqual(['h2'], [x.name for x in p.hbas.list()])

    def test_no_hbas_with_storage_management_feature(self) -> None:
        part = self.partition(self.z14)
        self.refused(404, 1, part.hbas.create,
                     {'name': 'h', 'adapter-port-uri':
                      self.ports(self.z14)[0].uri})

    def test_wwpns_unique_across_partitions_and_never_reused(self) -> None:
        port = self.ports(self.z13)[0].uri
        seen = []
        for i in range(3):
            p = self.partition(self.z13, f'p{i}')
            h = p.hbas.create({'name': 'h', 'adapter-port-uri': port})
            seen.append(h.get_property('wwpn'))
            h.delete()
        h = p.hbas.create({'name': 'h', 'adapter-port-uri': port})
        seen.append(h.get_property('wwpn'))
        self.assertEqual(4, len(set(seen)), seen)
        for w in seen:
            self.assertRegex(w, '^c05076[0-9a-f]{10}$')

    def test_duplicate_hba_name_refused(self) -> None:
        part, hba = self.hba_partition()
        self.refused(400, 8, part.hbas.create,
                     {'name': 'hba0', 'adapter-port-uri':
                      self.ports(self.z13)[1].uri})
        self.refused(404, 6, part.hbas.create,
                     {'name': 'hba1', 'adapter-port-uri':
                      self.ports(self.z13)[0].uri[:-1] + '7'})
