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
"""The HMC emulator over real HTTPS: the HMC Web Services API.

``HMCEmulator(state_dir).start()`` serves ``https://127.0.0.1:<port>/api``
with a self-signed certificate generated at first start into
``<state_dir>/hmc-emulator.crt`` / ``.key`` (SANs ``127.0.0.1`` and
``localhost``), so clients use zhmcclient's real ``Session`` with
``verify_cert=<that file>`` exactly as against an HMC.

What the HMC's protocol needs beyond the faked HMC's handlers:

* Logon (``POST /api/sessions``) with the configured user and password;
  anything else answers 403 reason 0. Every other request but Query API
  Version needs ``X-API-Session`` of a live session (403 reason 4 without
  one, 5 with an unknown one: zhmcclient logs on again for both). Logoff is
  ``DELETE /api/sessions/this-session``.
* Start and Stop Partition are asynchronous, as on the HMC: 202 with a
  ``job-uri``; ``GET /api/jobs/{id}`` gives ``status`` (running, complete),
  ``job-status-code``, ``job-reason-code`` and ``job-results`` (``message``
  on failure); ``DELETE /api/jobs/{id}`` removes a completed job
  (HMC WS API book, "Query Job Status", "Delete Completed Job Status").
  A failed IPL completes the job with 500/263 and the reason in the
  message; zhmcclient's ``wait_for_completion`` raises ``HTTPError``.
  ``job_seconds`` keeps jobs running that long (partition ``starting`` /
  ``stopping`` meanwhile), so clients really poll.

Fault injection (``set_faults``, for ``./run faults``): at a chosen rate
a request draws one of :data:`HMC_FAULT_MODES`. ``http503`` imitates an HMC
that cannot reach the CPC's Support Element (HMC WS API book, "HTTP status
codes": 503 Service Unavailable, reason 1, "the HMC is not currently
communicating with an SE needed to perform the requested operation");
``http500`` an internal HMC error (500, reason 0); ``timeout_before`` and
``timeout_after`` a connection lost before or after the HMC acted on the
request; ``slow`` a late answer. Nothing is changed by a request that draws
``http503``, ``http500`` or ``timeout_before``.

Nothing here logs a password, a session id or a header.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler
from typing import Any

from zhmcclient.mock import _urihandler as mock  # private API: pinned

from cinder_dpm_ephemeral.emulators import faults
from cinder_dpm_ephemeral.emulators import tls
from cinder_dpm_ephemeral.emulators.hmc.model import HMCModel

LOG = logging.getLogger(__name__)

CERT_FILE = 'hmc-emulator.crt'
KEY_FILE = 'hmc-emulator.key'
MAX_BODY = 4 * 1024 * 1024
API_MAJOR, API_MINOR = 2, 23
_ASYNC_OPS = ('/operations/start', '/operations/stop')
#: fault modes and their relative weights (see the module docstring)
HMC_FAULT_MODES = {'http503': 3.0, 'http500': 1.0, 'timeout_before': 1.0,
                   'timeout_after': 2.0, 'slow': 2.0}


def ensure_certificate(state_dir: str | os.PathLike[str]
                       ) -> tuple[str, str]:
    """Create the emulator's self-signed certificate once; return paths."""
    return tls.ensure_certificate(state_dir, CERT_FILE, KEY_FILE,
                                  'HMC emulator')


class _Job:
    def __init__(self, op_uri: str) -> None:
        self.id = secrets.token_hex(16)
        self.op_uri = op_uri
        self.status = 'running'
        self.status_code: int | None = None
        self.reason_code: int | None = None
        self.results: dict[str, Any] | None = None

    def finish(self, status_code: int, reason_code: int = 0,
               message: str | None = None) -> None:
        self.status_code, self.reason_code = status_code, reason_code
        self.results = {'message': message} if message else None
        self.status = 'complete'

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {'status': self.status}
        if self.status == 'complete':
            out.update({'job-status-code': self.status_code,
                        'job-reason-code': self.reason_code,
                        'job-results': self.results})
        return out


class HMCApi:
    """Sessions, jobs and dispatch to the strict faked HMC."""

    def __init__(self, model: HMCModel, login: tuple[str, str],
                 job_seconds: float = 0.0) -> None:
        self.model = model
        self.login = login
        self.job_seconds = job_seconds
        self.sessions: set[str] = set()
        self.jobs: dict[str, _Job] = {}
        self.calls = 0
        self._lock = threading.Lock()
        self.dice = faults.FaultDice(HMC_FAULT_MODES)

    # -- fault injection -----------------------------------------------------
    def set_faults(self, rate: float, seed: int | None = None,
                   modes: dict[str, float] | None = None,
                   slow_seconds: float = 0.5,
                   timeout_seconds: float = 2.0) -> None:
        self.dice.configure(rate, seed, modes, slow_seconds=slow_seconds,
                            timeout_seconds=timeout_seconds)

    def fault_stats(self) -> dict[str, Any]:
        return self.dice.stats()

    # -- entry point -------------------------------------------------------
    def handle(self, method: str, path: str, session_id: str | None,
               body: Any) -> tuple[int, Any, dict[str, str]]:
        with self._lock:
            self.calls += 1
        mode = self.dice.draw()
        uri = path.split('?', 1)[0]
        if mode == 'http503':
            return 503, _error(method, uri, 503, 1,
                               'Injected fault: the HMC is not currently '
                               'communicating with the SE needed to '
                               'perform the requested operation'), {}
        if mode == 'http500':
            return 500, _error(method, uri, 500, 0,
                               'Injected fault: internal HMC error'), {}
        if mode == 'timeout_before':
            time.sleep(self.dice.param('timeout_seconds', 2.0))
            raise faults.DropConnection(f'withheld {method} {uri}')
        if mode == 'slow':
            time.sleep(self.dice.param('slow_seconds', 0.5))
        try:
            answer = self._handle(method, path, session_id, body)
        except mock.FakedHTTPError as exc:
            answer = exc.http_status, exc.response(), {}
        if mode == 'timeout_after':
            time.sleep(self.dice.param('timeout_seconds', 2.0))
            raise faults.DropConnection(f'withheld {method} {uri}')
        return answer

    def _handle(self, method: str, path: str, session_id: str | None,
                body: Any) -> tuple[int, Any, dict[str, str]]:
        uri = path.split('?', 1)[0]
        if uri == '/api/version' and method == 'GET':
            hmc = self.model.hmc
            return 200, {'hmc-name': hmc.hmc_name,
                         'hmc-version': hmc.hmc_version,
                         'api-major-version': API_MAJOR,
                         'api-minor-version': API_MINOR}, {}
        if uri == '/api/sessions' and method == 'POST':
            return self._logon(body)
        if not session_id:
            raise mock.FakedHTTPError(method, uri, 403, 4,
                                      'No API session (X-API-Session) was '
                                      'provided')
        with self._lock:
            known = session_id in self.sessions
        if not known:
            raise mock.FakedHTTPError(method, uri, 403, 5, 'The API session '
                                      'ID is not valid (expired or logged '
                                      'off)')
        if uri == '/api/sessions/this-session' and method == 'DELETE':
            with self._lock:
                self.sessions.discard(session_id)
            return 204, None, {}
        if uri.startswith('/api/jobs/'):
            return self._job(method, uri)
        if method == 'POST' and uri.startswith('/api/partitions/') \
                and uri.endswith(_ASYNC_OPS):
            return self._async(uri, body)
        return self._dispatch(method, path, body)

    def _logon(self, body: Any) -> tuple[int, Any, dict[str, str]]:
        body = body if isinstance(body, dict) else {}
        user, password = body.get('userid'), body.get('password')
        ok_user = secrets.compare_digest(str(user or ''), self.login[0])
        ok_pw = secrets.compare_digest(str(password or ''), self.login[1])
        if not (ok_user and ok_pw):
            LOG.info('HMC emulator: logon refused for user %r', user)
            raise mock.FakedHTTPError('POST', '/api/sessions', 403, 0,
                                      'Logon failed: the user ID or the '
                                      'password is not valid')
        sid = secrets.token_hex(24)
        with self._lock:
            self.sessions.add(sid)
        return 200, {'api-session': sid,
                     'notification-topic': 'hmc-emulator-objects',
                     'job-notification-topic': 'hmc-emulator-jobs',
                     'api-major-version': API_MAJOR,
                     'api-minor-version': API_MINOR,
                     'password-expires': -1,
                     'session-credential': secrets.token_hex(24)}, {}

    def _dispatch(self, method: str, path: str, body: Any
                  ) -> tuple[int, Any, dict[str, str]]:
        model = self.model
        with model.lock:
            handler = model.session._urihandler
            if method == 'GET':
                return 200, handler.get(model.hmc, path, True), {}
            try:
                if method == 'POST':
                    result = handler.post(model.hmc, path, body, True, True)
                elif method == 'DELETE':
                    handler.delete(model.hmc, path, True)
                    result = None
                else:
                    raise mock.InvalidMethodError(method, path)
            finally:
                model.save()
        if result is None:
            return 204, None, {}
        headers = {}
        created = result.get('object-uri') or result.get('element-uri') \
            if isinstance(result, dict) else None
        if created:
            headers['Location'] = created
            return 201, result, headers
        return 200, result, headers

    # -- asynchronous operations -------------------------------------------
    def _async(self, uri: str, body: Any) -> tuple[int, Any, dict[str, str]]:
        model = self.model
        start = uri.endswith('/operations/start')
        part_uri = uri.rsplit('/operations/', 1)[0]
        job = _Job(uri)
        with model.lock:
            try:
                partition = model.hmc.lookup_by_uri(part_uri)
            except KeyError:
                raise mock.InvalidResourceError('POST', uri) from None
            # Synchronous checks: the status (409.1), as the HMC does
            # before it accepts the job.
            mock.check_partition_status(
                'POST', uri, partition,
                valid_statuses=['stopped'] if start
                else ['active', 'paused', 'terminated', 'degraded'])
            before = partition.properties['status']
            if self.job_seconds > 0:
                partition.properties['status'] = (
                    'starting' if start else 'stopping')
        with self._lock:
            self.jobs[job.id] = job

        def run() -> None:
            with model.lock:
                partition.properties['status'] = before
                try:
                    model.session._urihandler.post(model.hmc, uri, body,
                                                   True, True)
                    job.finish(200)
                except mock.FakedHTTPError as exc:
                    job.finish(exc.http_status, exc.reason, exc.message)
                except Exception as exc:  # keep the server alive
                    LOG.exception('HMC emulator: job %s failed', uri)
                    job.finish(500, 0, f'{type(exc).__name__}: {exc}')
                finally:
                    model.save()

        if self.job_seconds > 0:
            timer = threading.Timer(self.job_seconds, run)
            timer.daemon = True
            timer.start()
        else:
            run()
        job_uri = f'/api/jobs/{job.id}'
        return 202, {'job-uri': job_uri}, {}

    def _job(self, method: str, uri: str) -> tuple[int, Any, dict[str, str]]:
        job_id = uri.rsplit('/', 1)[-1]
        with self._lock:
            job = self.jobs.get(job_id)
        if job is None:
            raise mock.InvalidResourceError(method, uri)
        if method == 'GET':
            return 200, job.body(), {}
        if method == 'DELETE':
            if job.status != 'complete':
                raise mock.ConflictError(method, uri, 40, 'The job is still '
                                         'running and cannot be deleted')
            with self._lock:
                self.jobs.pop(job_id, None)
            return 204, None, {}
        raise mock.InvalidMethodError(method, uri)


def _error(method: str, uri: str, status: int, reason: int,
           message: str) -> dict[str, Any]:
    """An HMC error body (HMC WS API book, "Error response bodies")."""
    return {'http-status': status, 'reason': reason, 'message': message,
            'request-method': method, 'request-uri': uri}


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = 'HTTP/1.1'
    server_version = 'HMCEmulator'

    def _serve(self, method: str) -> None:
        length = int(self.headers.get('Content-Length') or 0)
        if length < 0 or length > MAX_BODY:
            self._reply(400, {'http-status': 400, 'reason': 0,
                              'message': 'Bad request body length'}, {})
            return
        raw = self.rfile.read(length) if length else b''
        try:
            body = json.loads(raw) if raw.strip() else None
        except ValueError:
            self._reply(400, {'http-status': 400, 'reason': 1,
                              'message': 'The request body is not valid '
                                         'JSON'}, {})
            return
        try:
            status, result, headers = self.server.api.handle(
                method, self.path, self.headers.get('X-API-Session'), body)
        except faults.DropConnection:
            # fault injection: the answer never comes
            self.close_connection = True
            return
        except Exception as exc:
            LOG.exception('HMC emulator: %s %s failed', method, self.path)
            status, result, headers = 500, {
                'http-status': 500, 'reason': 0,
                'message': f'{type(exc).__name__}: {exc}'}, {}
        self._reply(status, result, headers)

    def _reply(self, status: int, result: Any,
               headers: dict[str, str]) -> None:
        data = b'' if result is None else json.dumps(result).encode()
        self.send_response(status)
        if data:
            self.send_header('Content-Type', 'application/json')
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header('Content-Length', str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self._serve('GET')

    def do_POST(self) -> None:  # noqa: N802
        self._serve('POST')

    def do_DELETE(self) -> None:  # noqa: N802
        self._serve('DELETE')

    def do_PUT(self) -> None:  # noqa: N802
        self._serve('PUT')

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        # Request line and status only: never headers (they carry secrets).
        LOG.debug('HMC emulator %s: ' + format, self.address_string(), *args)


class _Server(tls.TLSHTTPServer):
    def __init__(self, listen: tuple[str, int], hmc_api: HMCApi,
                 context: ssl.SSLContext) -> None:
        super().__init__(listen, _Handler, context)
        self.api = hmc_api


class HMCEmulator:
    """An emulated HMC with DPM CPCs, over HTTPS.

    :param state_dir: certificate and ``hmc-state.json``; reused on restart.
    :param listen: address to bind; port 0 picks a free port.
    :param login: the HMC user and password.
    :param definition: CPCs made at first start (see
        :func:`model.faked_session`); ignored when the state dir has a state.
    :param svc_state_dir: the SVC emulator's state directory for the
        emulated IPL; None checks only the boot settings at start.
    :param job_seconds: how long Start/Stop jobs run.
    """

    def __init__(self, state_dir: str | os.PathLike[str],
                 listen: tuple[str, int] = ('127.0.0.1', 0),
                 login: tuple[str, str] = ('hmcuser', 'password'),
                 definition: Any = None,
                 svc_state_dir: str | os.PathLike[str] | None = None,
                 job_seconds: float = 0.0) -> None:
        self.state_dir = str(state_dir)
        os.makedirs(self.state_dir, exist_ok=True)
        self.listen = listen
        self.login = login
        self.model = HMCModel(self.state_dir, definition, svc_state_dir)
        self.api = HMCApi(self.model, login, job_seconds)
        self.cert_path, self.key_path = ensure_certificate(self.state_dir)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> HMCEmulator:
        if self._server is not None:
            return self
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(self.cert_path, self.key_path)
        self._server = _Server(self.listen, self.api, ctx)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={'poll_interval': 0.05},
            name='hmc-emulator', daemon=True)
        self._thread.start()
        LOG.info('HMC emulator on https://%s:%d/api, certificate %s',
                 self.host, self.port, self.cert_path)
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
        self.model.save()

    def __enter__(self) -> HMCEmulator:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def host(self) -> str:
        return self.listen[0]

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError('the HMC emulator is not started')
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f'https://{self.host}:{self.port}/api'

    @property
    def job_seconds(self) -> float:
        return self.api.job_seconds

    @job_seconds.setter
    def job_seconds(self, value: float) -> None:
        self.api.job_seconds = value

    def inventory(self) -> dict[str, Any]:
        """The whole faked HMC (``hmc_definition``) and emulator state."""
        return self.model.inventory()

    def calls_made(self) -> int:
        return self.api.calls

    def set_faults(self, rate: float, seed: int | None = None,
                   modes: dict[str, float] | None = None,
                   slow_seconds: float = 0.5,
                   timeout_seconds: float = 2.0) -> None:
        """Random faults at ``rate`` per request (:data:`HMC_FAULT_MODES`)."""
        self.api.set_faults(rate, seed, modes, slow_seconds, timeout_seconds)

    def fault_stats(self) -> dict[str, Any]:
        return self.api.fault_stats()

    def client_session(self, **kwargs: Any) -> Any:
        """A zhmcclient ``Session`` to this emulator, certificate verified."""
        import zhmcclient
        kwargs.setdefault('verify_cert', self.cert_path)
        return zhmcclient.Session(self.host, self.login[0], self.login[1],
                                  port=self.port, **kwargs)
