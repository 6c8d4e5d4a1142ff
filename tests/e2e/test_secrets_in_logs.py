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
"""No password of the cloud in any of its logs or command lines.

Every password the whole cloud uses is collected from its own files: the
layout's secrets (Keystone's admin and demo users, the service users,
RabbitMQ, the SVC, PowerFlex and HMC logins), and every password, secret
or URL credential in every configuration file it wrote (``etc/``, which
the devstack-plugin test may have rewritten) and in ``clouds.yaml``. Then
every file under ``logs/`` (each service's log and access log, the
emulators', RabbitMQ's, the set-up commands') and the command line of
every process of the cloud is searched for each of them.

The suite shares one cloud per run and this module's name sorts after the
others: in a whole ``./run test`` it reads the logs of every end-to-end
test (server boots, storms, crashes, failures) of the run.
"""

from __future__ import annotations

import configparser
import re
from typing import Any

import yaml

from cinder_dpm_ephemeral.testing.cloud import layout as lay
from cinder_dpm_ephemeral.testing.cloud import services as svcs
from tests.e2e import base

_SECRET_KEY = re.compile(r'password|secret|passwd', re.I)
_URL_PASSWORD = re.compile(r'://[^:/@\s]+:([^@\s]+)@')
SHORTEST = 8  # shorter values would match by chance


def _from_ini(text: str) -> dict[str, str]:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        parser.read_string(text)
    except configparser.Error:
        return {}
    found = {}
    for section in parser.sections() + ['DEFAULT']:
        for key, value in parser.items(section, raw=True):
            if _SECRET_KEY.search(key) and value:
                found[f'[{section}] {key}'] = value
            for pw in _URL_PASSWORD.findall(value or ''):
                found[f'[{section}] {key} (URL)'] = pw
    return found


def _from_yaml(data: Any, where: str = '') -> dict[str, str]:
    found = {}
    if isinstance(data, dict):
        for key, value in data.items():
            if isinstance(value, str) and _SECRET_KEY.search(str(key)):
                found[f'{where}/{key}'] = value
            else:
                found.update(_from_yaml(value, f'{where}/{key}'))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            found.update(_from_yaml(value, f'{where}[{i}]'))
    return found


def cloud_secrets(lo: lay.Layout) -> dict[str, str]:
    """password -> where it was found (the first place)."""
    found = {f'secrets.json {k}': v for k, v in lo.passwords.items()}
    for path in sorted(lo.etc.rglob('*')):
        if path.is_file():
            text = path.read_text(errors='replace')
            found.update({f'{path.relative_to(lo.root)} {k}': v
                          for k, v in _from_ini(text).items()})
    found.update({f'clouds.yaml{k}': v for k, v in _from_yaml(
        yaml.safe_load(lo.clouds_yaml.read_text())).items()})
    out: dict[str, str] = {}
    for where, value in found.items():
        if len(value) >= SHORTEST:
            out.setdefault(value, where)
    return out


class SecretsInLogsTest(base.CloudTestCase):

    def test_no_password_in_logs_or_command_lines(self) -> None:
        lo = self.cloud.lo
        secrets = cloud_secrets(lo)
        # every account of the cloud is there
        for name in ('admin', 'demo', 'rabbitmq', 'svc', 'powerflex', 'hmc',
                     *lay.SERVICE_USERS):
            self.assertIn(lo.passwords[name], secrets)
        logs = [p for p in sorted(lo.logs.rglob('*')) if p.is_file()]
        names = {p.name for p in logs}
        for expected in ('nova-compute.log', 'cinder-volume.log',
                         'svc-emulator.log', 'powerflex-emulator.log',
                         'hmc-emulator.log', 'keystone-access.log'):
            self.assertIn(expected, names)
        leaks = []
        for path in logs:
            data = path.read_bytes()
            for value, where in secrets.items():
                at = data.find(value.encode())
                if at >= 0:
                    line_start = data.rfind(b'\n', 0, at) + 1
                    line = data[line_start:data.find(b'\n', at)].decode(
                        errors='replace').replace(value, '<PASSWORD>')
                    leaks.append(f'{path.relative_to(lo.root)}: the '
                                 f'password of {where}: {line[:300]}')
        for pid in svcs.marked_pids(lo):
            try:
                with open(f'/proc/{pid}/cmdline', 'rb') as f:
                    cmdline = f.read().replace(b'\0', b' ')
            except OSError:
                continue
            for value, where in secrets.items():
                if value.encode() in cmdline:
                    leaks.append(f'process {pid} command line: the '
                                 f'password of {where}')
        self.assertEqual([], leaks)
        self.assertGreater(len(logs), 10)
