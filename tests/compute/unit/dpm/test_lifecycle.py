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
"""Partition lifecycle on both storage routes, on the emulated HMC."""

import re
from typing import Any

import fixtures
import zhmcclient
from nova import exception as nova_exception
from nova.compute import power_state

from nova_shim.virt.dpm import exception
from tests.compute.unit.dpm import base

HEX16 = re.compile(r'^[0-9a-f]{16}$')


class _Lifecycle:
    """Tests run on both routes (mixed into the two classes below)."""

    def initiators(self, instance: Any) -> list[str]:
        raise NotImplementedError

    def test_connector_before_spawn(self) -> None:
        inst = self.instance()
        self.driver.prepare_for_spawn(inst)
        part = self.partition(inst)
        self.assertEqual('stopped', part.get_property('status'))
        self.assertEqual(2, part.get_property('ifl-processors'))
        self.assertEqual(4096, part.get_property('initial-memory'))
        connector = self.driver.get_volume_connector(inst)
        self.assertEqual(2, len(connector['wwpns']))
        for w in connector['wwpns']:
            self.assertRegex(w, HEX16)
        self.assertEqual(self.initiators(inst), connector['wwpns'])
        # the array names its host after it: short enough for an SVC host
        # name (Storwize: 55 characters + '-' + 8 digits <= 63)
        self.assertEqual(inst.uuid, connector['host'])

    def test_spawn_runs_and_destroy_removes_everything(self) -> None:
        inst = self.instance()
        self.spawn(inst, root_lun=3, extra_luns=(4, 5))
        part = self.partition(inst)
        self.assertEqual('active', part.get_property('status'))
        self.assertEqual(power_state.RUNNING,
                         self.driver.get_info(inst).state)
        self.assertTrue(self.driver.instance_exists(inst))
        self.assertEqual([inst.uuid], self.driver.list_instance_uuids())
        self.driver.destroy(self.ctxt, inst, [])
        self.assertEqual({'partitions': [], 'storage_groups': [],
                          'hbas': []}, self.leftovers())
        self.assertRaises(nova_exception.InstanceNotFound,
                          self.driver.get_info, inst)
        # idempotent
        self.driver.destroy(self.ctxt, inst, [])
        self.driver.failed_spawn_cleanup(inst)

    def test_power_on_false_leaves_stopped(self) -> None:
        inst = self.instance()
        self.spawn(inst, power_on=False)
        self.assertEqual(power_state.SHUTDOWN,
                         self.driver.get_info(inst).state)

    def test_power_cycle_and_reboot(self) -> None:
        inst = self.instance()
        self.spawn(inst)
        self.driver.power_off(inst)
        self.assertEqual(power_state.SHUTDOWN,
                         self.driver.get_info(inst).state)
        self.driver.power_off(inst)  # already stopped: no error
        self.driver.power_on(self.ctxt, inst, [], None, None, None)
        self.driver.power_on(self.ctxt, inst, [], None, None, None)
        self.assertEqual(power_state.RUNNING,
                         self.driver.get_info(inst).state)
        self.driver.reboot(self.ctxt, inst, [], 'SOFT')
        self.assertEqual('active',
                         self.partition(inst).get_property('status'))

    def test_power_on_after_guest_terminated(self) -> None:
        inst = self.instance()
        self.spawn(inst)
        # the operating system stopped itself: the HMC reports terminated
        part = self.partition(inst)
        self.session.hmc.lookup_by_uri(part.uri).properties[
            'status'] = 'terminated'
        self.assertEqual(power_state.CRASHED,
                         self.driver.get_info(inst).state)
        self.driver.power_on(self.ctxt, inst, [], None, None, None)
        self.assertEqual(power_state.RUNNING,
                         self.driver.get_info(inst).state)

    def test_non_fc_root_refused_and_cleaned(self) -> None:
        inst = self.instance()
        self.driver.prepare_for_spawn(inst)
        connector = self.driver.get_volume_connector(inst)
        bdi = self.block_device_info(connector, 1)
        bdi['block_device_mapping'][0]['connection_info'][
            'driver_volume_type'] = 'iscsi'
        exc = self.assertRaises(
            exception.UnsupportedVolume, self.driver.spawn, self.ctxt, inst,
            {}, [], None, {}, [], bdi)
        self.assertIn('Driver volume type iscsi is not supported', str(exc))
        self.driver.failed_spawn_cleanup(inst)
        self.assertEqual([], self.leftovers()['partitions'])

    def test_local_image_disk_refused_naming_filter(self) -> None:
        inst = self.instance()
        self.driver.prepare_for_spawn(inst)
        connector = self.driver.get_volume_connector(inst)
        bdi = self.block_device_info(connector, 1)
        bdi['image'] = [{'device_name': '/dev/vda', 'size': 1}]
        exc = self.assertRaises(
            exception.UnsupportedVolume, self.driver.spawn, self.ctxt, inst,
            {}, [], None, {}, [], bdi)
        self.assertIn('dpm_bfv', str(exc))
        self.assertIn('image disk', str(exc))
        # local blank ephemeral/swap mappings Nova adds are ignored
        del bdi['image']
        bdi['ephemerals'] = [{'device_name': '/dev/vdb', 'size': 1}]
        bdi['swap'] = {'device_name': '/dev/vdc', 'swap_size': 512}
        self.driver.spawn(self.ctxt, inst, {}, [], None, {}, [], bdi)
        self.driver.destroy(self.ctxt, inst, [])
        bdi = {'block_device_mapping': []}
        exc = self.assertRaises(
            exception.UnsupportedVolume, self.driver.spawn, self.ctxt, inst,
            {}, [], None, {}, [], bdi)
        self.assertIn('boot_index 0', str(exc))

    def test_failure_at_start_leaves_nothing(self) -> None:
        inst = self.instance()
        self.driver.prepare_for_spawn(inst)
        connector = self.driver.get_volume_connector(inst)
        bdi = self.block_device_info(connector, 1)
        # The HMC refuses Start Partition: spawn removes what it made.
        self.useFixture(fixtures.MockPatch(
            'zhmcclient.Partition.start', side_effect=zhmcclient.HTTPError({
                'http-status': 409, 'reason': 131, 'message': 'load failed',
                'request-method': 'POST',
                'request-uri': '/api/partitions/1/operations/start'})))
        self.assertRaises(zhmcclient.HTTPError, self.driver.spawn,
                          self.ctxt, inst,
                          {}, [], None, {}, [], bdi)
        self.assertEqual({'partitions': [], 'storage_groups': [],
                          'hbas': []}, self.leftovers())

    def test_foreign_partitions_invisible(self) -> None:
        inst = self.instance()
        self.spawn(inst)
        for name in ('LINUX1', 'OpenStack-cmp2-%s' % inst.uuid,
                     'OpenStack-cmp1-not-a-uuid'):
            self.cpc.partitions.create({
                'name': name, 'ifl-processors': 1, 'initial-memory': 1024,
                'maximum-memory': 1024})
        self.assertEqual([inst.uuid], self.driver.list_instance_uuids())
        self.assertEqual(['OpenStack-cmp1-%s' % inst.uuid],
                         self.driver.list_instances())
        used = self.driver.get_available_resource(base.HOST)
        self.assertEqual(2, used['vcpus_used'])
        self.assertEqual(4096, used['memory_mb_used'])

    def test_volume_attach_detach_running(self) -> None:
        inst = self.instance()
        self.spawn(inst)
        connector = self.driver.get_volume_connector(inst)
        info = self.connection_info(connector, 7)
        self.driver.attach_volume(self.ctxt, info, inst, '/dev/sdc')
        self.assertAttached(inst, info['serial'], '0007000000000000')
        self.driver.detach_volume(self.ctxt, info, inst, '/dev/sdc')
        self.assertDetached(inst, info['serial'])
        self.driver.detach_volume(self.ctxt, info, inst, '/dev/sdc')
        self.assertEqual('active',
                         self.partition(inst).get_property('status'))


class StorageGroupRouteTest(_Lifecycle, base.DriverTestCase):
    STORAGE_GROUPS = True

    def initiators(self, instance: Any) -> list[str]:
        sg = self.client.consoles.console.storage_groups.find(
            name='OpenStack-%s-%s' % (base.HOST, instance.uuid))
        part = self.partition(instance)
        out = {}
        for vsr in sg.virtual_storage_resources.list(full_properties=True):
            self.assertEqual(part.uri, vsr.get_property('partition-uri'))
            out[vsr.get_property('adapter-port-uri')] = vsr.get_property(
                'world-wide-port-name')
        ports = ['/api/adapters/%s/storage-ports/%s' % tuple(
            m.split(':')) for m in base.MAPPINGS]
        return [out[p] for p in ports]

    def _group(self, instance: Any) -> Any:
        return self.client.consoles.console.storage_groups.find(
            name='OpenStack-%s-%s' % (base.HOST, instance.uuid))

    def assertAttached(self, instance: Any, volume_id: str,
                       lun: str) -> None:
        sv = self._group(instance).storage_volumes.find(
            name='cinder-%s' % volume_id)
        sv.pull_full_properties()
        self.assertEqual('complete', sv.get_property('fulfillment-state'))
        self.assertEqual(lun, sv.get_property('paths')[0][
            'logical-unit-number'])

    def assertDetached(self, instance: Any, volume_id: str) -> None:
        names = [s.name for s in
                 self._group(instance).storage_volumes.list()]
        self.assertNotIn('cinder-%s' % volume_id, names)

    def test_boot_volume_fulfilled_with_target_and_lun(self) -> None:
        inst = self.instance()
        bdi = self.spawn(inst, root_lun=3, extra_luns=(4,))
        part = self.partition(inst)
        sg = self._group(inst)
        sg.pull_full_properties()
        self.assertFalse(sg.get_property('shared'))
        self.assertEqual(2, sg.get_property('connectivity'))
        boot = sg.storage_volumes.find(name='boot')
        boot.pull_full_properties()
        self.assertEqual('storage-volume', part.get_property('boot-device'))
        self.assertEqual(boot.uri, part.get_property('boot-storage-volume'))
        path = boot.get_property('paths')[0]
        self.assertEqual(base.TARGETS[0],
                         path['target-world-wide-port-name'])
        self.assertEqual('0003000000000000', path['logical-unit-number'])
        self.assertEqual('boot', boot.get_property('usage'))
        extra_id = bdi['block_device_mapping'][1]['connection_info'][
            'serial']
        self.assertAttached(inst, extra_id, '0004000000000000')

    def test_first_validated_path_and_ignore_list(self) -> None:
        self.reach.unreachable_targets.add(base.TARGETS[0])
        inst = self.instance()
        self.spawn(inst, root_lun=2)
        boot = self._group(inst).storage_volumes.find(name='boot')
        boot.pull_full_properties()
        self.assertEqual(base.TARGETS[1], boot.get_property('paths')[0][
            'target-world-wide-port-name'])
        self.assertIn(base.TARGETS[0], [v[1] for v in self.reach.validated])

    def test_no_validated_path_fails_cleanly(self) -> None:
        self.reach.unreachable_targets.update(base.TARGETS)
        inst = self.instance()
        self.driver.prepare_for_spawn(inst)
        bdi = self.block_device_info(
            self.driver.get_volume_connector(inst), 1)
        exc = self.assertRaises(exception.BootTargetNotFound,
                                self.driver.spawn, self.ctxt, inst, {}, [],
                                None, {}, [], bdi)
        self.assertIn('no path validated', str(exc))
        self.assertEqual({'partitions': [], 'storage_groups': [],
                          'hbas': []}, self.leftovers())


class HbaRouteTest(_Lifecycle, base.DriverTestCase):
    STORAGE_GROUPS = False

    def initiators(self, instance: Any) -> list[str]:
        part = self.partition(instance)
        hbas = {h.get_property('adapter-port-uri'):
                h.get_property('wwpn').lower()
                for h in part.hbas.list(full_properties=True)}
        ports = ['/api/adapters/%s/storage-ports/%s' % tuple(
            m.split(':')) for m in base.MAPPINGS]
        return [hbas[p] for p in ports]

    def assertAttached(self, instance: Any, volume_id: str,
                       lun: str) -> None:
        # Nothing to do on the HMC: the LUN reaches the HBAs' WWPNs.
        self.assertEqual(2, len(self.partition(instance).hbas.list()))

    def assertDetached(self, instance: Any, volume_id: str) -> None:
        self.assertEqual(2, len(self.partition(instance).hbas.list()))

    def test_boot_properties(self) -> None:
        inst = self.instance()
        self.spawn(inst, root_lun=3)
        part = self.partition(inst)
        first = self.initiators(inst)[0]
        boot_hba = [h for h in part.hbas.list(full_properties=True)
                    if h.get_property('wwpn').lower() == first][0]
        self.assertEqual('storage-adapter', part.get_property('boot-device'))
        self.assertEqual(boot_hba.uri,
                         part.get_property('boot-storage-device'))
        self.assertEqual(base.TARGETS[0],
                         part.get_property('boot-world-wide-port-name'))
        self.assertEqual('0003000000000000',
                         part.get_property('boot-logical-unit-number'))

    def test_ignore_list(self) -> None:
        self.flags(target_wwpn_ignore_list=[base.TARGETS[0].upper()],
                   group='dpm')
        self.driver.init_host(base.HOST)
        inst = self.instance()
        self.spawn(inst)
        self.assertEqual(base.TARGETS[1], self.partition(inst).get_property(
            'boot-world-wide-port-name'))


class RemovalRetriedTest(base.DriverTestCase):
    """Preparing, spawning, destroying: after an HMC error or lost answer."""

    def setUp(self) -> None:
        super().setUp()
        self.flags(hmc_retry_interval=0, group='dpm')

    def _fail_first(self, cls: Any, method: str, after: bool,
                    times: int = 1) -> list[str]:
        """``cls.method`` fails its first ``times`` calls.

        With an HMC 500 before it did anything, or (``after``) with a
        connection lost after it took effect.
        """
        real = getattr(cls, method)
        calls: list[str] = []

        def flaky(obj: Any, *args: Any, **kwargs: Any) -> Any:
            calls.append(obj.name)
            if len(calls) > times:
                return real(obj, *args, **kwargs)
            if after:
                real(obj, *args, **kwargs)
                raise zhmcclient.ConnectionError('connection lost', None)
            raise zhmcclient.HTTPError({
                'http-status': 500, 'reason': 0, 'message': 'injected',
                'request-method': 'DELETE', 'request-uri': obj.uri})
        self.useFixture(fixtures.MonkeyPatch(
            f'zhmcclient.{cls.__name__}.{method}', flaky))
        return calls

    def test_storage_group_delete_failed_once(self) -> None:
        inst = self.instance()
        self.spawn(inst)
        calls = self._fail_first(zhmcclient.StorageGroup, 'delete', False)
        self.driver.destroy(self.ctxt, inst, [])
        self.assertEqual(2, len(calls))
        self.assertEqual({'partitions': [], 'storage_groups': [],
                          'hbas': []}, self.leftovers())

    def test_partition_delete_answer_lost(self) -> None:
        inst = self.instance()
        self.spawn(inst)
        calls = self._fail_first(zhmcclient.Partition, 'delete', True)
        self.driver.destroy(self.ctxt, inst, [])
        # the second attempt found the partition gone: one delete only
        self.assertEqual(1, len(calls))
        self.assertEqual({'partitions': [], 'storage_groups': [],
                          'hbas': []}, self.leftovers())

    def test_partition_delete_answer_lost_in_transit(self) -> None:
        # The HMC deleted the partition, the answer was lost on the way:
        # zhmcclient never hears of the delete and keeps the partition in
        # its name cache. The removal's next try must ask the HMC.
        inst = self.instance()
        self.spawn(inst)
        real = self.session.delete
        lost: list[str] = []

        def delete(uri: str, *args: Any, **kwargs: Any) -> Any:
            result = real(uri, *args, **kwargs)
            if re.fullmatch('/api/partitions/[^/]+', uri) and not lost:
                lost.append(uri)
                raise zhmcclient.ConnectionError('connection lost', None)
            return result
        self.useFixture(fixtures.MockPatchObject(self.session, 'delete',
                                                 side_effect=delete))
        self.driver.destroy(self.ctxt, inst, [])
        self.assertEqual(1, len(lost))
        self.assertEqual({'partitions': [], 'storage_groups': [],
                          'hbas': []}, self.leftovers())

    def test_gives_up_after_the_retries(self) -> None:
        self.flags(hmc_retries=1, group='dpm')
        inst = self.instance()
        self.spawn(inst)
        calls = self._fail_first(zhmcclient.StorageGroup, 'delete', False,
                                 times=2)
        self.assertRaises(zhmcclient.HTTPError, self.driver.destroy,
                          self.ctxt, inst, [])
        self.assertEqual(2, len(calls))

    def test_partition_create_answer_lost(self) -> None:
        inst = self.instance()
        real = zhmcclient.PartitionManager.create
        calls: list[str] = []

        def lost(manager: Any, properties: Any) -> Any:
            calls.append(properties['name'])
            part = real(manager, properties)
            if len(calls) == 1:
                raise zhmcclient.ConnectionError('connection lost', None)
            return part
        self.useFixture(fixtures.MonkeyPatch(
            'zhmcclient.PartitionManager.create', lost))
        self.driver.prepare_for_spawn(inst)
        # the first partition (made, its answer lost) was found and
        # removed, the second one made
        self.assertEqual(2, len(calls))
        self.assertEqual([calls[0]], self.leftovers()['partitions'])
        self.driver.destroy(self.ctxt, inst, [])
        self.assertEqual({'partitions': [], 'storage_groups': [],
                          'hbas': []}, self.leftovers())

    def _spawn_prepared(self, inst: Any) -> None:
        connector = self.driver.get_volume_connector(inst)
        self.driver.spawn(self.ctxt, inst, {}, [], None, {}, [],
                          self.block_device_info(connector, 3, ()))

    def test_start_answer_lost(self) -> None:
        # Start Partition took effect, its answer was lost: the step runs
        # again, finds the partition active and starts nothing.
        inst = self.instance()
        self.driver.prepare_for_spawn(inst)
        calls = self._fail_first(zhmcclient.Partition, 'start', True)
        self._spawn_prepared(inst)
        self.assertEqual(1, len(calls))
        self.assertEqual(power_state.RUNNING,
                         self.driver.get_info(inst).state)
        self.driver.destroy(self.ctxt, inst, [])
        self.assertEqual({'partitions': [], 'storage_groups': [],
                          'hbas': []}, self.leftovers())

    def _job_gone_once(self, method: str) -> list[str]:
        """``Partition.<method>`` acts, then its job's status is gone.

        As when zhmcclient's delete of the completed job lost its answer
        and its next poll of the job met 404.
        """
        real = getattr(zhmcclient.Partition, method)
        calls: list[str] = []

        def gone(part: Any, *args: Any, **kwargs: Any) -> Any:
            calls.append(part.name)
            result = real(part, *args, **kwargs)
            if len(calls) == 1:
                raise zhmcclient.HTTPError({
                    'http-status': 404, 'reason': 1,
                    'message': 'Unknown resource', 'request-method': 'GET',
                    'request-uri': '/api/jobs/8729406cb8e2'})
            return result
        self.useFixture(fixtures.MonkeyPatch(
            f'zhmcclient.Partition.{method}', gone))
        return calls

    def test_start_job_status_gone(self) -> None:
        inst = self.instance()
        self.driver.prepare_for_spawn(inst)
        calls = self._job_gone_once('start')
        self._spawn_prepared(inst)
        self.assertEqual(1, len(calls))
        self.assertEqual(power_state.RUNNING,
                         self.driver.get_info(inst).state)

    def test_stop_job_status_gone(self) -> None:
        inst = self.instance()
        self.spawn(inst)
        calls = self._job_gone_once('stop')
        self.driver.destroy(self.ctxt, inst, [])
        self.assertEqual(1, len(calls))
        self.assertEqual({'partitions': [], 'storage_groups': [],
                          'hbas': []}, self.leftovers())

    def test_boot_volume_set_again_after_an_hmc_error(self) -> None:
        # The partition is kept (its HBAs' WWPNs are those Cinder mapped
        # the root volume to); only the failed step runs again.
        inst = self.instance()
        self.driver.prepare_for_spawn(inst)
        part = self.partition(inst)
        part.pull_full_properties()
        made = part.get_property('object-id')
        calls = self._fail_first(zhmcclient.Partition, 'update_properties',
                                 False)
        self._spawn_prepared(inst)
        self.assertEqual(2, len(calls))
        part = self.partition(inst)
        part.pull_full_properties()
        self.assertEqual(made, part.get_property('object-id'))
        self.assertEqual(power_state.RUNNING,
                         self.driver.get_info(inst).state)
        self.driver.destroy(self.ctxt, inst, [])
        self.assertEqual({'partitions': [], 'storage_groups': [],
                          'hbas': []}, self.leftovers())

    def test_lasting_error_not_tried_again(self) -> None:
        inst = self.instance()
        calls: list[str] = []

        def no_memory(manager: Any, properties: Any) -> Any:
            calls.append(properties['name'])
            raise zhmcclient.HTTPError({
                'http-status': 409, 'reason': 8,
                'message': 'not enough memory', 'request-method': 'POST',
                'request-uri': '/api/cpcs/x/partitions'})
        self.useFixture(fixtures.MonkeyPatch(
            'zhmcclient.PartitionManager.create', no_memory))
        self.assertRaises(zhmcclient.HTTPError, self.driver.prepare_for_spawn,
                          inst)
        self.assertEqual(1, len(calls))
