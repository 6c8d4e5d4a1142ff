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
"""The benchmark's stock SVC driver attaches from a volume host of its own.

In the cloud benchmark stock shares the emulated SVC with ours. With the
same volume host ports, its in-tree ``mkhost`` is refused on every image
copy (ours keeps a host object with those ports) and the in-tree driver
then sleeps 0.2-5 s: doc/cloud.md.
"""

import shutil
import tempfile
import unittest

from cinder_dpm_ephemeral import emulation
from cinder_dpm_ephemeral.emulators import lunstore
from cinder_dpm_ephemeral.emulators import volume_host
from tools.bench import stock_drivers

# os-brick's answer on a machine with no HBA
HOST_PROPS = {'host': 'vm', 'platform': 'x86_64', 'os_type': 'linux'}


class StockVolumeHostTest(unittest.TestCase):

    def setUp(self):
        self.state_dir = tempfile.mkdtemp(prefix='stock-vh-')
        self.addCleanup(shutil.rmtree, self.state_dir)
        self.store = lunstore.LunStore(self.state_dir)

    def test_stock_has_its_own_ports_and_keeps_them(self):
        ours = emulation.EmulatedDataPathMixin._volume_host_connector(
            self.store, HOST_PROPS)
        stock = stock_drivers.StockStorwizeFCDriver._volume_host_connector(
            self.store, HOST_PROPS)
        self.assertEqual(volume_host.load(self.state_dir)['wwpns'],
                         ours['wwpns'])
        self.assertEqual(2, len(stock['wwpns']))
        self.assertFalse(set(ours['wwpns']) & set(stock['wwpns']))
        again = stock_drivers.StockStorwizeFCDriver._volume_host_connector(
            self.store, HOST_PROPS)
        self.assertEqual(stock['wwpns'], again['wwpns'])
        self.assertEqual('vm', stock['host'])

    def test_ports_a_host_really_has_are_kept(self):
        real = dict(HOST_PROPS, wwpns=['5005076801401234'],
                    wwnns=['5005076801001234'])
        stock = stock_drivers.StockStorwizeFCDriver._volume_host_connector(
            self.store, real)
        self.assertEqual(['5005076801401234'], stock['wwpns'])
