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
"""The growing-file NBD export, read by a real qemu-img and a raw client.

The suite runs monkey-patched by eventlet (tests/volume/__init__.py), like
Cinder's volume service: the writers here are green threads and qemu-img
runs through eventlet's green subprocess, so these tests also show that the
export's native server thread never stalls the hub.
"""

import errno
import hashlib
import json
import os
import socket
import struct
import subprocess
import threading
import time

import fixtures
import testtools

from cinder_dpm_ephemeral.image_cache import nbd

MiB = 1024 * 1024
RAW_SIZE = 24 * MiB


def _sha256(path):
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(MiB), b''):
            digest.update(block)
    return digest.hexdigest()


class _Writer(threading.Thread):
    """Copies ``src`` into ``dst`` in 1 MiB steps, reporting each step.

    With ``fail_at`` set it stops once that many bytes are written and
    reports a failure instead of finishing.
    """

    def __init__(self, export, src, dst, delay=0.05, fail_at=None):
        super().__init__(daemon=True)
        self.export = export
        self.src = src
        self.dst = dst
        self.delay = delay
        self.fail_at = fail_at
        self.done = False

    def run(self):
        written = 0
        with open(self.src, 'rb') as fin, open(self.dst, 'r+b') as fout:
            while True:
                if self.fail_at is not None and written >= self.fail_at:
                    self.export.fail('download failed')
                    break
                block = fin.read(MiB)
                if not block:
                    self.export.finish()
                    break
                fout.write(block)
                fout.flush()
                written += len(block)
                self.export.grown(written)
                time.sleep(self.delay)
        self.done = True


class _QemuTestBase(testtools.TestCase):
    def setUp(self):
        super().setUp()
        self.dir = self.useFixture(fixtures.TempDir()).path
        self.raw = os.path.join(self.dir, 'source.raw')
        with open(self.raw, 'wb') as f:
            for i in range(RAW_SIZE // MiB):
                # Random, zero and half-random mebibytes.
                if i % 3 == 0:
                    f.write(os.urandom(MiB))
                elif i % 3 == 1:
                    f.write(bytes(MiB))
                else:
                    f.write(os.urandom(MiB // 2) + bytes(MiB // 2))
        self.qcow2 = os.path.join(self.dir, 'source.qcow2')
        subprocess.run(['qemu-img', 'convert', '-f', 'raw', '-O', 'qcow2',
                        self.raw, self.qcow2], check=True, timeout=30)
        self.qcow2_size = os.path.getsize(self.qcow2)
        # The file being "downloaded"; the writer fills it in.
        self.growing = os.path.join(self.dir, 'download.qcow2')
        open(self.growing, 'wb').close()
        self.export = nbd.GrowingFileExport(self.growing, self.qcow2_size,
                                            self.dir)
        self.addCleanup(self.export.close)
        self.uri = self.export.start()
        self.out = os.path.join(self.dir, 'out.raw')

    def _convert_cmd(self):
        return ['qemu-img', 'convert', '-f', 'qcow2', self.uri, '-O', 'raw',
                self.out]


class QemuImgTest(_QemuTestBase):
    def test_convert_while_downloading(self):
        self.assertTrue(self.uri.startswith('nbd+unix:///?socket='))
        sock = self.uri.split('socket=', 1)[1]
        self.assertEqual(0o600, os.stat(sock).st_mode & 0o777)
        writer = _Writer(self.export, self.qcow2, self.growing)
        writer.start()
        result = subprocess.run(self._convert_cmd(), capture_output=True,
                                text=True, timeout=60)
        writer.join(10)
        self.assertEqual(0, result.returncode, result.stderr)
        self.assertTrue(writer.done)
        self.assertEqual(_sha256(self.raw), _sha256(self.out))
        stats = self.export.stats
        # qemu-img read the image while it was still being written.
        self.assertGreater(stats['waits'], 0)
        self.assertGreater(stats['early_reads'], 0)
        self.assertGreater(stats['bytes_served'], 0)
        self.assertEqual(0, stats['errors'])

    def test_writer_failure_fails_convert(self):
        writer = _Writer(self.export, self.qcow2, self.growing,
                         fail_at=self.qcow2_size // 2)
        writer.start()
        started = time.monotonic()
        result = subprocess.run(self._convert_cmd(), capture_output=True,
                                text=True, timeout=60)
        elapsed = time.monotonic() - started
        writer.join(10)
        self.assertNotEqual(0, result.returncode)
        self.assertIn('Input/output error', result.stderr)
        self.assertLess(elapsed, 10)
        self.assertGreater(self.export.stats['errors'], 0)

    def test_close_while_client_waits(self):
        # Only the first mebibyte ever arrives: qemu-img blocks after it.
        with open(self.qcow2, 'rb') as fin, open(self.growing, 'r+b') as fout:
            fout.write(fin.read(MiB))
        self.export.grown(MiB)
        proc = subprocess.Popen(self._convert_cmd(), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        self.addCleanup(proc.kill)
        deadline = time.monotonic() + 10
        while (self.export.stats['waits'] == 0
               and time.monotonic() < deadline):
            time.sleep(0.02)
        self.assertEqual(1, self.export.stats['waits'])
        self.assertIsNone(proc.poll())
        sock = self.uri.split('socket=', 1)[1]
        started = time.monotonic()
        self.export.close()
        self.assertLess(time.monotonic() - started, 2)
        self.assertFalse(os.path.exists(sock))
        self.assertNotEqual(0, proc.wait(timeout=10))
        self.export.close()  # idempotent

    def test_info_of_complete_file(self):
        with open(self.qcow2, 'rb') as fin, open(self.growing, 'r+b') as fout:
            fout.write(fin.read())
        self.export.finish()
        result = subprocess.run(
            ['qemu-img', 'info', '--output=json', '-f', 'qcow2', self.uri],
            capture_output=True, text=True, timeout=30)
        self.assertEqual(0, result.returncode, result.stderr)
        info = json.loads(result.stdout)
        self.assertEqual('qcow2', info['format'])
        self.assertEqual(RAW_SIZE, info['virtual-size'])
        self.assertEqual(0, self.export.stats['waits'])
        self.assertEqual(0, self.export.stats['early_reads'])
        # A second client after the first one left.
        result = subprocess.run(self._convert_cmd(), capture_output=True,
                                text=True, timeout=60)
        self.assertEqual(0, result.returncode, result.stderr)
        self.assertEqual(_sha256(self.raw), _sha256(self.out))
        self.assertEqual(2, self.export.stats['connections'])


class _Client:
    """Just enough of an NBD client to drive the protocol by hand."""

    def __init__(self, path, client_flags=3):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(10)
        self.sock.connect(path)
        self.handshake = self.recv(18)
        self.sock.sendall(struct.pack('>I', client_flags))

    def recv(self, n):
        buf = b''
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise EOFError(f'closed after {len(buf)} of {n} bytes')
            buf += chunk
        return buf

    def option(self, option, data=b''):
        self.sock.sendall(struct.pack('>QII', nbd.IHAVEOPT, option,
                                      len(data)) + data)

    def option_reply(self):
        magic, option, reply, length = struct.unpack('>QIII', self.recv(20))
        assert magic == nbd.REPLY_MAGIC
        return option, reply, self.recv(length)

    def go(self, name=b'', option=nbd.OPT_GO):
        self.option(option, struct.pack('>I', len(name)) + name
                    + struct.pack('>HH', 1, 3))

    def request(self, cmd, offset, length, cookie=7, payload=b''):
        self.sock.sendall(struct.pack('>IHHQQI', nbd.REQUEST_MAGIC, 0, cmd,
                                      cookie, offset, length) + payload)

    def reply(self, length=0):
        magic, error, cookie = struct.unpack('>IIQ', self.recv(16))
        assert magic == nbd.SIMPLE_REPLY_MAGIC
        return error, cookie, self.recv(length) if not error else b''

    def closed(self):
        return self.sock.recv(1) == b''

    def close(self):
        self.sock.close()


class ProtocolTest(testtools.TestCase):
    SIZE = 3 * MiB

    def setUp(self):
        super().setUp()
        self.dir = self.useFixture(fixtures.TempDir()).path
        self.path = os.path.join(self.dir, 'file')
        self.content = os.urandom(self.SIZE)
        with open(self.path, 'wb') as f:
            f.write(self.content)
        self.export = nbd.GrowingFileExport(self.path, self.SIZE, self.dir)
        self.addCleanup(self.export.close)
        self.sock = self.export.start().split('socket=', 1)[1]

    def _client(self, **kwargs):
        client = _Client(self.sock, **kwargs)
        self.addCleanup(client.close)
        return client

    def test_negotiation(self):
        self.export.finish()
        client = self._client()
        self.assertEqual(b'NBDMAGIC' + struct.pack('>QH', nbd.IHAVEOPT, 3),
                         client.handshake)
        # Structured replies, meta contexts, list: refused.
        for option in (8, 10, 3):
            client.option(option, b'\0' * 4)
            self.assertEqual((option, nbd.REP_ERR_UNSUP, b''),
                             client.option_reply())
        client.go(b'other', option=nbd.OPT_INFO)
        self.assertEqual(nbd.REP_ERR_UNKNOWN, client.option_reply()[1])
        client.option(nbd.OPT_GO, b'\0\0')
        self.assertEqual(nbd.REP_ERR_INVALID, client.option_reply()[1])
        export_info = (struct.pack('>HQH', 0, self.SIZE, 3))
        for option in (nbd.OPT_INFO, nbd.OPT_GO):
            client.go(option=option)
            self.assertEqual((option, nbd.REP_INFO, export_info),
                             client.option_reply())
            self.assertEqual((option, nbd.REP_ACK, b''),
                             client.option_reply())
        client.request(nbd.CMD_READ, MiB, 4096, cookie=42)
        self.assertEqual((0, 42, self.content[MiB:MiB + 4096]),
                         client.reply(4096))
        client.request(nbd.CMD_DISC, 0, 0)
        self.assertTrue(client.closed())

    def test_export_name_and_reconnect(self):
        self.export.finish()
        for client_flags, padding in ((3, 0), (1, 124)):
            client = self._client(client_flags=client_flags)
            client.option(nbd.OPT_EXPORT_NAME)
            self.assertEqual(struct.pack('>QH', self.SIZE, 3) + bytes(padding),
                             client.recv(10 + padding))
            client.request(nbd.CMD_READ, 0, 512)
            self.assertEqual((0, 7, self.content[:512]), client.reply(512))
            client.close()
        client = self._client()
        client.option(nbd.OPT_ABORT)
        self.assertEqual((nbd.OPT_ABORT, nbd.REP_ACK, b''),
                         client.option_reply())
        self.assertTrue(client.closed())
        client = self._client()
        client.option(nbd.OPT_EXPORT_NAME, b'other')
        self.assertTrue(client.closed())
        self.assertEqual(4, self.export.stats['connections'])

    def test_errors(self):
        self.export.finish()
        client = self._client()
        client.go()
        client.option_reply()
        client.option_reply()
        client.request(nbd.CMD_READ, self.SIZE - 512, 1024)
        self.assertEqual((errno.EINVAL, 7, b''), client.reply())
        client.request(nbd.CMD_WRITE, 0, 4096, payload=bytes(4096))
        self.assertEqual((errno.EPERM, 7, b''), client.reply())
        for cmd in (3, 4, 5, 6):  # flush, trim, cache, write zeroes
            client.request(cmd, 0, 4096)
            self.assertEqual((errno.EPERM, 7, b''), client.reply())
        # Still in step with the client after all that.
        client.request(nbd.CMD_READ, self.SIZE - 512, 512)
        self.assertEqual((0, 7, self.content[-512:]), client.reply(512))
        self.assertEqual(6, self.export.stats['errors'])
        self.assertEqual(1, self.export.stats['reads'])

    def test_read_waits_for_writer_then_eio_on_failure(self):
        self.export.grown(MiB)
        client = self._client()
        client.go()
        client.option_reply()
        client.option_reply()

        def writer():
            time.sleep(0.2)
            self.export.grown(2 * MiB)
            time.sleep(0.2)
            self.export.fail('network error')

        thread = threading.Thread(target=writer)
        thread.start()
        self.addCleanup(thread.join)
        started = time.monotonic()
        client.request(nbd.CMD_READ, MiB, MiB)
        self.assertEqual((0, 7, self.content[MiB:2 * MiB]),
                         client.reply(MiB))
        self.assertGreaterEqual(time.monotonic() - started, 0.15)
        client.request(nbd.CMD_READ, 2 * MiB - 512, 1024)
        self.assertEqual((errno.EIO, 7, b''), client.reply())
        # What the writer did write is still served.
        client.request(nbd.CMD_READ, 0, 2 * MiB)
        self.assertEqual((0, 7, self.content[:2 * MiB]),
                         client.reply(2 * MiB))
        self.assertEqual(2, self.export.stats['waits'])
        self.assertEqual(2, self.export.stats['early_reads'])

    def test_writer_contract(self):
        self.assertRaises(ValueError, self.export.grown, self.SIZE + 1)
        self.assertRaises(ValueError, self.export.grown, -1)
        self.assertRaises(RuntimeError, self.export.start)

    def test_context_manager(self):
        with nbd.GrowingFileExport(self.path, self.SIZE, self.dir) as export:
            sock = export.uri.split('socket=', 1)[1]
            export.finish()
            client = _Client(sock)
            client.option(nbd.OPT_EXPORT_NAME)
            client.recv(10)
            client.request(nbd.CMD_READ, 0, 16)
            self.assertEqual((0, 7, self.content[:16]), client.reply(16))
        self.assertTrue(client.closed())
        client.close()
        self.assertFalse(os.path.exists(sock))
