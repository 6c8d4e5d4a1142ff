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
"""The golden cache as Cinder's monitoring sees its image-volume cache.

Notifications: the event types and payload of Cinder's generic cache
(cinder/image/cache.py, ``image_volume_cache.hit|miss|evict`` with
``image_id`` and ``host``, publisher ``volume.<host>``), so consumers of
those (Ceilometer, an operator's listener) count golden volumes too; the
payload adds ``golden_volume_id`` and ``pool``. Sent only when Cinder's
notifications are enabled (``[oslo_messaging_notifications] driver``).

Pool statistics: each pool's dict in the driver's stats gains
``dpm_golden_volumes``, ``dpm_golden_gb`` and ``dpm_golden_clones``
(visible with ``cinder get-pools --detail``; the scheduler ignores
unknown keys). The clone count is one array call for all golden volumes
(:meth:`~cinder_dpm_ephemeral.image_cache.backend.CloneBackend.
clone_counts`), made at most every half ``backend_stats_polling_interval``
or when a golden volume is new: Cinder refreshes the stats after every
volume delete, and a count of clones up to a polling interval old is what
the periodic report gives anyway.
"""

from __future__ import annotations

import time
from typing import Any

from cinder import rpc
from cinder import utils
from cinder.volume import volume_utils
from oslo_config import cfg
from oslo_log import log as logging

LOG = logging.getLogger(__name__)

HIT = 'hit'
MISS = 'miss'
EVICT = 'evict'


def notify(context: Any, action: str, image_id: str | None, host: str,
           golden_id: str | None = None, pool: str | None = None) -> None:
    """Send ``image_volume_cache.<action>``; never fails the caller."""
    if not utils.notifications_enabled(cfg.CONF):
        return
    data = {'image_id': image_id, 'host': host,
            'golden_volume_id': golden_id, 'pool': pool}
    try:
        rpc.get_notifier('volume', cfg.CONF.host).info(
            context, 'image_volume_cache.%s' % action, data)
    except Exception:
        LOG.exception('Golden cache notification image_volume_cache.%s '
                      'for image %s not sent.', action, image_id)


def pool_figures(cache: Any, host: str,
                 pools: list[dict[str, Any]]) -> None:
    """Add the golden cache's figures to each pool dict of ``pools``."""
    per_pool: dict[str, dict[str, int]] = {
        p['pool_name']: {'dpm_golden_volumes': 0, 'dpm_golden_gb': 0,
                         'dpm_golden_clones': 0} for p in pools}
    ictx = cache.internal_context() if cache.enabled else None
    if ictx is not None:
        try:
            goldens = cache.goldens(ictx)
        except Exception:
            LOG.exception('Golden cache figures for %s not collected.', host)
            goldens = []
        backend = volume_utils.extract_host(host, 'backend')
        mine = []
        for g in goldens:
            if volume_utils.extract_host(g.host, 'backend') != backend:
                continue
            figures = per_pool.get(cache.pool_of(g))
            if figures is None:
                continue
            figures['dpm_golden_volumes'] += 1
            figures['dpm_golden_gb'] += int(g.size or 0)
            mine.append((g, figures))
        try:
            clones = _clone_counts(cache, [g for g, _ in mine])
        except Exception:
            LOG.warning('Clones of the golden volumes of %s not counted: '
                        'the array did not answer.', host)
            clones = {}
        for g, figures in mine:
            figures['dpm_golden_clones'] += int(clones.get(g.id, 0))
    for p in pools:
        p.update(per_pool[p['pool_name']])


def _clone_counts(cache: Any, goldens: list[Any]) -> dict[str, int]:
    """Clones per golden volume id: one array call, reused for a while."""
    if not goldens:
        return {}
    now = time.monotonic()
    at, counts = cache.clone_counts_seen
    if (now - at >= cfg.CONF.backend_stats_polling_interval / 2 or
            any(g.id not in counts for g in goldens)):
        counts = cache.backend.clone_counts(goldens)
        cache.clone_counts_seen = (now, counts)
    return counts
