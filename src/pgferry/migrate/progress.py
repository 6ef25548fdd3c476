"""Progress: what the user sees (Reporter) and what a resume relies on (Ledger).

The ledger is a table on the target, pgferry.clone_progress, one row per
finished item ('phase:pre-data', 'table:schema.name', ...).  A table's row is
written in the same transaction as its data when it is copied in one piece,
so a crash can never leave a table both half-loaded and marked done.
"""

from __future__ import annotations

from typing import Any, Protocol

import psycopg
from psycopg import sql

SCHEMA = "pgferry"
TABLE = "clone_progress"


class Reporter(Protocol):
    def phase_start(self, phase: str, total_bytes: int | None = None) -> None: ...

    def phase_done(self, phase: str, seconds: float) -> None: ...

    def unit_start(self, key: str, est_bytes: int) -> None: ...

    def unit_progress(self, key: str, rows: int, nbytes: int) -> None: ...

    def unit_done(self, key: str, rows: int, nbytes: int, seconds: float) -> None: ...

    def note(self, message: str) -> None: ...


class NullReporter:
    def phase_start(self, phase: str, total_bytes: int | None = None) -> None:
        pass

    def phase_done(self, phase: str, seconds: float) -> None:
        pass

    def unit_start(self, key: str, est_bytes: int) -> None:
        pass

    def unit_progress(self, key: str, rows: int, nbytes: int) -> None:
        pass

    def unit_done(self, key: str, rows: int, nbytes: int, seconds: float) -> None:
        pass

    def note(self, message: str) -> None:
        pass


def _ident() -> sql.Identifier:
    return sql.Identifier(SCHEMA, TABLE)


class Ledger:
    """The progress table; every method commits (the connection is autocommit)."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn

    def exists(self) -> bool:
        row = self.conn.execute(
            "SELECT to_regclass(%s) IS NOT NULL", [f"{SCHEMA}.{TABLE}"]
        ).fetchone()
        return bool(row and row[0])

    def create(self, origin: str) -> None:
        self.conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(SCHEMA)))
        self.conn.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} (item text PRIMARY KEY, rows bigint,"
                " bytes bigint, done_at timestamptz NOT NULL DEFAULT now())"
            ).format(_ident())
        )
        self.mark("origin:" + origin)

    def origin(self) -> str | None:
        row = self.conn.execute(
            sql.SQL("SELECT item FROM {} WHERE item LIKE 'origin:%%'").format(_ident())
        ).fetchone()
        return str(row[0])[len("origin:") :] if row else None

    def done(self) -> set[str]:
        if not self.exists():
            return set()
        return {r[0] for r in self.conn.execute(sql.SQL("SELECT item FROM {}").format(_ident()))}

    def mark(self, item: str, rows: int | None = None, nbytes: int | None = None) -> None:
        mark_in(self.conn, item, rows, nbytes)

    def drop(self) -> None:
        self.conn.execute(
            sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(SCHEMA))
        )


def mark_in(
    conn: psycopg.Connection[Any], item: str, rows: int | None = None, nbytes: int | None = None
) -> None:
    """Record `item` as done in `conn`'s current transaction."""
    conn.execute(
        sql.SQL(
            "INSERT INTO {} (item, rows, bytes) VALUES (%s, %s, %s)"
            " ON CONFLICT (item) DO UPDATE SET rows = excluded.rows, bytes = excluded.bytes,"
            " done_at = now()"
        ).format(_ident()),
        [item, rows, nbytes],
    )
