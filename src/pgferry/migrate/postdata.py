"""The post-data phase: triggers, rules, policies, row security, comments,
publications, event triggers, default ACLs, statistics objects, NOT VALID
checks and materialized view refreshes, restored item by item.

A failing item loses only itself (as with plain pg_restore); it is reported
with its object, statement and PostgreSQL's hint, the command fails listing
what is missing, and `--resume` retries only the items not yet restored
(each restored item is recorded in the ledger).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import psycopg

from pgferry.errors import PostDataIncomplete
from pgferry.migrate import schema

if TYPE_CHECKING:
    from pgferry.migrate.phases import Phases, PostData

UNDEFINED_OBJECT = "42704"
UNDEFINED_TABLE = "42P01"


def without(
    entries: list[schema.TocEntry], skip: set[int], others: list[schema.TocEntry]
) -> list[schema.TocEntry]:
    """`entries` minus the dump ids in `skip` and whatever depends on them,
    directly or not (dependencies may run through `others`, e.g. a skipped
    function's ACL entry)."""
    if not skip:
        return entries
    gone = set(skip)
    every = [*others, *entries]
    changed = True
    while changed:
        changed = False
        for e in every:
            if e.dump_id not in gone and gone.intersection(e.deps):
                gone.add(e.dump_id)
                changed = True
    return [e for e in entries if e.dump_id not in gone]


def item(e: schema.TocEntry) -> str:
    return f"post:{e.key}"


def restore(
    ph: Phases,
    post: PostData,
    tgt: psycopg.Connection[Any],
    target: str,
    entries: list[schema.TocEntry],
) -> None:
    todo = [e for e in entries if item(e) not in ph.done]

    def done(ok: list[schema.TocEntry]) -> None:
        with tgt.transaction():
            for e in ok:
                ph.ledger.mark(item(e))

    failures = schema.restore_items(
        post.pg_restore,
        post.dump,
        target,
        todo,
        opts=post.opts,
        workdir=post.workdir,
        done=done,
    )
    if not failures:
        return
    schema.diagnose(tgt, failures)
    missing = []
    for f in failures:
        if f.entry.desc == "PUBLICATION TABLE" and f.sqlstate == UNDEFINED_TABLE:
            # a table left out of a selection (pg_dump 18 still writes it)
            ph.note(f"{f.entry.describe()} skipped: {f.error}")
            ph.ledger.mark(item(f.entry))
            continue
        if f.entry.desc == "POLICY" and post.opts.no_acl and f.sqlstate == UNDEFINED_OBJECT:
            # --no-acl: roles are not carried, so a policy naming a role the
            # target lacks applies to nobody there; never widened to others
            ph.note(f"{f.entry.describe()} skipped (--no-acl): {f.error}")
            ph.ledger.mark(item(f.entry))
            continue
        ph.note(f"not restored: {f.line()}")
        missing.append(f.line())
    if missing:
        raise PostDataIncomplete(
            f"{len(missing)} post-data item(s) could not be restored: "
            + ", ".join(f.entry.describe() for f in failures if f.line() in missing),
            hint="everything else is restored; fix the cause (see the notes above),"
            " then rerun with --resume, which retries only these",
            missing=missing,
        )
