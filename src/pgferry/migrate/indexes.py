"""The index phase: what the early builds (migrate/indexer.py) left, then
partition index attachments, then foreign keys; at the end every index
must be valid.

Attachments run one at a time, deepest partition level first: two
attachments to one parent index running at once (pg_restore -j) each miss
the other's uncommitted one, and the parent stays invalid for good.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import psycopg

from pgferry.errors import IndexesInvalid
from pgferry.migrate import schema

if TYPE_CHECKING:
    from pgferry.migrate.phases import PostData


def build(
    post: PostData,
    tgt: psycopg.Connection[Any],
    target: str,
    entries: list[schema.TocEntry],
    jobs: int,
) -> None:
    # some were built already: early, next to the copy, or before a crash
    todo = schema.missing_on_target(tgt, entries)

    def restore(part: list[schema.TocEntry], n: int, what: str) -> None:
        schema.restore_list(
            post.pg_restore,
            post.dump,
            target,
            part,
            jobs=n,
            opts=post.opts,
            what=what,
            workdir=post.workdir,
        )

    own = [e for e in todo if e.desc in ("INDEX", "CONSTRAINT")]
    attach = schema.deepest_first(tgt, [e for e in todo if e.desc == "INDEX ATTACH"])
    fks = [e for e in todo if e.desc == "FK CONSTRAINT"]
    if _small(tgt):
        # all in one pg_restore, one transaction, in the list's order: each
        # pg_restore (and each of its -j workers) costs a process and a
        # connection, more than a small database's indexes take to build
        restore(own + attach + fks, 1, "indexes, constraints and foreign keys")
    else:
        restore(own, jobs, "indexes and constraints")
        restore(attach, 1, "partition index attachments")
        restore(fks, jobs, "foreign keys")
    check_valid(tgt, post.expected_invalid)


#: a target database smaller than this gets its indexes from one pg_restore
SERIAL_BELOW = 64 << 20


def _small(tgt: psycopg.Connection[Any]) -> bool:
    row = tgt.execute("SELECT pg_database_size(current_database())").fetchone()
    return bool(row and int(row[0]) < SERIAL_BELOW)


def check_valid(tgt: psycopg.Connection[Any], expected: set[str]) -> None:
    bad = [i for i in schema.invalid_indexes(tgt) if i not in expected]
    if bad:
        raise IndexesInvalid(
            f"{len(bad)} index(es) on the target are invalid: {', '.join(bad[:5])}"
            + (" ..." if len(bad) > 5 else ""),
            hint="PostgreSQL will not use them; REINDEX them (or, for a partitioned"
            " index, attach the missing partition indexes), then rerun with --resume",
            indexes=bad,
        )
