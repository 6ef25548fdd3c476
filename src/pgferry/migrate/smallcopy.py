"""Small tables' rows, read in-process inside the exported snapshot.

The data phase reads each unit through a psql child (copier.copy_out): its
C loop over rows beats Python's on big tables.  For a small table the child
(process start, connection, snapshot import) costs more than the rows, and
a small database is mostly small tables.  Here each worker thread keeps one
source connection, in one REPEATABLE READ transaction importing the
snapshot, and reads its small units with psycopg's COPY TO.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import sql

from pgferry.migrate.copier import BLOCK, _snapshot_id
from pgferry.migrate.errors import SnapshotLost, SourceError
from pgferry.migrate.finish import connect_source

#: units estimated below this many bytes are read in-process
SMALL_UNIT_BYTES = 1 << 20
# the same text COPY output as the psql readers (copier.SESSION)
_SESSION = (
    "SET DateStyle = ISO; SET IntervalStyle = postgres; SET extra_float_digits = 3; "
    "SET TimeZone = 'UTC'; SET row_security = off; SET lc_monetary = 'C';"
    " SET client_encoding = 'UTF8'"
)
# SQLSTATEs of SET TRANSACTION SNAPSHOT when the exporting transaction ended
_SNAPSHOT_GONE = ("42704", "22023", "0A000")


class SnapshotReaders:
    def __init__(self, source: str, snapshot: str) -> None:
        self.source = source
        self.snapshot = _snapshot_id(snapshot)
        self._local = threading.local()
        self._lock = threading.Lock()
        self._opened: list[psycopg.Connection[Any]] = []

    def connection(self) -> psycopg.Connection[Any]:
        """This thread's source connection, inside the snapshot."""
        return self._conn()

    def _conn(self) -> psycopg.Connection[Any]:
        conn: psycopg.Connection[Any] | None = getattr(self._local, "conn", None)
        if conn is not None and not conn.closed:
            return conn
        conn = connect_source(self.source, autocommit=True)
        with self._lock:
            self._opened.append(conn)
        conn.execute(_SESSION)
        conn.autocommit = False
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        try:
            conn.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(self.snapshot)))
        except psycopg.Error as e:
            if e.sqlstate in _SNAPSHOT_GONE:
                raise SnapshotLost(
                    f"the source snapshot {self.snapshot} is gone: {e.diag.message_primary}",
                    hint="the coordinator connection ended; rerun with --resume",
                    sqlstate=e.sqlstate,
                ) from None
            raise SourceError(
                f"reading the source failed: {e.diag.message_primary or e}", sqlstate=e.sqlstate
            ) from None
        self._local.conn = conn
        return conn

    @contextmanager
    def copy_out(self, copy_sql: str) -> Iterator[Iterator[bytes]]:
        """Blocks of `COPY ... TO STDOUT` text, like copier.copy_out."""
        yield self._blocks(copy_sql)

    def _blocks(self, copy_sql: str) -> Iterator[bytes]:
        conn = self._conn()
        buf = bytearray()
        try:
            with conn.cursor() as cur, cur.copy(copy_sql) as cp:
                for row in cp:
                    buf += row
                    if len(buf) >= BLOCK:
                        yield bytes(buf)
                        buf.clear()
        except psycopg.Error as e:
            raise SourceError(
                f"reading the source failed: {e.diag.message_primary or e}", sqlstate=e.sqlstate
            ) from None
        if buf:
            yield bytes(buf)

    def close(self) -> None:
        with self._lock:
            for conn in self._opened:
                conn.close()
            self._opened.clear()
