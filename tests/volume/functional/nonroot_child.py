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
"""The volume service as an unprivileged user (run by test_nonroot).

Not collected on its own (its name does not start with ``test``): the
root test starts it as a separate process under a system user, after it
has started the SVC emulator as root and given that user a root helper
(``sudo cinder-rootwrap``), as a distribution's cinder packages do.
"""

import json
import os
import uuid

import fixtures
from oslo_privsep import daemon as privsep_daemon

from cinder_dpm_ephemeral.emulators import lunstore
from cinder_dpm_ephemeral.testing import cinder_harness
from cinder_dpm_ephemeral.testing import images

MiB = 1024 * 1024
ENV = 'DPM_NONROOT'
#: the real channel to a privsep daemon (Cinder's test base replaces it
#: with one that refuses to start a daemon: here one must start)
ROOTWRAP_CHANNEL = privsep_daemon.RootwrapClientChannel


class _RunningSVC:
    """The SVC emulator the root test started, described by environment."""

    def __init__(self) -> None:
        self.spec = json.loads(os.environ[ENV])
        self.state_dir = self.spec['state_dir']

    def backend_options(self, name: str) -> dict:
        return {'volume_driver': ('cinder_dpm_ephemeral.svc.driver.'
                                  'StorwizeEphemeralDriver'),
                'volume_backend_name': name,
                'san_ip': '127.0.0.1',
                'san_ssh_port': self.spec['port'],
                'san_login': self.spec['login'][0],
                'san_password': self.spec['login'][1],
                'storwize_svc_volpool_name': 'pool0',
                'dpm_ephemeral_emulator_state_dir': self.state_dir}

    def default_options(self) -> dict:
        return {'ssh_hosts_key_file': self.spec['known_hosts'],
                'strict_ssh_host_key_policy': True,
                'rootwrap_config': self.spec['rootwrap_config'],
                'cinder_internal_tenant_project_id': uuid.uuid4().hex,
                'cinder_internal_tenant_user_id': uuid.uuid4().hex}


class NonRootVolumeService(cinder_harness.CinderHarness):
    BACKEND = 'svc'

    def start_backends(self) -> None:
        self.assertNotEqual(0, os.geteuid(), 'must run as a non-root user')
        self.backend = _RunningSVC()

    @staticmethod
    def _disable_privsep_daemons() -> None:
        """Keep them: os-brick's privileged calls go to a root daemon."""

    def setUp(self) -> None:
        super().setUp()
        self.useFixture(fixtures.MonkeyPatch(
            'oslo_privsep.daemon.RootwrapClientChannel', ROOTWRAP_CHANNEL))
        # os-brick starts its privsep daemon through sudo, as on a host
        # (where Cinder's rootwrap filters allow privsep-helper).
        self.flags(helper_command=(f'sudo {self.backend.spec["venv_bin"]}/'
                                   f'privsep-helper --config-file '
                                   f'{self.cinder_conf_path}'),
                   group='privsep_osbrick')

    def backend_options(self) -> dict:
        return self.backend.backend_options(self.BACKEND)

    def default_options(self) -> dict:
        return self.backend.default_options()

    def test_images_written_to_root_owned_luns(self) -> None:
        # The LUNs are root's, mode 0600: this process cannot open them.
        blank = self.wait_for_volume(self.create_volume(1)['id'])
        self.assertEqual('available', blank['status'])
        path = lunstore.LunStore(self.backend.state_dir).open_path(
            self._uid(blank['id']))
        self.assertRaises(PermissionError, open, path, 'r+b')
        done = {}
        for fmt in ('raw', 'qcow2'):
            # A bootable-looking GPT disk (EFI System and ext4 partitions)
            image = images.make_disk_image(self.work_dir, fmt, 'gpt',
                                           size=32 * MiB, seed=7,
                                           name=f'nonroot-{fmt}')
            meta = self.add_image(image)
            vol = self.wait_for_volume(
                self.create_volume(1, image_id=meta['id'])['id'],
                timeout=300)
            self.assertEqual('available', vol['status'], vol)
            done[fmt] = {'lun': self._uid(vol['id']),
                         'sha256': image.raw_sha256,
                         'size': image.virtual_size}
        with open(self.backend.spec['result'], 'w') as f:
            json.dump(done, f)

    def _uid(self, volume_id: str) -> str:
        attrs = self.driver._helpers.get_vdisk_attributes(
            f'volume-{volume_id}')
        return attrs['vdisk_UID']
