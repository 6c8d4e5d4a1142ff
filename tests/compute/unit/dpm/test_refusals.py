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
"""Encrypted volumes, secrets, and the volume Nova gave up on.

The driver on the emulated HMC (both routes); ``volume_wait`` against a
small stand-in for Nova's Cinder API that behaves as Cinder does for a
volume being created (refuses its delete).
"""

from typing import Any

from nova import exception as nova_exception
from oslo_config import cfg
from oslo_utils import uuidutils

from nova_shim.virt.dpm import conf as dpm_conf
from nova_shim.virt.dpm import exception
from nova_shim.virt.dpm import volume_wait
from tests.compute.unit.dpm import base


class _EncryptedRefused:

    def _spawn_encrypted(self, inst: Any) -> None:
        self.driver.prepare_for_spawn(inst)
        connector = self.driver.get_volume_connector(inst)
        bdi = self.block_device_info(connector, 3, extra_luns=(4,))
        bdi['block_device_mapping'][1]['connection_info']['data'][
            'encrypted'] = True
        exc = self.assertRaises(
            exception.EncryptedVolumeRefused, self.driver.spawn, self.ctxt,
            inst, {}, [], None, {}, [], bdi)
        self.assertIn('is encrypted (connection info)', str(exc))
        self.assertIn('LUKS', str(exc))
        # Nova aborts the build on this one (no reschedule)
        self.assertIsInstance(exc, nova_exception.VolumeEncryptionNotSupported)

    def test_spawn_refuses_and_leaves_nothing(self) -> None:
        self._spawn_encrypted(self.instance())
        self.assertEqual({'partitions': [], 'storage_groups': [],
                          'hbas': []}, self.leftovers())

    def test_attach_refuses_encrypted_volume(self) -> None:
        inst = self.instance()
        self.spawn(inst)
        before = self.leftovers()
        connector = self.driver.get_volume_connector(inst)
        for info, encryption in (
                (dict(self.connection_info(connector, 7)), {
                    'provider': 'luks', 'cipher': 'aes-xts-plain64'}),
                (self.connection_info(connector, 8), None)):
            if encryption is None:
                info['data']['encrypted'] = True
            self.assertRaises(exception.EncryptedVolumeRefused,
                              self.driver.attach_volume, self.ctxt, info,
                              inst, '/dev/sdx', encryption=encryption)
        self.assertEqual(before, self.leftovers())
        # an unencrypted volume's empty encryption metadata is no refusal
        self.driver.attach_volume(self.ctxt, self.connection_info(
            connector, 9), inst, '/dev/sdy', encryption={})


class TestEncryptedStorageGroups(_EncryptedRefused, base.DriverTestCase):
    STORAGE_GROUPS = True


class TestEncryptedHbas(_EncryptedRefused, base.DriverTestCase):
    STORAGE_GROUPS = False


class TestSecrets(base.DriverTestCase):
    INIT_HOST = False

    def test_hmc_password_is_secret(self) -> None:
        opts = {o.name: o for o in dpm_conf.dpm_opts}
        self.assertTrue(opts['hmc_password'].secret)
        self.assertTrue(opts['hmc_verify_cert'].default)
        self.assertTrue(cfg.CONF.dpm.hmc_verify_cert)


class _Cinder:
    """Nova's Cinder API for one volume Cinder is still creating."""

    def __init__(self, busy_gets: int, end: str = 'available') -> None:
        self.busy_gets = busy_gets
        self.end = end
        self.deleted: list[str] = []

    def get(self, context: Any, volume_id: str) -> dict[str, Any]:
        if volume_id in self.deleted:
            raise nova_exception.VolumeNotFound(volume_id=volume_id)
        if self.busy_gets:
            self.busy_gets -= 1
            return {'id': volume_id, 'status': 'downloading'}
        return {'id': volume_id, 'status': self.end}

    def delete(self, context: Any, volume_id: str) -> None:
        if self.busy_gets:
            raise nova_exception.InvalidVolume(reason='still downloading')
        self.deleted.append(volume_id)


def _gave_up(volume_id: str, status: str = 'downloading'
             ) -> nova_exception.InvalidBDM:
    """What Nova's _build_resources handles: InvalidBDM from the wait."""
    try:
        try:
            raise nova_exception.VolumeNotCreated(
                volume_id=volume_id, seconds=181, attempts=61,
                volume_status=status)
        except nova_exception.VolumeNotCreated as ex:
            raise nova_exception.InvalidBDM(str(ex))
    except nova_exception.InvalidBDM as outer:
        return outer


class TestVolumeWait(base.DriverTestCase):
    INIT_HOST = False

    def test_found_in_the_handled_exception(self) -> None:
        vid = uuidutils.generate_uuid()
        found = volume_wait.abandoned_volume(_gave_up(vid))
        self.assertEqual((vid, 'downloading', 181),
                         (found.volume_id, found.status, found.seconds))
        # Nova deletes an 'error' volume itself; other failures: nothing
        self.assertIsNone(volume_wait.abandoned_volume(_gave_up(vid,
                                                                'error')))
        self.assertIsNone(volume_wait.abandoned_volume(ValueError('x')))
        self.assertIsNone(volume_wait.abandoned_volume(None))

    def test_waits_then_deletes(self) -> None:
        vid = uuidutils.generate_uuid()
        api = _Cinder(busy_gets=2)
        out = volume_wait.settle_and_delete(
            self.ctxt, volume_wait.abandoned_volume(_gave_up(vid)),
            timeout=30, interval=0, api=api)
        self.assertTrue(out.deleted)
        self.assertEqual([vid], api.deleted)
        self.assertEqual('available', out.status)

    def test_error_volume_deleted_and_gone_volume_fine(self) -> None:
        vid = uuidutils.generate_uuid()
        api = _Cinder(busy_gets=0, end='error')
        out = volume_wait.settle_and_delete(
            self.ctxt, volume_wait.Abandoned(vid, 'creating', 5), 30, 0, api)
        self.assertTrue(out.deleted)
        api.deleted.append(vid)
        out = volume_wait.settle_and_delete(
            self.ctxt, volume_wait.Abandoned(vid, 'creating', 5), 30, 0, api)
        self.assertTrue(out.deleted)
        self.assertEqual('', out.status)

    def test_timeout_leaves_it_and_says_so(self) -> None:
        vid = uuidutils.generate_uuid()
        api = _Cinder(busy_gets=10 ** 6)
        out = volume_wait.settle_and_delete(
            self.ctxt, volume_wait.Abandoned(vid, 'downloading', 181), 0, 0,
            api)
        self.assertFalse(out.deleted)
        self.assertEqual([], api.deleted)
        self.assertIn('delete it', volume_wait.reason(out))

    def test_fault_fits_novas_255_characters(self) -> None:
        vid = uuidutils.generate_uuid()
        vol = volume_wait.Abandoned(vid, 'downloading', 99999)
        prefix = len('Build of instance %s aborted: ' % vid)
        for out in (volume_wait.Outcome(vol, True, 'available', 1.0),
                    volume_wait.Outcome(vol, False, 'downloading', 99999.0),
                    volume_wait.Outcome(vol, False, 'available', 1.0,
                                        error='HTTP 500')):
            text = volume_wait.reason(out)
            self.assertLessEqual(prefix + len(text), 255, text)
            self.assertIn(vid, text)
            self.assertIn('block_device_allocate_retries', text)
            self.assertIn('cinder-dpm-ephemeral cache warm', text)
