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
"""The storage identity of the emulated volume host.

Before Cinder's volume service writes an image onto a LUN (or reads one),
it attaches the LUN to its own host: the driver's ``initialize_connection``
with os-brick's connector properties of that host, then os-brick finds the
device. The properties carry the host's FC HBA ports (``wwpns``, read from
sysfs) and its PowerFlex data client (``sdc_guid``, from
``drv_cfg --query_guid``), and the array maps the LUN to them: on an SVC
the in-tree driver makes a host object with those ports and a host
mapping (``mkhost``, ``mkvdiskhostmap``; ``rmvdiskhostmap`` and ``rmhost``
on the detach), on PowerFlex it maps the volume to that SDC
(``addMappedSdc``; ``removeMappedSdc``).

A machine with no HBA and no SDC has neither. With the emulation switch
on, the volume service's own attaches add this identity to its connector
properties, so the array's side of every such attach runs as on a real
volume host, and costs what it costs there; only the device is the LUN's
file. It lives in the emulator's state directory (:data:`FILE`), shared by
the volume service and the emulator: a PowerFlex emulator started with
``volume_host=True`` registers the SDC, as a real SDC registers itself
with the MDM when its driver loads. The SVC emulator needs nothing: it
shows any host port as logged in to the fabric.
"""

from __future__ import annotations

import json
import os
import secrets
import uuid
from typing import Any

FILE = 'volume-host.json'

#: the name the PowerFlex emulator gives the volume host's SDC
SDC_NAME = 'cinder-volume-host'


def _wwpn() -> str:
    # IBM's OUI (00:50:76), as on the FCP adapters DPM partitions use
    return 'c05076' + secrets.token_hex(5)


def load(state_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """The identity kept in ``state_dir``; FileNotFoundError if none."""
    with open(os.path.join(state_dir, FILE)) as f:
        return json.load(f)


def ensure(state_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """The identity kept in ``state_dir``, made there once if missing.

    Made in one step (a link of a complete file), so processes that
    race each other all end with the same identity.
    """
    try:
        return load(state_dir)
    except FileNotFoundError:
        pass
    ports = [_wwpn(), _wwpn()]
    ident = {'wwpns': ports, 'wwnns': ports, 'sdc_guid': str(uuid.uuid4())}
    path = os.path.join(state_dir, FILE)
    tmp = f'{path}.{os.getpid()}.{secrets.token_hex(4)}'
    with open(tmp, 'w') as f:
        json.dump(ident, f)
    try:
        os.chmod(tmp, 0o644)
        os.link(tmp, path)
    except FileExistsError:
        return load(state_dir)
    finally:
        os.unlink(tmp)
    return ident


def connector(state_dir: str | os.PathLike[str],
              properties: dict[str, Any]) -> dict[str, Any]:
    """os-brick's ``properties`` of this host, with the emulated identity.

    Only what the host lacks is added: ports and an SDC the host really
    has are kept.
    """
    ident = ensure(state_dir)
    props = dict(properties)
    if not props.get('wwpns'):
        props['wwpns'] = list(ident['wwpns'])
        props['wwnns'] = list(ident['wwnns'])
    if not props.get('sdc_guid'):
        props['sdc_guid'] = ident['sdc_guid']
    return props
