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
"""Neutron's API WSGI application, with its ORM mappers configured.

``neutron.wsgi.api`` alone answers ``GET /v2.0/ports`` with HTTP 500 in a
fresh process: ``get_ports`` reads ``Port.port_forwardings``, a backref
that SQLAlchemy creates only when the mappers are configured, which in a
full neutron-server happens earlier through its RPC workers. Configuring
them once at start is what those workers' first query would do.
"""

from sqlalchemy import orm

from neutron.wsgi import api

orm.configure_mappers()
application = api.application
