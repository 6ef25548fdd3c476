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

    restore([e for e in todo if e.desc in ("INDEX", "CONSTRAINT")], jobs, "indexes and constraints")
    attach = schema.deepest_first(tgt, [e for e in todo if e.desc == "INDEX ATTACH"])
    restore(attach, 1, "partition index attachments")
    restore([e for e in todo if e.desc == "FK CONSTRAINT"], jobs, "foreign keys")
    check_valid(tgt, post.expected_invalid)


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
