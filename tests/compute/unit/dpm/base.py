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
"""Common set-up of the DPM driver's unit tests: an emulated HMC behind the
real driver (``hmc.make_session`` answers the emulated session), instances
and the FC connection info Cinder's Storwize driver would return."""

from typing import Any

import fixtures
from nova import context as nova_context
from nova import test
from nova.tests.unit import fake_flavor
from nova.tests.unit import fake_instance
from oslo_utils import uuidutils

from nova_shim.virt.dpm import driver as dpm_driver
from tests.compute.unit.dpm import fakes

HOST = 'cmp1'
# SVC NPIV target ports (node 1 port 1, node 2 port 1), as Cinder lists them
TARGETS = ['500507681019ab09', '500507681029ab09']
MAPPINGS = ['%s:0' % fakes.ADAPTERS[0], '%s:1' % fakes.ADAPTERS[1]]


class DriverTestCase(test.NoDBTestCase):
    """A driver on an emulated HMC; ``STORAGE_GROUPS`` picks the CPC."""

    STORAGE_GROUPS = True
    INIT_HOST = True

    def setUp(self) -> None:
        super().setUp()
        self.flags(host=HOST)
        self.flags(hmc=['hmc.example.org'], hmc_username='nova',
                   hmc_password='s3cret', cpc_object_id=fakes.CPC_ID,
                   max_processors=8, max_memory=65536,
                   physical_storage_adapter_mappings=MAPPINGS,
                   group='dpm')
        self.session, self.reach = fakes.hmc_session(self.STORAGE_GROUPS)
        self.useFixture(fixtures.MockPatch(
            'nova_shim.virt.dpm.hmc.make_session',
            side_effect=lambda conf: self.session))
        self.client = fakes.client(self.session)
        self.cpc = self.client.cpcs.find(**{'object-id': fakes.CPC_ID})
        self.ctxt = nova_context.get_admin_context()
        self.driver = dpm_driver.DPMDriver(None)
        if self.INIT_HOST:
            self.driver.init_host(HOST)

    def instance(self, vcpus: int = 2, memory_mb: int = 4096,
                 root_gb: int = 10) -> Any:
        flavor = fake_flavor.fake_flavor_obj(
            self.ctxt, vcpus=vcpus, memory_mb=memory_mb, root_gb=root_gb,
            ephemeral_gb=0, swap=0)
        return fake_instance.fake_instance_obj(
            self.ctxt, uuid=uuidutils.generate_uuid(), flavor=flavor,
            image_ref='', vcpus=vcpus, memory_mb=memory_mb)

    @staticmethod
    def connection_info(connector: dict[str, Any], lun: int,
                        volume_id: str | None = None,
                        targets: list[str] | None = None) -> dict[str, Any]:
        """What Cinder's Storwize FC driver returns for ``connector``."""
        targets = targets or TARGETS
        volume_id = volume_id or uuidutils.generate_uuid()
        return {
            'driver_volume_type': 'fibre_channel',
            'serial': volume_id,
            'data': {
                'target_discovered': False, 'target_lun': lun,
                'target_wwn': [t.upper() for t in targets],
                # keys echoed exactly as the connector sent them
                'initiator_target_map': {
                    w: [t.upper() for t in targets]
                    for w in connector['wwpns']},
                'volume_id': volume_id,
            },
        }

    def block_device_info(self, connector: dict[str, Any], root_lun: int,
                          extra_luns: tuple[int, ...] = ()
                          ) -> dict[str, Any]:
        bdms = [{'boot_index': 0, 'mount_device': '/dev/sda',
                 'delete_on_termination': True, 'volume_size': 10,
                 'connection_info': self.connection_info(connector,
                                                         root_lun)}]
        for i, lun in enumerate(extra_luns):
            bdms.append({'boot_index': -1,
                         'mount_device': '/dev/sd%s' % 'bcdef'[i],
                         'delete_on_termination': True, 'volume_size': 1,
                         'connection_info': self.connection_info(connector,
                                                                 lun)})
        return {'root_device_name': '/dev/sda', 'ephemerals': [],
                'swap': None, 'block_device_mapping': bdms}

    def spawn(self, instance: Any, root_lun: int = 3,
              extra_luns: tuple[int, ...] = (), power_on: bool = True
              ) -> dict[str, Any]:
        self.driver.prepare_for_spawn(instance)
        connector = self.driver.get_volume_connector(instance)
        bdi = self.block_device_info(connector, root_lun, extra_luns)
        self.driver.spawn(self.ctxt, instance, {}, [], None, {}, [], bdi,
                          power_on=power_on)
        return bdi

    def partition(self, instance: Any) -> Any:
        part = self.cpc.partitions.find(
            name='OpenStack-%s-%s' % (HOST, instance.uuid))
        part.pull_full_properties()
        return part

    def leftovers(self) -> dict[str, list[str]]:
        console = self.client.consoles.console
        return {
            'partitions': [p.name for p in self.cpc.partitions.list()],
            'storage_groups': [s.name for s in
                               console.storage_groups.list()],
            'hbas': [h.name for p in self.cpc.partitions.list()
                     for h in p.hbas.list()],
        }
