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
"""Volume type questions the filter asks Cinder, through Nova's own client.

``nova.volume.cinder`` builds the cinderclient from the request context
(token, service catalog, ``[cinder]`` options), exactly as Nova does when it
validates a BDM ``volume_type`` at microversion 2.67.
"""

import threading
import time
from typing import Any

from nova import context as nova_context
from nova.volume import cinder as nova_cinder
from oslo_log import log as logging

LOG = logging.getLogger(__name__)


class VolumeTypeLookup:
    """Cached answers to "does type X exist" and "project P's default type".

    Only successful answers are cached, for ``ttl`` seconds, so that a type
    created after a refusal is seen at once.
    """

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._lock = threading.Lock()
        self._cache: dict[tuple[str, str], tuple[float, dict[str, Any]]] = {}

    def _cached(self, key: tuple[str, str]) -> dict[str, Any] | None:
        if self.ttl <= 0:
            return None
        with self._lock:
            hit = self._cache.get(key)
        if hit and time.monotonic() - hit[0] < self.ttl:
            return hit[1]
        return None

    def _remember(self, key: tuple[str, str], value: dict[str, Any]) -> None:
        if self.ttl > 0:
            with self._lock:
                self._cache[key] = (time.monotonic(), value)

    def find(self, context: Any, name_or_id: str) -> dict[str, Any] | None:
        """The volume type named (or with the id) ``name_or_id``, or None.

        Cinder lists the types visible to the request's project (public ones
        and private ones shared with it), which is what a create will see.
        """
        key = ('type:%s' % (context.project_id or ''), name_or_id)
        hit = self._cached(key)
        if hit is not None:
            return hit
        for vtype in nova_cinder.API().get_all_volume_types(context):
            if name_or_id in (vtype.get('id'), vtype.get('name')):
                found = {'id': vtype.get('id'), 'name': vtype.get('name')}
                self._remember(key, found)
                return found
        return None

    def project_default(self, context: Any) -> dict[str, Any]:
        """The type Cinder uses for the request's project when none is given.

        ``GET /v3/{project_id}/types/default``: the project's default type
        (Cinder API 3.62, ``cinder default-type-set``) or else Cinder's
        ``[DEFAULT] default_volume_type``.
        """
        key = ('default', context.project_id or '')
        hit = self._cached(key)
        if hit is not None:
            return hit
        client = nova_cinder.cinderclient(context)
        vtype = client.volume_types.default()
        found = {'id': getattr(vtype, 'id', None),
                 'name': getattr(vtype, 'name', None)}
        LOG.debug('Cinder default volume type of project %s: %s',
                  context.project_id, found['name'])
        self._remember(key, found)
        return found

    def encryption(self, context: Any, vtype: dict[str, Any]
                   ) -> dict[str, Any]:
        """The encryption of volume type ``vtype`` ({} when it has none).

        ``GET /types/{id}/encryption`` is an administrator's call in
        Cinder's default policy: asked with Nova's ``[cinder]`` service
        credentials (an admin context without a token), else with the
        user's token. Raises when neither may ask.
        """
        key = ('encryption', vtype['id'])
        hit = self._cached(key)
        if hit is not None:
            return hit
        errors = []
        for ctx in (nova_context.get_admin_context(), context):
            try:
                client = nova_cinder.cinderclient(ctx)
                enc = client.volume_encryption_types.get(vtype['id'])
                info = dict(getattr(enc, '_info', None) or {})
            except Exception as exc:
                errors.append('%s: %s' % (type(exc).__name__, exc))
                continue
            found = info if (info.get('provider') or
                             info.get('encryption_id')) else {}
            self._remember(key, found)
            return found
        raise RuntimeError('; '.join(errors))
