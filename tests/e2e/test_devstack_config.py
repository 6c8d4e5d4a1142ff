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
"""The devstack plugin's configuration, applied to the whole cloud.

The cloud's cinder.conf, nova.conf, nova-cpu.conf (nova-compute's only
file) and api-paste.ini lose everything the
plugin is responsible for (the backend sections, enabled_backends, the
default volume type, the SSH host-key settings, the Nova filter's section
and pipeline, the DPM compute driver and its ``[dpm]`` section); the
plugin is then sourced in devstack's phase order on those files
(cinder_dpm_ephemeral.testing.devstack), as on an all-in-one node with
c-vol, n-api and n-cpu, pointed by its local.conf variables at the
cloud's SVC and HMC as at a real array and a real HMC (their host key and
CA). The files it writes replace the cloud's, cinder-api, cinder-volume,
nova-api and nova-compute restart on them, and a user boots a server
from an image: it goes ACTIVE on a root volume of the plugin's volume
type, its partition runs on the HMC, and deleting it leaves nothing.
The cloud's own files and services are put back afterwards.

One option is added beyond the plugin's: the emulated SVC has no Fibre
Channel, so the backend keeps ``dpm_ephemeral_emulator_state_dir`` (where
the emulator keeps LUN bytes), which a real array never has.
"""

from __future__ import annotations

import configparser
import shutil
import time

from cinder_dpm_ephemeral.testing import devstack
from cinder_dpm_ephemeral.testing import images
from cinder_dpm_ephemeral.testing.cloud import config
from cinder_dpm_ephemeral.testing.cloud import layout as lay
from cinder_dpm_ephemeral.testing.cloud import processes as procs
from cinder_dpm_ephemeral.testing.cloud import services as svcs
from tests.e2e import base

MiB = 1024 * 1024
RESTART = ('cinder-api', 'cinder-volume', 'nova-api', 'nova-compute')
# what the plugin writes, removed from the cloud's files first
CINDER_OWNED = ('enabled_backends', 'default_volume_type',
                'ssh_hosts_key_file', 'strict_ssh_host_key_policy')
NOVA_OWNED = ('compute_driver', 'block_device_allocate_retries')


def _service(lo: lay.Layout, name: str) -> svcs.Service:
    if name in procs.WSGI_APPS:
        return procs.wsgi_service(lo, name)
    [svc] = [s for s in procs.rpc_services(lo) if s.name == name]
    return svc


def restart(lo: lay.Layout, names: tuple[str, ...]) -> None:
    for name in names:
        svcs.stop(lo, name)
    services = [_service(lo, n) for n in names]
    started = time.monotonic()
    for svc in services:
        svcs.start(lo, svc)
    svcs.wait_healthy(lo, services, started)


def _strip(path, sections: tuple[str, ...], options: tuple[str, ...]):
    cp = devstack.ini(path)
    for section in sections:
        cp.remove_section(section)
    for option in options:
        cp.remove_option('DEFAULT', option)
    with open(path, 'w') as f:
        cp.write(f)


class DevstackConfigOnCloudTest(base.CloudTestCase):

    def _stack(self) -> devstack.Stack:
        lo = self.cloud.lo
        stack = devstack.Stack(self.work)
        nova_dir = self.work / 'nova'
        shutil.copy(lo.conf('cinder'), self.work / 'cinder.conf')
        _strip(self.work / 'cinder.conf',
               (lay.SVC_BACKEND, lay.POWERFLEX_BACKEND), CINDER_OWNED)
        # nova-compute reads nova-cpu.conf only, as in devstack (the
        # stand-in's NOVA_CPU_CONF and NOVA_CONF are these two files)
        for name in ('nova.conf', 'nova-cpu.conf'):
            shutil.copy(lo.conf('nova', name), nova_dir / name)
            _strip(nova_dir / name, ('dpm', 'dpm_boot_from_volume'),
                   NOVA_OWNED)
        dpm = config.dpm_compute(lo)['dpm']
        out = stack.run(
            'c-api,c-sch,c-vol,n-api,n-cpu', devstack.STACK_ONLY,
            DPM_EPHEMERAL_EMULATOR='False',
            DPM_EPHEMERAL_SAN_IP=lay.HOST,
            DPM_EPHEMERAL_SVC_PORT=str(lo.ports['svc']),
            DPM_EPHEMERAL_SAN_PASSWORD=lo.passwords['svc'],
            DPM_EPHEMERAL_SVC_POOL=lay.SVC_POOL,
            DPM_EPHEMERAL_SSH_KNOWN_HOSTS=str(
                lo.data / 'emulators' / 'svc' / 'known_hosts'),
            DPM_COMPUTE='True', DPM_HMC=str(dpm['hmc']),
            DPM_HMC_PORT=str(dpm['hmc_port']),
            DPM_HMC_USERNAME=dpm['hmc_username'],
            DPM_HMC_PASSWORD=dpm['hmc_password'],
            DPM_HMC_CA_CERTS=dpm['hmc_ca_certs'],
            DPM_CPC_OBJECT_ID=dpm['cpc_object_id'],
            DPM_PHYSICAL_STORAGE_ADAPTER_MAPPINGS=' '.join(
                dpm['physical_storage_adapter_mappings']))
        self.assertEqual(0, out.returncode, out.stderr)
        return stack

    def _apply(self, stack: devstack.Stack) -> None:
        lo = self.cloud.lo
        targets = {lo.conf('cinder'): self.work / 'cinder.conf',
                   lo.conf('nova'): self.work / 'nova' / 'nova.conf',
                   lo.conf('nova', 'nova-cpu.conf'):
                       self.work / 'nova' / 'nova-cpu.conf',
                   lo.conf('nova', 'api-paste.ini'):
                       self.work / 'nova' / 'api-paste.ini'}
        saved = self.work / 'saved'
        saved.mkdir()
        for i, target in enumerate(targets):
            shutil.copy(target, saved / str(i))

        def put_back() -> None:
            for i, target in enumerate(targets):
                shutil.copy(saved / str(i), target)
            restart(lo, RESTART)
        self.addCleanup(put_back)
        for target, written in targets.items():
            shutil.copy(written, target)
        restart(lo, RESTART)

    def test_plugin_configuration_boots_a_server(self) -> None:
        stack = self._stack()
        cinder = stack.conf('cinder.conf')
        backend = stack.calls()[-2].split(': ')[1]   # "volume types: ..."
        self.assertEqual(lay.SVC_BACKEND, backend)
        self.assertEqual(backend, cinder['DEFAULT']['default_volume_type'])
        # the emulated SVC's data path (the one option not the plugin's)
        cinder[backend]['dpm_ephemeral_emulator_state_dir'] = str(
            self.cloud.lo.data / 'emulators' / 'svc')
        with open(self.work / 'cinder.conf', 'w') as f:
            cinder.write(f)
        nova = stack.conf('nova/nova.conf')
        self.assertEqual(backend,
                         nova['dpm_boot_from_volume']['volume_type'])
        cpu = stack.conf('nova/nova-cpu.conf')
        self.assertEqual('dpm.DPMDriver', cpu['DEFAULT']['compute_driver'])
        self.assertNotIn('compute_driver', nova['DEFAULT'])
        self.assertFalse(cpu.has_section('database'))
        self.assertFalse(cpu.has_section('api_database'))

        # devstack creates one volume type per backend, named after it
        types = {t['Name'] for t in self.cloud.json('volume', 'type', 'list',
                                                    admin=True)}
        if backend not in types:
            self.cloud.openstack('volume', 'type', 'create', '--property',
                                 f'volume_backend_name={backend}', backend,
                                 admin=True)
            self.addCleanup(self.cloud.openstack, 'volume', 'type',
                            'delete', backend, admin=True, check=False)
        self._apply(stack)

        image = images.make_disk_image(self.work, 'raw', 'gpt', 64 * MiB,
                                       seed=21, name='devstack-raw')
        image_id = self.upload(image, 'e2e-devstack-raw')
        flavor = self.dpm_flavor('dpm.e2e.devstack', disk=1)
        server = self.cloud.json('server', 'create', '--image', image_id,
                                 '--flavor', flavor, '--nic', 'none',
                                 '--wait', 'e2e-devstack')
        sid = server['id']
        self.addCleanup(self.cloud.openstack, 'server', 'delete', '--wait',
                        sid, check=False)
        self.assertEqual('ACTIVE', server['status'], server)
        [vid] = [v['id'] for v in self.cloud.json('server', 'show', sid)[
            'volumes_attached']]
        vol = self.cloud.json('volume', 'show', vid, admin=True)
        self.assertEqual(backend, vol['type'])
        self.assertEqual(f'{lay.STORAGE_HOST}@{backend}#{lay.SVC_POOL}',
                         vol['os-vol-host-attr:host'])
        partition = f'OpenStack-{lay.COMPUTE_HOST}-{sid}'
        self.assertEqual('active', self.cloud.partitions()[partition])
        self.delete_server(sid)
        self.wait_for('root volume deleted', lambda: vid not in {
            v['ID'] for v in self.cloud.json('volume', 'list',
                                             '--all-projects', admin=True)},
            timeout=90)
        self.assertNotIn(partition, self.cloud.partitions())
        self.assertNotIn(f'volume-{vid}',
                         {v['name'] for v in self.cloud.svc('lsvdisk')})

    def test_no_duplicate_options_in_the_cloud_files(self) -> None:
        # the plugin's stand-in iniset (configparser) keeps one value per
        # option: a file with repeated options outside [dpm] would lose
        # values when the plugin rewrites it
        for path in (self.cloud.lo.conf('cinder'), self.cloud.lo.conf('nova')):
            cp = configparser.ConfigParser(interpolation=None, strict=True)
            cp.optionxform = str  # type: ignore[assignment,method-assign]
            text = path.read_text()
            kept = []
            section = ''
            for line in text.splitlines():
                if line.startswith('['):
                    section = line.strip('[]')
                if section != 'dpm':
                    kept.append(line)
            cp.read_string('\n'.join(kept))
