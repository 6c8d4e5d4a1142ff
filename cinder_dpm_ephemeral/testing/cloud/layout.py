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
"""Where the cloud lives: its directory, ports, passwords and URLs.

Everything of one cloud is under one directory (``.cloud/`` in the
repository, or ``$DPM_CLOUD_DIR``): generated configuration, databases,
logs, pid files, the emulators' state. Ports are fixed defaults on
127.0.0.1, chosen away from the services' usual ports so that a cloud here
does not clash with a real one; ``$DPM_CLOUD_PORT_OFFSET`` moves them all.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import pathlib
import secrets
import sys

LOG = logging.getLogger(__name__)

REPO = pathlib.Path(__file__).resolve().parents[3]
HOST = '127.0.0.1'
REGION = 'RegionOne'

# Service ports: the usual port with a leading 2 (or 2 added in front of
# the last four digits) so that the mapping is easy to remember.
DEFAULT_PORTS = {
    'keystone': 25000,
    'glance': 29292,
    'placement': 28778,
    'neutron': 29696,
    'cinder': 28776,
    'nova': 28774,
    'rabbitmq': 25672,
    'rabbitmq-dist': 25673,
    'epmd': 24369,
    'svc': 22222,
    'powerflex': 28443,
    'hmc': 26794,
}

# Service users (project "service") and the names Keystone knows them by.
SERVICE_USERS = ('nova', 'cinder', 'glance', 'placement', 'neutron')
DEMO_PROJECT = 'demo'
DEMO_USER = 'demo'
ADMIN_USER = 'admin'

# Volume types: DPM boots land on the SVC backend (FC, what a DPM partition
# boots from); PowerFlex serves flavors that are not DPM.
SVC_BACKEND = 'dpm-svc'
POWERFLEX_BACKEND = 'dpm-powerflex'
DPM_VOLUME_TYPE = 'dpm-ephemeral'
POWERFLEX_VOLUME_TYPE = 'powerflex'
SVC_POOL = 'pool0'
POWERFLEX_POOL = 'domain1:pool1'
# At most 7 characters: the DPM driver names a partition (and the volume
# connector's host) 'OpenStack-<host>-<instance uuid>', and Cinder's
# Storwize driver makes the SVC host object name from the first 55
# characters of it plus '-' and 8 digits; the SVC accepts at most 63
# (CMMVC6527E otherwise), so a longer compute host name fails every attach.
COMPUTE_HOST = 'cpc1'
STORAGE_HOST = 'dpm-storage'


def cloud_dir() -> pathlib.Path:
    return pathlib.Path(os.environ.get('DPM_CLOUD_DIR')
                        or REPO / '.cloud').resolve()


def venv_bin(name: str) -> str:
    """A console script of the venv this Python runs from."""
    return os.path.join(os.path.dirname(sys.executable), name)


def venv_etc(project: str) -> pathlib.Path:
    """``<venv>/etc/<project>``, where the wheels put their paste files."""
    return pathlib.Path(sys.prefix) / 'etc' / project


@dataclasses.dataclass
class Layout:
    """Paths, ports and secrets of one cloud directory."""

    root: pathlib.Path
    ports: dict[str, int]
    passwords: dict[str, str]

    @classmethod
    def load(cls, root: pathlib.Path | None = None) -> Layout:
        root = root or cloud_dir()
        offset = int(os.environ.get('DPM_CLOUD_PORT_OFFSET', '0'))
        ports = {k: v + offset for k, v in DEFAULT_PORTS.items()}
        return cls(root=root, ports=ports,
                   passwords=_passwords(root / 'secrets.json'))

    # -- paths ---------------------------------------------------------------
    def path(self, *parts: str) -> pathlib.Path:
        return self.root.joinpath(*parts)

    @property
    def etc(self) -> pathlib.Path:
        return self.root / 'etc'

    @property
    def logs(self) -> pathlib.Path:
        return self.root / 'logs'

    @property
    def run(self) -> pathlib.Path:
        return self.root / 'run'

    @property
    def data(self) -> pathlib.Path:
        return self.root / 'data'

    def conf(self, project: str, name: str | None = None) -> pathlib.Path:
        return self.etc / project / (name or f'{project}.conf')

    def sqlite(self, name: str) -> str:
        # A busy timeout: several processes of one service share the file.
        return f'sqlite:///{self.data / "db" / name}.sqlite?timeout=60'

    @property
    def clouds_yaml(self) -> pathlib.Path:
        return self.root / 'clouds.yaml'

    # -- addresses -----------------------------------------------------------
    def url(self, service: str) -> str:
        return f'http://{HOST}:{self.ports[service]}'

    @property
    def keystone_url(self) -> str:
        return self.url('keystone') + '/v3'

    @property
    def transport_url(self) -> str:
        return (f'rabbit://cloud:{self.passwords["rabbitmq"]}@{HOST}:'
                f'{self.ports["rabbitmq"]}/')

    def endpoint(self, service: str) -> str:
        """The public endpoint URL registered in Keystone's catalog."""
        base = self.url(service)
        return {
            'keystone': base + '/v3',
            'nova': base + '/v2.1',
            'cinder': base + '/v3/$(project_id)s',
            'glance': base,
            'placement': base,
            'neutron': base,
        }[service]


def _passwords(path: pathlib.Path) -> dict[str, str]:
    """One random password per account, made once per cloud directory."""
    names = ('admin', 'demo', 'rabbitmq', 'svc', 'powerflex', 'hmc',
             *SERVICE_USERS)
    try:
        stored = json.loads(path.read_text())
    except (OSError, ValueError):
        stored = {}
    if all(n in stored for n in names):
        return stored
    for n in names:
        stored.setdefault(n, secrets.token_urlsafe(16))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, 'w') as f:
        json.dump(stored, f, indent=1)
    return stored
