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
"""Stock Cinder drivers for the benchmark, on the emulated data path.

Cinder's in-tree Storwize FC and PowerFlex drivers, unchanged, except that
their image copies reach the emulated LUN files the same way ours do (the
emulation data path mixin). Everything measured (array calls, clones,
Cinder's generic image-volume cache) is the stock code.

Stock on SVC attaches from a volume host of its own: its own emulated HBA
ports (:data:`STOCK_VOLUME_HOST`, beside the array's state), as a stock
deployment has. In the cloud benchmark it shares the array with ours, and
with ours' volume host its in-tree ``mkhost`` would be refused on every
image copy (ours keeps a host object with those ports), then sleep the
in-tree driver's random 0.2-5 s after a failed command: a cost of running
the two on one host (doc/image-cache.md), not of stock.
"""

import os
from typing import Any

from cinder.volume.drivers.dell_emc.powerflex import driver as powerflex
from cinder.volume.drivers.ibm.storwize_svc import storwize_svc_fc

from cinder_dpm_ephemeral import emulation
from cinder_dpm_ephemeral.emulators import lunstore
from cinder_dpm_ephemeral.emulators import volume_host
from cinder_dpm_ephemeral import opts

#: beside the SVC emulator's state: the identity (HBA ports) of the volume
#: host stock's SVC backend attaches from
STOCK_VOLUME_HOST = 'stock-volume-host'


class StockStorwizeFCDriver(emulation.EmulatedDataPathMixin,
                            storwize_svc_fc.StorwizeSVCFCDriver):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.configuration.append_config_values(opts.emulation_opts)

    def _emulated_lun_id(self, volume: Any, connection: Any,
                         connector: Any) -> str:
        return emulation.svc_lun_id(self, volume, connection, connector)

    @staticmethod
    def _volume_host_connector(store: lunstore.LunStore,
                               properties: Any) -> dict[str, Any]:
        where = store.root.parent / STOCK_VOLUME_HOST
        os.makedirs(where, exist_ok=True)
        return volume_host.connector(where, properties)


class StockPowerFlexDriver(emulation.EmulatedDataPathMixin,
                           powerflex.PowerFlexDriver):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.configuration.append_config_values(opts.emulation_opts)

    def _emulated_lun_id(self, volume: Any, connection: Any,
                         connector: Any) -> str:
        return emulation.powerflex_lun_id(self, volume, connection,
                                          connector)
