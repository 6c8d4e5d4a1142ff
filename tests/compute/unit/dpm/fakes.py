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
"""The HMC emulator's strict model, as the DPM driver's tests use it.

``hmc_session`` gives the model of ``cinder_dpm_ephemeral.emulators.hmc``
(``faked_session``) holding one DPM CPC, z14-like (storage groups) or
z13-like (HBAs), with two FCP adapters of two ports each and one OSA
adapter (for the "not FCP" check).

The model's Validate LUN Path (which the driver's storage-group route uses
to choose the boot target) is wrapped to record each call and to refuse,
with reason 484, the targets a test puts in
``Reachability.unreachable_targets``; everything else goes to the model's
own handler (which follows the SVC emulator's fabric when it has one).
"""

from typing import Any

import zhmcclient
from zhmcclient.mock import FakedSession
from zhmcclient.mock import _urihandler as uh  # private: zhmcclient pinned

from cinder_dpm_ephemeral.emulators import hmc as hmc_emulator
from cinder_dpm_ephemeral.emulators.hmc import definition as hmc_definition
from cinder_dpm_ephemeral.emulators.hmc import model
from cinder_dpm_ephemeral.emulators.hmc import storage as hmc_storage

CPC_NAME = 'CPC1'
CPC_ID = hmc_definition.cpc_object_id(CPC_NAME)
ADAPTERS = tuple(hmc_definition.adapter_object_id(CPC_NAME, a)
                 for a in hmc_definition.DEFAULT_ADAPTERS)
OSA_ID = hmc_definition.adapter_object_id(CPC_NAME, 'osa1')


def cpc_dict(storage_groups: bool, **kwargs: Any) -> dict[str, Any]:
    cpc = hmc_emulator.cpc_definition(CPC_NAME, storage_groups=storage_groups,
                                      **kwargs)
    cpc['adapters'].append({
        'properties': {'object-id': OSA_ID, 'name': 'osa1', 'type': 'osd',
                       'adapter-family': 'osa', 'status': 'active'},
        'ports': [{'properties': {'element-id': '0', 'name': 'Port 0',
                                  'index': 0}}],
    })
    return cpc


class Reachability:
    """What Validate LUN Path saw and which targets it refuses."""

    def __init__(self) -> None:
        self.unreachable_targets: set[str] = set()
        self.validated: list[tuple[str, str, str]] = []

    def handler(self) -> Any:
        reach = self

        class ValidateLunPath:
            @staticmethod
            def post(method: str, hmc: Any, uri: str, uri_parms: Any,
                     body: Any, logon_required: bool,
                     wait_for_completion: bool) -> None:
                target = str(body.get('target-world-wide-port-name', ''))
                reach.validated.append((
                    body.get('host-world-wide-port-name'), target.lower(),
                    body.get('logical-unit-number')))
                if target.lower() in reach.unreachable_targets:
                    raise uh.ConflictError(method, uri, 484,
                                           'target %s not reachable' % target)
                hmc_storage.ValidateLunPathHandler.post(
                    method, hmc, uri, uri_parms, body, logon_required,
                    wait_for_completion)
        return ValidateLunPath


def hmc_session(storage_groups: bool = True,
                svc_state_dir: str | None = None, **cpc: Any
                ) -> tuple[FakedSession, Reachability]:
    session = hmc_emulator.faked_session(cpc_dict(storage_groups, **cpc),
                                         svc_state_dir=svc_state_dir)
    reach = Reachability()
    session._urihandler = uh.UriHandler(
        model.strict_uris() + [(model.VALIDATE_LUN_PATH, reach.handler())])
    return session, reach


def client(session: FakedSession) -> zhmcclient.Client:
    return zhmcclient.Client(session)
