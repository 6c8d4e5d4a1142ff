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
"""The HMC emulator: zhmcclient's faked HMC, strict, over real HTTPS.

Importable names: :func:`cpc_definition`, :func:`faked_session`,
:class:`HMCEmulator` (the HTTPS server, imported lazily).
"""

from __future__ import annotations

from typing import Any

from cinder_dpm_ephemeral.emulators.hmc.definition import (
    cpc_definition, hmc_definition)
from cinder_dpm_ephemeral.emulators.hmc.ipl import (
    fcp_lun_to_int, int_to_fcp_lun)
from cinder_dpm_ephemeral.emulators.hmc.model import HMCModel, faked_session

__all__ = ['cpc_definition', 'hmc_definition', 'faked_session', 'HMCModel',
           'HMCEmulator', 'fcp_lun_to_int', 'int_to_fcp_lun']


def __getattr__(name: str) -> Any:
    if name == 'HMCEmulator':
        from cinder_dpm_ephemeral.emulators.hmc.server import HMCEmulator
        return HMCEmulator
    raise AttributeError(name)
