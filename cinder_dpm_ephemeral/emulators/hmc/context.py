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
"""Emulator state that is not a property of any HMC object.

One :class:`StrictContext` hangs on the faked HMC (``hmc.strict``) so the
URI handlers reach it: the WWPN allocator (unique over the whole HMC, as
the CPC's WWPN pool is; the mock's per-partition pool hands out the same
WWPNs in every partition and reuses freed ones), the fulfilment records of
FCP storage volumes, and the IPL resolver.
"""

from __future__ import annotations

import hashlib
from typing import Any, Protocol

# IBM's NPIV WWPN prefix as HMCs show it (zhmc-ansible-modules sample
# 'c05076d24d80016e', lowercase).
WWPN_PREFIX = 'c05076'


class Fabric(Protocol):
    def resolve(self, initiator: str, target: str, fcp_lun: str) -> str:
        ...


class StrictContext:
    """What the strict handlers need beyond the faked resources."""

    def __init__(self, fabric: Fabric | None = None,
                 saved: dict[str, Any] | None = None) -> None:
        self.fabric = fabric
        saved = saved or {}
        self.next_wwpn: int = int(saved.get('next_wwpn', 1))
        self.next_devno: int = int(saved.get('next_devno', 0x1000))
        # storage volume URI -> {'world-wide-port-name', 'logical-unit-number',
        #                        'adapter-port-uri'}
        self.fulfilments: dict[str, dict[str, str]] = dict(
            saved.get('fulfilments', {}))

    def to_dict(self) -> dict[str, Any]:
        return {'next_wwpn': self.next_wwpn, 'next_devno': self.next_devno,
                'fulfilments': self.fulfilments}

    def new_wwpn(self, cpc_serial: str) -> str:
        """A WWPN never handed out before by this HMC (16 lowercase hex)."""
        n = self.next_wwpn
        self.next_wwpn += 1
        mid = hashlib.sha256(cpc_serial.encode()).hexdigest()[:4]
        return f'{WWPN_PREFIX}{mid}{n:06x}'

    def new_devno(self) -> str:
        n = self.next_devno
        self.next_devno = 0x1000 if n >= 0x7FFF else n + 1
        return f'{n:04x}'


def context_of(hmc: Any) -> StrictContext:
    ctx = getattr(hmc, 'strict', None)
    if ctx is None:
        ctx = StrictContext()
        hmc.strict = ctx
    return ctx
