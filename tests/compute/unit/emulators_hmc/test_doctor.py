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
"""``nova-dpm-doctor`` against the HMC emulator over real HTTPS."""

from __future__ import annotations

import io
import json
import os

from nova_shim.virt.dpm import doctor
from tests.compute.unit.emulators_hmc import test_https
from tests.compute.unit.emulators_hmc.test_https import LOGIN


class TestDoctor(test_https.HTTPSTestCase):

    def nova_conf(self, **dpm: str) -> str:
        cpc = self.client().cpcs.find(name='CPC1')
        adapter = cpc.adapters.list()[0]
        opts = {'hmc': '127.0.0.1', 'hmc_port': str(self.emu.port),
                'hmc_username': LOGIN[0], 'hmc_password': LOGIN[1],
                'hmc_ca_certs': self.emu.cert_path,
                'cpc_object_id': cpc.get_property('object-id'),
                'max_processors': '2', 'max_memory': '4096',
                'physical_storage_adapter_mappings':
                    adapter.get_property('object-id') + ':0'}
        opts.update(dpm)
        path = os.path.join(self.state_dir, 'nova.conf')
        with open(path, 'w') as f:
            f.write('[DEFAULT]\nhost = subset1\n[dpm]\n')
            f.writelines(f'{k} = {v}\n' for k, v in opts.items())
        return path

    def doctor(self, path: str) -> tuple[int, dict[str, dict]]:
        out = io.StringIO()
        rc = doctor.main(['--config-file', path, '--format', 'json'], out)
        return rc, {c['name']: c for c in json.loads(out.getvalue())}

    def test_all_ok(self) -> None:
        rc, checks = self.doctor(self.nova_conf())
        self.assertEqual(0, rc, checks)
        self.assertEqual(['config', 'hmc tls', 'hmc logon', 'cpc',
                          'adapters'], list(checks))
        self.assertIn('CPC1 in DPM mode', checks['cpc']['detail'])
        out = io.StringIO()
        self.assertEqual(0, doctor.main(['--config-file',
                                         self.nova_conf()], out))
        self.assertIn('OK   hmc logon: user %s' % LOGIN[0], out.getvalue())
        self.assertNotIn(LOGIN[1], out.getvalue())

    def test_each_failure_names_the_fix(self) -> None:
        rc, checks = self.doctor(self.nova_conf(hmc_password='wrong'))
        self.assertEqual(1, rc)
        self.assertEqual('FAIL', checks['hmc logon']['status'])
        self.assertIn('hmc_password', checks['hmc logon']['fix'])
        self.assertNotIn('wrong', json.dumps(checks))

        # the system trust store does not know the emulator's CA
        rc, checks = self.doctor(self.nova_conf(hmc_ca_certs=''))
        self.assertEqual((1, 'FAIL'), (rc, checks['hmc tls']['status']))
        self.assertIn('hmc_ca_certs', checks['hmc tls']['fix'])

        rc, checks = self.doctor(self.nova_conf(cpc_object_id='nope'))
        self.assertEqual('FAIL', checks['cpc']['status'])
        self.assertIn('nope', checks['cpc']['detail'])

        rc, checks = self.doctor(self.nova_conf(
            physical_storage_adapter_mappings='abcdef:0'))
        self.assertEqual('FAIL', checks['adapters']['status'])
        self.assertIn('no adapter with object-id abcdef',
                      checks['adapters']['detail'])

        rc, checks = self.doctor(self.nova_conf(hmc_username=''))
        self.assertEqual('FAIL', checks['config']['status'])
        self.assertIn('hmc_username', checks['config']['detail'])

        path = self.nova_conf(hmc_username=LOGIN[0])
        self.emu.stop()
        rc, checks = self.doctor(path)
        self.assertEqual('FAIL', checks['hmc']['status'])
        self.assertIn('hmc_port', checks['hmc']['fix'])
