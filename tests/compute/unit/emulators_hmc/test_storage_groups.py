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
"""FCP storage groups: create, attach, fulfil, detach (in-process model)."""

from __future__ import annotations

from tests.compute.unit.emulators_hmc import base
from tests.compute.unit.emulators_hmc.base import LUN1

TARGET = '500507680b21ac8a'


class TestStorageGroups(base.HMCTestCase):

    def test_create_attach_fulfil_detach(self) -> None:
        part, sg, sv = self.sg_partition()
        sg.pull_full_properties()
        self.assertEqual([p.uri for p in self.ports(self.z14)[:2]],
                         sg.get_property('candidate-adapter-port-uris'))
        self.assertEqual([sg.uri], [s.uri for s in
                                    part.list_attached_storage_groups()])
        wwpns = self.vsr_wwpns(sg, part)
        self.assertEqual(2, len(set(wwpns)))
        sv.pull_full_properties()
        self.assertEqual('pending', sv.get_property('fulfillment-state'))
        self.assertEqual([], sv.get_property('paths'))

        sv.indicate_fulfillment_fcp(TARGET.upper(), LUN1,
                                    self.ports(self.z14)[0])
        sv.pull_full_properties()
        self.assertEqual('complete', sv.get_property('fulfillment-state'))
        vsrs = sg.virtual_storage_resources.list(
            filter_args={'partition-uri': part.uri})
        self.assertEqual(
            sorted({'partition-uri': part.uri,
                    'device-number': v.get_property('device-number'),
                    'target-world-wide-port-name': TARGET,
                    'logical-unit-number': LUN1}.items()
                   for v in vsrs),
            sorted(p.items() for p in sv.get_property('paths')))

        part.update_properties({'boot-device': 'storage-volume',
                                'boot-storage-volume': sv.uri})
        part.detach_storage_group(sg)
        self.assertEqual([], sg.virtual_storage_resources.list())
        sv.pull_full_properties()
        self.assertEqual([], sv.get_property('paths'))
        part.pull_full_properties()
        self.assertIsNone(part.get_property('boot-storage-volume'))
        sg.delete()
        part.delete()
        self.assertEqual([], self.client.consoles.console.storage_groups
                         .list())

    def test_partition_attached_later_gets_paths(self) -> None:
        part, sg, sv = self.sg_partition()
        part.detach_storage_group(sg)
        sv.indicate_fulfillment_fcp(TARGET, LUN1, self.ports(self.z14)[1])
        sv.pull_full_properties()
        self.assertEqual([], sv.get_property('paths'))
        part.attach_storage_group(sg)
        sv.pull_full_properties()
        self.assertEqual(2, len(sv.get_property('paths')))

    def test_storage_group_rules(self) -> None:
        part, sg, sv = self.sg_partition('p1')
        console = self.client.consoles.console
        props = {'name': 'p1', 'cpc-uri': self.z14.uri, 'type': 'fcp'}
        self.refused(400, 8, console.storage_groups.create, props)
        self.refused(400, 7, console.storage_groups.create,
                     dict(props, name='x' * 65))
        self.refused(400, 7, console.storage_groups.create,
                     dict(props, name='n', type='fc'))
        self.refused(400, 7, console.storage_groups.create,
                     dict(props, name='n', **{'cpc-uri': self.z13.uri}))
        self.refused(400, 7, sg.storage_volumes.create,
                     {'usage': 'swap', 'size': 1.0})
        self.refused(400, 7, sg.storage_volumes.create, {'usage': 'data'})
        # attached: no delete, no second attach; not shared: no other
        msg = self.refused(409, 1, sg.delete)
        self.assertIn('attached to partition(s) p1', msg)
        self.refused(409, 1, part.attach_storage_group, sg)
        other = self.partition(self.z14, 'p2')
        self.refused(409, 1, other.attach_storage_group, sg)
        self.refused(409, 1, other.detach_storage_group, sg)
        # fulfilment: 16-hex WWPN, hex LUN, a candidate port
        op = sv.uri + '/operations/fulfill-fcp-storage-volume'
        body = {'world-wide-port-name': TARGET, 'logical-unit-number': LUN1,
                'adapter-port-uri': self.ports(self.z14)[0].uri}
        for bad in ({'world-wide-port-name': '0x' + TARGET[2:]},
                    {'logical-unit-number': '0x1'}):
            self.refused(400, 7, self.session.post, op,
                         body=dict(body, **bad))
        self.refused(400, 7, sv.indicate_fulfillment_fcp, TARGET, LUN1,
                     self.ports(self.z14)[3])

    def test_boot_volume_group_not_detached_while_active(self) -> None:
        session = base.hmc.faked_session(base.hmc.cpc_definition())
        client = base.zhmcclient.Client(session)
        cpc = client.cpcs.find(name='CPC1')
        part = cpc.partitions.create(dict(base.PART_PROPS, name='p'))
        sg = client.consoles.console.storage_groups.create({
            'name': 'sg', 'cpc-uri': cpc.uri, 'type': 'fcp',
            'candidate-adapter-port-uris': [self.ports(cpc)[0].uri]})
        sv = sg.storage_volumes.create({'usage': 'boot', 'size': 4.0})
        part.attach_storage_group(sg)
        sv.indicate_fulfillment_fcp(TARGET, LUN1, self.ports(cpc)[0])
        part.update_properties({'boot-device': 'storage-volume',
                                'boot-storage-volume': sv.uri})
        part.start()
        self.refused(409, 1, part.detach_storage_group, sg)
        part.stop()
        part.detach_storage_group(sg)

    def test_boot_volume_must_be_attached(self) -> None:
        part, sg, sv = self.sg_partition('p1')
        other = self.partition(self.z14, 'p2')
        self.refused(400, 7, other.update_properties,
                     {'boot-device': 'storage-volume',
                      'boot-storage-volume': sv.uri})
