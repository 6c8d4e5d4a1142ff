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
"""What every emulated HMC operation checks first, whatever its object.

* a URI names an existing object, else 404 (reason 1), as the mock says;
* object names are String (1-64) (IBM HMC WS API book: Partition and
  Storage Group data models, ``name``);
* the ``dpm-storage-management`` feature (``available-features-list`` of
  the CPC) decides between HBAs and storage groups.

Used by the partition handlers (:mod:`.handlers`) and the storage-group
handlers (:mod:`.storage`), which therefore do not import each other's
helpers.
"""

from __future__ import annotations

from typing import Any

from zhmcclient.mock import _urihandler as mock  # private API: pinned

from cinder_dpm_ephemeral.emulators.hmc import errors

NAME_MAX = 64
SG_FEATURE = 'dpm-storage-management'


def has_sg_feature(cpc: Any) -> bool:
    for feature in cpc.properties.get('available-features-list') or []:
        if feature.get('name') == SG_FEATURE and feature.get('state'):
            return True
    return False


def lookup(hmc: Any, method: str, uri: str) -> Any:
    try:
        return hmc.lookup_by_uri(uri)
    except KeyError:
        raise mock.InvalidResourceError(method, uri) from None


def check_name(method: str, uri: str, name: Any, what: str) -> None:
    if not isinstance(name, str) or not 1 <= len(name) <= NAME_MAX:
        raise errors.invalid_value(
            method, uri, f'The {what} name must be a string of 1 to '
            f'{NAME_MAX} characters; got {name!r} '
            f'({len(name) if isinstance(name, str) else "not a string"})')
