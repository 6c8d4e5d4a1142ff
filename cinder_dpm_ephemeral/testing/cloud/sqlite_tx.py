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
"""SQLite shared by several processes of one service, without lock errors.

Devstack gives Nova and Cinder MySQL; this cloud keeps every database in
SQLite files (nothing to install), and Nova's API, conductor and scheduler
(Cinder's API, scheduler and volume service) write the same file. oslo.db
opens SQLite transactions with a plain ``BEGIN``: a transaction that read
first and writes later must then upgrade its lock, and when another
process holds the write lock SQLite answers "database is locked" at once
(waiting could deadlock, so the busy timeout does not apply). Seen here:
nova-compute's build aborted with ``OperationalError database is locked``
on ``UPDATE instances``. So every process of the cloud starts its SQLite
transactions with ``BEGIN IMMEDIATE`` (the write lock first, waiting up to
the busy timeout for it), and the files are in WAL mode so that readers
never wait for the writer.
"""

from __future__ import annotations

import logging
import pathlib
import sqlite3
from typing import Any

LOG = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 120_000
_installed = False


def install() -> None:
    """Class-level SQLAlchemy listeners: run before oslo.db's own ones."""
    global _installed
    if _installed:
        return
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    @event.listens_for(Engine, 'connect')
    def _on_connect(dbapi_con: Any, record: Any) -> None:
        if isinstance(dbapi_con, sqlite3.Connection):
            dbapi_con.execute(f'PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}')

    @event.listens_for(Engine, 'begin')
    def _on_begin(conn: Any) -> None:
        # oslo.db turns pysqlite's own BEGIN off and emits one in its
        # listener unless 'in_transaction' is set; this one runs first.
        if conn.dialect.name == 'sqlite' and \
                'in_transaction' not in conn.info:
            conn.exec_driver_sql('BEGIN IMMEDIATE')
            conn.info['in_transaction'] = True

    _installed = True


def use_wal(directory: pathlib.Path) -> None:
    """Put every SQLite file of ``directory`` in WAL mode (persistent)."""
    for path in sorted(directory.glob('*.sqlite')):
        con = sqlite3.connect(path, timeout=30)
        try:
            mode = con.execute('PRAGMA journal_mode=WAL').fetchone()[0]
        finally:
            con.close()
        if mode != 'wal':
            LOG.warning('%s stays in journal mode %s', path, mode)
