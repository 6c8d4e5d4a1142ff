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
"""The REST layer of the PowerFlex gateway: routes, auth, fault injection.

Transport-free: :meth:`GatewayAPI.handle` takes a method, the raw path (as
sent, still percent-encoded), basic-auth credentials and the body, and
returns an HTTP status and a JSON-able body. The TLS server in
:mod:`.gateway` only moves bytes.

Authentication is the gateway's: ``GET /api/login`` with basic auth
``user:password`` returns a token (a JSON string); every other call uses
basic auth ``user:token``. Tokens stay valid until the gateway stops (a
real gateway expires them after hours, or minutes of idleness).
"""

from __future__ import annotations

import base64
import json
import logging
import random
import re
import secrets
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cinder_dpm_ephemeral.emulators import faults
from cinder_dpm_ephemeral.emulators.powerflex import errors
from cinder_dpm_ephemeral.emulators.powerflex import state

LOG = logging.getLogger(__name__)

#: Per-call latency for benchmarks (seconds). Stated assumption, not a
#: measured Dell figure: Dell publishes no gateway latency. Every call is
#: an HTTPS request to the gateway, which asks the MDM; 0.02 s is the
#: lower end of such a two-hop request on a data-centre network, which
#: favours the driver that makes more calls.
BENCH_REST_LATENCY = 0.02

Handler = Callable[['Request'], Any]

#: Fault modes a campaign draws from (:meth:`GatewayAPI.set_faults`), with
#: their default weights, and what each imitates:
#:
#: * ``http500``: HTTP 500 with the gateway's JSON error body, nothing
#:   done: the gateway answers 500 when the MDM it forwards to fails the
#:   request (Dell PowerFlex REST API Reference, response codes; the
#:   in-tree client treats any non-200 as a failure).
#: * ``http503``: HTTP 503, nothing done: the gateway is up but cannot
#:   reach the MDM cluster, e.g. during an MDM switch-over (same
#:   reference: 503 Service Unavailable).
#: * ``timeout_before`` / ``timeout_after``: the answer is withheld for
#:   ``timeout_seconds`` (longer than the driver's
#:   ``rest_api_read_timeout``), the request having changed nothing
#:   (before) or taken effect (after): an overloaded gateway or a lost
#:   answer; the client cannot know whether a POST happened.
#: * ``slow``: the answer comes ``slow_seconds`` late, within the timeout.
POWERFLEX_FAULT_MODES = {'http500': 3.0, 'http503': 2.0,
                         'timeout_before': 1.0, 'timeout_after': 2.0,
                         'slow': 2.0}


@dataclass
class Request:
    method: str
    path: str
    body: Any
    groups: tuple[str, ...] = ()


@dataclass
class Fault:
    target: str
    count: int
    error: errors.PowerFlexError


def _truthy(value: Any) -> bool:
    return str(value).strip().lower() in ('true', '1', 'yes')


def _unquote(segment: str) -> str:
    return urllib.parse.unquote(segment)


def _unquote_name(segment: str) -> str:
    """A volume name in a getByName path, sent quoted once or twice.

    os-brick's ScaleIO connector quotes the name twice (``_get_volume_id``:
    ``quote(quote(name, ''), '')``): the gateway decodes it twice. Names
    (base64 of the Cinder id: letters, digits, ``+``, ``/``) never
    contain ``%`` themselves, so decoding while one is left is exact.
    """
    name = urllib.parse.unquote(segment)
    if '%' in name:
        name = urllib.parse.unquote(name)
    return name


class GatewayAPI:
    """Dispatch of gateway calls onto a :class:`state.PowerFlexArray`."""

    def __init__(self, array: state.PowerFlexArray,
                 login: tuple[str, str] = ('admin', 'password'),
                 version: str = '3.6', latency: float = 0.0,
                 fail_rate: float = 0.0, seed: int | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.array = array
        self._user, self._password = login
        self.version = version
        self.latency = latency
        self.fail_rate = fail_rate
        self._rng = random.Random(seed)
        self._sleep = sleep
        self._tokens: set[str] = set()
        self._faults: list[Fault] = []
        #: random faults of a campaign (:meth:`set_faults`)
        self.dice = faults.FaultDice(POWERFLEX_FAULT_MODES)
        self._timeouts: list[list[Any]] = []
        self._lock = threading.Lock()
        self.calls: dict[str, int] = {}
        v = r'([^/]+)'
        self._routes: list[tuple[str, re.Pattern[str], str, Handler]] = []
        add = self._add
        add('GET', r'/version', 'version', lambda r: self.version)
        add('GET', r'/types/System/instances', 'querySystems',
            lambda r: [self.array.system()])
        add('GET', rf'/instances/System::{v}', 'querySystem',
            self._system)
        add('GET', r'/types/(?:Domain|ProtectionDomain)/instances/'
            r'getByName::(.+)', 'getDomainByName',
            lambda r: self.array.domain_id_by_name(_unquote(r.groups[0])))
        add('GET', r'/types/ProtectionDomain/instances', 'queryDomains',
            lambda r: self.array.domains())
        add('GET', rf'/instances/ProtectionDomain::{v}', 'queryDomain',
            lambda r: self.array.domain(r.groups[0]))
        add('POST', r'/types/ProtectionDomain/instances/action/'
            r'queryBySelectedIds', 'queryDomainsByIds',
            lambda r: self.array.domains(self._ids(r)))
        # read-only relationships an operator's script walks (PowerFlex
        # REST API reference: GET /api/instances/<Type>::<id>/
        # relationships/<RelatedType>; PyPowerFlex's get_related uses it)
        add('GET', rf'/instances/ProtectionDomain::{v}/relationships/'
            r'StoragePool', 'queryDomainPools',
            lambda r: self._domain_pools(r.groups[0]))
        add('GET', rf'/instances/System::{v}/relationships/'
            r'ProtectionDomain', 'querySystemDomains',
            lambda r: self._system_related(r, 'ProtectionDomain'))
        add('GET', rf'/instances/System::{v}/relationships/Sdc',
            'querySystemSdcs', lambda r: self._system_related(r, 'Sdc'))
        add('GET', rf'/instances/VTree::{v}/relationships/Volume',
            'queryVTreeVolumes', lambda r: self._vtree_volumes(r.groups[0]))
        add('GET', r'/types/(?:Pool|StoragePool)/instances/getByName::'
            r'([^,/]+),(.+)', 'getPoolByName',
            lambda r: self.array.pool_id_by_name(
                _unquote(r.groups[0]), _unquote(r.groups[1])))
        add('GET', r'/types/StoragePool/instances', 'queryPools',
            lambda r: self.array.pools())
        add('GET', rf'/instances/StoragePool::{v}', 'queryPool',
            lambda r: self.array.pool(r.groups[0]))
        add('GET', rf'/instances/StoragePool::{v}/relationships/Statistics',
            'queryPoolStatistics',
            lambda r: self.array.pool_statistics(r.groups[0]))
        add('GET', rf'/instances/StoragePool::{v}/relationships/Volume',
            'queryPoolVolumes',
            lambda r: self._pool_volumes(r.groups[0]))
        add('POST', r'/types/StoragePool/instances/action/'
            r'querySelectedStatistics', 'querySelectedStatistics',
            self._selected_statistics)
        add('POST', r'/types/Volume/instances', 'createVolume',
            self._create_volume)
        add('GET', r'/types/Volume/instances', 'queryVolumes',
            lambda r: self.array.volumes())
        add('GET', r'/types/Volume/instances/getByName::(.+)',
            'getVolumeByName',
            lambda r: self.array.volume_id_by_name(
                _unquote_name(r.groups[0])))
        add('POST', r'/types/Volume/instances/action/queryBySelectedIds',
            'queryVolumesByIds',
            lambda r: [self.array.volume(i) for i in self._ids(r)])
        add('GET', rf'/instances/Volume::{v}', 'queryVolume',
            lambda r: self.array.volume(r.groups[0]))
        add('POST', rf'/instances/Volume::{v}/action/(\w+)', '',
            self._volume_action)
        add('POST', rf'/instances/System(?:::{v})?/action/snapshotVolumes',
            'snapshotVolumes', self._snapshot_volumes)
        add('GET', rf'/instances/VTree::{v}', 'queryVTree',
            lambda r: self.array.vtree(r.groups[0]))
        add('GET', rf'/instances/VTree::{v}/relationships/Statistics',
            'queryVTreeStatistics',
            lambda r: self.array.vtree_statistics(r.groups[0]))
        add('GET', r'/types/Sdc/instances', 'querySdcs',
            lambda r: self.array.sdcs())
        add('GET', rf'/instances/Sdc::{v}', 'querySdc',
            lambda r: self.array.sdc(r.groups[0]))
        add('GET', rf'/instances/Sdc::{v}/relationships/Volume',
            'querySdcVolumes',
            lambda r: self._sdc_volumes(r.groups[0]))

    def _add(self, method: str, pattern: str, label: str,
             handler: Handler) -> None:
        self._routes.append((method, re.compile(pattern + r'/?$'), label,
                             handler))

    # -- operational controls -------------------------------------------------
    def inject_fault(self, target: str, count: int = 1,
                     error_code: int = errors.INJECTED,
                     message: str | None = None, http_status: int = 500,
                     details: list[dict[str, Any]] | None = None) -> None:
        """Fail the next ``count`` calls of ``target`` with this error.

        ``target`` is an action or call name (``removeVolume``,
        ``snapshotVolumes``, ``createVolume``, ``queryVolume``, ``login``)
        or a path fragment starting with ``/`` (``/instances/Sdc::``).
        The failing call changes nothing.
        """
        err = errors.PowerFlexError(
            message or f'Injected failure of {target}', error_code,
            http_status, details)
        with self._lock:
            self._faults.append(Fault(target, count, err))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()
            self._timeouts.clear()

    def inject_timeout(self, target: str, count: int = 1,
                       after: bool = True) -> None:
        """Withhold the answer of the next ``count`` calls of ``target``.

        Past the driver's read timeout (``timeout_seconds`` of
        :meth:`set_faults`, 2 s by default), the call having taken effect
        (``after``) or not. ``target`` as for :meth:`inject_fault`.
        """
        with self._lock:
            self._timeouts.append([target, count, after])

    def _take_timeout(self, method: str, raw_path: str) -> str | None:
        if not self._timeouts:
            return None
        path = urllib.parse.urlsplit(raw_path).path
        path = path[len('/api'):] if path.startswith('/api') else path
        try:
            _h, label, _g = self._route(method, path)
        except errors.PowerFlexError:
            label = ''
        with self._lock:
            for t in self._timeouts:
                hit = (t[0] == label if not t[0].startswith('/')
                       else t[0] in path)
                if hit and t[1] > 0:
                    t[1] -= 1
                    if t[1] == 0:
                        self._timeouts.remove(t)
                    return 'timeout_after' if t[2] else 'timeout_before'
        return None

    def set_faults(self, rate: float, seed: int | None = None,
                   modes: dict[str, float] | None = None,
                   slow_seconds: float = 0.5,
                   timeout_seconds: float = 2.0) -> None:
        """Random faults at ``rate`` per call (0: none).

        Modes and weights: :data:`POWERFLEX_FAULT_MODES`.
        """
        self.dice.configure(rate, seed, modes, slow_seconds=slow_seconds,
                            timeout_seconds=timeout_seconds)

    def fault_stats(self) -> dict[str, Any]:
        return self.dice.stats()

    def _take_fault(self, label: str, path: str
                    ) -> errors.PowerFlexError | None:
        with self._lock:
            for f in self._faults:
                hit = (f.target == label if not f.target.startswith('/')
                       else f.target in path)
                if hit and f.count > 0:
                    f.count -= 1
                    if f.count == 0:
                        self._faults.remove(f)
                    return f.error
        return None

    # -- entry point ----------------------------------------------------------
    def handle(self, method: str, raw_path: str,
               auth: tuple[str, str] | None, body: bytes
               ) -> tuple[int, Any]:
        mode = self._take_timeout(method, raw_path) or self.dice.draw()
        if mode == 'http500':
            return 500, errors.PowerFlexError(
                'Injected fault: the MDM failed the request',
                errors.INJECTED, 500).body()
        if mode == 'http503':
            return 503, errors.PowerFlexError(
                'Injected fault: the MDM cluster is not reachable',
                errors.INJECTED, 503).body()
        if mode == 'timeout_before':
            self._sleep(self.dice.param('timeout_seconds', 2.0))
            raise faults.DropConnection(f'withheld {method} {raw_path}')
        if mode == 'slow':
            self._sleep(self.dice.param('slow_seconds', 0.5))
        answer = self._handle(method, raw_path, auth, body)
        if mode == 'timeout_after':
            self._sleep(self.dice.param('timeout_seconds', 2.0))
            raise faults.DropConnection(f'withheld {method} {raw_path}')
        return answer

    def _handle(self, method: str, raw_path: str,
                auth: tuple[str, str] | None, body: bytes
                ) -> tuple[int, Any]:
        path = urllib.parse.urlsplit(raw_path).path
        if path.startswith('/api'):
            path = path[len('/api'):]
        else:
            return 404, errors.not_found_route().body()
        try:
            if self.latency:
                self._sleep(self.latency)
            if method == 'GET' and path.rstrip('/') == '/login':
                return 200, self._login(auth, path)
            self._authenticate(auth)
            if method in ('GET', 'POST') and path.rstrip('/') == '/logout':
                return 200, ''
            handler, label, groups = self._route(method, path)
            self._count(label)
            fault = self._take_fault(label, path)
            if fault is not None:
                raise fault
            if self.fail_rate and self._rng.random() < self.fail_rate:
                raise errors.PowerFlexError(
                    f'Injected random failure of {label}', errors.INJECTED)
            req = Request(method, path, self._parse(body), groups)
            with self.array.lock:
                result = handler(req)
            return 200, result
        except errors.PowerFlexError as exc:
            LOG.debug('%s %s -> %s %s', method, path, exc.http_status,
                      exc.message)
            return exc.http_status, exc.body()

    def _count(self, label: str) -> None:
        with self._lock:
            self.calls[label] = self.calls.get(label, 0) + 1

    def _login(self, auth: tuple[str, str] | None, path: str) -> str:
        self._count('login')
        fault = self._take_fault('login', path)
        if fault is not None:
            raise fault
        if auth is None or not (
                secrets.compare_digest(auth[0], self._user)
                and secrets.compare_digest(auth[1], self._password)):
            raise errors.unauthorized()
        raw = f'{auth[0]}:{int(time.time() * 1000)}:{secrets.token_hex(16)}'
        token = base64.b64encode(raw.encode()).decode().rstrip('=')
        with self._lock:
            self._tokens.add(token)
        return token

    def _authenticate(self, auth: tuple[str, str] | None) -> None:
        if auth is None or auth[0] != self._user:
            raise errors.unauthorized()
        with self._lock:
            if auth[1] not in self._tokens:
                raise errors.unauthorized()

    def _route(self, method: str, path: str
               ) -> tuple[Handler, str, tuple[str, ...]]:
        for m, pattern, label, handler in self._routes:
            if m != method:
                continue
            match = pattern.match(path)
            if match:
                groups = tuple(g for g in match.groups() if g is not None)
                if not label:
                    label = groups[-1]
                return handler, label, groups
        raise errors.not_found_route()

    @staticmethod
    def _parse(body: bytes) -> Any:
        if not body:
            return {}
        try:
            return json.loads(body)
        except ValueError:
            raise errors.bad_request('Request body is not valid JSON')

    @staticmethod
    def _ids(r: Request) -> list[str]:
        ids = r.body.get('ids') if isinstance(r.body, dict) else None
        if not isinstance(ids, list):
            raise errors.bad_request('ids must be a list')
        return [str(i) for i in ids]

    # -- handlers -------------------------------------------------------------
    def _system(self, r: Request) -> dict[str, Any]:
        sys_ = self.array.system()
        if r.groups[0] != sys_['id']:
            raise errors.PowerFlexError('Could not find the System', 0)
        return sys_

    def _domain_pools(self, domain_id: str) -> list[dict[str, Any]]:
        self.array.domain(domain_id)
        return [p for p in self.array.pools()
                if p['protectionDomainId'] == domain_id]

    def _system_related(self, r: Request, kind: str) -> list[dict[str, Any]]:
        self._system(r)
        return self.array.domains() if kind == 'ProtectionDomain' \
            else self.array.sdcs()

    def _vtree_volumes(self, vtree_id: str) -> list[dict[str, Any]]:
        self.array.vtree(vtree_id)
        return [v for v in self.array.volumes()
                if v.get('vtreeId') == vtree_id]

    def _pool_volumes(self, pool_id: str) -> list[dict[str, Any]]:
        self.array.pool(pool_id)
        return self.array.volumes(pool_id=pool_id)

    def _sdc_volumes(self, sdc_id: str) -> list[dict[str, Any]]:
        self.array.sdc(sdc_id)
        return self.array.volumes(sdc_id=sdc_id)

    def _selected_statistics(self, r: Request) -> dict[str, Any]:
        props = r.body.get('properties') if isinstance(r.body, dict) else None
        if not isinstance(props, list):
            raise errors.bad_request('properties must be a list')
        out = {}
        for pool_id in self._ids(r):
            stats = self.array.pool_statistics(pool_id)
            missing = [p for p in props if p not in stats]
            if missing:
                raise errors.bad_request(
                    f'Invalid statistics properties: {", ".join(missing)}')
            out[pool_id] = {p: stats[p] for p in props}
        return out

    def _create_volume(self, r: Request) -> dict[str, str]:
        b = r.body if isinstance(r.body, dict) else {}
        try:
            size_kb = int(b['volumeSizeInKb'])
            pool_id = str(b['storagePoolId'])
        except (KeyError, TypeError, ValueError):
            raise errors.bad_request(
                'volumeSizeInKb and storagePoolId are required')
        vol_id = self.array.create_volume(
            name=b.get('name') or '', size_kb=size_kb, pool_id=pool_id,
            domain_id=b.get('protectionDomainId'),
            volume_type=b.get('volumeType') or 'ThinProvisioned',
            compression=b.get('compressionMethod'))
        return {'id': vol_id}

    def _snapshot_volumes(self, r: Request) -> dict[str, Any]:
        if r.groups and r.groups[0] != self.array.system()['id']:
            raise errors.PowerFlexError('Could not find the System', 0)
        defs = r.body.get('snapshotDefs') if isinstance(r.body, dict) \
            else None
        if not isinstance(defs, list) or not all(
                isinstance(d, dict) and d.get('volumeId') for d in defs):
            raise errors.bad_request('snapshotDefs must list volumeIds')
        return self.array.snapshot_volumes(defs)

    def _volume_action(self, r: Request) -> Any:
        vol_id, action = r.groups
        b = r.body if isinstance(r.body, dict) else {}
        a = self.array
        if action == 'setVolumeSize':
            try:
                size_gb = int(b['sizeInGB'])
            except (KeyError, TypeError, ValueError):
                raise errors.bad_request('sizeInGB is required')
            a.set_volume_size(vol_id, size_gb)
        elif action == 'setVolumeName':
            a.set_volume_name(vol_id, str(b.get('newName') or ''))
        elif action == 'removeVolume':
            a.remove_volume(vol_id, str(b.get('removeMode') or 'ONLY_ME'))
        elif action == 'addMappedSdc':
            if not b.get('sdcId'):
                raise errors.bad_request('sdcId is required')
            a.add_mapped_sdc(vol_id, str(b['sdcId']),
                             _truthy(b.get('allowMultipleMappings', False)),
                             str(b.get('accessMode') or 'ReadWrite'))
        elif action == 'removeMappedSdc':
            if 'allSdcs' in b:
                a.remove_mapped_sdc(vol_id, all_sdcs=True)
            elif b.get('sdcId'):
                a.remove_mapped_sdc(vol_id, str(b['sdcId']))
            else:
                raise errors.bad_request('sdcId or allSdcs is required')
            return {}
        elif action == 'setMappedSdcLimits':
            if not b.get('sdcId'):
                raise errors.bad_request('sdcId is required')
            bw = b.get('bandwidthLimitInKbps')
            iops = b.get('iopsLimit')
            a.set_mapped_sdc_limits(
                vol_id, str(b['sdcId']),
                None if bw is None else int(bw),
                None if iops is None else int(iops))
        elif action == 'overwriteVolumeContent':
            if not b.get('srcVolumeId'):
                raise errors.bad_request('srcVolumeId is required')
            a.overwrite_volume_content(vol_id, str(b['srcVolumeId']))
        else:
            a.volume(vol_id)
            raise errors.not_supported(f'Volume action {action}')
        return {}
