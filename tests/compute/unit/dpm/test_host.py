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
"""init_host checks, route choice and resources of the DPM driver."""

from nova.compute import provider_tree
from oslo_config import cfg

from nova_shim import conf as shim_conf
from nova_shim.virt.dpm import exception
from nova_shim.virt.dpm import hmc
from tests.compute.unit.dpm import base
from tests.compute.unit.dpm import fakes

# the real one: base.DriverTestCase patches hmc.make_session in setUp
make_session = hmc.make_session


class InitHostTest(base.DriverTestCase):
    INIT_HOST = False

    def _fails(self, exc_class: type, *needles: str) -> str:
        exc = self.assertRaises(exc_class, self.driver.init_host, base.HOST)
        for needle in needles:
            self.assertIn(needle, str(exc))
        return str(exc)

    def test_storage_group_route_chosen(self) -> None:
        self.driver.init_host(base.HOST)
        self.assertEqual('storage-group', self.driver.route)

    def test_cpc_missing(self) -> None:
        self.flags(cpc_object_id='deadbeef', group='dpm')
        self._fails(exception.CpcNotFound, 'deadbeef', 'hmc.example.org',
                    'cpc_object_id')

    def test_cpc_not_dpm(self) -> None:
        self.session.hmc.cpcs.lookup_by_oid(fakes.CPC_ID).properties[
            'dpm-enabled'] = False
        self._fails(exception.CpcNotDpm, 'DPM mode on CPC CPC1 not enabled')

    def test_subset_larger_than_cpc(self) -> None:
        self.flags(max_processors=21, group='dpm')
        self._fails(exception.CpcTooSmall, 'max_processors = 21',
                    'processor-count-ifl = 20', 'lower [dpm] max_processors')
        self.flags(max_processors=2, max_memory=2 * 1024 * 1024,
                   group='dpm')
        self._fails(exception.CpcTooSmall, 'max_memory = 2097152',
                    'storage-customer')

    def test_adapter_missing_not_fcp_or_no_port(self) -> None:
        missing = '0badc0de-0000-4000-8000-000000000000:0'
        self.flags(physical_storage_adapter_mappings=[missing], group='dpm')
        self._fails(exception.AdapterError, missing, 'no adapter')
        osa = '%s:0' % fakes.OSA_ID
        self.flags(physical_storage_adapter_mappings=[osa], group='dpm')
        self._fails(exception.AdapterError, osa, 'type osd, not fcp')
        port = '%s:3' % fakes.ADAPTERS[0]
        self.flags(physical_storage_adapter_mappings=[port], group='dpm')
        self._fails(exception.AdapterError, port, 'has no port 3')

    def test_mapping_syntax_checked_by_oslo(self) -> None:
        self.assertRaises(ValueError, self.flags,
                          physical_storage_adapter_mappings=['fcp1'],
                          group='dpm')

    def test_required_options(self) -> None:
        self.flags(hmc_password=None, cpc_object_id=None, group='dpm')
        self._fails(exception.ConfigError, 'hmc_password', 'cpc_object_id',
                    '[dpm]')

    def test_host_name_too_long(self) -> None:
        self.flags(host='x' * 18)
        self._fails(exception.HostNameTooLong, 'x' * 18, '64',
                    'at most 17 characters')
        self.flags(host='x' * 17)
        self.driver.init_host('x' * 17)

    def test_verify_cert(self) -> None:
        self.assertIs(True, hmc.verify_cert(cfg.CONF))
        self.flags(hmc_ca_certs='/etc/ssl/hmc-ca.pem', group='dpm')
        self.assertEqual('/etc/ssl/hmc-ca.pem', hmc.verify_cert(cfg.CONF))
        self.flags(hmc_verify_cert=False, group='dpm')
        self.assertIs(False, hmc.verify_cert(cfg.CONF))

    def test_session_from_options(self) -> None:
        self.flags(hmc=['hmc1.example.org', 'hmc2.example.org'],
                   hmc_port=16794, hmc_ca_certs='/etc/ssl/hmc-ca.pem',
                   group='dpm')
        session = make_session(cfg.CONF)  # no HMC contacted yet
        self.assertEqual(['hmc1.example.org', 'hmc2.example.org'],
                         session.host)
        self.assertEqual(16794, session.port)
        self.assertEqual('/etc/ssl/hmc-ca.pem', session.verify_cert)
        self.assertEqual('nova', session.userid)
        self.flags(hmc=['hmc1.example.org'], group='dpm')
        self.assertEqual('hmc1.example.org', make_session(cfg.CONF).host)

    def test_password_never_logged(self) -> None:
        self.driver.init_host(base.HOST)
        self.flags(hmc_verify_cert=False, group='dpm')
        make_session(cfg.CONF)
        self.assertIn('hmc_verify_cert = false', self.stdlog.logger.output)
        self.assertNotIn('s3cret', self.stdlog.logger.output)

    def test_options_listed_for_generator(self) -> None:
        groups = {g.name: [o.name for o in opts]
                  for g, opts in shim_conf.list_opts()}
        self.assertIn('dpm', groups)
        for name in ('hmc', 'hmc_username', 'hmc_password', 'hmc_verify_cert',
                     'hmc_ca_certs', 'cpc_object_id', 'max_processors',
                     'max_memory', 'physical_storage_adapter_mappings',
                     'target_wwpn_ignore_list', 'partition_start_timeout',
                     'partition_stop_timeout'):
            self.assertIn(name, groups['dpm'])
        secret = [o for g, opts in shim_conf.list_opts() for o in opts
                  if o.name == 'hmc_password']
        self.assertTrue(secret[0].secret)


class HbaInitHostTest(base.DriverTestCase):
    STORAGE_GROUPS = False

    def test_hba_route_chosen(self) -> None:
        self.assertEqual('hba', self.driver.route)


class ResourcesTest(base.DriverTestCase):

    def test_available_resource(self) -> None:
        res = self.driver.get_available_resource(base.HOST)
        self.assertEqual('PRSM', res['hypervisor_type'])
        self.assertEqual(base.HOST, res['hypervisor_hostname'])
        self.assertEqual(8, res['vcpus'])
        self.assertEqual(65536, res['memory_mb'])
        self.assertEqual(0, res['local_gb'])
        self.assertEqual([('s390x', 'prsm', 'hvm')],
                         res['supported_instances'])
        self.assertEqual(2014001, res['hypervisor_version'])
        self.assertEqual([base.HOST], self.driver.get_available_nodes())

    def test_provider_tree(self) -> None:
        self.flags(cpu_allocation_ratio=4.0, reserved_host_memory_mb=1024)
        tree = provider_tree.ProviderTree()
        tree.new_root(base.HOST, 'c1f2a3b4-0000-4000-8000-000000000001')
        self.driver.update_provider_tree(tree, base.HOST)
        inv = tree.data(base.HOST).inventory
        self.assertEqual({'VCPU', 'MEMORY_MB'}, set(inv))
        self.assertEqual(8, inv['VCPU']['total'])
        self.assertEqual(8, inv['VCPU']['max_unit'])
        self.assertEqual(4.0, inv['VCPU']['allocation_ratio'])
        self.assertEqual(65536, inv['MEMORY_MB']['total'])
        self.assertEqual(1024, inv['MEMORY_MB']['reserved'])
