"""`verify`: compare two databases table by table, server-side.

Each table is summarised on both sides by its row count and an
order-independent checksum: the sum of a 64-bit hash of every row's text.
Only two numbers per table cross the network; sessions use fixed DateStyle,
TimeZone and float output so equal rows print (and hash) equally.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from pgferry.errors import UsageError
from pgferry.migrate import catalog
from pgferry.migrate.finish import connect_source
from pgferry.target import connect

SESSION = (
    "SET DateStyle = ISO; SET IntervalStyle = postgres; SET TimeZone = 'UTC';"
    " SET extra_float_digits = 3; SET bytea_output = hex"
)
SUMMARY = (
    "SELECT count(*), coalesce(sum(hashtextextended(t::text, 0)::numeric), 0)::text"
    " FROM ONLY {} AS t"
)
MATVIEWS = (
    "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
    " WHERE c.relkind = 'm' AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
)


@dataclass(frozen=True)
class VerifyConfig:
    source: str
    target: str
    tables: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    jobs: int = 4


@dataclass
class Check:
    """One object compared: a table, materialized view, sequence or the large objects."""

    kind: str
    name: str
    source_rows: int | None = None
    target_rows: int | None = None
    source_sum: str | None = None
    target_sum: str | None = None

    @property
    def status(self) -> str:
        if self.source_rows is None:
            return "missing on source"
        if self.target_rows is None:
            return "missing on target"
        if self.source_rows != self.target_rows:
            return "row count differs"
        if self.source_sum != self.target_sum:
            return "content differs"
        return "ok"


@dataclass
class VerifyResult:
    checks: list[Check] = field(default_factory=list)

    @property
    def differences(self) -> list[Check]:
        return [c for c in self.checks if c.status != "ok"]

    @property
    def ok(self) -> bool:
        return not self.differences


def _objects(conn: psycopg.Connection[Any], cfg: VerifyConfig) -> dict[tuple[str, str], str]:
    sel = catalog.select_tables(conn, list(cfg.tables), list(cfg.exclude))
    out = {("table", t.qualified): t.pattern for t in sel.leaves}
    for schema, name in conn.execute(MATVIEWS):
        t = catalog.Table(0, schema, name, False, 0, [], None, None)
        if (not cfg.tables or any(catalog._matches(t, p) for p in cfg.tables)) and not any(
            catalog._matches(t, p) for p in cfg.exclude
        ):
            out[("materialized view", t.qualified)] = t.pattern
    tables = None if sel.everything else sel.tables
    for schema, name, _last, _called in catalog.sequences(conn, tables, not sel.picked):
        out[("sequence", f"{schema}.{name}")] = f"{schema}\x00{name}"
    if not sel.picked:
        out[("large objects", "(all)")] = ""
    conn.rollback()
    return out


def _summary(conn: psycopg.Connection[Any], kind: str, name: str) -> tuple[int, str]:
    schema, _, rel = name.partition(".")
    if kind == "sequence":
        row = conn.execute(
            sql.SQL("SELECT 1, last_value::text || '/' || is_called::text FROM {}").format(
                sql.Identifier(schema, rel)
            )
        ).fetchone()
    elif kind == "large objects":
        row = conn.execute(
            "SELECT count(*), coalesce(sum(hashtextextended("
            "oid::text || ':' || md5(lo_get(oid)), 0)::numeric), 0)::text"
            " FROM pg_largeobject_metadata"
        ).fetchone()
    else:
        row = conn.execute(sql.SQL(SUMMARY).format(sql.Identifier(schema, rel))).fetchone()
    conn.rollback()
    assert row is not None
    return int(row[0]), str(row[1])


def verify(cfg: VerifyConfig) -> VerifyResult:
    if cfg.jobs < 1:
        raise UsageError(f"--jobs must be at least 1, not {cfg.jobs}")
    local = threading.local()
    opened: list[psycopg.Connection[Any]] = []
    lock = threading.Lock()

    def conn_for(side: str) -> psycopg.Connection[Any]:
        c: psycopg.Connection[Any] | None = getattr(local, side, None)
        if c is None:
            url = cfg.source if side == "source" else cfg.target
            c = connect_source(url) if side == "source" else connect(url)
            c.execute(SESSION)
            c.commit()
            setattr(local, side, c)
            with lock:
                opened.append(c)
        return c

    try:
        src_objs = _objects(conn_for("source"), cfg)
        tgt_objs = _objects(conn_for("target"), cfg)
        keys = sorted(set(src_objs) | set(tgt_objs))
        checks = {k: Check(k[0], k[1]) for k in keys}

        def one(job: tuple[str, tuple[str, str]]) -> None:
            side, (kind, name) = job
            rows, total = _summary(conn_for(side), kind, name)
            check = checks[(kind, name)]
            if side == "source":
                check.source_rows, check.source_sum = rows, total
            else:
                check.target_rows, check.target_sum = rows, total

        jobs = [("source", k) for k in src_objs] + [("target", k) for k in tgt_objs]
        with ThreadPoolExecutor(cfg.jobs) as ex:
            list(ex.map(one, jobs))
    finally:
        for c in opened:
            c.close()
    return VerifyResult([checks[k] for k in keys])
