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
"""The DPM compute driver inside Nova 34's functional harness.

Real nova-api (with the dpm_bfv paste filter), conductor, scheduler,
placement and a nova-compute whose driver is ``dpm.DPMDriver`` (loaded by
Nova from ``nova.virt.dpm``), on the HMC emulator's strict model
(in-process ``faked_session``) whose partition start runs the emulated IPL
against an in-process SVC emulator. Nova's Cinder stand-in keeps its
volumes on that SVC (``harness.SVCCinder``): the connector's WWPNs become
an SVC host, each volume a mapping with a SCSI id from 1.
"""

import re
import ssl
import subprocess
import sys
from typing import Any

import fixtures
import urllib3
import zhmcclient
from nova.virt import driver as virt_driver
from oslo_config import cfg

from cinder_dpm_ephemeral.emulators.svc.cli import SVCArray
from cinder_dpm_ephemeral.emulators import tls
from nova_shim.virt.dpm import conf as dpm_conf
from nova_shim.virt.dpm import exception
from tests.compute.functional import harness
from tests.compute.functional import test_bfv_filter
from tests.compute.unit.dpm import fakes

dpm_conf.register_opts(cfg.CONF)

HOST = 'compute'
S390X_IMAGE = '5e2f7c3a-9d41-4b8e-a0c6-3f1d2b7e9a51'


class DPMComputeTestBase(test_bfv_filter.BfvFilterTestBase):
    """One DPM compute service on the emulated HMC and SVC."""

    STORAGE_GROUPS = True
    MAX_ATTEMPTS = 1

    def _setup_services(self) -> None:
        svc_dir = harness.temp_dir(self)
        self.svc = SVCArray(svc_dir, time_scale=1e6)
        self.session, self.reach = fakes.hmc_session(
            self.STORAGE_GROUPS, svc_state_dir=svc_dir)
        self.useFixture(fixtures.MockPatch(
            'nova_shim.virt.dpm.hmc.make_session',
            side_effect=lambda conf: self.session))
        self.client = fakes.client(self.session)
        self.cpc = self.client.cpcs.find(**{'object-id': fakes.CPC_ID})
        self._configure()
        self._start_services()

    def _configure(self, **dpm: Any) -> None:
        self.flags(compute_driver='dpm.DPMDriver')
        options = dict(
            hmc=['127.0.0.1'], hmc_username='nova', hmc_password='s3cret',
            cpc_object_id=fakes.CPC_ID, max_processors=8, max_memory=65536,
            physical_storage_adapter_mappings=[
                '%s:0' % fakes.ADAPTERS[0], '%s:1' % fakes.ADAPTERS[1]],
            # retries of transient HMC errors run, without the waits
            hmc_retry_interval=0.05)
        options.update(dpm)
        self.flags(group='dpm', **options)
        self.flags(reserved_host_memory_mb=0)

    def _start_services(self) -> None:
        # The base class starts harness.RecordingCinder: make it SVCCinder.
        self.useFixture(fixtures.MockPatchObject(
            harness, 'RecordingCinder',
            lambda cinder: harness.SVCCinder(cinder, self.svc)))
        super()._setup_services()
        self.glance.create(None, {
            'id': S390X_IMAGE, 'name': 'rhel9-s390x', 'status': 'active',
            'container_format': 'bare', 'disk_format': 'raw',
            'size': 1 << 30, 'visibility': 'public',
            'properties': {'architecture': 's390x'}})
        self.dpm_flavor = self._create_flavor(
            name='dpm.medium', memory_mb=2048, vcpu=2, disk=5, ephemeral=1,
            swap=512, extra_spec={'dpm:boot_from_volume': 'true',
                                  'resources:DISK_GB': '0'})

    # helpers ---------------------------------------------------------------
    def partition(self, server: dict[str, Any]) -> zhmcclient.Partition:
        part = self.cpc.partitions.find(
            name='OpenStack-%s-%s' % (HOST, server['id']))
        part.pull_full_properties()
        return part

    def leftovers(self) -> dict[str, list[str]]:
        console = self.client.consoles.console
        return {
            'partitions': [p.name for p in self.cpc.partitions.list()],
            'storage_groups': [s.name for s in
                               console.storage_groups.list()],
        }

    def boot_path(self, part: zhmcclient.Partition) -> dict[str, Any]:
        """Initiator WWPNs, boot target and LUN, as the HMC holds them."""
        if self.STORAGE_GROUPS:
            sg = self.client.consoles.console.storage_groups.find(
                name=part.name)
            wwpns = [v.get_property('world-wide-port-name') for v in
                     sg.virtual_storage_resources.list(full_properties=True)
                     if v.get_property('partition-uri') == part.uri]
            boot = sg.storage_volumes.find(name='boot')
            boot.pull_full_properties()
            self.assertEqual(boot.uri, part.get_property(
                'boot-storage-volume'))
            path = boot.get_property('paths')[0]
            return {'initiators': sorted(wwpns),
                    'target': path['target-world-wide-port-name'],
                    'lun': path['logical-unit-number'],
                    'volumes': len(sg.storage_volumes.list())}
        hbas = part.hbas.list(full_properties=True)
        return {'initiators': sorted(h.get_property('wwpn').lower()
                                     for h in hbas),
                'target': part.get_property('boot-world-wide-port-name'),
                'lun': part.get_property('boot-logical-unit-number'),
                'volumes': None}

    def assert_nothing_left(self) -> None:
        self.assertEqual({'partitions': [], 'storage_groups': []},
                         self.leftovers())
        self.assertEqual({}, self.rcinder.host_maps())


class _ServerLifecycle:
    """Runs on both routes."""

    def test_driver_is_dpm(self) -> None:
        self.assertEqual('DPMDriver',
                         type(self.computes['compute'].driver).__name__)
        self.assertIsInstance(self.computes['compute'].driver,
                              virt_driver.ComputeDriver)

    def test_boot_reboot_stop_start_delete(self) -> None:
        server = self._boot(self.dpm_flavor, image=S390X_IMAGE)
        part = self.partition(server)
        # active = the emulated IPL found a boot record through the path
        self.assertEqual('active', part.get_property('status'))
        self.assertEqual(2, part.get_property('ifl-processors'))
        self.assertEqual(2048, part.get_property('initial-memory'))
        path = self.boot_path(part)
        maps = self.rcinder.host_maps()
        self.assertEqual(1, len(maps))
        host_name, mapped = next(iter(maps.items()))
        host = self.svc.state.by_name('hosts', host_name)
        # the SVC host is the partition's initiators, normalised
        self.assertEqual(path['initiators'],
                         sorted(w.lower() for w in host['wwpns']))
        # root, ephemeral and swap volumes: three LUNs from SCSI id 1
        self.assertEqual([1, 2, 3], sorted(s for s, _ in mapped))
        root_vdisk = dict(mapped)[int(path['lun'][:4], 16)]
        root_bdm = self._bdms(server['id'])[0]
        self.assertEqual('volume-%s' % root_bdm.volume_id, root_vdisk)
        self.assertIn(path['target'].upper(), self.rcinder.target_wwpns())
        self.assertNotEqual('0000000000000000', path['lun'])
        if self.STORAGE_GROUPS:
            self.assertEqual(3, path['volumes'])

        self._reboot_server(server, hard=False)
        self.assertEqual('active', self.partition(server).get_property(
            'status'))
        server = self._stop_server(server)
        self.assertEqual('stopped', self.partition(server).get_property(
            'status'))
        server = self._start_server(server)
        self.assertEqual('active', self.partition(server).get_property(
            'status'))

        self._delete_server(server)
        self.assert_nothing_left()
        self.assertEqual(set(self.rcinder.created),
                         set(self.rcinder.deleted))

    def test_data_volume_attach_detach_running(self) -> None:
        server = self._boot(self.dpm_flavor, image=S390X_IMAGE)
        volume = self.rcinder._create(self.ctxt, 2, 'data', 'data volume')
        vdisk = harness.SVCCinder.vdisk_name(volume['id'])
        self._attach_volume(server, volume['id'])
        [(host, mapped)] = self.rcinder.host_maps().items()
        self.assertIn((4, vdisk), mapped)
        part = self.partition(server)
        self.assertEqual('active', part.get_property('status'))
        if self.STORAGE_GROUPS:
            sg = self.client.consoles.console.storage_groups.find(
                name=part.name)
            sv = sg.storage_volumes.find(name='cinder-%s' % volume['id'])
            sv.pull_full_properties()
            self.assertEqual('complete', sv.get_property('fulfillment-state'))
            self.assertEqual('0004000000000000', sv.get_property('paths')[0][
                'logical-unit-number'])
        self.api.delete_server_volume(server['id'], volume['id'])
        self._wait_for_volume_detach(server['id'], volume['id'])
        [(host, mapped)] = self.rcinder.host_maps().items()
        self.assertNotIn((4, vdisk), mapped)
        if self.STORAGE_GROUPS:
            self.assertEqual(3, len(sg.storage_volumes.list()))
        self.assertEqual('active', self.partition(server).get_property(
            'status'))
        self._delete_server(server)
        self.assert_nothing_left()

    def _failed_boot(self, reason: str) -> dict[str, Any]:
        server = self.api.post_server(self._body(self.dpm_flavor,
                                                 image=S390X_IMAGE))
        server = self._wait_for_state_change(server, 'ERROR')
        self.assertIn(reason, server['fault']['message'])
        self.assert_nothing_left()
        self._delete_server(server)
        self.assertEqual(set(self.rcinder.created),
                         set(self.rcinder.deleted))
        return server

    def test_spawn_failure_partition_create(self) -> None:
        self.useFixture(fixtures.MockPatch(
            'zhmcclient.PartitionManager.create', side_effect=(
                zhmcclient.HTTPError({
                    'http-status': 409, 'reason': 8,
                    'message': 'not enough memory', 'request-method': 'POST',
                    'request-uri': '/api/cpcs/x/partitions'}))))
        self._failed_boot('Failure prepping block device')

    def test_spawn_failure_initiators(self) -> None:
        target = ('zhmcclient.Partition.attach_storage_group'
                  if self.STORAGE_GROUPS else 'zhmcclient.HbaManager.create')
        self.useFixture(fixtures.MockPatch(target, side_effect=(
            zhmcclient.HTTPError({
                'http-status': 409, 'reason': 2,
                'message': 'adapter port busy', 'request-method': 'POST',
                'request-uri': '/api/partitions/x'}))))
        # Nova reports any prepare_for_spawn failure with this text
        self._failed_boot('Failure prepping block device')

    def test_spawn_failure_boot_path(self) -> None:
        # No target reachable (storage groups) / all targets ignored (HBA)
        self.reach.unreachable_targets.update(
            w.lower() for w in self.rcinder.target_wwpns())
        self.flags(target_wwpn_ignore_list=self.rcinder.target_wwpns(),
                   group='dpm')
        self.computes['compute'].driver.init_host(HOST)
        self._failed_boot('no usable boot path')

    def test_spawn_failure_ipl(self) -> None:
        # The root volume has no boot record: the emulated IPL fails at
        # Start Partition.
        self.rcinder.boot_record = b'\0' * 512
        self._failed_boot('IPL failed: no boot record')


class TestStorageGroupRoute(_ServerLifecycle, DPMComputeTestBase):
    STORAGE_GROUPS = True


class TestHbaRoute(_ServerLifecycle, DPMComputeTestBase):
    STORAGE_GROUPS = False


class HMCEmulatorProcess(fixtures.Fixture):
    """``dpm-ephemeral-emulator hmc`` in a child process on 127.0.0.1.

    A process of its own: Nova's tests run under eventlet, which an
    in-process HTTPS server thread would share.
    """

    def __init__(self, svc_state_dir: str, login: tuple[str, str],
                 cpc: str) -> None:
        super().__init__()
        self.svc_state_dir = svc_state_dir
        self.login = login
        self.cpc = cpc

    def _setUp(self) -> None:
        state_dir = self.useFixture(fixtures.TempDir()).path
        self.proc = subprocess.Popen(
            [sys.executable, '-c',
             'from cinder_dpm_ephemeral.cmd.emulator import main; '
             'raise SystemExit(main())',
             'hmc', '--listen', '127.0.0.1:0', '--state-dir', state_dir,
             '--login', '%s:%s' % self.login, '--cpc', self.cpc,
             '--svc-state-dir', self.svc_state_dir],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.addCleanup(self._stop)
        line = self.proc.stdout.readline()
        match = re.search(r'https://127\.0\.0\.1:(\d+)/api; TLS certificate '
                          r'(\S+)', line)
        if not match:
            raise RuntimeError('HMC emulator did not start: %r' % line)
        self.port = int(match.group(1))
        self.cert_path = match.group(2)

    def _stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc.stdout.close()


class _OverHTTPS:
    """nova-compute talks to the HMC emulator over HTTPS, TLS verified.

    No session is patched in: the driver builds its ``zhmcclient.Session``
    from ``[dpm]`` (``hmc``, ``hmc_port``, ``hmc_ca_certs``) and logs on
    with the emulator's user and password; the emulator runs the Start and
    Stop Partition jobs asynchronously, as an HMC does.
    """

    LOGIN = ('nova-dpm', 'hmc-pass-1')

    def _real_https(self) -> None:
        # wsgi-intercept (Nova's API and placement fixtures) replaces
        # urllib3's HTTPS connection class with one that cannot verify
        # certificates (TypeError on cert_reqs); the HMC is no WSGI app.
        # The API and placement are intercepted over plain HTTP.
        self.useFixture(fixtures.MockPatchObject(
            urllib3.connectionpool.HTTPSConnectionPool, 'ConnectionCls',
            urllib3.connection.HTTPSConnection))
        # urllib3 was imported (by earlier test modules) before Nova's
        # test package monkey-patched ssl: give it eventlet's SSLContext,
        # as a nova-compute process has it (nova.monkey_patch runs first
        # there), or setting minimum_version recurses (nova bug 1808951).
        self.useFixture(fixtures.MockPatchObject(
            urllib3.util.ssl_, 'SSLContext', ssl.SSLContext))

    def _start_services(self) -> None:
        super()._start_services()
        self._real_https()

    def _setup_services(self) -> None:
        self._real_https()
        svc_dir = harness.temp_dir(self)
        self.svc = SVCArray(svc_dir, time_scale=1e6)
        self.emulator = self.useFixture(HMCEmulatorProcess(
            svc_dir, self.LOGIN,
            'CPC1:z14' if self.STORAGE_GROUPS else 'CPC1:z13'))
        session = zhmcclient.Session(
            '127.0.0.1', *self.LOGIN, port=self.emulator.port,
            verify_cert=self.emulator.cert_path)
        self.addCleanup(session.logoff)
        self.client = zhmcclient.Client(session)
        self.cpc = self.client.cpcs.find(**{'object-id': fakes.CPC_ID})
        self._configure(hmc_port=self.emulator.port,
                        hmc_ca_certs=self.emulator.cert_path,
                        hmc_username=self.LOGIN[0],
                        hmc_password=self.LOGIN[1])
        self._start_services()

    def test_boot_stop_start_delete_over_https(self) -> None:
        driver = self.computes['compute'].driver
        self.assertEqual(self.emulator.cert_path,
                         driver._session.verify_cert)
        server = self._boot(self.dpm_flavor, image=S390X_IMAGE)
        part = self.partition(server)
        self.assertEqual('active', part.get_property('status'))
        self.assertEqual(
            'storage-volume' if self.STORAGE_GROUPS else 'storage-adapter',
            part.get_property('boot-device'))
        self.assertEqual('0001000000000000', self.boot_path(part)['lun'])
        server = self._stop_server(server)
        server = self._start_server(server)
        self._delete_server(server)
        self.assert_nothing_left()


class TestStorageGroupRouteOverHTTPS(_OverHTTPS, DPMComputeTestBase):
    STORAGE_GROUPS = True


class TestHbaRouteOverHTTPS(_OverHTTPS, DPMComputeTestBase):
    STORAGE_GROUPS = False

    def _refused(self, ca: str) -> None:
        driver = self.computes['compute'].driver
        exc = self.assertRaises(exception.HmcCertificateError,
                                driver.init_host, HOST)
        message = str(exc)
        self.assertIn('HMC 127.0.0.1 port %d' % self.emulator.port, message)
        self.assertIn('certificate verify failed', message)
        self.assertIn('[dpm] hmc_ca_certs', message)
        self.assertIn(ca, message)

    def test_untrusted_certificate_refused(self) -> None:
        self.flags(hmc_ca_certs=None, group='dpm')
        # the emulator's self-signed certificate is in no system store
        self._refused('the system trust store')

    def test_ca_file_without_the_hmcs_certificate_refused(self) -> None:
        other, _key = tls.ensure_certificate(
            harness.temp_dir(self), 'other-ca.crt', 'other-ca.key',
            'Another CA')
        self.flags(hmc_ca_certs=other, group='dpm')
        self._refused(other)

    def test_verification_off_only_when_asked(self) -> None:
        driver = self.computes['compute'].driver
        self.flags(hmc_ca_certs=None, hmc_verify_cert=False, group='dpm')
        log = self.useFixture(fixtures.FakeLogger(
            name='nova_shim.virt.dpm.hmc'))
        driver.init_host(HOST)
        self.assertIs(False, driver._session.verify_cert)
        self.assertIn('TLS verification of the HMC is off', log.output)
