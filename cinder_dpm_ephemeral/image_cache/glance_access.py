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
"""Asking Glance about images with no user request behind the question.

The periodic clean-up asks Glance whether the image of each golden volume
still exists and is unchanged. There is no user token then: Cinder's
internal tenant context carries none, and a Glance behind Keystone answers
every such question 401. The cache therefore asks with the service
credentials of Cinder's own ``[glance]`` section (keystoneauth options:
``auth_type``, ``auth_url``, ``username``, ``password``, ``project_name``,
..., the section Cinder already uses for privileged Glance calls), and
finds Glance in the catalog those credentials get (``glance_catalog_info``,
``[glance] region_name``) unless ``glance_api_servers`` names it.

Without ``[glance] auth_type`` and with ``auth_strategy = keystone`` the
clean-up cannot ask; it then decides nothing that needs Glance (a warning
at start says so, see :func:`missing_credentials`).
"""

from __future__ import annotations

from typing import Any

from cinder import context as cinder_context
from cinder.image import glance
from keystoneauth1 import loading as ks_loading
from oslo_config import cfg

CONF = cfg.CONF

_INTERFACES = {'publicURL': 'public', 'internalURL': 'internal',
               'adminURL': 'admin'}


def missing_credentials() -> str | None:
    """What stops the clean-up from asking a real Glance, or None."""
    if CONF.auth_strategy != 'keystone':
        return None
    if CONF[glance.GLANCE_GROUP].auth_type:
        return None
    return ('auth_strategy is keystone but [glance] auth_type is not set: '
            'the golden image cache cannot ask Glance whether images still '
            'exist, so golden volumes of deleted images are never '
            'reclaimed. Set [glance] auth_type = password, auth_url, '
            'username, password, project_name, user_domain_name and '
            'project_domain_name (a service user with the admin or '
            'service role).')


def service_context(ictx: Any) -> Any:
    """A context that Glance accepts for the clean-up's questions."""
    if CONF.auth_strategy != 'keystone' or not CONF[
            glance.GLANCE_GROUP].auth_type:
        return ictx
    group = glance.GLANCE_GROUP
    auth = ks_loading.load_auth_from_conf_options(CONF, group)
    session = ks_loading.load_session_from_conf_options(CONF, group,
                                                        auth=auth)
    catalog = []
    if CONF.glance_api_servers is None:
        service_type, service_name, endpoint_type = (
            CONF.glance_catalog_info.split(':'))
        region = CONF[group].region_name
        url = session.get_endpoint(
            service_type=service_type,
            interface=_INTERFACES.get(endpoint_type, endpoint_type),
            region_name=region)
        catalog = [{'type': service_type, 'name': service_name,
                    'endpoints': [{endpoint_type: url, 'region': region}]}]
    return cinder_context.RequestContext(
        user_id=ictx.user_id, project_id=ictx.project_id, is_admin=True,
        user_auth_plugin=auth, service_catalog=catalog,
        auth_token=session.get_token())
