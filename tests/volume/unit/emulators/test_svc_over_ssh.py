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
"""The unmodified in-tree driver over real SSH (paramiko) to the emulator.

No method of the driver is replaced here: its own SSH pool connects to
:class:`SVCEmulator` (the SSH transport serving :class:`SVCArray`) with
host key verification, as a cinder-volume service would.
"""

from __future__ import annotations

from typing import Any

import fixtures
import tenacity

from cinder import context
from cinder.volume.drivers.ibm.storwize_svc import storwize_svc_fc

from cinder_dpm_ephemeral.emulators.svc import server
from tests.volume.unit.emulators import svc_base
from tests.volume.unit.emulators.svc_base import CONNECTOR, GiB


class OverSSHTestCase(svc_base.DriverTestCase):

    def setUp(self) -> None:
        self.emulator: server.SVCEmulator | None = None
        super().setUp()

    def make_array(self, **kwargs: Any) -> Any:
        self.emulator = server.SVCEmulator(
            self.state_dir, login=('superuser', 'passw0rd'),
            system_name=svc_base.SYSTEM, pools={svc_base.POOL: 64 * GiB},
            clock=self.clock, **kwargs).start()
        self.addCleanup(self.emulator.stop)
        return self.emulator.array

    def make_driver(self, **extra: Any) -> Any:
        assert self.emulator is not None
        self.flags(ssh_hosts_key_file=self.emulator.known_hosts_path,
                   strict_ssh_host_key_policy=True)
        self.mock_object(tenacity.nap, 'sleep')
        with fixtures.MonkeyPatch('time.sleep', lambda s: None):
            drv = storwize_svc_fc.StorwizeSVCFCDriver(
                configuration=self.configure(
                    san_ssh_port=self.emulator.port, **extra),
                host='cinder-volume@%s' % svc_base.BACKEND)
        drv.db = self.db_api()
        drv.do_setup(context.get_admin_context())
        drv.check_for_setup_error()
        drv._check_callhome_loop.stop()
        drv._helpers.check_fcmapping_interval = 0
        self.addCleanup(self._close_pool, drv)
        return drv

    @staticmethod
    def _close_pool(drv: Any) -> None:
        pool = getattr(drv, 'sshpool', None)
        while pool is not None and pool.free_items:
            pool.free_items.popleft().close()

    def test_lifecycle_over_ssh(self) -> None:
        vol = self.create_volume(size=1)
        conn = self.driver.initialize_connection(vol, CONNECTOR)
        self.assertEqual(0, conn['data']['target_lun'])
        self.assertEqual(4, len(conn['data']['target_wwn']))
        clone = self.new_volume(size=1)
        self.apply(clone, self.driver.create_cloned_volume(clone, vol))
        self.finish_copies()
        self.driver.terminate_connection(vol, CONNECTOR)
        self.driver.delete_volume(vol)
        self.driver.delete_volume(clone)
        self.assertArrayEmpty()
        verbs = {argv[1] for argv in self.array.commands}
        # every command that reached the CLI over SSH is counted once
        assert self.emulator is not None
        self.assertEqual(len(self.array.commands),
                         self.emulator.calls_made())
        self.assertLessEqual({'lssystem', 'lstargetportfc', 'mkvdisk',
                              'mkhost', 'mkvdiskhostmap', 'mkfcmap',
                              'startfcmap', 'rmvdisk'}, verbs)
