"""Schema: pg_dump's pre-data and post-data sections, restored in phases.

One custom-format dump holds both sections; its table of contents is read
structurally (migrate/toc.py).  Pre-data is restored in a single
transaction.  Post-data is split: indexes and constraints go first through
`pg_restore -j N`, partition index attachments one at a time, deepest level
first (parallel attachments to one parent race, and leave it invalid), then
foreign keys; the rest (triggers, rules, policies, comments, materialized
view refreshes) is restored item by item, so a failure loses only its item.
"""

from __future__ import annotations

import functools
import re
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from pgferry.conninfo import scrub
from pgferry.errors import ToolFailed
from pgferry.migrate.toc import Section, TocEntry, read_toc
from pgferry.migrate.tools import (
    Running,
    Tool,
    first_error,
    run_tool,
    start_tool,
    tool_output,
)

BUILD_FIRST = ("INDEX", "CONSTRAINT", "FK CONSTRAINT", "INDEX ATTACH")
ACTIVE_SQL_TRANSACTION = "25001"
_FROM_ENTRY = re.compile(r"^pg_restore: from TOC entry (\d+);", re.MULTILINE)

__all__ = ["BUILD_FIRST", "RestoreOptions", "Section", "TocEntry", "toc"]


@dataclass(frozen=True)
class RestoreOptions:
    no_owner: bool = False
    no_acl: bool = False

    def args(self) -> list[str]:
        out = []
        if self.no_owner:
            out.append("--no-owner")
        if self.no_acl:
            out.append("--no-privileges")
        return out


@dataclass
class ItemFailure:
    entry: TocEntry
    error: str
    hint: str | None = None
    sqlstate: str | None = None
    #: not tried: it depends on an item that failed
    blocked: bool = False

    @property
    def statement(self) -> str:
        # a subscription's CONNECTION or a mapping's OPTIONS may hold a password
        return scrub(" ".join(self.entry.defn.split()))

    def line(self) -> str:
        text = f"{self.entry.describe()}: {self.error}"
        if self.hint:
            text += f" (hint: {self.hint})"
        return f"{text}; statement: {self.statement}"


def _dump_args(out: Path, snapshot: str | None, exclude: list[str]) -> list[str]:
    args = ["-Fc", "--section=pre-data", "--section=post-data", "-B", "-f", str(out)]
    if snapshot:
        args.append(f"--snapshot={snapshot}")
    for pattern in exclude:
        args += ["-T", pattern]
    return args


def dump_schema(
    pg_dump: Tool, source: str, out: Path, *, snapshot: str | None, exclude: list[str]
) -> None:
    """Both schema sections; `exclude` are exact pg_dump -T patterns.  Large
    objects are left out (-B): largeobjects.py copies them in batches."""
    run_tool(pg_dump, _dump_args(out, snapshot, exclude), source, what="dumping the schema")


def start_dump(
    pg_dump: Tool, source: str, out: Path, *, snapshot: str | None, exclude: list[str]
) -> Running:
    """`dump_schema` in the background (wait() it): pg_dump's own catalog
    queries overlap the checks and bookkeeping we do meanwhile."""
    args = _dump_args(out, snapshot, exclude)
    return start_tool(pg_dump, args, source, what="dumping the schema")


def toc(dump: Path, section: Section) -> list[TocEntry]:
    """The dump's entries of one section, in pg_restore's order."""
    st = dump.stat()
    return [e for e in _read_toc(dump, st.st_mtime_ns, st.st_size) if e.section == section]


@functools.lru_cache(maxsize=4)
def _read_toc(dump: Path, mtime_ns: int, size: int) -> tuple[TocEntry, ...]:
    # a run reads one dump's table of contents several times (selection,
    # early indexes, each phase): parsed once while the file is unchanged
    return tuple(read_toc(dump))


def _list_file(workdir: Path, entries: Iterable[TocEntry]) -> Path:
    path = workdir / f"{uuid.uuid4().hex}.list"
    path.write_text("".join(e.line + "\n" for e in entries))
    return path


_IDENT = r'("(?:[^"]|"")*"|[^\s"]+)'
_MAPPING = re.compile(rf"^CREATE USER MAPPING FOR {_IDENT} SERVER {_IDENT}")


def _unquote(ident: str) -> str:
    return ident[1:-1].replace('""', '"') if ident.startswith('"') else ident


def orphan_mappings(
    conn: psycopg.Connection[Any], dump: Path, opts: RestoreOptions
) -> tuple[set[int], list[str]]:
    """With --no-acl (roles are not carried): the user mappings for roles the
    target lacks, as dump ids to leave out of pre-data and one note each.
    Such a mapping would serve nobody there, and pre-data is all or nothing."""
    if not opts.no_acl:
        return set(), []
    mappings = [e for e in toc(dump, Section.PRE_DATA) if e.desc == "USER MAPPING"]
    if not mappings:
        return set(), []
    roles = {str(r[0]) for r in conn.execute("SELECT rolname FROM pg_roles")}
    skip, notes = set(), []
    for e in mappings:
        # the role is the statement's first identifier, as pg_dump quotes it;
        # the rest of the statement (its options, a password) is never shown
        m = _MAPPING.match(e.defn)
        if m is None:
            continue
        role, server = _unquote(m.group(1)), _unquote(m.group(2))
        if role != "public" and role not in roles:
            skip.add(e.dump_id)
            notes.append(
                f"user mapping for {role} on server {server} skipped: the role does not exist"
                " on the target (--no-acl carries no roles); create both to use it"
            )
    return skip, notes


def restore_pre_data(
    pg_restore: Tool,
    dump: Path,
    target: str,
    opts: RestoreOptions,
    *,
    skip: set[int] | None = None,
    workdir: Path | None = None,
) -> None:
    """Pre-data in one transaction; `skip`: dump ids left out (with
    `workdir` for the list file)."""
    args = ["--section=pre-data", "--single-transaction", "--exit-on-error", *opts.args()]
    if skip:
        keep = [e for e in toc(dump, Section.PRE_DATA) if e.dump_id not in skip]
        args += ["-L", str(_list_file(workdir or dump.parent, keep))]
    run_tool(
        pg_restore,
        [*args, str(dump)],
        target,
        what="restoring the schema (pre-data)",
        hint="nothing of the schema was kept; if a role is missing on the target create it"
        " or pass --no-owner --no-acl, then rerun with --resume",
    )


def restore_list(
    pg_restore: Tool,
    dump: Path,
    target: str,
    entries: list[TocEntry],
    *,
    jobs: int,
    opts: RestoreOptions,
    what: str,
    workdir: Path,
) -> None:
    if not entries:
        return
    args = ["-L", str(_list_file(workdir, entries)), "--exit-on-error", *opts.args()]
    args += [f"--jobs={jobs}"] if jobs > 1 else ["--single-transaction"]
    run_tool(pg_restore, [*args, str(dump)], target, what=f"restoring {what}")


def restore_items(
    pg_restore: Tool,
    dump: Path,
    target: str,
    entries: list[TocEntry],
    *,
    opts: RestoreOptions,
    workdir: Path,
    done: Callable[[list[TocEntry]], None],
) -> list[ItemFailure]:
    """Restore `entries` so that a failing one loses only itself: all in one
    transaction; when one fails (pg_restore -v names its TOC entry), leave it
    out and run the rest again.  `done` receives what committed; returns the
    entries that failed, with pg_restore's error."""
    pending = list(entries)
    failed: list[ItemFailure] = []
    while pending:
        args = ["-v", "-L", str(_list_file(workdir, pending)), "--single-transaction"]
        args += ["--exit-on-error", *opts.args(), str(dump)]
        rc, stderr = tool_output(pg_restore, args, target)
        if rc == 0:
            done(pending)
            break
        ids = [int(m) for m in _FROM_ENTRY.findall(stderr)]
        bad = next((e for e in pending if ids and e.dump_id == ids[-1]), None)
        if bad is None:  # not an item's fault (connection lost, ...)
            raise ToolFailed(
                f"pg_restore failed while restoring post-data: {first_error(stderr)}",
                hint="fix the cause above, then rerun with --resume",
                tool=pg_restore.name,
            )
        failed.append(ItemFailure(bad, first_error(stderr), _hint(stderr)))
        # what needs it would land on whatever made it fail: left out too
        gone = {bad.dump_id}
        for e in list(pending):
            if e is not bad and gone.intersection(e.deps):
                gone.add(e.dump_id)
                failed.append(ItemFailure(e, f"it needs {bad.describe()}", blocked=True))
        pending = [e for e in pending if e.dump_id not in gone]
    return failed


def _hint(stderr: str) -> str | None:
    for ln in stderr.splitlines():
        if ln.startswith("HINT:"):
            return ln[len("HINT:") :].strip()
    return None


def diagnose(conn: psycopg.Connection[Any], failures: list[ItemFailure]) -> None:
    """Fill in each failure's SQLSTATE and hint from PostgreSQL itself: its
    statement run again in a transaction that is always rolled back
    (pg_restore's text output has no SQLSTATE).  `conn` is autocommit."""
    for f in failures:
        if f.blocked:
            continue
        try:
            with conn.transaction(force_rollback=True):
                # pg_restore's session: schema-qualified names, empty path
                conn.execute("SELECT pg_catalog.set_config('search_path', '', true)")
                conn.execute(f.entry.defn.encode())
        except psycopg.Error as err:
            if err.sqlstate == ACTIVE_SQL_TRANSACTION:
                continue  # cannot be tried this way: keep pg_restore's words
            d = err.diag
            f.error = d.message_primary or f.error
            f.hint = d.message_hint or f.hint
            f.sqlstate = err.sqlstate


def split_post_data(entries: list[TocEntry]) -> tuple[list[TocEntry], list[TocEntry]]:
    first = [e for e in entries if e.desc in BUILD_FIRST]
    rest = [e for e in entries if e.desc not in BUILD_FIRST]
    return first, rest


def missing_on_target(conn: psycopg.Connection[Any], entries: list[TocEntry]) -> list[TocEntry]:
    """Entries not yet built on the target: what a resumed index phase still
    has to do (pg_restore would stop at the first 'already exists').  One
    query for all of them: a round trip per entry was most of a small
    database's index phase."""
    kinds = {"INDEX": "i", "CONSTRAINT": "c", "FK CONSTRAINT": "c", "INDEX ATTACH": "a"}
    asked = [e for e in entries if e.desc in kinds]
    if not asked:
        return list(entries)
    rows = conn.execute(
        """
        SELECT q.n FROM unnest(%s::text[], %s::text[], %s::text[]) WITH ORDINALITY
                        AS q(kind, nsp, tag, n)
         WHERE CASE q.kind
           WHEN 'i' THEN EXISTS (
             SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE n.nspname = q.nsp AND c.relname = q.tag)
           WHEN 'c' THEN EXISTS (
             SELECT 1 FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid
               JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE n.nspname = q.nsp AND c.relname || ' ' || k.conname = q.tag)
           ELSE EXISTS (
             SELECT 1 FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
               JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE n.nspname = q.nsp AND c.relname = q.tag)
         END
        """,
        [[kinds[e.desc] for e in asked], [e.schema for e in asked], [e.tag for e in asked]],
    ).fetchall()
    there = {id(asked[int(r[0]) - 1]) for r in rows}
    return [e for e in entries if id(e) not in there]


def deepest_first(conn: psycopg.Connection[Any], attaches: list[TocEntry]) -> list[TocEntry]:
    """INDEX ATTACH entries ordered by the depth of the partition whose index
    they attach, deepest first: a parent index turns valid only once every
    child index is valid and attached."""
    if not attaches:
        return []
    rows = conn.execute(
        """
        SELECT q.n, (SELECT count(*) FROM pg_class i
                       JOIN pg_namespace n ON n.oid = i.relnamespace
                       JOIN pg_index x ON x.indexrelid = i.oid,
                       LATERAL pg_partition_ancestors(x.indrelid) a
                      WHERE n.nspname = q.nsp AND i.relname = q.tag)
          FROM unnest(%s::text[], %s::text[]) WITH ORDINALITY AS q(nsp, tag, n)
        """,
        [[e.schema for e in attaches], [e.tag for e in attaches]],
    ).fetchall()
    depth = {int(r[0]) - 1: int(r[1]) for r in rows}
    order = sorted(range(len(attaches)), key=lambda i: depth.get(i, 0), reverse=True)
    return [attaches[i] for i in order]


def invalid_indexes(conn: psycopg.Connection[Any]) -> list[str]:
    """Indexes PostgreSQL will not use (pg_index.indisvalid false)."""
    rows = conn.execute(
        "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_index x"
        " JOIN pg_class c ON c.oid = x.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE NOT x.indisvalid AND n.nspname NOT IN ('pg_catalog', 'pgferry')"
        " ORDER BY n.nspname, c.relname"
    ).fetchall()
    return [str(r[0]) for r in rows]
