"""`verify`: compare two databases, data and schema, server-side.

Data: each table is summarised on both sides by its row count and an
order-independent checksum: the sum of a 64-bit hash of every row's text.
Only two numbers per table cross the network; sessions use fixed DateStyle,
TimeZone and float output so equal rows print (and hash) equally.  A
materialized view that is not populated is compared by that state.

Schema: every object's catalog attributes (see verify_schema).

Exit codes follow from the result: identical, differences, or
`VerifyIncomplete` when the comparison itself could not finish.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from pgferry.errors import PgferryError, UsageError, VerifyIncomplete
from pgferry.migrate import catalog
from pgferry.migrate.finish import connect_source
from pgferry.migrate.verify_schema import (
    Attrs,
    Key,
    Scope,
    differing,
    display_name,
    read_schema,
    redeparse_views,
)
from pgferry.target import connect

# row_security off, as pg_dump: a table whose policies would hide rows from
# this role fails the run (42501) instead of comparing only the visible rows
SESSION = (
    "SET DateStyle = ISO; SET IntervalStyle = postgres; SET TimeZone = 'UTC';"
    " SET extra_float_digits = 3; SET bytea_output = hex; SET row_security = off;"
    " SET lc_monetary = 'C'; SET client_encoding = 'UTF8'"
)
# schema sessions only: every name deparsed schema-qualified, on both sides
SCHEMA_SESSION = SESSION + "; SET search_path = pg_catalog"
SUMMARY = (
    "SELECT count(*), coalesce(sum(hashtextextended(t::text, 0)::numeric), 0)::text"
    " FROM ONLY {} AS t"
)
# databases of different encodings store the same text as different bytes,
# and the same bytes (text stored wrongly) as different text: hash the text
# as UTF-8 on both sides
SIDES = ("source", "target")
SUMMARY_UTF8 = (
    "SELECT count(*), coalesce(sum(hashtextextended("
    "md5(convert_to(t::text, 'UTF8')), 0)::numeric), 0)::text FROM ONLY {} AS t"
)
# views and materialized views, with the relations their queries read
VIEWS = """
SELECT n.nspname, c.relname, c.relkind,
       ARRAY(SELECT DISTINCT jsonb_build_array(rn.nspname, rc.relname)
               FROM pg_rewrite r
               JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid
                AND d.refclassid = 'pg_class'::regclass AND d.refobjid <> c.oid
               JOIN pg_class rc ON rc.oid = d.refobjid
               JOIN pg_namespace rn ON rn.oid = rc.relnamespace
              WHERE r.ev_class = c.oid
                AND rn.nspname NOT IN ('pg_catalog', 'information_schema'))
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('v', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
"""
POPULATED = (
    "SELECT c.relispopulated FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
    " WHERE n.nspname = %s AND c.relname = %s"
)
NOT_POPULATED = "(not populated)"
_HINT = "check that both servers are up and reachable, then run verify again"
_PRIVILEGE_HINT = (
    "run verify as a role that can read every compared table and large object"
    " in full (the owner, or a superuser; a role with BYPASSRLS past row-level"
    " security), or leave the table out with --exclude"
)


@dataclass(frozen=True)
class VerifyConfig:
    source: str
    target: str
    tables: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    jobs: int = 4
    #: compare rows (tables, materialized views, sequence values, large objects)
    data: bool = True
    #: compare the schema objects
    schema: bool = True
    #: compare owners (off to match a clone made with --no-owner)
    owners: bool = True
    #: compare grants and default privileges (off to match --no-acl)
    acl: bool = True


@dataclass
class Check:
    """One object compared: rows of a table, materialized view, sequence or
    the large objects; or (`changes` not None) a schema object."""

    kind: str
    name: str
    source_rows: int | None = None
    target_rows: int | None = None
    source_sum: str | None = None
    target_sum: str | None = None
    #: schema objects: the attributes that differ, as 'attr: source -> target'
    changes: list[str] | None = None
    #: schema objects: 'source' or 'target' when it exists on one side only
    missing: str | None = None

    @property
    def status(self) -> str:
        if self.changes is not None:
            if self.missing:
                return f"missing on {self.missing}"
            return "differs: " + "; ".join(self.changes) if self.changes else "ok"
        if self.source_rows is None:
            return "missing on source"
        if self.target_rows is None:
            return "missing on target"
        if self.source_sum != self.target_sum and NOT_POPULATED in (
            self.source_sum,
            self.target_sum,
        ):
            side = "source" if self.source_sum == NOT_POPULATED else "target"
            return f"not populated on {side}"
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


# kind, display name, then schema and relation: "a.b"."c" and "a"."b.c" display alike
DataKey = tuple[str, str, str, str]
Target = tuple[str, str]  # schema, relation


def _matches(schema: str, name: str, cfg: VerifyConfig) -> bool:
    t = catalog.Table(0, schema, name, False, 0, [], None, None)
    return (not cfg.tables or any(catalog._matches(t, p) for p in cfg.tables)) and not any(
        catalog._matches(t, p) for p in cfg.exclude
    )


def _plan(
    conn: psycopg.Connection[Any], cfg: VerifyConfig, side: str
) -> tuple[dict[DataKey, Target], Scope]:
    """The data checks of one side (display key -> schema and relation), and
    the scope of its schema checks."""
    sel = catalog.select_tables(conn, list(cfg.tables), list(cfg.exclude))
    data = {("table", t.qualified, t.schema, t.name): (t.schema, t.name) for t in sel.leaves}
    relations = {(t.schema, t.name) for t in sel.tables}
    views = {
        (schema, name): (relkind, {tuple(d) for d in deps})
        for schema, name, relkind, deps in conn.execute(VIEWS)
        if _matches(schema, name, cfg)
    }
    # a view over a table left out cannot be carried: neither can views over it
    if side == "source" and cfg.tables and not sel.tables and not views:
        # comparing nothing would print "identical"
        raise UsageError(
            f"no source table or view matches --table {' '.join(cfg.tables)}",
            hint="patterns are globs on schema.table (or on table alone)",
        )
    while drop := [v for v, (_, deps) in views.items() if not deps <= relations | set(views)]:
        for v in drop:
            del views[v]
    for (schema, name), (relkind, _deps) in views.items():
        relations.add((schema, name))
        if relkind == "m":
            data[("materialized view", f"{schema}.{name}", schema, name)] = (schema, name)
    tables = None if sel.everything else sel.tables
    for schema, name, _last, _called in catalog.sequences(conn, tables, not sel.picked):
        data[("sequence", f"{schema}.{name}", schema, name)] = (schema, name)
        relations.add((schema, name))
    if not sel.picked:
        data[("large objects", "(all)", "", "")] = ("", "")
    conn.rollback()
    scope = Scope(
        relations=None if sel.everything else frozenset(relations),
        database_wide=not sel.picked,
        owners=cfg.owners,
        acl=cfg.acl,
    )
    return data, scope


def _summary(
    conn: psycopg.Connection[Any], kind: str, target: Target, summary: str = SUMMARY
) -> tuple[int, str]:
    schema, rel = target
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
    elif kind == "materialized view" and conn.execute(POPULATED, target).fetchone() == (False,):
        row = (0, NOT_POPULATED)  # reading it would fail: its state is what we compare
    else:
        row = conn.execute(sql.SQL(summary).format(sql.Identifier(schema, rel))).fetchone()
    conn.rollback()
    assert row is not None
    return int(row[0]), str(row[1])


def _schema_checks(
    src: dict[Key, Attrs], tgt: dict[Key, Attrs], target: psycopg.Connection[Any]
) -> list[Check]:
    redeparse_views(target, src, tgt)
    out = []
    for key in sorted(set(src) | set(tgt)):
        check = Check(key[0], display_name(key), changes=[])
        if key not in src:
            check.missing = "source"
        elif key not in tgt:
            check.missing = "target"
        else:
            check.changes = differing(key[0], src[key], tgt[key])
        out.append(check)
    return out


def verify(cfg: VerifyConfig) -> VerifyResult:
    """Compare cfg.source and cfg.target; VerifyIncomplete when that cannot finish."""
    if cfg.jobs < 1:
        raise UsageError(f"--jobs must be at least 1, not {cfg.jobs}")
    if not cfg.data and not cfg.schema:
        raise UsageError("--data-only and --schema-only exclude each other", hint="pick one")
    try:
        return _verify(cfg)
    except (UsageError, VerifyIncomplete):
        raise
    except PgferryError as e:
        raise VerifyIncomplete(
            f"verify could not finish: {e.what}", hint=e.hint or _HINT, sqlstate=e.sqlstate
        ) from e
    except psycopg.Error as e:
        raise _incomplete(e, None) from e


def _incomplete(e: psycopg.Error, side: str | None) -> VerifyIncomplete:
    where = f"{side}: " if side else ""
    hint = _PRIVILEGE_HINT if e.sqlstate == "42501" else _HINT
    what = e.diag.message_primary or str(e)
    return VerifyIncomplete(
        f"verify could not finish: {where}{what}", hint=hint, sqlstate=e.sqlstate
    )


def _verify(cfg: VerifyConfig) -> VerifyResult:
    local = threading.local()
    opened: list[psycopg.Connection[Any]] = []
    lock = threading.Lock()

    def conn_for(side: str, session: str = SESSION) -> psycopg.Connection[Any]:
        attr = side if session == SESSION else side + "_schema"
        c: psycopg.Connection[Any] | None = getattr(local, attr, None)
        if c is None:
            url = cfg.source if side == "source" else cfg.target
            c = connect_source(url) if side == "source" else connect(url)
            with lock:
                opened.append(c)
            c.execute(session)
            c.commit()
            setattr(local, attr, c)
        return c

    def plan(side: str) -> tuple[dict[DataKey, Target], Scope]:
        try:
            return _plan(conn_for(side), cfg, side)
        except psycopg.Error as e:
            raise _incomplete(e, side) from e

    try:
        src_objs, src_scope = plan("source")
        tgt_objs, tgt_scope = plan("target")
        encodings = {conn_for(side).info.parameter_status("server_encoding") for side in SIDES}
        summary = SUMMARY if len(encodings) == 1 else SUMMARY_UTF8
        checks: dict[DataKey, Check] = {}
        if cfg.data:
            keys = sorted(set(src_objs) | set(tgt_objs))
            checks = {k: Check(k[0], k[1]) for k in keys}
        schema: dict[str, dict[Key, Attrs]] = {}
        # the schema connections are kept for the target's re-deparsing
        schema_conns: dict[str, psycopg.Connection[Any]] = {}

        def one(job: tuple[str, DataKey | None]) -> None:
            try:
                compare(*job)
            except psycopg.Error as e:
                raise _incomplete(e, job[0]) from e

        def compare(side: str, key: DataKey | None) -> None:
            if key is None:
                conn = schema_conns[side] = conn_for(side, SCHEMA_SESSION)
                schema[side] = read_schema(conn, src_scope if side == "source" else tgt_scope)
                return
            objs = src_objs if side == "source" else tgt_objs
            rows, total = _summary(conn_for(side), key[0], objs[key], summary)
            check = checks[key]
            if side == "source":
                check.source_rows, check.source_sum = rows, total
            else:
                check.target_rows, check.target_sum = rows, total

        jobs: list[tuple[str, DataKey | None]] = []
        if cfg.schema:
            jobs += [("source", None), ("target", None)]
        if cfg.data:
            jobs += [("source", k) for k in src_objs] + [("target", k) for k in tgt_objs]
        with ThreadPoolExecutor(cfg.jobs) as ex:
            list(ex.map(one, jobs))
        result = [checks[k] for k in sorted(checks)]
        if cfg.schema:
            result += _schema_checks(schema["source"], schema["target"], schema_conns["target"])
    finally:
        for c in opened:
            c.close()
    return VerifyResult(result)
