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
"""The devstack plugin, sourced the way devstack sources it.

Each test runs one bash process that does what stack.sh, unstack.sh and
clean.sh do with a plugin (cinder_dpm_ephemeral.testing.devstack: the
phase order, lib/cinder's backend loop and volume-type rule, stand-ins for
the devstack functions the plugin calls; ``run_process`` really starts the
emulated SVC). The resulting cinder.conf, nova.conf, nova-cpu.conf,
api-paste.ini (a copy of the one Nova installs) and tempest.conf are then
read back. tests/e2e/test_devstack_config.py applies the same output to
the whole cloud and boots a server with it.
"""

from __future__ import annotations

import pathlib
import shutil
import socket
import subprocess
import tempfile

import testtools

from cinder_dpm_ephemeral.testing import devstack
from cinder_dpm_ephemeral.testing.devstack import PHASES

REPO = devstack.REPO
VENV_BIN = devstack.VENV_BIN


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


_ini = devstack.ini


class DevstackPluginTest(testtools.TestCase):

    def setUp(self) -> None:
        super().setUp()
        self.work = pathlib.Path(tempfile.mkdtemp(prefix='dpm-devstack-'))
        self.addCleanup(shutil.rmtree, self.work, True)
        self.stack = devstack.Stack(self.work)

    def _stack(self, services: str, script: str = PHASES,
               **local_conf: str) -> subprocess.CompletedProcess:
        return self.stack.run(services, script, **local_conf)

    def _calls(self) -> list[str]:
        return self.stack.calls()

    def test_all_in_one_with_the_emulated_svc(self) -> None:
        port = _free_port()
        # Look at the state while stacked: the phases stop at STACKED.
        script = PHASES.replace('source $PLUGIN/plugin.sh unstack', '''
test -s $DPM_EPHEMERAL_STATE_DIR/known_hosts
cp -r $DPM_EPHEMERAL_STATE_DIR $WORK/state-while-stacked
source $PLUGIN/plugin.sh unstack''')
        out = self._stack('c-api,c-sch,c-vol,n-api,n-cpu,tempest', script,
                          DPM_EMULATOR_SVC_PORT=str(port))
        self.assertEqual(0, out.returncode, out.stderr)
        calls = self._calls()
        self.assertEqual('define_plugin cinder-dpm-ephemeral', calls[0])
        self.assertIn(
            'setup_develop %s/opt/cinder-dpm-ephemeral [cinder,nova,'
            'emulators]' % self.work, calls)
        # one backend: ours, default type, no LVM
        self.assertIn('volume types: dpm-svc', calls)
        self.assertIn('run_process dpm-emulator', calls)
        self.assertIn('stop_process dpm-emulator', calls)

        cinder = _ini(self.work / 'cinder.conf')
        self.assertEqual('dpm-svc', cinder['DEFAULT']['enabled_backends'])
        self.assertEqual('dpm-svc', cinder['DEFAULT']['default_volume_type'])
        state = self.work / 'data' / 'dpm-emulator'
        self.assertEqual(str(state / 'known_hosts'),
                         cinder['DEFAULT']['ssh_hosts_key_file'])
        self.assertEqual('True',
                         cinder['DEFAULT']['strict_ssh_host_key_policy'])
        be = cinder['dpm-svc']
        self.assertEqual(
            'cinder_dpm_ephemeral.svc.driver.StorwizeEphemeralDriver',
            be['volume_driver'])
        self.assertEqual('dpm-svc', be['volume_backend_name'])
        self.assertEqual(str(port), be['san_ssh_port'])
        self.assertEqual('127.0.0.1', be['san_ip'])
        self.assertEqual('superuser', be['san_login'])
        self.assertEqual('pool0', be['storwize_svc_volpool_name'])
        self.assertEqual(str(state), be['dpm_ephemeral_emulator_state_dir'])
        # the emulator really ran and wrote its host key for Cinder
        kept = self.work / 'state-while-stacked' / 'known_hosts'
        self.assertIn('[127.0.0.1]:%d' % port, kept.read_text())
        # the password went through the environment
        self.assertNotIn('devstack-secret',
                         (self.work / 'dpm-emulator.log').read_text())

        nova = _ini(self.work / 'nova' / 'nova.conf')
        self.assertEqual('dpm-svc',
                         nova['dpm_boot_from_volume']['volume_type'])
        self.assertEqual('False',
                         nova['dpm_boot_from_volume']['translate_all'])
        paste = _ini(self.work / 'nova' / 'api-paste.ini')
        self.assertEqual(
            'nova_shim.api.bfv_filter:BootFromVolumeFilter.factory',
            paste['filter:dpm_bfv']['paste.filter_factory'])
        for name in ('composite:openstack_compute_api_v21',):
            for line in paste[name].values():
                if 'osapi_compute_app_v21' in line:
                    self.assertRegex(
                        line, r'keystonecontext dpm_bfv '
                              r'osapi_compute_app_v21$')
        cpu = _ini(self.work / 'nova' / 'nova-cpu.conf')
        self.assertEqual('300',
                         cpu['DEFAULT']['block_device_allocate_retries'])
        self.assertNotIn('compute_driver', cpu['DEFAULT'])

        tempest = _ini(self.work / 'tempest.conf')
        self.assertEqual('FC', tempest['volume']['storage_protocol'])
        self.assertEqual('IBM', tempest['volume']['vendor_name'])
        self.assertEqual('dpm-svc', tempest['volume']['volume_type'])
        # clean removed the emulator's state
        self.assertFalse(state.exists())

    def test_backend_already_in_local_conf_is_not_added_twice(self) -> None:
        out = self._stack(
            'c-vol', CINDER_ENABLED_BACKENDS='lvm:lvmdriver-1,'
            'dpm_ephemeral:dpm-svc', DPM_EPHEMERAL_EMULATOR='False',
            DPM_EPHEMERAL_SAN_IP='192.0.2.10')
        self.assertEqual(0, out.returncode, out.stderr)
        self.assertIn('volume types: lvmdriver-1,dpm-svc', self._calls())

    def test_real_powerflex_needs_its_ca(self) -> None:
        out = self._stack('c-vol', DPM_EPHEMERAL_ARRAY='powerflex',
                          DPM_EPHEMERAL_EMULATOR='False')
        self.assertEqual(3, out.returncode, out.stderr)
        self.assertIn('DPM_EPHEMERAL_CA_CERT is not set', out.stderr)

        ca = self.work / 'pf-ca.pem'
        out = self._stack('c-vol,tempest', DPM_EPHEMERAL_ARRAY='powerflex',
                          DPM_EPHEMERAL_EMULATOR='False',
                          DPM_EPHEMERAL_SAN_IP='192.0.2.20',
                          DPM_EPHEMERAL_CA_CERT=str(ca),
                          CINDER_ENABLED_BACKENDS='')
        self.assertEqual(0, out.returncode, out.stderr)
        calls = self._calls()
        self.assertNotIn('run_process dpm-emulator', calls)
        self.assertIn('setup_develop %s/opt/cinder-dpm-ephemeral [cinder]'
                      % self.work, calls)
        be = _ini(self.work / 'cinder.conf')['dpm-powerflex']
        self.assertEqual(str(ca), be['driver_ssl_cert_path'])
        self.assertEqual('443', be['powerflex_rest_server_port'])
        self.assertEqual('192.0.2.20', be['san_ip'])
        self.assertNotIn('dpm_ephemeral_emulator_state_dir', be)
        tempest = _ini(self.work / 'tempest.conf')
        self.assertEqual('scaleio', tempest['volume']['storage_protocol'])

    def test_dpm_compute_node(self) -> None:
        mappings = 'a1b2:0 a1b2:1'
        out = self._stack('n-cpu', DPM_EPHEMERAL_EMULATOR='False',
                          DPM_COMPUTE='True', DPM_HMC='192.0.2.30',
                          DPM_HMC_USERNAME='hmcuser',
                          DPM_HMC_PASSWORD='hmc-secret',
                          DPM_HMC_CA_CERTS='/etc/nova/hmc-ca.pem',
                          DPM_CPC_OBJECT_ID='cpc-1',
                          DPM_PHYSICAL_STORAGE_ADAPTER_MAPPINGS=mappings)
        self.assertEqual(0, out.returncode, out.stderr)
        self.assertFalse((self.work / 'cinder.conf').exists())
        self.assertNotIn('dpm_bfv', (self.work / 'nova' /
                                     'api-paste.ini').read_text())
        text = (self.work / 'nova' / 'nova-cpu.conf').read_text()
        cpu = _ini(self.work / 'nova' / 'nova-cpu.conf')
        self.assertEqual('dpm.DPMDriver', cpu['DEFAULT']['compute_driver'])
        self.assertEqual('192.0.2.30', cpu['dpm']['hmc'])
        self.assertEqual('/etc/nova/hmc-ca.pem', cpu['dpm']['hmc_ca_certs'])
        # one line per port, in order, as devstack's iniset_multiline
        # writes a MultiOpt
        self.assertIn('physical_storage_adapter_mappings = a1b2:0\n'
                      'physical_storage_adapter_mappings = a1b2:1\n', text)
        self.assertIn('setup_develop %s/opt/cinder-dpm-ephemeral [nova]'
                      % self.work, self._calls())

        # a missing HMC variable stops the stack with its name
        out = self._stack('n-cpu', DPM_EPHEMERAL_EMULATOR='False',
                          DPM_COMPUTE='True')
        self.assertEqual(3, out.returncode)
        self.assertIn('DPM_COMPUTE=True needs DPM_HMC in local.conf',
                      out.stderr)

    def test_bashate_clean(self) -> None:
        files = [str(REPO / 'devstack' / f) for f in
                 ('plugin.sh', 'settings', 'override-defaults',
                  'lib/cinder_backends_dpm_ephemeral',
                  'lib/nova_dpm_compute')]
        out = subprocess.run([str(VENV_BIN / 'bashate'), '-v', *files],
                             capture_output=True, text=True, timeout=60)
        self.assertEqual(0, out.returncode, out.stdout + out.stderr)
        self.assertNotIn('warning', out.stdout.split('\n')[-2].lower()
                         if 'warning' in out.stdout else '')
