"""Schema: pg_dump's pre-data and post-data sections, restored in phases.

One custom-format dump holds both sections.  Pre-data is restored in a
single transaction.  Post-data is split from its TOC list: indexes and
constraints go first through `pg_restore -j N` (pg_restore orders foreign
keys after the keys they need), the rest (triggers, rules, policies,
comments, materialized view refreshes) later, in one transaction.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from pgferry.migrate.tools import Tool, run_tool

BUILD_FIRST = ("INDEX", "CONSTRAINT", "FK CONSTRAINT", "INDEX ATTACH")


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


@dataclass(frozen=True)
class TocEntry:
    line: str
    desc: str
    schema: str
    tag: str


def dump_schema(
    pg_dump: Tool, source: str, out: Path, *, snapshot: str | None, exclude: list[str]
) -> None:
    """Both schema sections; `exclude` are exact pg_dump -T patterns.  Large
    objects are left out (-B): largeobjects.py copies them in batches."""
    args = ["-Fc", "--section=pre-data", "--section=post-data", "-B", "-f", str(out)]
    if snapshot:
        args.append(f"--snapshot={snapshot}")
    for pattern in exclude:
        args += ["-T", pattern]
    run_tool(pg_dump, args, source, what="dumping the schema")


def toc(pg_restore: Tool, dump: Path, section: str) -> list[TocEntry]:
    """The dump's TOC entries of one section, in pg_restore's order."""
    args = ["-l", f"--section={section}", str(dump)]
    out = run_tool(pg_restore, args, None, what="listing the dump")
    entries = []
    for line in out.splitlines():
        if not line.strip() or line.startswith(";"):
            continue
        # "3223; 1259 16412 INDEX s2 a_v_idx owner": desc is one or more words
        words = line.split(";", 1)[1].split()[2:]
        for n in (3, 2, 1):
            desc = " ".join(words[:n])
            if desc in _KNOWN or n == 1:
                break
        rest = words[n:]
        schema = rest[0] if rest else "-"
        tag = " ".join(rest[1:-1]) if len(rest) > 2 else (rest[1] if len(rest) > 1 else "")
        entries.append(TocEntry(line, desc, schema, tag))
    return entries


_KNOWN = {
    "INDEX",
    "CONSTRAINT",
    "FK CONSTRAINT",
    "INDEX ATTACH",
    "TRIGGER",
    "RULE",
    "POLICY",
    "COMMENT",
    "ACL",
    "MATERIALIZED VIEW DATA",
    "STATISTICS",
    "EVENT TRIGGER",
    "PUBLICATION",
    "PUBLICATION TABLE",
    "PUBLICATION TABLES IN SCHEMA",
    "SECURITY LABEL",
    "DEFAULT ACL",
    "ROW SECURITY",
    "SUBSCRIPTION",
    "SUBSCRIPTION TABLE",
}


def restore_pre_data(pg_restore: Tool, dump: Path, target: str, opts: RestoreOptions) -> None:
    run_tool(
        pg_restore,
        ["--section=pre-data", "--single-transaction", "--exit-on-error", *opts.args(), str(dump)],
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
    listfile = workdir / f"{uuid.uuid4().hex}.list"
    listfile.write_text("\n".join(e.line for e in entries) + "\n")
    args = ["-L", str(listfile), "--exit-on-error", *opts.args()]
    args += [f"--jobs={jobs}"] if jobs > 1 else ["--single-transaction"]
    run_tool(pg_restore, [*args, str(dump)], target, what=f"restoring {what}")


def split_post_data(entries: list[TocEntry]) -> tuple[list[TocEntry], list[TocEntry]]:
    first = [e for e in entries if e.desc in BUILD_FIRST]
    rest = [e for e in entries if e.desc not in BUILD_FIRST]
    return first, rest


def missing_on_target(conn: psycopg.Connection[Any], entries: list[TocEntry]) -> list[TocEntry]:
    """Entries not yet built on the target: what a resumed index phase still
    has to do (pg_restore would stop at the first 'already exists')."""
    out = []
    for e in entries:
        if e.desc == "INDEX":
            row = conn.execute(
                "SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                " WHERE n.nspname = %s AND c.relname = %s",
                [e.schema, e.tag],
            ).fetchone()
        elif e.desc in ("CONSTRAINT", "FK CONSTRAINT"):
            row = conn.execute(
                "SELECT 1 FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid"
                " JOIN pg_namespace n ON n.oid = c.relnamespace"
                " WHERE n.nspname = %s AND c.relname || ' ' || k.conname = %s",
                [e.schema, e.tag],
            ).fetchone()
        elif e.desc == "INDEX ATTACH":
            row = conn.execute(
                "SELECT 1 FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
                " JOIN pg_namespace n ON n.oid = c.relnamespace"
                " WHERE n.nspname = %s AND c.relname = %s",
                [e.schema, e.tag],
            ).fetchone()
        else:
            row = None
        if row is None:
            out.append(e)
    return out
