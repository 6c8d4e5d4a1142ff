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
"""Neutron's database on SQLite: the schema from the models, then stamped.

Neutron's alembic migrations alter constraints, which SQLite cannot do
(``neutron-db-manage upgrade heads`` stops at mitaka's
1df244e556f5 with "No support for ALTER of constraints in SQLite
dialect"). Neutron's own unit tests build their SQLite schema from the
models (``neutron.db.migration.models.head``); this does the same, and the
caller then runs ``neutron-db-manage stamp heads`` so that the database
reads as migrated.

  python -m cinder_dpm_ephemeral.testing.cloud.neutron_db SQLALCHEMY_URL
"""

from __future__ import annotations

import sys

import sqlalchemy


def main(argv: list[str]) -> int:
    from neutron.db.migration.models import head

    engine = sqlalchemy.create_engine(argv[0])
    head.get_metadata().create_all(engine)
    engine.dispose()
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
