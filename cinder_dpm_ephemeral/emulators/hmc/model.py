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
"""The strict HMC model: zhmcclient's faked HMC with the project's rules.

:func:`faked_session` gives the model in-process (``zhmcclient.mock.
FakedSession``, same handlers the HTTPS server uses); :class:`HMCModel`
adds a lock and persistence for the server: the whole faked HMC is dumped
to ``<state_dir>/hmc-state.json`` (atomic replace) after every change and
loaded back at start, in the ``hmc_definition`` shape the mock loads.

zhmcclient is extended, never patched: the handler table is a new list
(the mock's ``URIS`` with some entries replaced and some added) given to a
new ``UriHandler`` on the session. ``URIS``, ``UriHandler`` and the
handler classes are private API of zhmcclient 1.26, pinned in
``constraints.txt``.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import threading
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from zhmcclient.mock import FakedSession
from zhmcclient.mock import _urihandler as mock  # private API: pinned

from cinder_dpm_ephemeral.emulators import files
from cinder_dpm_ephemeral.emulators.hmc import definition as definitions
from cinder_dpm_ephemeral.emulators.hmc import errors, handlers, ipl, storage
from cinder_dpm_ephemeral.emulators.hmc.context import StrictContext

LOG = logging.getLogger(__name__)

STATE_FILE = 'hmc-state.json'
SCHEMA = 1

# Child managers dumped per resource type (keys of the mock's YAML schema).
_CHILDREN: dict[str, tuple[str, ...]] = {
    'consoles': ('storage_groups',),
    'storage_groups': ('storage_volumes', 'virtual_storage_resources'),
    'cpcs': ('adapters', 'partitions', 'virtual_switches'),
    'adapters': ('ports',),
    'partitions': ('hbas', 'nics', 'virtual_functions'),
}


class _CreatePartition(handlers.PartitionsHandler):
    """Create Partition with a UUID object id, as HMCs assign them."""

    @staticmethod
    def post(method: str, hmc: Any, uri: str, uri_parms: Any,
             body: dict[str, Any], logon_required: bool,
             wait_for_completion: bool) -> Any:
        body = dict(body or {})
        if 'object-id' in body:
            raise errors.invalid_value(
                method, uri, "'object-id' cannot be set: the HMC assigns it")
        body['object-id'] = str(uuid.uuid4())
        return handlers.PartitionsHandler.post(
            method, hmc, uri, uri_parms, body, logon_required,
            wait_for_completion)


VALIDATE_LUN_PATH = r'/api/cpcs/([^/]+)/operations/validate-lun-path'


def strict_uris() -> list[tuple[str, Any]]:
    """The mock's URI table with the strict handlers in place.

    Validate LUN Path is not in it (:func:`faked_session` adds it, see
    :data:`VALIDATE_LUN_PATH`), so a test may put its own handler there.
    """
    replace = {
        r'/api/cpcs/([^/]+)/partitions(?:\?(.*))?': _CreatePartition,
        r'/api/partitions/([^?/]+)(?:\?(.*))?': handlers.PartitionHandler,
        r'/api/partitions/([^/]+)/operations/start':
            handlers.PartitionStartHandler,
        r'/api/partitions/([^/]+)/hbas(?:\?(.*))?': handlers.HbasHandler,
        r'/api/partitions/([^/]+)/hbas/([^?/]+)(?:\?(.*))?':
            handlers.HbaHandler,
    }
    replace.update(dict(storage.URIS))
    table = [(pattern, replace.pop(pattern, cls))
             for pattern, cls in mock.URIS]
    return table + list(replace.items())


def _as_hmc_definition(definition: Any) -> dict[str, Any]:
    if definition is None:
        return definitions.hmc_definition()
    if isinstance(definition, dict) and 'hmc_definition' in definition:
        return {'hmc_definition': copy.deepcopy(definition['hmc_definition'])}
    if isinstance(definition, dict) and 'properties' in definition:
        return definitions.hmc_definition([definition])
    if isinstance(definition, Iterable):
        return definitions.hmc_definition(list(definition))
    raise TypeError(f'not an HMC or CPC definition: {definition!r}')


def faked_session(definition: Any = None,
                  svc_state_dir: str | os.PathLike[str] | None = None,
                  emulator_state: dict[str, Any] | None = None,
                  userid: str | None = None,
                  password: str | None = None) -> FakedSession:
    """The strict HMC model in-process.

    :param definition: an ``hmc_definition`` document, one
        :func:`definition.cpc_definition` or a list of them (default: one
        z14-like CPC).
    :param svc_state_dir: the SVC emulator's state directory: partition
        starts then run the emulated IPL against it (:mod:`ipl`); without
        it a start only checks the boot settings.
    """
    session = FakedSession.from_hmc_dict(_as_hmc_definition(definition),
                                         userid=userid, password=password)
    session._urihandler = mock.UriHandler(
        strict_uris() + [(VALIDATE_LUN_PATH, storage.ValidateLunPathHandler)])
    fabric = ipl.SVCFabric(svc_state_dir) if svc_state_dir else None
    session.hmc.strict = StrictContext(fabric=fabric, saved=emulator_state)
    _fix_after_load(session.hmc)
    return session


# -- dump and load ------------------------------------------------------------
def _dump_resource(resource: Any, kind: str) -> dict[str, Any]:
    out: dict[str, Any] = {'properties': copy.deepcopy(resource.properties)}
    for child in _CHILDREN.get(kind, ()):
        manager = getattr(resource, child, None)
        if manager is None:
            continue
        items = [_dump_resource(r, child) for r in manager.list()]
        if items:
            out[child] = items
    return out


def dump(session: FakedSession) -> dict[str, Any]:
    """The faked HMC as an ``hmc_definition`` document plus emulator state."""
    hmc = session.hmc
    return {
        'schema': SCHEMA,
        'hmc_definition': {
            'host': session.host,
            'api_version': hmc.api_version,
            'consoles': [_dump_resource(c, 'consoles')
                         for c in hmc.consoles.list()],
            'cpcs': [_dump_resource(c, 'cpcs') for c in hmc.cpcs.list()],
        },
        'emulator': hmc.strict.to_dict(),
    }


def _walk(resource: Any, kind: str) -> Iterable[tuple[Any, Any]]:
    for child in _CHILDREN.get(kind, ()):
        manager = getattr(resource, child, None)
        if manager is None:
            continue
        yield resource, manager
        for r in manager.list():
            yield from _walk(r, child)


def _fix_after_load(hmc: Any) -> None:
    """Make a loaded model consistent: id counters, no duplicate URIs."""
    pairs = [(hmc, hmc.consoles), (hmc, hmc.cpcs)]
    for c in hmc.consoles.list():
        pairs += list(_walk(c, 'consoles'))
    for c in hmc.cpcs.list():
        pairs += list(_walk(c, 'cpcs'))
    for parent, manager in pairs:
        numeric = [int(r.oid) for r in manager.list()
                   if str(r.oid).isdigit()]
        manager.next_oid = max(numeric, default=0) + 1
        props = getattr(parent, 'properties', {})
        for key, value in props.items():
            if key.endswith('-uris') and isinstance(value, list):
                props[key] = list(dict.fromkeys(value))


class HMCModel:
    """The strict model behind the HTTPS server, persisted in a directory.

    Every request runs under :attr:`lock`; :meth:`save` writes the state
    when it changed.
    """

    def __init__(self, state_dir: str | os.PathLike[str],
                 definition: Any = None,
                 svc_state_dir: str | os.PathLike[str] | None = None) -> None:
        self.state_dir = Path(state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.state_dir / STATE_FILE
        self.lock = threading.RLock()
        self._saved = ''
        saved = None
        if self.path.exists():
            with open(self.path) as f:
                saved = json.load(f)
            LOG.info('HMC emulator: loaded state from %s', self.path)
        if saved is not None:
            self.session = faked_session(
                {'hmc_definition': saved['hmc_definition']}, svc_state_dir,
                emulator_state=saved.get('emulator'))
            self._saved = self._text()
        else:
            self.session = faked_session(definition, svc_state_dir)
        self.save()

    @property
    def hmc(self) -> Any:
        return self.session.hmc

    def _text(self) -> str:
        return json.dumps(dump(self.session), sort_keys=True, indent=1)

    def save(self) -> None:
        with self.lock:
            text = self._text()
            if text != self._saved:
                files.write_text_atomic(self.path, text)
                self._saved = text

    def inventory(self) -> dict[str, Any]:
        with self.lock:
            return dump(self.session)
