"""After the rows: sequence values, VACUUM ANALYZE (large objects: largeobjects.py)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
from psycopg import sql

from pgferry.migrate.catalog import Table
from pgferry.migrate.errors import SourceError, SourceUnreachable
from pgferry.target import connect


def connect_source(conninfo: str, *, autocommit: bool = False) -> psycopg.Connection[Any]:
    from pgferry.errors import TargetError

    try:
        return connect(conninfo, autocommit=autocommit)
    except TargetError as e:
        raise SourceUnreachable(
            f"source: {e.what}",
            hint="check --source and that the server is running",
            sqlstate=getattr(e, "sqlstate", None),
        ) from None


def set_sequences(target: str, values: list[tuple[str, str, int, bool]]) -> None:
    with connect(target) as t, t.transaction():
        for schema, name, last, called in values:
            regclass = sql.Identifier(schema, name).as_string(t)
            t.execute("SELECT setval(%s::regclass, %s, %s)", [regclass, last, called])


def vacuum_analyze(target: str, tables: list[Table], parents: list[Table], jobs: int) -> None:
    """VACUUM ANALYZE each copied table, N at a time; partitioned parents get
    ANALYZE (their own statistics; VACUUM does nothing on them)."""

    def one(stmt: sql.Composed) -> None:
        with connect(target, autocommit=True) as c:
            c.execute(stmt)

    stmts = [sql.SQL("VACUUM (ANALYZE) {}").format(t.ident) for t in tables]
    stmts += [sql.SQL("ANALYZE {}").format(t.ident) for t in parents]
    with ThreadPoolExecutor(max(1, jobs)) as ex:
        list(ex.map(one, stmts))


def source_identity(src: psycopg.Connection[Any]) -> str:
    try:
        row = src.execute(
            "SELECT system_identifier::text || '/' || current_database() FROM pg_control_system()"
        ).fetchone()
    except psycopg.errors.InsufficientPrivilege:
        src.rollback()
        row = src.execute("SELECT current_database()").fetchone()
    except psycopg.Error as e:
        raise SourceError(f"cannot read the source's identity: {e}", sqlstate=e.sqlstate) from None
    return str(row[0]) if row else "?"
