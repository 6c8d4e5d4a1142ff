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
"""HMC definitions for the HMC emulator, in the shape zhmcclient's mock loads.

:func:`cpc_definition` describes one DPM CPC with FCP adapters;
:func:`hmc_definition` wraps CPCs into the ``hmc_definition`` document that
``zhmcclient.mock.FakedSession.from_hmc_dict`` validates and loads.

Two machine generations are modelled, because they expose different storage
models (zhmcclient ``_storage_group.py`` docstring; IBM HMC WS API book,
"Storage Groups"):

* ``storage_groups=True``: z14-like (machine type 3906, SE 2.14.1) with the
  ``dpm-storage-management`` firmware feature on. Partitions reach FCP
  storage through storage groups; HBAs are not exposed.
* ``storage_groups=False``: z13-like (machine type 2964, SE 2.13.1), DPM R1:
  partitions get HBAs and boot with ``boot-device: storage-adapter``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

HMC_NAME = 'hmc-emulator'
HMC_VERSION = '2.14.1'
API_VERSION = '2.23'
DEFAULT_ADAPTERS = ('fcp1', 'fcp2')
PORTS_PER_ADAPTER = 2


def _hex(seed: str, n: int) -> str:
    return hashlib.sha256(seed.encode()).hexdigest()[:n]


def cpc_object_id(name: str) -> str:
    """A stable 36-character object id for CPC ``name`` (HMC ids are UUIDs)."""
    h = _hex('cpc:' + name, 32)
    return f'{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}'


def adapter_object_id(cpc_name: str, adapter: str) -> str:
    h = _hex(f'adapter:{cpc_name}:{adapter}', 32)
    return f'{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}'


def cpc_definition(name: str = 'CPC1', storage_groups: bool = True,
                   adapters: Iterable[str] = DEFAULT_ADAPTERS,
                   ifl: int = 20, memory_mb: int = 1024 * 1024,
                   ports_per_adapter: int = PORTS_PER_ADAPTER
                   ) -> dict[str, Any]:
    """One DPM CPC with FCP adapters, as ``add_resources`` accepts it.

    :param name: the CPC name; its object id derives from it
        (:func:`cpc_object_id`).
    :param storage_groups: True for a z14-like CPC with the
        ``dpm-storage-management`` feature, False for a z13-like one (HBAs).
    :param adapters: adapter names; each becomes an FCP adapter (FICON
        Express16S, adapter family ``ficon``, type ``fcp``) whose object id
        derives from the CPC and adapter names (:func:`adapter_object_id`).
    :param ifl: ``processor-count-ifl``.
    :param memory_mb: ``storage-customer`` (MiB of customer memory).
    """
    adapters = list(adapters)
    if len(adapters) < 1:
        raise ValueError('a DPM CPC for FCP boot needs at least one FCP '
                         'adapter')
    if storage_groups:
        machine, se_version, features = '3906', '2.14.1', [
            {'name': 'dpm-storage-management',
             'description': 'DPM storage management (storage groups)',
             'state': True},
        ]
    else:
        machine, se_version, features = '2964', '2.13.1', []
    cpc_id = cpc_object_id(name)
    adapter_defs = []
    for i, adapter in enumerate(adapters):
        aid = adapter_object_id(name, adapter)
        adapter_defs.append({
            'properties': {
                'object-id': aid,
                'name': adapter,
                'description': f'FCP adapter {adapter}',
                'type': 'fcp',
                'adapter-family': 'ficon',
                'detected-card-type': 'ficon-express-16s',
                'adapter-id': f'{0x120 + i * 4:03X}',
                'status': 'active',
                'state': 'online',
                'physical-channel-status': 'operating',
                'port-count': ports_per_adapter,
                'maximum-total-capacity': 254,
                'allowed-capacity': 254,
                'used-capacity': 0,
            },
            'ports': [
                {'properties': {
                    'element-id': str(p),
                    'name': f'Port {p}',
                    'description': '',
                    'index': p,
                    'fabric-id': _hex(f'fabric:{name}:{p}', 16),
                }}
                for p in range(ports_per_adapter)],
        })
    return {
        'properties': {
            'object-id': cpc_id,
            'name': name,
            'description': ('z14-like DPM CPC (dpm-storage-management)'
                            if storage_groups else 'z13-like DPM CPC (HBAs)'),
            'machine-type': machine,
            'machine-model': 'M05' if storage_groups else 'NE1',
            'machine-serial-number': '00000' + _hex('serial:' + name, 7
                                                    ).upper(),
            'se-version': se_version,
            'dpm-enabled': True,
            'iml-mode': 'dpm',
            'status': 'active',
            'processor-count-ifl': ifl,
            'processor-count-general-purpose': 0,
            'storage-customer': memory_mb,
            'storage-customer-available': memory_mb,
            'available-features-list': features,
            'is-ensemble-member': False,
        },
        'adapters': adapter_defs,
    }


def hmc_definition(cpcs: Iterable[dict[str, Any]] | None = None,
                   host: str = '127.0.0.1') -> dict[str, Any]:
    """The ``hmc_definition`` document around ``cpcs`` (default: one CPC)."""
    cpcs = list(cpcs) if cpcs is not None else [cpc_definition()]
    return {
        'hmc_definition': {
            'host': host,
            'api_version': API_VERSION,
            'consoles': [{
                'properties': {'name': HMC_NAME, 'version': HMC_VERSION,
                               'object-id': 'console'},
            }],
            'cpcs': cpcs,
        },
    }
