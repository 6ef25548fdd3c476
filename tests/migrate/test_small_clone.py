"""A small database's clone: few processes and connections (its fixed cost),
and the run's lock free as soon as clone returns."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from pgferry.embedded import LocalServer
from pgferry.migrate import CloneConfig, clone, copier, schema, session, tools
from pgferry.migrate.smallcopy import SMALL_UNIT_BYTES
from pgferry.migrate.verify import VerifyConfig, verify
from tests.migrate.conftest import drop_database, new_database, rows
from tests.migrate.dbgen import generate


@pytest.fixture(scope="module")
def small_db(pgserver: LocalServer) -> Iterator[str]:
    """The realistic database at 2,000 rows: every table under 1 MiB."""
    url = new_database(pgserver, "small")
    generate(url, 2_000)
    yield url
    drop_database(pgserver, url)


def test_small_tables_in_process_and_one_index_restore(
    small_db: str, target_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    clone_module = sys.modules["pgferry.migrate.clone"]  # pgferry.migrate.clone is the function
    psql_reads: list[str] = []
    real_copy_out = copier.copy_out

    def counting_copy_out(*args: Any, **kw: Any) -> Any:
        psql_reads.append(str(args[-1]))
        return real_copy_out(*args, **kw)

    restores: list[str] = []
    real_restore = schema.restore_list

    def counting_restore(*args: Any, **kw: Any) -> None:
        restores.append(str(kw["what"]))
        real_restore(*args, **kw)

    monkeypatch.setattr(clone_module, "copy_out", counting_copy_out)
    monkeypatch.setattr(schema, "restore_list", counting_restore)
    biggest = "SELECT max(pg_relation_size(oid)) FROM pg_class WHERE relkind = 'r'"
    assert rows(small_db, biggest)[0][0] < SMALL_UNIT_BYTES
    result = clone(CloneConfig(small_db, target_db, jobs=2))
    # every table under 1 MiB: read in-process, no psql child
    assert psql_reads == []
    assert result.tables
    # small tables' indexes wait for the index phase, which is one pg_restore
    assert restores == ["indexes, constraints and foreign keys"]
    assert verify(VerifyConfig(small_db, target_db, jobs=2)).ok


def test_lock_is_free_when_clone_returns(source_db: str, target_db: str) -> None:
    clone(CloneConfig(source_db, target_db, jobs=2, tables=("app.users",)))
    with psycopg.connect(target_db, autocommit=True) as c:
        got = c.execute("SELECT pg_try_advisory_lock(%s, %s)", list(session.LOCK)).fetchone()
    assert got == (True,)


def test_unlock_frees_the_lock_while_the_connection_lives(target_db: str) -> None:
    with (
        psycopg.connect(target_db, autocommit=True) as first,
        psycopg.connect(target_db, autocommit=True) as second,
    ):
        session.lock(first, "t")
        session.unlock(first)
        session.lock(second, "t")  # raises TargetNotEmpty while first holds it


def test_debian_tools_found_without_running_them(monkeypatch: pytest.MonkeyPatch) -> None:
    if not (tools.DEBIAN_ROOT / "15" / "bin" / "pg_dump").exists():
        pytest.skip("needs Debian's PostgreSQL 15 client programs")
    tools._version_of.cache_clear()

    def no_run(*args: Any, **kw: Any) -> Any:
        raise AssertionError(f"ran {args[0]}")

    monkeypatch.setattr(subprocess, "run", no_run)
    try:
        found = tools.find_tool("pg_dump", 15)
    finally:
        tools._version_of.cache_clear()
    assert found == tools.Tool(Path("/usr/lib/postgresql/15/bin/pg_dump"), 15)


def _connections(source: str, target: str, monkeypatch: pytest.MonkeyPatch) -> tuple[int, int]:
    """How many connections to (`source`, `target`) a clone opens itself (its
    children's not counted)."""
    names = [psycopg.conninfo.conninfo_to_dict(u)["dbname"] for u in (source, target)]
    opened: list[str] = []
    real_connect = psycopg.connect

    def counting_connect(conninfo: str = "", **kw: Any) -> Any:
        opened.append(str(psycopg.conninfo.conninfo_to_dict(conninfo).get("dbname")))
        return real_connect(conninfo, **kw)

    with monkeypatch.context() as m:
        m.setattr(psycopg, "connect", counting_connect)
        clone(CloneConfig(source, target, jobs=4))
    return opened.count(names[0]), opened.count(names[1])


def test_small_clone_opens_few_target_connections(
    small_db: str, target_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a connection costs the server a process: a small database's clone keeps
    # to the main one, one data worker (its tables are far under
    # finish.WORKER_BYTES) and one for large objects; sequences and VACUUM
    # ANALYZE reuse the main one (before: a worker each per --jobs, 11 in all)
    assert _connections(small_db, target_db, monkeypatch)[1] == 3
    assert verify(VerifyConfig(small_db, target_db, jobs=2)).ok


def test_no_large_objects_no_connections_for_them(
    pgserver: LocalServer, target_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = new_database(pgserver, "nolo")
    try:
        with psycopg.connect(source, autocommit=True) as c:
            c.execute("CREATE TABLE t (id int PRIMARY KEY)")
            c.execute("INSERT INTO t SELECT generate_series(1, 100)")
        # on each side the main connection and one data worker's
        assert _connections(source, target_db, monkeypatch) == (2, 2)
        assert rows(target_db, "SELECT count(*) FROM t") == [(100,)]
    finally:
        drop_database(pgserver, source)


def test_useful_jobs_scale_with_the_data() -> None:
    from pgferry.migrate.finish import WORKER_BYTES, useful_jobs

    assert useful_jobs(4, 0) == 1
    assert useful_jobs(4, WORKER_BYTES) == 1
    assert useful_jobs(4, WORKER_BYTES + 1) == 2
    assert useful_jobs(4, 100 * WORKER_BYTES) == 4
    assert useful_jobs(1, 100 * WORKER_BYTES) == 1


def test_small_tables_analyzed_during_the_copy_keep_expression_statistics(
    pgserver: LocalServer, target_db: str
) -> None:
    # small tables are vacuumed and analyzed by their data worker as soon as
    # their rows are in, before the index phase: a table with an expression
    # index must wait for it, or ANALYZE never gathers the expression's
    # statistics (what the planner uses for WHERE lower(name) = ...)
    source = new_database(pgserver, "expr")
    try:
        with psycopg.connect(source, autocommit=True) as c:
            c.execute("CREATE TABLE plain (id int PRIMARY KEY, v text)")
            c.execute("INSERT INTO plain SELECT g, 'v' || g FROM generate_series(1, 500) g")
            c.execute("CREATE TABLE named (id int PRIMARY KEY, name text)")
            c.execute("INSERT INTO named SELECT g, 'N' || (g % 7) FROM generate_series(1, 500) g")
            c.execute("CREATE INDEX named_lower ON named (lower(name))")
        clone(CloneConfig(source, target_db, jobs=2))
        stats = "SELECT tablename, count(*) FROM pg_stats WHERE schemaname = 'public' GROUP BY 1"
        assert dict(rows(target_db, stats)) == {"plain": 2, "named": 2, "named_lower": 1}
    finally:
        drop_database(pgserver, source)
