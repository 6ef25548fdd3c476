"""Can a --table/--exclude selection be restored?  Checked before anything
is written, so no snapshot is ever reported as made that cannot be restored.

pg_dump leaves out the relations a selection drops (catalog.excluded_relations)
but keeps every schema, type and function.  A kept object that depends on a
left-out relation (a function returning SETOF its row type, a kept table's
column of that type, a policy reading it) would then fail pre- or post-data
on restore.  Foreign keys to left-out tables are not counted: restore skips
them on purpose.  Objects of extensions are not counted either: pg_dump
never dumps them one by one.
"""

from __future__ import annotations

from typing import Any

import psycopg

from pgferry.errors import SelectionNotRestorable

DEPENDENTS_SQL = """
WITH ex(rel) AS (  -- an extension's own tables come back with the extension
    SELECT x FROM unnest(%s::oid[]) x WHERE NOT EXISTS (
        SELECT 1 FROM pg_depend e WHERE e.classid = 'pg_class'::regclass
           AND e.objid = x AND e.deptype = 'e')
),
left_out(classid, objid, rel) AS (
    SELECT 'pg_class'::regclass, rel, rel FROM ex
    UNION ALL SELECT 'pg_type'::regclass, c.reltype, c.oid FROM pg_class c JOIN ex ON ex.rel = c.oid
    UNION ALL SELECT 'pg_type'::regclass, t.typarray, c.oid
      FROM pg_class c JOIN ex ON ex.rel = c.oid JOIN pg_type t ON t.oid = c.reltype
),
deps AS (
    SELECT d.classid, d.objid, d.objsubid, l.rel AS needs,
           CASE d.classid
             WHEN 'pg_class'::regclass THEN coalesce(
                  (SELECT indrelid FROM pg_index WHERE indexrelid = d.objid), d.objid)
             WHEN 'pg_attrdef'::regclass THEN (SELECT adrelid FROM pg_attrdef WHERE oid = d.objid)
             WHEN 'pg_constraint'::regclass THEN
                  (SELECT conrelid FROM pg_constraint WHERE oid = d.objid)
             WHEN 'pg_trigger'::regclass THEN (SELECT tgrelid FROM pg_trigger WHERE oid = d.objid)
             WHEN 'pg_rewrite'::regclass THEN (SELECT ev_class FROM pg_rewrite WHERE oid = d.objid)
             WHEN 'pg_policy'::regclass THEN (SELECT polrelid FROM pg_policy WHERE oid = d.objid)
             WHEN 'pg_type'::regclass THEN (SELECT typrelid FROM pg_type WHERE oid = d.objid)
           END AS owner_rel,
           d.classid = 'pg_constraint'::regclass AND EXISTS (
               SELECT 1 FROM pg_constraint k WHERE k.oid = d.objid AND k.contype = 'f') AS fk
      FROM pg_depend d
      JOIN left_out l ON l.classid = d.refclassid AND l.objid = d.refobjid
     WHERE d.deptype IN ('n', 'a')
       AND NOT EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = d.classid
                       AND e.objid = d.objid AND e.deptype = 'e')
)
SELECT DISTINCT o.type, o.identity, n.nspname, c.relname
  FROM deps
  JOIN pg_class c ON c.oid = deps.needs JOIN pg_namespace n ON n.oid = c.relnamespace
  CROSS JOIN LATERAL pg_identify_object(deps.classid, deps.objid, deps.objsubid) o
 WHERE NOT deps.fk AND (deps.owner_rel IS NULL OR deps.owner_rel <> ALL(SELECT rel FROM ex))
 ORDER BY 1, 2, 3, 4
"""


def problems(conn: psycopg.Connection[Any], excluded: list[str]) -> list[tuple[str, str]]:
    """(kept object, left-out table it needs) pairs; `excluded` are the exact
    pg_dump -T patterns of catalog.excluded_relations."""
    if not excluded:
        return []
    oids = [
        r[0]
        for r in conn.execute(
            "SELECT to_regclass(p)::oid FROM unnest(%s::text[]) p", [excluded]
        ).fetchall()
        if r[0] is not None
    ]
    rows = conn.execute(DEPENDENTS_SQL, [oids]).fetchall()
    return [(f"{kind} {ident}", f"{schema}.{table}") for kind, ident, schema, table in rows]


def check(conn: psycopg.Connection[Any], excluded: list[str]) -> None:
    """Raise SelectionNotRestorable when a kept object needs a left-out table."""
    found = problems(conn, excluded)
    if not found:
        return
    what, needs = found[0]
    more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
    raise SelectionNotRestorable(
        f"this selection could not be restored: {what} needs {needs},"
        f" which the selection leaves out{more}",
        hint=f"add --table {needs} (or stop excluding it), or drop or change {what}",
    )
