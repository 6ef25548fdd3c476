"""What to copy: tables, their copyable columns, split ranges, sequences.

Everything here reads the source inside the caller's transaction, so when
that transaction holds the exported snapshot the plan matches the data.
Patterns are shell globs (`*`, `?`) on `schema.table`, or on the bare
table name when the pattern has no dot.
"""

from __future__ import annotations

import fnmatch
import math
import shlex
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from pgferry.errors import SourcePermissionDenied, TargetTooOld

_SYSTEM = ("pg_catalog", "information_schema", "pgferry")

TABLES_SQL = """
SELECT c.oid, n.nspname, c.relname, c.relkind, c.relispartition,
       pg_relation_size(c.oid) AS bytes,
       ARRAY(SELECT a.attname::text FROM pg_attribute a
             WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
               AND a.attgenerated = '' ORDER BY a.attnum) AS columns,
       (SELECT a.attname::text FROM pg_index i
          JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
         WHERE i.indrelid = c.oid AND i.indisprimary AND i.indnkeyatts = 1
           AND a.atttypid IN ('int2'::regtype, 'int4'::regtype, 'int8'::regtype)) AS int_key,
       (SELECT p.inhparent FROM pg_inherits p WHERE p.inhrelid = c.oid
         AND c.relispartition) AS parent
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'p')
   AND n.nspname <> ALL(%s) AND n.nspname !~ '^pg_(toast|temp)'
   AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                   AND d.objid = c.oid AND d.deptype = 'e')
 ORDER BY 1
"""


@dataclass
class Table:
    oid: int
    schema: str
    name: str
    partitioned: bool
    bytes: int
    columns: list[str]
    int_key: str | None
    parent: int | None

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"

    @property
    def ident(self) -> sql.Identifier:
        return sql.Identifier(self.schema, self.name)

    @property
    def pattern(self) -> str:
        """An exact pg_dump -t pattern for this table (quotes make it literal)."""

        def q(s: str) -> str:
            return '"' + s.replace('"', '""') + '"'

        return f"{q(self.schema)}.{q(self.name)}"


@dataclass
class Unit:
    """One COPY: a whole table, or a range of it."""

    table: Table
    where: sql.Composable | None = None
    part: int = 0
    parts: int = 1
    est_bytes: int = 0

    @property
    def key(self) -> str:
        t = self.table.qualified
        return t if self.parts == 1 else f"{t}[{self.part + 1}/{self.parts}]"


@dataclass
class Selection:
    tables: list[Table] = field(default_factory=list)
    #: leaf tables holding data, what we COPY
    leaves: list[Table] = field(default_factory=list)
    #: no --table and no --exclude
    everything: bool = True
    #: --table given: like pg_dump -t, large objects and free-standing
    #: sequences are left out
    picked: bool = False


def _matches(table: Table, pattern: str) -> bool:
    subject = table.qualified if "." in pattern else table.name
    return fnmatch.fnmatchcase(subject, pattern)


def tables_where(conn: psycopg.Connection[Any], tables: list[Table], condition: str) -> list[Table]:
    """The `tables` for which `condition` (SQL over pg_class `c`, one of ours,
    never user input) holds on this connection."""
    if not tables:
        return []
    query = sql.SQL("SELECT c.oid FROM pg_class c WHERE c.oid = ANY(%s) AND ({})").format(
        sql.SQL(condition)
    )
    found = {int(r[0]) for r in conn.execute(query, [[t.oid for t in tables]])}
    return [t for t in tables if t.oid in found]


def unreadable(conn: psycopg.Connection[Any], tables: list[Table]) -> list[Table]:
    """The tables the connection's role has no SELECT privilege on."""
    return tables_where(conn, tables, "NOT has_table_privilege(c.oid, 'SELECT')")


def filtered(conn: psycopg.Connection[Any], tables: list[Table]) -> list[Table]:
    """The tables whose row-level security policies apply to the connection's
    role: it would read only the rows they let it see."""
    return tables_where(conn, tables, "row_security_active(c.oid)")


def check_readable(conn: psycopg.Connection[Any], tables: list[Table]) -> None:
    """SourcePermissionDenied, before anything starts, when the source role
    cannot read a selected table (pg_dump locks each one, the copy reads it):
    it named the table only deep in pg_dump's output, after the run had begun.
    Also when policies would show the role only some rows of a table: the
    copy reads with row_security off, which would fail on it half-way."""
    role = conn.info.user
    names = [t.qualified for t in unreadable(conn, tables)]
    if names:
        raise SourcePermissionDenied(
            f"the source role {role} cannot read table {names[0]}{_more(names, 'nor')}",
            hint=f"GRANT SELECT on it to {role} on the source, or leave it out with"
            f" --exclude {shlex.quote(names[0])}",
            table=names[0],
            sqlstate="42501",
        )
    names = [t.qualified for t in filtered(conn, tables)]
    if names:
        raise SourcePermissionDenied(
            f"row-level security policies would hide rows of table {names[0]}{_more(names, 'and')}"
            f" from the source role {role}",
            hint="read the source as a superuser or a role with BYPASSRLS (or as the"
            " table's owner when it does not FORCE ROW LEVEL SECURITY), or leave it out"
            f" with --exclude {shlex.quote(names[0])}",
            table=names[0],
            sqlstate="42501",
        )


def _more(names: list[str], word: str) -> str:
    if len(names) < 2:
        return ""
    listed = ", ".join(names[1:4]) + (", ..." if len(names) > 4 else "")
    return f" ({word} {len(names) - 1} more: {listed})"


def select_tables(
    conn: psycopg.Connection[Any], include: list[str], exclude: list[str]
) -> Selection:
    rows = conn.execute(TABLES_SQL, [list(_SYSTEM)]).fetchall()
    tables = [Table(r[0], r[1], r[2], r[3] == "p", int(r[5]), list(r[6]), r[7], r[8]) for r in rows]
    by_oid = {t.oid: t for t in tables}

    def ancestors(t: Table) -> list[Table]:
        out = [t]
        while out[-1].parent is not None and out[-1].parent in by_oid:
            out.append(by_oid[out[-1].parent])
        return out

    def hit(t: Table, patterns: list[str]) -> bool:
        # a partition follows its partitioned parent
        return any(_matches(a, p) for a in ancestors(t) for p in patterns)

    chosen = [
        t for t in tables if (not include or hit(t, include)) and not (exclude and hit(t, exclude))
    ]
    return Selection(
        tables=chosen,
        leaves=[t for t in chosen if not t.partitioned],
        everything=not include and not exclude,
        picked=bool(include),
    )


def _column_list(table: Table) -> sql.Composable:
    # a table without columns still has rows: COPY writes one empty line each
    if not table.columns:
        return sql.SQL("")
    cols = sql.SQL(", ").join(sql.Identifier(c) for c in table.columns)
    return sql.SQL(" ({})").format(cols)


def copy_out_sql(unit: Unit) -> sql.Composed:
    t = unit.table
    cols = sql.SQL(", ").join(sql.Identifier(c) for c in t.columns)
    if unit.where is None:
        return sql.SQL("COPY {}{} TO STDOUT").format(t.ident, _column_list(t))
    return sql.SQL("COPY (SELECT {} FROM ONLY {} WHERE {}) TO STDOUT").format(
        cols, t.ident, unit.where
    )


def copy_in_sql(table: Table, freeze: bool) -> sql.Composed:
    opts = sql.SQL(" WITH (FREEZE)") if freeze else sql.SQL("")
    return sql.SQL("COPY {}{} FROM STDIN{}").format(table.ident, _column_list(table), opts)


def plan_units(
    conn: psycopg.Connection[Any], tables: list[Table], split_bytes: int | None, jobs: int
) -> list[Unit]:
    """Units, largest first; tables above `split_bytes` become ranges on their
    integer primary key when they have one, else on ctid (block) ranges."""
    units: list[Unit] = []
    for t in tables:
        if not split_bytes or t.bytes <= split_bytes:
            units.append(Unit(t, est_bytes=t.bytes))
            continue
        parts = max(2, min(math.ceil(t.bytes / split_bytes), 4 * jobs))
        units.extend(_split(conn, t, parts))
    units.sort(key=lambda u: u.est_bytes, reverse=True)
    return units


def _split(conn: psycopg.Connection[Any], t: Table, parts: int) -> list[Unit]:
    if t.int_key:
        key = sql.Identifier(t.int_key)
        row = conn.execute(
            sql.SQL("SELECT min({k}), max({k}) FROM ONLY {t}").format(k=key, t=t.ident)
        ).fetchone()
        if row is None or row[0] is None:
            return [Unit(t, est_bytes=t.bytes)]
        lo, hi = int(row[0]), int(row[1])
        bounds = [lo + (hi - lo + 1) * i // parts for i in range(1, parts)]
        conds = _ranges(key, [sql.Literal(b) for b in bounds])
    else:
        block_size = int(conn.execute("SELECT current_setting('block_size')::int").fetchone()[0])  # type: ignore[index]
        pages = max(1, t.bytes // block_size)
        bounds_i = [pages * i // parts for i in range(1, parts)]
        conds = _ranges(
            sql.SQL("ctid"), [sql.SQL("{}::tid").format(sql.Literal(f"({b},0)")) for b in bounds_i]
        )
    est = t.bytes // len(conds)
    return [Unit(t, c, i, len(conds), est) for i, c in enumerate(conds)]


def _ranges(col: sql.Composable, bounds: list[sql.Composable]) -> list[sql.Composable]:
    """Half-open ranges; the first and last are open-ended so nothing is lost
    to a bound computed a little off (relation growth, rounding)."""
    out: list[sql.Composable] = []
    for i in range(len(bounds) + 1):
        parts = []
        if i > 0:
            parts.append(sql.SQL("{} >= {}").format(col, bounds[i - 1]))
        if i < len(bounds):
            parts.append(sql.SQL("{} < {}").format(col, bounds[i]))
        out.append(sql.SQL(" AND ").join(parts))
    return out


def sequences(
    conn: psycopg.Connection[Any], tables: list[Table] | None, free_standing: bool = True
) -> list[tuple[str, str, int, bool]]:
    """(schema, name, last_value, is_called) of the sequences to carry over:
    all of them, or those `tables` own or call in a default (plus the
    free-standing ones)."""
    used = set() if tables is None else used_sequences(conn, {t.oid for t in tables})
    rows = conn.execute(
        """
        SELECT n.nspname, c.relname, d.refobjid, c.oid
          FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          LEFT JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = c.oid
               AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')
         WHERE c.relkind = 'S' AND n.nspname <> ALL(%s) AND NOT EXISTS (
               SELECT 1 FROM pg_depend e WHERE e.classid = 'pg_class'::regclass
                AND e.objid = c.oid AND e.deptype = 'e')
         ORDER BY 1, 2
        """,
        [list(_SYSTEM)],
    ).fetchall()
    wanted = None if tables is None else {t.oid for t in tables}
    out = []
    for schema, name, owner, oid in rows:
        left_out = (owner is None and not free_standing) or (
            owner is not None and wanted is not None and owner not in wanted
        )
        if left_out and oid not in used:
            continue
        last, called = conn.execute(
            sql.SQL("SELECT last_value, is_called FROM {}").format(sql.Identifier(schema, name))
        ).fetchone() or (1, False)
        out.append((schema, name, int(last), bool(called)))
    return out


def extensions(conn: psycopg.Connection[Any]) -> list[str]:
    rows = conn.execute("SELECT extname FROM pg_extension WHERE extname <> 'plpgsql'").fetchall()
    return [r[0] for r in rows]


def server_major(conn: psycopg.Connection[Any]) -> int:
    return int(conn.info.server_version) // 10000


def check_not_older(source_major: int, tgt: psycopg.Connection[Any], source: str) -> None:
    """TargetTooOld, before anything starts, when the target's major version
    is older than `source_major`: the schema pg_dump writes uses what the
    newer server has (settings, syntax) and fails half-way in pre-data."""
    target_major = server_major(tgt)
    if target_major < source_major:
        raise TargetTooOld(
            f"the target runs PostgreSQL {target_major}, older than {source} ({source_major}):"
            " a schema cannot be restored into an older major version",
            hint=f"use a target running PostgreSQL {source_major} or later",
        )


def _quote(s: str) -> str:
    return '"' + s.replace('"', '""') + '"'


def _relations(conn: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
    return conn.execute(
        """
        SELECT c.oid, n.nspname, c.relname, c.relkind,
               ARRAY(SELECT DISTINCT d.refobjid FROM pg_rewrite r
                       JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid
                      WHERE r.ev_class = c.oid AND d.refclassid = 'pg_class'::regclass
                        AND d.refobjid <> c.oid) AS reads,
               (SELECT d.refobjid FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                   AND d.objid = c.oid AND d.refclassid = 'pg_class'::regclass
                   AND d.deptype IN ('a', 'i') LIMIT 1) AS owner
          FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
           AND n.nspname <> ALL(%s) AND n.nspname !~ '^pg_(toast|temp)'
        """,
        [list(_SYSTEM)],
    ).fetchall()


def kept_relations(conn: psycopg.Connection[Any], keep: set[int]) -> set[int]:
    """The kept tables plus the views that read only kept relations."""
    kept = set(keep)
    views = [r for r in _relations(conn) if r[3] in ("v", "m")]
    changed = True
    while changed:  # a view is kept when everything it reads is kept
        changed = False
        for oid, _s, _n, _k, reads, _o in views:
            if oid not in kept and all(x in kept for x in reads):
                kept.add(oid)
                changed = True
    return kept


def left_out_views(conn: psycopg.Connection[Any], keep: set[int], kept: set[int]) -> list[str]:
    """Views and materialized views left out only because they read a table
    left out ('schema.name')."""
    return sorted(
        f"{r[1]}.{r[2]}" for r in _relations(conn) if r[3] in ("v", "m") and r[0] not in kept
    )


def used_sequences(conn: psycopg.Connection[Any], keep: set[int]) -> set[int]:
    """Sequences the kept tables' column defaults call (nextval), whoever owns them."""
    rows = conn.execute(
        "SELECT d.refobjid FROM pg_attrdef a JOIN pg_depend d"
        " ON d.classid = 'pg_attrdef'::regclass AND d.objid = a.oid"
        " AND d.refclassid = 'pg_class'::regclass"
        " JOIN pg_class s ON s.oid = d.refobjid AND s.relkind = 'S'"
        " WHERE a.adrelid = ANY(%s)",
        [list(keep)],
    ).fetchall()
    return {int(r[0]) for r in rows}


def excluded_relations(conn: psycopg.Connection[Any], keep: set[int]) -> list[str]:
    """pg_dump -T patterns for everything a table selection leaves out: the
    other tables, views that read any of them, sequences they own (unless a
    kept table's default uses it).  Schemas, types, functions and extensions
    stay, so the kept tables can be built."""
    kept = kept_relations(conn, keep)
    used = used_sequences(conn, keep)
    out = []
    for oid, schema, name, kind, _reads, owner in _relations(conn):
        if kind == "S":
            if owner is not None and owner not in kept and oid not in used:
                out.append(f"{_quote(schema)}.{_quote(name)}")
        elif oid not in kept:
            out.append(f"{_quote(schema)}.{_quote(name)}")
    return out


def rowtype_users(conn: psycopg.Connection[Any], kept: set[int]) -> dict[int, str]:
    """Functions whose arguments or result use the row type (or its array)
    of a relation left out: {pg_proc oid: note}.  They cannot be created
    without it."""
    rows = conn.execute(
        """
        SELECT DISTINCT p.oid, p.oid::regprocedure::text, c.oid::regclass::text
          FROM pg_depend d JOIN pg_proc p ON p.oid = d.objid
          JOIN pg_type t ON t.oid = d.refobjid
          LEFT JOIN pg_type e ON e.oid = t.typelem AND t.typelem <> 0
          JOIN pg_class c ON c.oid = coalesce(nullif(t.typrelid, 0), e.typrelid)
         WHERE d.classid = 'pg_proc'::regclass AND d.refclassid = 'pg_type'::regclass
           AND c.relkind IN ('r', 'p', 'v', 'm', 'f') AND NOT (c.oid = ANY(%s))
           AND NOT EXISTS (SELECT 1 FROM pg_depend x WHERE x.classid = 'pg_proc'::regclass
                           AND x.objid = p.oid AND x.deptype = 'e')
        """,
        [list(kept)],
    ).fetchall()
    return {
        int(r[0]): f"function {r[1]} skipped: it uses the row type of {r[2]}, which is left out"
        for r in rows
    }


def publication_tables_left_out(conn: psycopg.Connection[Any], kept: set[int]) -> set[int]:
    """pg_publication_rel oids of tables left out (pg_dump 18 still writes
    their ALTER PUBLICATION ... ADD TABLE)."""
    rows = conn.execute("SELECT oid, prrelid FROM pg_publication_rel").fetchall()
    return {int(r[0]) for r in rows if int(r[1]) not in kept}


def foreign_key_oids(conn: psycopg.Connection[Any], keep: set[int]) -> set[int]:
    """pg_constraint oids of kept tables' foreign keys that point at tables
    left out."""
    rows = conn.execute(
        "SELECT oid, conrelid, confrelid FROM pg_constraint WHERE contype = 'f'"
    ).fetchall()
    return {int(r[0]) for r in rows if r[1] in keep and r[2] not in keep}


def dangling_foreign_keys(conn: psycopg.Connection[Any], keep: set[int]) -> set[tuple[str, str]]:
    """(schema, 'table constraint') of kept tables' foreign keys that point
    at tables left out: pg_restore could not build them."""
    rows = conn.execute(
        """
        SELECT n.nspname, c.relname || ' ' || k.conname, k.conrelid, k.confrelid
          FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid
          JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE k.contype = 'f'
        """
    ).fetchall()
    return {(r[0], r[1]) for r in rows if r[2] in keep and r[3] not in keep}
