"""Phase bookkeeping shared by clone and snapshot restore, and the phases
that follow the rows: indexes and constraints (migrate/indexes.py),
sequences, VACUUM ANALYZE, materialized views, the rest of post-data
(migrate/postdata.py)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import psycopg

from pgferry.migrate import finish, schema
from pgferry.migrate.catalog import Table
from pgferry.migrate.copier import UnitStats
from pgferry.migrate.progress import Ledger, Reporter
from pgferry.migrate.tools import Tool


class Phase(StrEnum):
    """The phases of a clone or snapshot restore, in order.  The value is
    what the ledger records (`phase:<value>`) and what the user sees."""

    PRE_DATA = "pre-data"
    DATA = "data"
    LARGE_OBJECTS = "large-objects"
    INDEXES = "indexes"
    SEQUENCES = "sequences"
    VACUUM_ANALYZE = "vacuum-analyze"
    MATERIALIZED_VIEWS = "materialized-views"
    POST_DATA = "post-data"
    DATABASE_SETTINGS = "database-settings"

    @property
    def item(self) -> str:
        return f"phase:{self.value}"


@dataclass
class MigrateResult:
    phases: list[tuple[str, float]] = field(default_factory=list)
    tables: list[UnitStats] = field(default_factory=list)
    tools: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    seconds: float = 0.0


@dataclass
class Phases:
    ledger: Ledger
    done: set[str]
    result: MigrateResult
    rep: Reporter

    def run(self, phase: Phase | str, fn: Callable[[], Any], total: int | None = None) -> None:
        phase = Phase(phase)
        if phase.item in self.done:
            self.result.skipped.append(phase.value)
            return
        t0 = time.monotonic()
        self.rep.phase_start(phase.value, total)
        fn()
        self.ledger.mark(phase.item)
        seconds = time.monotonic() - t0
        self.result.phases.append((phase.value, seconds))
        self.rep.phase_done(phase.value, seconds)

    def note(self, message: str) -> None:
        self.result.notes.append(message)
        self.rep.note(message)


@dataclass
class PostData:
    pg_restore: Tool
    dump: Path
    opts: schema.RestoreOptions
    workdir: Path
    resume: bool
    #: (schema, 'table constraint') of foreign keys to leave out
    skip_fks: set[tuple[str, str]] = field(default_factory=set)
    #: dump ids to leave out (and, through the dump's dependencies, what needs them)
    skip: set[int] = field(default_factory=set)
    #: indexes invalid on the source too ('schema.name' quoted): not an error
    expected_invalid: set[str] = field(default_factory=set)


def after_data(
    ph: Phases,
    post: PostData | None,
    tgt: psycopg.Connection[Any],
    target: str,
    jobs: int,
    *,
    sequences: list[tuple[str, str, int, bool]] | None,
    leaves: list[Table],
    parents: list[Table],
    vacuumed: set[str] | None = None,
    refresh: list[tuple[str, str]] | None = None,
) -> None:
    """`post` None: no schema phases (data only); `sequences` None: no data
    phases (schema only); `refresh`: materialized views to populate (data
    only: the schema-only run before left them empty).  Raises IndexesInvalid
    or PostDataIncomplete."""
    from pgferry.migrate import indexes, postdata

    rest: list[schema.TocEntry] = []
    if post is not None:
        pp = post
        entries = [
            e
            for e in schema.toc(pp.dump, schema.Section.POST_DATA)
            if e.desc != "FK CONSTRAINT" or (e.schema, e.tag) not in pp.skip_fks
        ]
        entries = postdata.without(entries, pp.skip, schema.toc(pp.dump, schema.Section.PRE_DATA))
        first, rest = schema.split_post_data(entries)
        ph.run(Phase.INDEXES, lambda: indexes.build(pp, tgt, target, first, jobs))
    if sequences is not None:
        seqs = sequences
        ph.run(Phase.SEQUENCES, lambda: finish.set_sequences(target, seqs, tgt))
        left = [t for t in leaves if t.qualified not in (vacuumed or set())]
        ph.run(
            Phase.VACUUM_ANALYZE,
            lambda: finish.vacuum_analyze(target, left, parents, jobs, tgt),
        )
    if refresh:
        views = refresh
        ph.run(Phase.MATERIALIZED_VIEWS, lambda: finish.refresh_matviews(target, views))
    if post is not None:
        pp = post
        ph.run(Phase.POST_DATA, lambda: postdata.restore(ph, pp, tgt, target, rest))
