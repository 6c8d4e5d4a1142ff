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
"""Helpers for the HMC emulator tests: CPC definitions, an SVC side made
through the SVC emulator's own CLI layer, disk images with boot records.

No Cinder and no Nova here: the SVC side is
``cinder_dpm_ephemeral.emulators.svc.cli.SVCArray`` (the command layer the
SVC emulator serves over SSH) in a temp dir, and the HMC emulator reads its
state dir as it would read the running SVC emulator's.
"""

from __future__ import annotations

import shlex
import struct
from typing import Any

import fixtures
import testtools
import zhmcclient

from cinder_dpm_ephemeral.emulators import hmc
from cinder_dpm_ephemeral.emulators.lunstore import LunStore
from cinder_dpm_ephemeral.emulators.svc.cli import SVCArray

GiB = 1024 ** 3
LUN1 = '0001000000000000'
PART_PROPS = {'ifl-processors': 2, 'initial-memory': 4096,
              'maximum-memory': 4096}
UUID = '6511ee0f-0d64-4392-b9e0-cdbea10a17c3'


def dos_mbr() -> bytes:
    """A DOS MBR: one Linux partition from sector 2048, signature 0x55AA."""
    mbr = bytearray(512)
    entry = struct.pack('<B3sB3sII', 0x80, b'\0\0\0', 0x83, b'\0\0\0',
                        2048, 2 * 1024 * 1024)
    mbr[446:462] = entry
    mbr[510:512] = b'\x55\xaa'
    return bytes(mbr)


def gpt_disk() -> bytes:
    """A protective MBR (type 0xEE) and a GPT header at LBA 1."""
    mbr = bytearray(512)
    mbr[446:462] = struct.pack('<B3sB3sII', 0, b'\0\0\0', 0xEE,
                               b'\0\0\0', 1, 0xFFFFFFFF)
    mbr[510:512] = b'\x55\xaa'
    header = bytearray(512)
    header[0:8] = b'EFI PART'
    return bytes(mbr + header)


class SVCSide:
    """An emulated SVC system in ``state_dir``, set up through its CLI."""

    def __init__(self, state_dir: str) -> None:
        self.state_dir = state_dir
        self.array = SVCArray(state_dir, system_name='svc-hmc-test',
                              pools={'pool0': 64 * GiB})
        self.luns = LunStore(state_dir)

    def cli(self, command: str) -> str:
        out, err, status = self.array.run(shlex.split(command))
        if status:
            raise AssertionError(f'{command}: {err}')
        return out

    def vdisk(self, name: str, data: bytes | None = None) -> str:
        """A 1 GiB vdisk; ``data`` written at offset 0. Returns its uid."""
        self.cli(f'mkvdisk -name {name} -mdiskgrp pool0 -iogrp 0 -size 1 '
                 f'-unit gb')
        uid = self.array.state.by_name('vdisks', name)['uid']
        if data:
            with open(self.luns.open_path(uid), 'r+b') as f:
                f.write(data)
        return uid

    def host(self, name: str, *wwpns: str) -> None:
        self.cli(f'mkhost -name {name} -fcwwpn {":".join(wwpns)}')

    def map(self, vdisk: str, host: str, scsi: int) -> None:
        self.cli(f'mkvdiskhostmap -host {host} -scsi {scsi} {vdisk}')

    def target_wwpns(self) -> list[str]:
        """Host-I/O (NPIV) target ports, as Cinder's driver reports them."""
        return [p['npiv_WWPN'] for n in self.array.state.data['nodes']
                for p in n['ports']]

    def physical_wwpns(self) -> list[str]:
        return [p['WWPN'] for n in self.array.state.data['nodes']
                for p in n['ports']]


class HMCTestCase(testtools.TestCase):
    """A z14-like and a z13-like CPC in the strict in-process model."""

    def setUp(self) -> None:
        super().setUp()
        self.svc_dir = self.useFixture(fixtures.TempDir()).path
        self.svc = SVCSide(self.svc_dir)
        self.session = hmc.faked_session(
            [hmc.cpc_definition('CPC1'),
             hmc.cpc_definition('CPC13', storage_groups=False)],
            svc_state_dir=self.svc_dir)
        self.client = zhmcclient.Client(self.session)
        self.z14 = self.client.cpcs.find(name='CPC1')
        self.z13 = self.client.cpcs.find(name='CPC13')

    def partition(self, cpc: Any, name: str = f'OpenStack-cmp1-{UUID}'
                  ) -> Any:
        return cpc.partitions.create(dict(PART_PROPS, name=name))

    def ports(self, cpc: Any) -> list[Any]:
        return [p for a in cpc.adapters.list() for p in a.ports.list()]

    def refused(self, status: int, reason: int, fn: Any, *args: Any,
                **kwargs: Any) -> str:
        exc = self.assertRaises(zhmcclient.HTTPError, fn, *args, **kwargs)
        self.assertEqual((status, reason), (exc.http_status, exc.reason),
                         exc.message)
        return exc.message

    # -- routes --
    def hba_partition(self, name: str = f'OpenStack-cmp1-{UUID}'
                      ) -> tuple[Any, Any]:
        part = self.partition(self.z13, name)
        hba = part.hbas.create({'name': 'hba0', 'adapter-port-uri':
                                self.ports(self.z13)[0].uri})
        return part, hba

    def set_hba_boot(self, part: Any, hba: Any, target: str,
                     lun: str) -> None:
        part.update_properties({
            'boot-device': 'storage-adapter',
            'boot-storage-device': hba.uri,
            'boot-world-wide-port-name': target,
            'boot-logical-unit-number': lun})

    def sg_partition(self, name: str = f'OpenStack-cmp1-{UUID}'
                     ) -> tuple[Any, Any, Any]:
        part = self.partition(self.z14, name)
        ports = self.ports(self.z14)[:2]
        sg = self.client.consoles.console.storage_groups.create({
            'name': name, 'cpc-uri': self.z14.uri, 'type': 'fcp',
            'shared': False, 'connectivity': 2,
            'candidate-adapter-port-uris': [p.uri for p in ports]})
        sv = sg.storage_volumes.create({'name': 'root', 'usage': 'boot',
                                        'size': 10.0})
        part.attach_storage_group(sg)
        return part, sg, sv

    def vsr_wwpns(self, sg: Any, part: Any) -> list[str]:
        return [v.get_property('world-wide-port-name')
                for v in sg.virtual_storage_resources.list(
                    filter_args={'partition-uri': part.uri})]

    def status(self, part: Any) -> str:
        part.pull_full_properties()
        return part.get_property('status')
