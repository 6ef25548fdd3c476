"""After the rows: sequence values, VACUUM ANALYZE (large objects: largeobjects.py)."""

from __future__ import annotations

import queue
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
from psycopg import sql

from pgferry.migrate.catalog import Table
from pgferry.migrate.errors import MigrateError, SourceError
from pgferry.target import connect


def connect_source(conninfo: str, *, autocommit: bool = False) -> psycopg.Connection[Any]:
    """A connection to the source; failures say "source:" and name --source
    (SourceUnreachable when it is down, else the class of the refusal)."""
    return connect(conninfo, autocommit=autocommit, side="source")


def set_sequences(
    target: str,
    values: list[tuple[str, str, int, bool]],
    conn: psycopg.Connection[Any] | None = None,
) -> None:
    """`conn`: an open connection to the target to use instead of a new one."""
    if conn is None:
        with connect(target) as t:
            _setvals(t, values)
    else:
        _setvals(conn, values)


def _setvals(t: psycopg.Connection[Any], values: list[tuple[str, str, int, bool]]) -> None:
    with t.transaction():
        for schema, name, last, called in values:
            regclass = sql.Identifier(schema, name).as_string(t)
            t.execute("SELECT setval(%s::regclass, %s, %s)", [regclass, last, called])


#: a worker (and its connection) per this many bytes of tables, up to --jobs:
#: on a small database a connection costs more than it saves
WORKER_BYTES = 2 << 20


def useful_jobs(jobs: int, nbytes: int) -> int:
    return max(1, min(jobs, -(-nbytes // WORKER_BYTES)))


def refresh_matviews(target: str, views: list[tuple[str, str]]) -> None:
    """REFRESH each materialized view; one that reads another not yet
    populated waits for a later round."""
    pending = list(views)
    with connect(target, autocommit=True) as c:
        while pending:
            waiting = []
            for schema, name in pending:
                try:
                    c.execute(
                        sql.SQL("REFRESH MATERIALIZED VIEW {}").format(sql.Identifier(schema, name))
                    )
                except psycopg.errors.ObjectNotInPrerequisiteState:
                    waiting.append((schema, name))
            if len(waiting) == len(pending):
                raise MigrateError(
                    f"materialized view {waiting[0][0]}.{waiting[0][1]} cannot be refreshed:"
                    " it reads one that is not populated",
                    hint="REFRESH MATERIALIZED VIEW what it reads on the target, then rerun",
                )
            pending = waiting


def populated_matviews(
    src: psycopg.Connection[Any], tgt: psycopg.Connection[Any]
) -> list[tuple[str, str]]:
    """Materialized views populated on the source that the target has."""
    rows = src.execute(
        "SELECT schemaname, matviewname FROM pg_matviews WHERE ispopulated ORDER BY 1, 2"
    ).fetchall()
    there = {
        (str(r[0]), str(r[1]))
        for r in tgt.execute("SELECT schemaname, matviewname FROM pg_matviews").fetchall()
    }
    return [(str(r[0]), str(r[1])) for r in rows if (r[0], r[1]) in there]


def vacuum_analyze(
    target: str,
    tables: list[Table],
    parents: list[Table],
    jobs: int,
    conn: psycopg.Connection[Any] | None = None,
) -> None:
    """VACUUM ANALYZE each copied table, N at a time; partitioned parents get
    ANALYZE (their own statistics; VACUUM does nothing on them).  `conn`: an
    open autocommit connection to the target, used when one worker is enough."""

    stmts = [sql.SQL("VACUUM (ANALYZE) {}").format(t.ident) for t in tables]
    stmts += [sql.SQL("ANALYZE {}").format(t.ident) for t in parents]
    todo: queue.SimpleQueue[sql.Composed] = queue.SimpleQueue()
    for stmt in stmts:
        todo.put(stmt)

    def worker() -> None:
        # one connection per worker, not per table: a small database has
        # many tables that each take less time than a connection
        with connect(target, autocommit=True) as c:
            while True:
                try:
                    stmt = todo.get_nowait()
                except queue.Empty:
                    return
                c.execute(stmt)

    n = min(useful_jobs(jobs, sum(t.bytes for t in tables)), len(stmts))
    if n <= 1 and conn is not None:
        for stmt in stmts:
            conn.execute(stmt)
        return
    with ThreadPoolExecutor(max(1, n)) as ex:
        for f in [ex.submit(worker) for _ in range(n)]:
            f.result()


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
