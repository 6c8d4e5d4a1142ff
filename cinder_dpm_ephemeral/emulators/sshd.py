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
"""A small SSH server that runs one command per channel (``ssh host CMD``).

The SVC emulator is reached the way a real SVC is: over SSH, with password
authentication, one ``exec`` request per command. The server keeps serving
channels on a live connection for as long as the client keeps it (Cinder's
SSH pool reuses connections and runs commands without a timeout, so an idle
connection must never silently stop answering), and closes a connection
only when the client does or the server stops.

The host key is generated at first start and kept in the state directory; a
``known_hosts`` file beside it lets clients verify the key (Cinder:
``strict_ssh_host_key_policy = True`` with ``ssh_hosts_key_file``).
"""

from __future__ import annotations

import hmac
import logging
import os
import shlex
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

import paramiko

from cinder_dpm_ephemeral.emulators import faults
from cinder_dpm_ephemeral.emulators import files

LOG = logging.getLogger(__name__)

# A command handler gets argv and answers (stdout, stderr, exit status).
Handler = Callable[[list[str]], tuple[str, str, int]]

HOST_KEY_FILE = 'ssh_host_rsa_key'
CLOSE_GRACE = 5.0
#: how often a waiting accept() looks whether the server is stopping
ACCEPT_POLL_SECONDS = 0.2
KNOWN_HOSTS_FILE = 'known_hosts'


def load_or_create_host_key(state_dir: Path) -> paramiko.RSAKey:
    path = state_dir / HOST_KEY_FILE
    if path.exists():
        return paramiko.RSAKey(filename=str(path))
    key = paramiko.RSAKey.generate(3072)
    tmp = path.with_suffix('.tmp')
    key.write_private_key_file(str(tmp))
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
    return key


class _Session(paramiko.ServerInterface):
    def __init__(self, server: SSHCommandServer) -> None:
        self._server = server

    def get_allowed_auths(self, username: str) -> str:
        return 'password'

    def check_auth_password(self, username: str, password: str) -> int:
        user, secret = self._server.login
        if (hmac.compare_digest(username.encode(), user.encode()) and
                hmac.compare_digest(password.encode(), secret.encode())):
            return paramiko.AUTH_SUCCESSFUL
        LOG.warning('SSH: rejected password for user %s', username)
        return paramiko.AUTH_FAILED

    def check_channel_request(self, kind: str, chanid: int) -> int:
        if kind == 'session':
            return paramiko.OPEN_SUCCEEDED
        return paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED

    def check_channel_exec_request(self, channel: paramiko.Channel,
                                   command: bytes) -> bool:
        threading.Thread(target=self._server.run_command,
                         args=(channel, command), daemon=True,
                         name='ssh-exec').start()
        return True


class SSHCommandServer:
    """Serve ``handler(argv)`` over SSH on ``listen`` (port 0: any free)."""

    def __init__(self, handler: Handler, state_dir: str | os.PathLike[str],
                 login: tuple[str, str],
                 listen: tuple[str, int] = ('127.0.0.1', 0)) -> None:
        self.handler = handler
        self.state_dir = Path(state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.login = login
        self._listen = listen
        self._sock: socket.socket | None = None
        self._transports: set[paramiko.Transport] = set()
        self._channels: set[paramiko.Channel] = set()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._acceptor: threading.Thread | None = None
        self.host_key = load_or_create_host_key(self.state_dir)
        self.port = 0

    @property
    def known_hosts_path(self) -> str:
        return str(self.state_dir / KNOWN_HOSTS_FILE)

    def start(self) -> SSHCommandServer:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(self._listen)
        sock.listen(64)
        # accept() wakes up to see stop(): a socket closed under a waiting
        # accept leaves, under eventlet, a reader on a closed descriptor
        # that refuses the next reader of the reused number
        sock.settimeout(ACCEPT_POLL_SECONDS)
        self._sock = sock
        self.port = sock.getsockname()[1]
        self._write_known_hosts()
        self._acceptor = threading.Thread(target=self._accept_loop,
                                          daemon=True, name='ssh-accept')
        self._acceptor.start()
        LOG.info('SSH server listening on %s:%d', self._listen[0], self.port)
        return self

    def _write_known_hosts(self) -> None:
        host = self._listen[0]
        entry = host if self.port == 22 else f'[{host}]:{self.port}'
        line = (f'{entry} {self.host_key.get_name()} '
                f'{self.host_key.get_base64()}\n')
        files.write_text_atomic(self.known_hosts_path, line)

    def stop(self) -> None:
        self._stopping.set()
        if self._acceptor is not None:
            self._acceptor.join(timeout=5 * ACCEPT_POLL_SECONDS)
        if self._sock is not None:
            try:
                self._sock.close()
            except OSError:
                pass
        with self._lock:
            transports = list(self._transports)
        for t in transports:
            t.close()

    def _accept_loop(self) -> None:
        assert self._sock is not None
        while not self._stopping.is_set():
            try:
                conn, _addr = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(None)
            threading.Thread(target=self._serve, args=(conn,), daemon=True,
                             name='ssh-conn').start()

    def _serve(self, conn: socket.socket) -> None:
        transport = paramiko.Transport(conn)
        transport.add_server_key(self.host_key)
        with self._lock:
            self._transports.add(transport)
        try:
            transport.start_server(server=_Session(self))
            # Keep accepting channels for as long as the connection lives.
            while transport.is_active() and not self._stopping.is_set():
                chan = transport.accept(timeout=1)
                if chan is not None:
                    # Hold a reference: paramiko closes a channel object
                    # that is garbage collected, before its exec arrives.
                    with self._lock:
                        self._channels.add(chan)
        except (paramiko.SSHException, EOFError, OSError) as exc:
            LOG.debug('SSH connection ended: %s', exc)
        finally:
            with self._lock:
                self._transports.discard(transport)
                self._channels = {c for c in self._channels
                                  if c.get_transport() is not transport}
            transport.close()

    def run_command(self, channel: paramiko.Channel, command: bytes) -> None:
        try:
            text = command.decode('utf-8', 'replace')
            try:
                argv = shlex.split(text)
            except ValueError as exc:
                out, err, status = '', f'invalid command line: {exc}\n', 1
            else:
                try:
                    out, err, status = self.handler(argv)
                except faults.DropConnection as drop:
                    # A dropped session (fault injection): the whole
                    # connection goes, no exit status is sent.
                    LOG.info('SSH: dropping the connection (%s)', drop)
                    transport = channel.get_transport()
                    if transport is not None:
                        transport.close()
                    return
                except Exception:  # never leave a client hanging
                    LOG.exception('SSH command handler failed: %s', text)
                    out, err, status = '', 'internal error\n', 1
            if out:
                channel.sendall(out.encode())
            if err:
                channel.sendall_stderr(err.encode())
            channel.send_exit_status(status)
            channel.shutdown_write()
            # The exec request's reply is sent by the transport thread after
            # check_channel_exec_request returned; closing before it would
            # make the client see "Channel closed". Clients signal they are
            # done (OpenSSH and paramiko close stdin, i.e. send EOF) long
            # after they received that reply, so wait for that, bounded.
            deadline = time.monotonic() + CLOSE_GRACE
            while (not (channel.eof_received or channel.closed) and
                   time.monotonic() < deadline and
                   not self._stopping.is_set()):
                time.sleep(0.005)
        except (OSError, EOFError, paramiko.SSHException) as exc:
            LOG.debug('SSH channel ended early: %s', exc)
        finally:
            channel.close()
            with self._lock:
                self._channels.discard(channel)
