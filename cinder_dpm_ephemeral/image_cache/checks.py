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
"""Where the golden cache downloads, and what keeps it from working.

:func:`setup_problems` is asked once when the volume service starts (the
driver's ``check_for_setup_error``); each problem names its fix.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

from cinder import context as cinder_context

from cinder_dpm_ephemeral.image_cache import glance_access


def conversion_dir() -> str:
    """Where images are downloaded to (Cinder's ``image_conversion_dir``)."""
    from oslo_config import cfg
    return cfg.CONF.image_conversion_dir or tempfile.gettempdir()


def setup_problems(configuration: Any) -> list[str]:
    """What keeps the cache from working on this backend, with the fix.

    Checked once when the volume service starts (the driver's
    ``check_for_setup_error``), not once per volume.
    """
    from oslo_config import cfg
    conf = cfg.CONF
    problems = []
    if not configuration.safe_get('dpm_ephemeral_image_cache_enabled'):
        return problems
    if cinder_context.get_internal_tenant_context() is None:
        problems.append(
            'the golden image cache is enabled but Cinder\'s internal '
            'tenant is not configured, so it is off: set '
            'cinder_internal_tenant_project_id and '
            'cinder_internal_tenant_user_id in [DEFAULT] of cinder.conf')
    conv = conversion_dir()
    try:
        os.makedirs(conv, exist_ok=True)
    except OSError as exc:
        problems.append(f'image_conversion_dir {conv} does not exist and '
                        f'cannot be created ({exc.strerror}): create it, '
                        f'writable by the cinder-volume user')
    else:
        if not os.access(conv, os.W_OK | os.X_OK):
            problems.append(f'image_conversion_dir {conv} is not writable '
                            f'by this service (uid {os.getuid()}): make it '
                            f'writable by the cinder-volume user')
    try:
        backend_url = conf.coordination.backend_url or ''
        cluster = conf.cluster
    except cfg.NoSuchOptError:          # options of cinder-volume's command
        backend_url, cluster = '', None
    if cluster and backend_url.startswith('file://'):
        problems.append(
            f'[DEFAULT] cluster = {cluster} (several volume services '
            f'share these arrays) but [coordination] backend_url is '
            f'{backend_url}, a lock of this host only: services on other '
            f'hosts build the same golden volumes at once. Set '
            f'backend_url to a distributed lock manager shared by the '
            f'cluster (e.g. etcd3+http://HOST:2379)')
    glance_problem = glance_access.missing_credentials()
    if glance_problem:
        problems.append(glance_problem)
    return problems
