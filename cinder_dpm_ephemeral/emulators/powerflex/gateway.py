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
"""The PowerFlex REST gateway emulator over real HTTPS.

``PowerFlexGateway(state_dir).start()`` serves the gateway's REST API on
``https://127.0.0.1:<port>/api`` with a self-signed certificate (subject
and SANs ``127.0.0.1`` and ``localhost``) generated at first start into
``<state_dir>/powerflex-gateway.crt`` / ``.key`` and reused afterwards.
Clients verify the server with that file as their CA bundle, as Cinder's
PowerFlex driver does with ``driver_ssl_cert_verify = True`` and
``driver_ssl_cert_path = <cert>``.

Nothing here logs a password, a token or an ``Authorization`` header.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import ssl
import threading
from collections.abc import Iterable, Mapping
from http.server import BaseHTTPRequestHandler
from typing import Any


from cinder_dpm_ephemeral.emulators import faults
from cinder_dpm_ephemeral.emulators import tls
from cinder_dpm_ephemeral.emulators import volume_host as volume_host_mod
from cinder_dpm_ephemeral.emulators.powerflex import (
    api, errors, state, writes)

LOG = logging.getLogger(__name__)

CERT_FILE = 'powerflex-gateway.crt'
KEY_FILE = 'powerflex-gateway.key'
MAX_BODY = 16 * 1024 * 1024


def ensure_certificate(state_dir: str | os.PathLike[str]
                       ) -> tuple[str, str]:
    """Create the gateway's self-signed certificate once; return paths."""
    return tls.ensure_certificate(state_dir, CERT_FILE, KEY_FILE,
                                  'PowerFlex gateway emulator')


def _basic_auth(header: str | None) -> tuple[str, str] | None:
    if not header or not header.lower().startswith('basic '):
        return None
    try:
        raw = base64.b64decode(header[6:].strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, secret = raw.partition(':')
    return (user, secret) if sep else None


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = 'HTTP/1.1'
    server_version = 'PowerFlexGatewayEmulator'

    def _serve(self, method: str) -> None:
        length = int(self.headers.get('Content-Length') or 0)
        if length < 0 or length > MAX_BODY:
            self._reply(400, errors.bad_request('Bad length').body())
            return
        body = self.rfile.read(length) if length else b''
        auth = _basic_auth(self.headers.get('Authorization'))
        try:
            status, result = self.server.api.handle(method, self.path, auth,
                                                    body)
        except faults.DropConnection:
            # fault injection: the answer never comes (the client timed out)
            self.close_connection = True
            return
        except Exception:
            LOG.exception('PowerFlex gateway emulator: %s %s failed',
                          method, self.path)
            status, result = 500, errors.PowerFlexError(
                'Internal gateway error', 0, 500).body()
        self._reply(status, result)

    def _reply(self, status: int, result: Any) -> None:
        data = json.dumps(result).encode()
        self.send_response(status)
        self.send_header('Content-Type', 'application/json;charset=UTF-8')
        self.send_header('Content-Length', str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self._serve('GET')

    def do_POST(self) -> None:  # noqa: N802
        self._serve('POST')

    def do_PUT(self) -> None:  # noqa: N802
        self._serve('PUT')

    def do_DELETE(self) -> None:  # noqa: N802
        self._serve('DELETE')

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        # Request line and status only: never headers (they carry secrets).
        LOG.debug('PowerFlex gateway emulator %s: ' + format,
                  self.address_string(), *args)


class _Server(tls.TLSHTTPServer):
    def __init__(self, listen: tuple[str, int], gw_api: api.GatewayAPI,
                 context: ssl.SSLContext) -> None:
        super().__init__(listen, _Handler, context)
        self.api = gw_api


class PowerFlexGateway:
    """An emulated PowerFlex system behind its REST gateway, over HTTPS.

    :param state_dir: where the certificate, the system state
        (``powerflex-state.json``) and the LUN bytes live; reused on restart.
    :param listen: address to bind; port 0 picks a free port (see
        :attr:`port` after :meth:`start`).
    :param login: the gateway user and password.
    :param pools: pools made at first start: ``"pd:pool"`` strings,
        :class:`state.PoolSpec` or mappings of its fields (capacity in GiB).
    :param sdcs: data clients: guid strings, :class:`state.SdcSpec` or
        mappings (``guid``, ``ip``, ``name``).
    :param volume_host: also register the SDC of the emulated volume host
        (:mod:`..volume_host`), which the volume service's own attaches
        use with the emulation switch on.
    :param version: what ``GET /api/version`` answers.
    :param latency: seconds added to every call.
    :param fail_rate: probability that a call (other than login) fails with
        an injected error; ``seed`` makes the sequence repeatable.
    :param announce: print the URL and the certificate path at start.
    """

    def __init__(self, state_dir: str | os.PathLike[str],
                 listen: tuple[str, int] = ('127.0.0.1', 0),
                 login: tuple[str, str] = ('admin', 'password'),
                 pools: Iterable[state.PoolSpec | str | Mapping[str, Any]]
                 = ('domain1:pool1',),
                 sdcs: Iterable[state.SdcSpec | str | Mapping[str, Any]]
                 = (),
                 volume_host: bool = False,
                 version: str = '3.6', latency: float = 0.0,
                 fail_rate: float = 0.0, seed: int | None = None,
                 announce: bool = False) -> None:
        self.announce = announce
        self.state_dir = str(state_dir)
        os.makedirs(self.state_dir, exist_ok=True)
        self.listen = listen
        self.login = login
        sdcs = list(sdcs)
        if volume_host:
            ident = volume_host_mod.ensure(self.state_dir)
            sdcs.append(state.SdcSpec(ident['sdc_guid'],
                                      name=volume_host_mod.SDC_NAME))
        self.array = state.PowerFlexArray(self.state_dir, pools=pools,
                                          sdcs=sdcs)
        self.api = api.GatewayAPI(self.array, login=login, version=version,
                                  latency=latency, fail_rate=fail_rate,
                                  seed=seed)
        self.cert_path, self.key_path = ensure_certificate(self.state_dir)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> PowerFlexGateway:
        if self._server is not None:
            return self
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(self.cert_path, self.key_path)
        self._server = _Server(self.listen, self.api, ctx)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={'poll_interval': 0.05},
            name='powerflex-gateway', daemon=True)
        self._thread.start()
        LOG.info('PowerFlex gateway emulator on https://%s:%d/api, '
                 'certificate %s', self.host, self.port, self.cert_path)
        if self.announce:
            print(f'PowerFlex gateway emulator: https://{self.host}:'
                  f'{self.port}/api certificate: {self.cert_path}',
                  flush=True)
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    @property
    def host(self) -> str:
        return self.listen[0]

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError('the gateway is not started')
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f'https://{self.host}:{self.port}/api'

    def inventory(self) -> dict[str, Any]:
        """Everything held (volumes incl. snapshots, vTrees, mappings)."""
        return self.array.inventory()

    def write(self, vol_id: str, offset: int, data: bytes) -> dict[str, int]:
        """A host (guest) write to a volume, its cost counted.

        See :mod:`.writes`; returns ``{'write': bytes the system copied}``.
        """
        return writes.write(self.array, vol_id, offset, data)

    def guest_write(self, vol_id: str, share: float, block: int = 64 << 10,
                    seed: int = 0, span: int | None = None
                    ) -> dict[str, int]:
        """A guest writes ``share`` of the volume's blocks (benchmarks)."""
        return writes.guest_write(self.array, vol_id, share, block, seed,
                                  span)

    def byte_counters(self) -> dict[str, int]:
        """Bytes the system moved for writes, snapshots and removals."""
        return writes.byte_counters(self.array)

    def inject_fault(self, action_or_path: str, count: int = 1,
                     error_code: int = errors.INJECTED,
                     message: str | None = None, http_status: int = 500,
                     details: list[dict[str, Any]] | None = None) -> None:
        """Make the next ``count`` calls of an action or path fail."""
        self.api.inject_fault(action_or_path, count, error_code, message,
                              http_status, details)

    def clear_faults(self) -> None:
        self.api.clear_faults()

    def set_faults(self, rate: float, seed: int | None = None,
                   modes: dict[str, float] | None = None,
                   slow_seconds: float = 0.5,
                   timeout_seconds: float = 2.0) -> None:
        """Random faults at ``rate`` per REST call (:mod:`.api`)."""
        self.api.set_faults(rate, seed, modes, slow_seconds, timeout_seconds)

    def fault_stats(self) -> dict[str, Any]:
        return self.api.fault_stats()

    def inject_timeout(self, action_or_path: str, count: int = 1,
                       after: bool = True) -> None:
        """Withhold the next ``count`` answers past the client's timeout."""
        self.api.inject_timeout(action_or_path, count, after)

    def set_write_faults(self, rate: float, seed: int | None = None) -> None:
        """Write errors on a share of LUN opens (the data path)."""
        self.array.luns.set_write_faults(rate, seed)

    def calls_made(self) -> int:
        """REST calls served so far (logins included)."""
        return sum(self.api.calls.values())

    @property
    def latency(self) -> float:
        return self.api.latency

    @latency.setter
    def latency(self, value: float) -> None:
        self.api.latency = value

    @property
    def fail_rate(self) -> float:
        return self.api.fail_rate

    @fail_rate.setter
    def fail_rate(self, value: float) -> None:
        self.api.fail_rate = value

    def cinder_options(self, pools: Iterable[str] | None = None
                       ) -> dict[str, Any]:
        """cinder.conf backend options for the in-tree PowerFlex driver."""
        if pools is None:
            pools = [f'{p["domain"]}:{p["name"]}'
                     for p in self.inventory()['pools']]
        return {
            'volume_driver': 'cinder.volume.drivers.dell_emc.powerflex.'
                             'driver.PowerFlexDriver',
            'san_ip': self.host,
            'powerflex_rest_server_port': self.port,
            'san_login': self.login[0],
            'san_password': self.login[1],
            'powerflex_storage_pools': ','.join(pools),
            'driver_ssl_cert_verify': True,
            'driver_ssl_cert_path': self.cert_path,
        }
