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
"""

from typing import Any

from cinder.volume.drivers.dell_emc.powerflex import driver as powerflex
from cinder.volume.drivers.ibm.storwize_svc import storwize_svc_fc

from cinder_dpm_ephemeral import emulation
from cinder_dpm_ephemeral import opts


class StockStorwizeFCDriver(emulation.EmulatedDataPathMixin,
                            storwize_svc_fc.StorwizeSVCFCDriver):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.configuration.append_config_values(opts.emulation_opts)

    def _emulated_lun_id(self, volume: Any, connection: Any,
                         connector: Any) -> str:
        return emulation.svc_lun_id(self, volume, connection, connector)


class StockPowerFlexDriver(emulation.EmulatedDataPathMixin,
                           powerflex.PowerFlexDriver):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.configuration.append_config_values(opts.emulation_opts)

    def _emulated_lun_id(self, volume: Any, connection: Any,
                         connector: Any) -> str:
        return emulation.powerflex_lun_id(self, volume, connection,
                                          connector)
