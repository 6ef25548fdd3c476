"""Phase bookkeeping shared by clone and snapshot restore, and the phases
that follow the rows: indexes and constraints, sequences, VACUUM ANALYZE,
the rest of post-data."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from pgferry.migrate import finish, schema
from pgferry.migrate.catalog import Table
from pgferry.migrate.copier import UnitStats
from pgferry.migrate.progress import Ledger, Reporter
from pgferry.migrate.tools import Tool


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

    def run(self, name: str, fn: Callable[[], Any], total: int | None = None) -> None:
        if f"phase:{name}" in self.done:
            self.result.skipped.append(name)
            return
        t0 = time.monotonic()
        self.rep.phase_start(name, total)
        fn()
        self.ledger.mark(f"phase:{name}")
        seconds = time.monotonic() - t0
        self.result.phases.append((name, seconds))
        self.rep.phase_done(name, seconds)

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
    skip_fks: set[tuple[str, str]] = field(default_factory=set)


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
) -> None:
    """`post` None: no schema phases (data only); `sequences` None: no data
    phases (schema only)."""
    rest: list[schema.TocEntry] = []
    if post is not None:
        pp = post
        entries = [
            e
            for e in schema.toc(pp.pg_restore, pp.dump, "post-data")
            if e.desc != "FK CONSTRAINT" or (e.schema, e.tag) not in pp.skip_fks
        ]
        first, rest = schema.split_post_data(entries)

        def indexes() -> None:
            # some were built already: early, next to the copy, or before a crash
            todo = schema.missing_on_target(tgt, first)
            schema.restore_list(
                pp.pg_restore,
                pp.dump,
                target,
                todo,
                jobs=jobs,
                opts=pp.opts,
                what="indexes and constraints",
                workdir=pp.workdir,
            )

        ph.run("indexes", indexes)
    if sequences is not None:
        seqs = sequences
        ph.run("sequences", lambda: finish.set_sequences(target, seqs))
        left = [t for t in leaves if t.qualified not in (vacuumed or set())]
        ph.run("vacuum-analyze", lambda: finish.vacuum_analyze(target, left, parents, jobs))
    if post is not None:
        pp = post
        ph.run(
            "post-data",
            lambda: schema.restore_list(
                pp.pg_restore,
                pp.dump,
                target,
                rest,
                jobs=1,
                opts=pp.opts,
                what="post-data",
                workdir=pp.workdir,
            ),
        )
