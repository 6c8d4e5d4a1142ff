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
"""A read-only NBD export of a file that is still being written.

Converting an image (``qemu-img convert -f qcow2 ... -O raw``) normally has
to wait until the whole image is downloaded. :class:`GrowingFileExport` lets
the two overlap: it serves the file being downloaded over NBD (fixed
newstyle handshake, unix socket) to ``qemu-img``, and a read of bytes the
download has not reached yet simply waits. The writer reports its progress
with :meth:`GrowingFileExport.grown`, then :meth:`~GrowingFileExport.finish`
or :meth:`~GrowingFileExport.fail`; a read that can no longer be satisfied
(the writer failed, or the export was closed) gets ``EIO``.

Only what ``qemu-img`` needs is implemented: options ``NBD_OPT_GO``,
``NBD_OPT_INFO``, ``NBD_OPT_EXPORT_NAME`` and ``NBD_OPT_ABORT`` (everything
else is refused with ``NBD_REP_ERR_UNSUP``, so the client falls back to
simple replies and no metadata contexts), one export with the empty name,
simple replies, ``NBD_CMD_READ`` and ``NBD_CMD_DISC``. The export is
advertised read-only; any other command gets ``EPERM``. One client
connection is served at a time, and the server keeps accepting new ones
(``qemu`` may connect more than once) until :meth:`~GrowingFileExport.close`.

Threading: Cinder's volume service runs under eventlet. The server runs in a
real OS thread with the unpatched ``threading``, ``socket``, ``select``,
``time`` and ``os`` modules, so a blocking ``recv`` or a read waiting for the
download never stalls the eventlet hub, and the writer (a green thread)
only takes a native lock for an instant to report progress.
"""

from __future__ import annotations

import contextlib
import errno
import importlib
import os
import struct
import uuid
from types import ModuleType
from typing import Any

from oslo_log import log as logging

LOG = logging.getLogger(__name__)


def _native(name: str) -> ModuleType:
    """The module ``name`` as it was before any eventlet monkey patching."""
    try:
        from eventlet import patcher
    except ImportError:
        return importlib.import_module(name)
    return patcher.original(name)


_threading = _native('threading')
_socket = _native('socket')
_select = _native('select')
_time = _native('time')
_os = _native('os')

# Handshake (https://github.com/NetworkBlockDevice/nbd/blob/master/doc/
# proto.md).
NBDMAGIC = b'NBDMAGIC'
IHAVEOPT = 0x49484156454F5054
REPLY_MAGIC = 0x3E889045565A9
FLAG_FIXED_NEWSTYLE = 1 << 0
FLAG_NO_ZEROES = 1 << 1
FLAG_C_FIXED_NEWSTYLE = 1 << 0
FLAG_C_NO_ZEROES = 1 << 1

OPT_EXPORT_NAME = 1
OPT_ABORT = 2
OPT_INFO = 6
OPT_GO = 7

REP_ACK = 1
REP_INFO = 3
REP_FLAG_ERROR = 1 << 31
REP_ERR_UNSUP = REP_FLAG_ERROR | 1
REP_ERR_INVALID = REP_FLAG_ERROR | 3
REP_ERR_UNKNOWN = REP_FLAG_ERROR | 6

INFO_EXPORT = 0

# Transmission.
TFLAG_HAS_FLAGS = 1 << 0
TFLAG_READ_ONLY = 1 << 1
REQUEST_MAGIC = 0x25609513
SIMPLE_REPLY_MAGIC = 0x67446698
CMD_READ = 0
CMD_WRITE = 1
CMD_DISC = 2

EXPORT_NAME = b''
# Longest option payload accepted (an export name is at most 4 KiB).
MAX_OPTION = 64 * 1024
# Largest request a client may send without negotiating block sizes.
MAX_REQUEST = 32 * 1024 * 1024
# How long close() waits for the server thread to stop.
STOP_TIMEOUT = 10.0
# Longest unix socket path (sun_path is 108 bytes, NUL-terminated).
_MAX_SOCKET_PATH = 107

_OPT_HEADER = struct.Struct('>QII')
_OPT_REPLY = struct.Struct('>QIII')
_REQUEST = struct.Struct('>IHHQQI')
_SIMPLE_REPLY = struct.Struct('>IIQ')


class _Disconnect(Exception):
    """The connection ends (client gone, protocol error or NBD_CMD_DISC)."""


class _Stopped(Exception):
    """close() was called: stop serving."""


class GrowingFileExport:
    """Read-only NBD export of a file that is still being written."""

    def __init__(self, path: str, size: int, socket_dir: str) -> None:
        if size < 0:
            raise ValueError(f'negative export size {size}')
        self.path = path
        self.size = size
        self.socket_dir = socket_dir
        self.socket_path: str | None = None
        self.uri: str | None = None
        self.stats: dict[str, Any] = {
            'connections': 0,
            'reads': 0,
            'bytes_served': 0,
            # Reads that had to wait for the writer, and for how long.
            'waits': 0,
            'wait_seconds': 0.0,
            # Reads served before the whole file was written.
            'early_reads': 0,
            # Requests answered with an error.
            'errors': 0,
        }
        self._cond = _threading.Condition(_threading.Lock())
        self._available = 0
        self._failed: str | None = None
        self._closed = False
        self._conn: Any = None
        self._thread: Any = None
        self._wake_w: int | None = None
        self._fd: int | None = None

    # -- the writer's side (may be called from an eventlet green thread) --

    def grown(self, available: int) -> None:
        """The writer has written (and flushed to the OS) [0, available)."""
        if not 0 <= available <= self.size:
            raise ValueError(f'{available} bytes available is outside the '
                             f'export (0..{self.size})')
        with self._cond:
            if available > self._available:
                self._available = available
                self._cond.notify_all()

    def finish(self) -> None:
        """All ``size`` bytes are written."""
        self.grown(self.size)

    def fail(self, reason: str) -> None:
        """The writer failed: reads past what it wrote get EIO."""
        with self._cond:
            if self._failed is None:
                self._failed = reason
            self._cond.notify_all()
            available = self._available
        LOG.debug('NBD export of %(path)s: writer failed at %(n)d of %(size)d '
                  'bytes: %(reason)s',
                  {'path': self.path, 'n': available, 'size': self.size,
                   'reason': reason})

    # -- life cycle --

    def start(self) -> str:
        """Serve on a fresh unix socket; return the URI for qemu."""
        with self._cond:
            if self._closed or self._thread is not None:
                raise RuntimeError('an NBD export can be started only once')
        path = os.path.join(self.socket_dir,
                            f'nbd-{uuid.uuid4().hex[:12]}.sock')
        if len(os.fsencode(path)) > _MAX_SOCKET_PATH:
            raise ValueError(f'unix socket path too long: {path}')
        listener = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        wake_r, wake_w = _os.pipe()
        try:
            listener.bind(path)
            # Not listening yet, so nobody can connect before the chmod.
            os.chmod(path, 0o600)
            listener.listen(4)
            thread = _threading.Thread(
                target=self._serve, args=(listener, wake_r),
                name=f'nbd-export-{os.path.basename(path)}', daemon=True)
            with self._cond:
                if self._closed:
                    raise RuntimeError('NBD export closed while starting')
                self._thread = thread
                self._wake_w = wake_w
                self.socket_path = path
            thread.start()
        except BaseException:
            listener.close()
            _os.close(wake_r)
            _os.close(wake_w)
            with contextlib.suppress(OSError):
                os.unlink(path)
            with self._cond:
                self._thread = self._wake_w = self.socket_path = None
            raise
        self.uri = f'nbd+unix:///?socket={path}'
        LOG.debug('NBD export of %(path)s (%(size)d bytes) at %(uri)s',
                  {'path': self.path, 'size': self.size, 'uri': self.uri})
        return self.uri

    def close(self) -> None:
        """Stop serving, close the sockets, remove the socket file."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._cond.notify_all()
            conn, thread, wake_w = self._conn, self._thread, self._wake_w
            self._wake_w = None
        if wake_w is not None:
            # The server thread polls the read end: EOF wakes it up.
            _os.close(wake_w)
        if conn is not None:
            with contextlib.suppress(OSError):
                conn.shutdown(_socket.SHUT_RDWR)
        if thread is not None:
            thread.join(STOP_TIMEOUT)
            if thread.is_alive():
                LOG.warning('NBD export of %s: server thread did not stop '
                            'within %d s.', self.path, STOP_TIMEOUT)
        if self.socket_path is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.socket_path)
        LOG.debug('NBD export of %(path)s closed: %(stats)s',
                  {'path': self.path, 'stats': self.stats})

    def __enter__(self) -> GrowingFileExport:
        self.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    # -- the server thread --

    def _serve(self, listener: Any, wake_r: int) -> None:
        try:
            while True:
                self._wait_readable(listener, wake_r)
                conn, _addr = listener.accept()
                # Replies of up to 32 MiB; a small buffer means many
                # context switches per reply.
                conn.setsockopt(_socket.SOL_SOCKET, _socket.SO_SNDBUF,
                                4 * 1024 * 1024)
                with self._cond:
                    if self._closed:
                        conn.close()
                        return
                    self._conn = conn
                    self.stats['connections'] += 1
                LOG.debug('NBD export of %s: client connected.', self.path)
                try:
                    self._handle(conn, wake_r)
                except _Disconnect as exc:
                    LOG.debug('NBD export of %(path)s: client disconnected '
                              '(%(why)s).', {'path': self.path, 'why': exc})
                except OSError as exc:
                    LOG.debug('NBD export of %(path)s: connection lost: '
                              '%(exc)s', {'path': self.path, 'exc': exc})
                except _Stopped:
                    raise
                except Exception:
                    # One misbehaving client must not end the export.
                    LOG.exception('NBD export of %s: client connection '
                                  'failed.', self.path)
                finally:
                    with self._cond:
                        self._conn = None
                    conn.close()
        except _Stopped:
            pass
        except Exception:
            LOG.exception('NBD export of %s: server failed.', self.path)
        finally:
            listener.close()
            _os.close(wake_r)
            if self._fd is not None:
                _os.close(self._fd)
                self._fd = None

    def _wait_readable(self, sock: Any, wake_r: int) -> None:
        poller = _select.poll()
        poller.register(sock.fileno(), _select.POLLIN)
        poller.register(wake_r, _select.POLLIN)
        while True:
            events = dict(poller.poll())
            if wake_r in events or self._closed:
                raise _Stopped()
            if events:
                return

    def _recv(self, conn: Any, wake_r: int, n: int) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            self._wait_readable(conn, wake_r)
            chunk = conn.recv(min(n - len(buf), 1024 * 1024))
            if not chunk:
                raise _Disconnect('end of stream')
            buf += chunk
        return bytes(buf)

    def _handle(self, conn: Any, wake_r: int) -> None:
        conn.sendall(NBDMAGIC + struct.pack(
            '>QH', IHAVEOPT, FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES))
        (client_flags,) = struct.unpack('>I', self._recv(conn, wake_r, 4))
        if client_flags & ~(FLAG_C_FIXED_NEWSTYLE | FLAG_C_NO_ZEROES):
            raise _Disconnect(f'unknown client flags {client_flags:#x}')
        fixed = bool(client_flags & FLAG_C_FIXED_NEWSTYLE)
        no_zeroes = bool(client_flags & FLAG_C_NO_ZEROES)
        while not self._negotiate(conn, wake_r, fixed, no_zeroes):
            pass
        self._transmit(conn, wake_r)

    def _option_reply(self, conn: Any, option: int, reply: int,
                      data: bytes = b'') -> None:
        conn.sendall(_OPT_REPLY.pack(REPLY_MAGIC, option, reply, len(data))
                     + data)

    def _negotiate(self, conn: Any, wake_r: int, fixed: bool,
                   no_zeroes: bool) -> bool:
        """Handle one option; True when transmission begins."""
        magic, option, length = _OPT_HEADER.unpack(
            self._recv(conn, wake_r, _OPT_HEADER.size))
        if magic != IHAVEOPT:
            raise _Disconnect(f'bad option magic {magic:#x}')
        if length > MAX_OPTION:
            raise _Disconnect(f'option {option} too long ({length} bytes)')
        data = self._recv(conn, wake_r, length)
        LOG.debug('NBD export of %(path)s: option %(opt)d (%(n)d bytes).',
                  {'path': self.path, 'opt': option, 'n': length})
        flags = struct.pack('>QH', self.size,
                            TFLAG_HAS_FLAGS | TFLAG_READ_ONLY)
        if option == OPT_EXPORT_NAME:
            if data != EXPORT_NAME:
                raise _Disconnect('unknown export name')
            conn.sendall(flags if no_zeroes else flags + bytes(124))
            return True
        if not fixed:
            # Only a fixed newstyle client understands option replies.
            raise _Disconnect(f'unsupported option {option}')
        if option == OPT_ABORT:
            with contextlib.suppress(OSError):
                self._option_reply(conn, option, REP_ACK)
            raise _Disconnect('NBD_OPT_ABORT')
        if option not in (OPT_INFO, OPT_GO):
            self._option_reply(conn, option, REP_ERR_UNSUP)
            return False
        if len(data) < 6:
            self._option_reply(conn, option, REP_ERR_INVALID)
            return False
        (name_len,) = struct.unpack_from('>I', data)
        if len(data) < 4 + name_len + 2:
            self._option_reply(conn, option, REP_ERR_INVALID)
            return False
        (n_info,) = struct.unpack_from('>H', data, 4 + name_len)
        if len(data) != 4 + name_len + 2 + 2 * n_info:
            self._option_reply(conn, option, REP_ERR_INVALID)
            return False
        if data[4:4 + name_len] != EXPORT_NAME:
            self._option_reply(conn, option, REP_ERR_UNKNOWN)
            return False
        # NBD_INFO_EXPORT is always sent; other information requests
        # (name, description, block sizes) are optional and ignored.
        LOG.debug('NBD export of %(path)s: information requested: %(req)s',
                  {'path': self.path, 'req': struct.unpack_from(
                      f'>{n_info}H', data, 4 + name_len + 2)})
        self._option_reply(conn, option, REP_INFO,
                           struct.pack('>H', INFO_EXPORT) + flags)
        self._option_reply(conn, option, REP_ACK)
        return option == OPT_GO

    def _transmit(self, conn: Any, wake_r: int) -> None:
        while True:
            magic, _flags, cmd, cookie, offset, length = _REQUEST.unpack(
                self._recv(conn, wake_r, _REQUEST.size))
            if magic != REQUEST_MAGIC:
                raise _Disconnect(f'bad request magic {magic:#x}')
            if cmd == CMD_DISC:
                raise _Disconnect('NBD_CMD_DISC')
            if cmd == CMD_READ:
                self._read(conn, cookie, offset, length)
                continue
            if cmd == CMD_WRITE:
                # Consume the payload to stay in step with the client.
                if length > MAX_REQUEST:
                    raise _Disconnect(f'write of {length} bytes too large')
                self._recv(conn, wake_r, length)
            self._reply(conn, cookie, errno.EPERM)

    def _reply(self, conn: Any, cookie: int, error: int,
               data: bytes = b'') -> None:
        if error:
            with self._cond:
                self.stats['errors'] += 1
        conn.sendall(_SIMPLE_REPLY.pack(SIMPLE_REPLY_MAGIC, error, cookie)
                     + data)

    def _read(self, conn: Any, cookie: int, offset: int,
              length: int) -> None:
        end = offset + length
        if end > self.size or length > MAX_REQUEST:
            self._reply(conn, cookie, errno.EINVAL)
            return
        with self._cond:
            if self._available < end and not self._closed:
                self.stats['waits'] += 1
                began = _time.monotonic()
                while (self._available < end and self._failed is None
                       and not self._closed):
                    self._cond.wait()
                self.stats['wait_seconds'] += _time.monotonic() - began
            if self._closed:
                raise _Stopped()
            ready = self._available >= end
            early = self._available < self.size
        if not ready:
            self._reply(conn, cookie, errno.EIO)
            return
        if self._fd is None:
            self._fd = _os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        if _os.fstat(self._fd).st_size < end:
            LOG.warning('NBD export of %(path)s: %(n)d bytes at %(off)d are '
                        'not in the file although reported written.',
                        {'path': self.path, 'n': length, 'off': offset})
            self._reply(conn, cookie, errno.EIO)
            return
        with self._cond:
            self.stats['reads'] += 1
            self.stats['bytes_served'] += length
            self.stats['early_reads'] += int(early)
        # The data goes from the page cache to the socket without passing
        # through Python (sendfile): the export keeps up with qemu-img.
        self._reply(conn, cookie, 0)
        sent = 0
        while sent < length:
            n = _os.sendfile(conn.fileno(), self._fd, offset + sent,
                             length - sent)
            if n == 0:
                # The file cannot be shorter (checked above): the reply is
                # torn, so the connection must end.
                raise _Disconnect('file shrank while being sent')
            sent += n
