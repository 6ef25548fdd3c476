"""The schema half of `verify`: every object, read from the catalogs of both
servers and compared attribute by attribute.

Each catalog query yields (kind, schema, relation, name, attributes) rows;
`relation` is set for objects that belong to a table or view (columns,
constraints, indexes, triggers, rules, policies), which is how `--table` and
`--exclude` select them.  Keys are tuples, never dotted strings, so names
with dots, spaces or quotes cannot collide.

Sessions run with `search_path = pg_catalog`: every deparsed name comes out
schema-qualified on both sides.  Differences that only come from the major
version are normalised away: privileges are compared as exploded grants
(defaults filled in, MAINTAIN of PostgreSQL 17+ ignored, the object's owner
written `(owner)`), a newer extension version on the target is accepted, and
a view whose text differs is deparsed again by the target from the source's
definition before being called different.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from pgferry.migrate import verify_kinds
from pgferry.migrate.replica_state import NAME, object_name, reverse_name
from pgferry.migrate.verify_kinds import SECRET_ATTRS, SKIP_NS, acl, not_extension, options

Key = tuple[str, str, str, str]  # kind, schema ('' if none), relation ('' if none), name
Attrs = dict[str, Any]

#: pgferry_<replica name>, or the way back's pgferry_<replica name>_back
REPLICA_PUBLICATION = f"^{object_name(f'({NAME.pattern})')}$|^{reverse_name(f'({NAME.pattern})')}$"

_REL_ACL_KIND = "(CASE WHEN c.relkind = 'S' THEN 's' ELSE 'r' END)::\"char\""

RELATIONS = f"""
SELECT CASE c.relkind WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view'
                      WHEN 'S' THEN 'sequence definition' WHEN 'f' THEN 'foreign table'
                      ELSE 'table' END,
       n.nspname, c.relname, '',
       jsonb_build_object(
         'relkind', c.relkind, 'owner', pg_get_userbyid(c.relowner),
         'acl', {acl("c.relacl", _REL_ACL_KIND, "c.relowner")},
         'comment', obj_description(c.oid, 'pg_class'),
         'persistence', c.relpersistence, 'row security', c.relrowsecurity,
         'force row security', c.relforcerowsecurity, 'options', c.reloptions::text,
         'replica identity', c.relreplident,
         'access method', CASE WHEN c.relkind IN ('r', 'm')
                               THEN (SELECT a.amname FROM pg_am a WHERE a.oid = c.relam) END,
         'partition bound', pg_get_expr(c.relpartbound, c.oid),
         'partition key', CASE WHEN c.relkind = 'p' THEN pg_get_partkeydef(c.oid) END,
         'inherits', (SELECT string_agg(p.inhparent::regclass::text, ', ' ORDER BY p.inhseqno)
                        FROM pg_inherits p WHERE p.inhrelid = c.oid),
         'populated', CASE WHEN c.relkind = 'm' THEN c.relispopulated END,
         'definition', CASE WHEN c.relkind IN ('v', 'm') THEN pg_get_viewdef(c.oid) END,
         'sequence', (SELECT jsonb_build_object('type', s.seqtypid::regtype::text,
                        'start', s.seqstart, 'increment', s.seqincrement, 'min', s.seqmin,
                        'max', s.seqmax, 'cache', s.seqcache, 'cycle', s.seqcycle)
                        FROM pg_sequence s WHERE s.seqrelid = c.oid),
         'owned by', (SELECT d.refobjid::regclass::text || '.' || quote_ident(a.attname)
                        FROM pg_depend d JOIN pg_attribute a ON a.attrelid = d.refobjid
                         AND a.attnum = d.refobjsubid
                       WHERE c.relkind = 'S' AND d.classid = 'pg_class'::regclass
                         AND d.objid = c.oid AND d.deptype IN ('a', 'i')),
         'foreign server', (SELECT s.srvname FROM pg_foreign_table ft
                              JOIN pg_foreign_server s ON s.oid = ft.ftserver
                             WHERE ft.ftrelid = c.oid),
         'foreign options', (SELECT {options("ft.ftoptions")} FROM pg_foreign_table ft
                              WHERE ft.ftrelid = c.oid))
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') AND {SKIP_NS}
   AND {not_extension("pg_class", "c.oid")}
"""

COLUMNS = f"""
SELECT 'column', n.nspname, c.relname, a.attname,
       jsonb_build_object(
         'position', row_number() OVER (PARTITION BY c.oid ORDER BY a.attnum),
         'type', format_type(a.atttypid, a.atttypmod), 'not null', a.attnotnull,
         'default', CASE WHEN a.attgenerated = '' THEN pg_get_expr(d.adbin, d.adrelid) END,
         'generated', CASE WHEN a.attgenerated <> '' THEN pg_get_expr(d.adbin, d.adrelid) END,
         'identity', a.attidentity,
         'storage', CASE WHEN a.attstorage <> t.typstorage THEN a.attstorage END,
         'compression', nullif(a.attcompression::text, ''),
         'statistics target', nullif(a.attstattarget::int, -1),
         'collation', CASE WHEN a.attcollation <> t.typcollation
                           THEN a.attcollation::regcollation::text END,
         'acl', {acl("a.attacl", None, "c.relowner")},
         'options', a.attoptions::text, 'foreign options', {options("a.attfdwoptions")},
         'comment', col_description(c.oid, a.attnum))
  FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_type t ON t.oid = a.atttypid
  LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
 WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
   AND {SKIP_NS} AND {not_extension("pg_class", "c.oid")}
"""

# NOT NULL constraints live in pg_constraint from PostgreSQL 18 (contype 'n'):
# they are compared as the columns' `not null`, the same on every version
CONSTRAINTS = f"""
SELECT 'constraint', n.nspname, coalesce(c.relname, ''),
       CASE WHEN co.contypid <> 0 THEN format_type(co.contypid, NULL) || ' ' ELSE '' END
         || co.conname,
       jsonb_build_object(
         'definition', pg_get_constraintdef(co.oid), 'validated', co.convalidated,
         'deferrable', co.condeferrable, 'deferred', co.condeferred,
         'comment', obj_description(co.oid, 'pg_constraint'),
         '_references', (SELECT jsonb_build_array(fn.nspname, f.relname) FROM pg_class f
                           JOIN pg_namespace fn ON fn.oid = f.relnamespace
                          WHERE f.oid = co.confrelid))
  FROM pg_constraint co JOIN pg_namespace n ON n.oid = co.connamespace
  LEFT JOIN pg_class c ON c.oid = co.conrelid
 WHERE co.contype <> 'n' AND {SKIP_NS}
   AND {not_extension("pg_class", "coalesce(c.oid, 0)")}
   AND {not_extension("pg_type", "co.contypid")}
"""

INDEXES = f"""
SELECT 'index', n.nspname, t.relname, i.relname,
       jsonb_build_object(
         'definition', pg_get_indexdef(i.oid), 'valid', x.indisvalid,
         'clustered', x.indisclustered, 'options', i.reloptions::text,
         'replica identity', x.indisreplident,
         'statistics targets', (SELECT string_agg(a.attnum || '=' || a.attstattarget, ', '
                                  ORDER BY a.attnum) FROM pg_attribute a
                                 WHERE a.attrelid = i.oid AND a.attstattarget >= 0),
         'comment', obj_description(i.oid, 'pg_class'))
  FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
  JOIN pg_class t ON t.oid = x.indrelid JOIN pg_namespace n ON n.oid = i.relnamespace
 WHERE {SKIP_NS} AND {not_extension("pg_class", "t.oid")}
"""

TRIGGERS = f"""
SELECT 'trigger', n.nspname, c.relname, g.tgname,
       jsonb_build_object(
         'definition', pg_get_triggerdef(g.oid), 'enabled', g.tgenabled,
         'comment', obj_description(g.oid, 'pg_trigger'))
  FROM pg_trigger g JOIN pg_class c ON c.oid = g.tgrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE NOT g.tgisinternal AND {SKIP_NS}
"""

RULES = f"""
SELECT 'rule', n.nspname, c.relname, r.rulename,
       jsonb_build_object(
         'definition', pg_get_ruledef(r.oid), 'enabled', r.ev_enabled,
         'comment', obj_description(r.oid, 'pg_rewrite'))
  FROM pg_rewrite r JOIN pg_class c ON c.oid = r.ev_class
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE r.rulename <> '_RETURN' AND {SKIP_NS}
"""

POLICIES = f"""
SELECT 'policy', n.nspname, c.relname, p.polname,
       jsonb_build_object(
         'command', p.polcmd, 'permissive', p.polpermissive,
         'roles', (SELECT string_agg(CASE WHEN r = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(r) END,
                                     ', ' ORDER BY 1) FROM unnest(p.polroles) r),
         'using', pg_get_expr(p.polqual, p.polrelid),
         'with check', pg_get_expr(p.polwithcheck, p.polrelid),
         'comment', obj_description(p.oid, 'pg_policy'))
  FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE {SKIP_NS}
"""

SCHEMAS = f"""
SELECT 'schema', n.nspname, '', '',
       jsonb_build_object(
         'owner', pg_get_userbyid(n.nspowner), 'acl', {acl("n.nspacl", "'n'", "n.nspowner")},
         'comment', obj_description(n.oid, 'pg_namespace'))
  FROM pg_namespace n WHERE {SKIP_NS} AND {not_extension("pg_namespace", "n.oid")}
"""

FUNCTIONS = f"""
SELECT 'function', n.nspname, '', p.proname || '(' || pg_get_function_identity_arguments(p.oid)
         || ')',
       jsonb_build_object(
         'kind', p.prokind, 'owner', pg_get_userbyid(p.proowner),
         'acl', {acl("p.proacl", "'f'", "p.proowner")},
         'comment', obj_description(p.oid, 'pg_proc'),
         'definition', CASE WHEN p.prokind IN ('f', 'p', 'w') THEN pg_get_functiondef(p.oid) END,
         'aggregate', (SELECT jsonb_build_object(
                          'kind', a.aggkind, 'direct arguments', a.aggnumdirectargs,
                          'state', a.aggtransfn::text, 'state type', a.aggtranstype::regtype::text,
                          'state size', a.aggtransspace, 'initial', a.agginitval,
                          'final', nullif(a.aggfinalfn::text, '-'),
                          'final extra', a.aggfinalextra, 'final modify', a.aggfinalmodify,
                          'combine', nullif(a.aggcombinefn::text, '-'),
                          'serial', nullif(a.aggserialfn::text, '-'),
                          'deserial', nullif(a.aggdeserialfn::text, '-'),
                          'moving', CASE WHEN a.aggmtransfn <> 0 THEN jsonb_build_object(
                            'state', a.aggmtransfn::text, 'inverse', a.aggminvtransfn::text,
                            'final', nullif(a.aggmfinalfn::text, '-'),
                            'state type', a.aggmtranstype::regtype::text,
                            'state size', a.aggmtransspace, 'initial', a.aggminitval,
                            'final extra', a.aggmfinalextra,
                            'final modify', a.aggmfinalmodify) END,
                          'sort operator', CASE WHEN a.aggsortop = 0 THEN NULL
                                                ELSE a.aggsortop::regoperator::text END)
                         FROM pg_aggregate a WHERE a.aggfnoid = p.oid))
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE {SKIP_NS} AND {not_extension("pg_proc", "p.oid")}
"""

TYPES = f"""
SELECT 'type', n.nspname, '', t.typname,
       jsonb_build_object(
         'kind', t.typtype, 'owner', pg_get_userbyid(t.typowner),
         'acl', {acl("t.typacl", "'T'", "t.typowner")},
         'comment', obj_description(t.oid, 'pg_type'),
         'labels', (SELECT string_agg(quote_literal(e.enumlabel), ', ' ORDER BY e.enumsortorder)
                      FROM pg_enum e WHERE e.enumtypid = t.oid),
         'base type', CASE WHEN t.typtype = 'd' THEN format_type(t.typbasetype, t.typtypmod) END,
         'default', t.typdefault, 'not null', t.typnotnull,
         'attributes', (SELECT string_agg(quote_ident(a.attname) || ' '
                          || format_type(a.atttypid, a.atttypmod), ', ' ORDER BY a.attnum)
                          FROM pg_attribute a WHERE a.attrelid = t.typrelid AND a.attnum > 0
                           AND NOT a.attisdropped),
         'range of', (SELECT r.rngsubtype::regtype::text FROM pg_range r
                       WHERE r.rngtypid = t.oid))
  FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
 WHERE (t.typtype IN ('e', 'd', 'r')
        OR (t.typtype = 'c' AND (SELECT relkind FROM pg_class WHERE oid = t.typrelid) = 'c'))
   AND {SKIP_NS} AND {not_extension("pg_type", "t.oid")}
"""

# a statistics object belongs to its table (so --table and --exclude select
# it), under the table's schema; its own schema is named when it differs
STATISTICS = f"""
SELECT 'statistics', tn.nspname, t.relname,
       CASE WHEN n.oid = tn.oid THEN s.stxname ELSE n.nspname || '.' || s.stxname END,
       jsonb_build_object(
         'definition', pg_get_statisticsobjdef(s.oid), 'owner', pg_get_userbyid(s.stxowner),
         'comment', obj_description(s.oid, 'pg_statistic_ext'))
  FROM pg_statistic_ext s JOIN pg_namespace n ON n.oid = s.stxnamespace
  JOIN pg_class t ON t.oid = s.stxrelid JOIN pg_namespace tn ON tn.oid = t.relnamespace
 WHERE {SKIP_NS}
"""

# an extension's comment comes from its control file and changes with its version
EXTENSIONS = """
SELECT 'extension', '', '', e.extname,
       jsonb_build_object('schema', e.extnamespace::regnamespace::text, 'version', e.extversion)
  FROM pg_extension e
"""

EVENT_TRIGGERS = f"""
SELECT 'event trigger', '', '', e.evtname,
       jsonb_build_object(
         'event', e.evtevent, 'enabled', e.evtenabled, 'owner', pg_get_userbyid(e.evtowner),
         'function', e.evtfoid::regprocedure::text, 'tags', e.evttags::text,
         'comment', obj_description(e.oid, 'pg_event_trigger'))
  FROM pg_event_trigger e WHERE {not_extension("pg_event_trigger", "e.oid")}
"""

PUBLICATIONS = """
SELECT 'publication', '', '', p.pubname,
       jsonb_build_object(
         'owner', pg_get_userbyid(p.pubowner), 'all tables', p.puballtables,
         'insert', p.pubinsert, 'update', p.pubupdate, 'delete', p.pubdelete,
         'truncate', p.pubtruncate, 'via root', p.pubviaroot,
         '_tables', (SELECT jsonb_agg(jsonb_build_array(n.nspname, c.relname,
                        r.prrelid::regclass::text
                        || coalesce(' WHERE ' || pg_get_expr(r.prqual, r.prrelid), '')
                        || coalesce(' (' || r.prattrs::text || ')', '')))
                       FROM pg_publication_rel r JOIN pg_class c ON c.oid = r.prrelid
                       JOIN pg_namespace n ON n.oid = c.relnamespace
                      WHERE r.prpubid = p.oid),
         'schemas', (SELECT string_agg(s.pnnspid::regnamespace::text, ', ' ORDER BY 1)
                       FROM pg_publication_namespace s WHERE s.pnpubid = p.oid),
         'comment', obj_description(p.oid, 'pg_publication'))
  FROM pg_publication p
"""

DEFAULT_ACLS = f"""
SELECT 'default privileges', coalesce(n.nspname, ''), '',
       'for ' || pg_get_userbyid(d.defaclrole) || ' on '
         || CASE d.defaclobjtype WHEN 'r' THEN 'tables' WHEN 'S' THEN 'sequences'
                 WHEN 'f' THEN 'functions' WHEN 'T' THEN 'types' WHEN 'n' THEN 'schemas'
                 ELSE d.defaclobjtype::text END,
       jsonb_build_object('acl', {acl("d.defaclacl", None, "d.defaclrole")})
  FROM pg_default_acl d LEFT JOIN pg_namespace n ON n.oid = d.defaclnamespace
"""

LARGE_OBJECTS = f"""
SELECT 'large object', '', '', m.oid::text,
       jsonb_build_object(
         'owner', pg_get_userbyid(m.lomowner), 'acl', {acl("m.lomacl", "'L'", "m.lomowner")},
         'comment', obj_description(m.oid, 'pg_largeobject'))
  FROM pg_largeobject_metadata m
"""

TABLE_QUERIES = (RELATIONS, COLUMNS, CONSTRAINTS, INDEXES, TRIGGERS, RULES, POLICIES, STATISTICS)
DATABASE_QUERIES = (
    SCHEMAS,
    FUNCTIONS,
    TYPES,
    EXTENSIONS,
    EVENT_TRIGGERS,
    PUBLICATIONS,
    DEFAULT_ACLS,
    LARGE_OBJECTS,
    *verify_kinds.QUERIES,
)
_OWNER_KEYS = {"owner"}
_ACL_KEYS = {"acl"}


@dataclass(frozen=True)
class Scope:
    """What to read: `relations` limits table-bound objects to these
    (schema, name) pairs (None: all); `database_wide` adds schemas, functions,
    types, extensions, publications, large objects..."""

    relations: frozenset[tuple[str, str]] | None = None
    database_wide: bool = True
    owners: bool = True
    acl: bool = True


def read_schema(conn: psycopg.Connection[Any], scope: Scope) -> dict[Key, Attrs]:
    """Every object of the database in `scope`, by key, in the caller's session
    (which must have search_path = pg_catalog)."""
    queries: Iterable[str] = TABLE_QUERIES + (DATABASE_QUERIES if scope.database_wide else ())
    out: dict[Key, Attrs] = {}
    plumbing = replica_publications(conn) if scope.database_wide else set()
    for query in queries:
        for kind, schema, rel, name, attrs in conn.execute(query):
            if kind == "publication" and name in plumbing:
                continue
            refs = attrs.pop("_references", None)
            if "_tables" in attrs:
                # a publication's tables left out of the selection are not carried
                members = attrs.pop("_tables") or []
                attrs["tables"] = (
                    ", ".join(
                        sorted(
                            text
                            for schema_, rel_, text in members
                            if scope.relations is None or (schema_, rel_) in scope.relations
                        )
                    )
                    or None
                )
            if scope.relations is not None:
                keep = (schema, rel) in scope.relations if rel else scope.database_wide
                if not keep:
                    continue
                # a foreign key to a table left out cannot be carried (clone skips it)
                if refs and tuple(refs) not in scope.relations:
                    continue
            if kind == "default privileges" and not scope.acl:
                continue
            attrs = _flat(attrs)
            if not scope.owners:
                attrs = {k: v for k, v in attrs.items() if k not in _OWNER_KEYS}
            if not scope.acl:
                attrs = {k: v for k, v in attrs.items() if k not in _ACL_KEYS}
            out[(kind, schema, rel, name)] = attrs
    conn.rollback()
    return out


def _flat(attrs: Attrs) -> Attrs:
    """Nested attributes (a sequence's, an aggregate's) as their own entries,
    so a difference names the one that changed: `aggregate initial`."""
    out: Attrs = {}
    for key, value in attrs.items():
        if isinstance(value, dict):
            out.update(_flat({f"{key} {k}": v for k, v in value.items()}))
        else:
            out[key] = value
    return out


def replica_publications(conn: psycopg.Connection[Any]) -> set[str]:
    """The publications of pgferry's own replicas on this server: a live
    replica's on its source, and the way back's (promote --reverse) on the new
    primary.  They are replication plumbing, not the user's schema, so never
    a difference.  Each is known by its name and by the logical replication
    slot of the same name in this database, which pgferry creates with it: a
    publication only named like one, without that slot, is still compared."""
    rows = conn.execute(
        "SELECT p.pubname FROM pg_publication p JOIN pg_replication_slots s"
        " ON s.slot_name = p.pubname AND s.slot_type = 'logical'"
        " AND s.database = current_database() WHERE p.pubname ~ %s",
        [REPLICA_PUBLICATION],
    ).fetchall()
    return {str(r[0]) for r in rows}


def display_name(key: Key) -> str:
    kind, schema, rel, name = key
    if kind in ("index", "statistics"):
        return f"{schema}.{name}"  # unique in their schema
    return ".".join(p for p in (schema, rel, name) if p)


def _version(text: str) -> tuple[int, ...] | None:
    parts = re.findall(r"\d+", text)
    return tuple(int(p) for p in parts) if parts else None


def _same(kind: str, attr: str, src: Any, tgt: Any) -> bool:
    if src == tgt:
        return True
    if kind == "extension" and attr == "version" and isinstance(src, str):
        # the target server ships a newer release: what pg_dump restores there
        a, b = _version(src), _version(str(tgt))
        return a is not None and b is not None and b >= a
    return False


def _short(text: str) -> str:
    return text if len(text) <= 40 else text[:37] + "..."


def _show(src: Any, tgt: Any) -> str:
    """'source -> target', long texts cut to where they start to differ."""
    a, b = (v if isinstance(v, str) else json.dumps(v) for v in (src, tgt))
    a, b = " ".join(a.split()), " ".join(b.split())
    common = next(
        (i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b))
    )
    if common > 20:
        a, b = "..." + a[common - 10 :], "..." + b[common - 10 :]
    return f"{_short(a)} -> {_short(b)}"


def _show_acl(src: Any, tgt: Any) -> str:
    """Grants only one side has: '-x' on the source only, '+x' on the target only."""
    a = set(src.split(", ")) if isinstance(src, str) else set()
    b = set(tgt.split(", ")) if isinstance(tgt, str) else set()
    return " ".join([f"-{x}" for x in sorted(a - b)] + [f"+{x}" for x in sorted(b - a)])


def differing(kind: str, src: Attrs, tgt: Attrs) -> list[str]:
    """The attributes that differ, each as 'name: source -> target'."""
    out = []
    for attr in sorted(set(src) | set(tgt)):
        a, b = src.get(attr), tgt.get(attr)
        if _same(kind, attr, a, b):
            continue
        if attr == "acl":
            out.append(f"acl: {_show_acl(a, b)}")
        elif attr in SECRET_ATTRS:
            out.append(f"{attr}: differ")  # digests: neither side's value is shown
        else:
            out.append(f"{attr}: {_show(a, b)}")
    return out


def redeparse_views(
    target: psycopg.Connection[Any], src: dict[Key, Attrs], tgt: dict[Key, Attrs]
) -> None:
    """Replace the source's text of each view or materialized view that differs
    by the target's deparsing of it, so a newer server's way of printing the
    same query is not a difference (a real change still is)."""
    for key, attrs in src.items():
        other = tgt.get(key)
        if key[0] not in ("view", "materialized view") or other is None:
            continue
        query = attrs.get("definition")
        if not isinstance(query, str) or query == other.get("definition"):
            continue
        # The text is a query pg_get_viewdef printed on the source, not user
        # input; psycopg's extended protocol refuses more than one statement,
        # and the transaction is always rolled back.
        create = sql.SQL("CREATE TEMP VIEW pgferry_verify_view AS {}").format(
            sql.SQL(query.rstrip().rstrip(";"))
        )
        try:
            with target.transaction(force_rollback=True):
                target.execute(create)
                row = target.execute(
                    "SELECT pg_get_viewdef('pg_temp.pgferry_verify_view'::regclass)"
                ).fetchone()
        except psycopg.Error:
            continue  # the target cannot even parse it: a real difference
        if row is not None:
            attrs["definition"] = row[0]
