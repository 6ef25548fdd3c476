"""`clone --source mysql://...|mariadb://...|sqlite:///...`: a foreign
database into PostgreSQL.

Phases, each recorded in the target's ledger (pgferry.clone_progress) so
`--resume` skips what is done: pre-data (schema, tables with defaults and
checks), data (one transaction per table, holding its rows, its rejects
and its ledger mark), post-data (primary and unique keys, secondary
indexes, identity restarts, foreign keys, ANALYZE).
"""

from __future__ import annotations

import fnmatch
import functools
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from pgferry.errors import TableNotFound, TargetNotEmpty, UsageError
from pgferry.migrate import session
from pgferry.migrate.progress import Ledger, NullReporter, Reporter, mark_in
from pgferry.sources import load
from pgferry.sources.engine import Source, source_for
from pgferry.sources.model import Range, TableDef
from pgferry.sources.types import NUL_POLICIES
from pgferry.sources.views import Untranslatable, ViewDef
from pgferry.target import connect, mask_password


@dataclass(frozen=True)
class ForeignCloneConfig:
    source: str
    target: str
    schema: str = "public"
    jobs: int = 4
    tables: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    schema_only: bool = False
    data_only: bool = False
    resume: bool = False
    keep_case: bool = False
    casts: tuple[str, ...] = ()
    nul: str = "reject"
    #: tables above this (the source's data size) are copied as parallel
    #: ranges of their integer primary key; None: never
    split_bytes: int | None = 1 << 30


@dataclass
class TableResult:
    table: str
    rows: int
    rejected: int
    nbytes: int
    seconds: float
    parts: int = 1  # > 1: copied as that many key ranges in parallel


@dataclass
class ForeignCloneResult:
    run: str = ""
    phases: list[tuple[str, float]] = field(default_factory=list)
    tables: list[TableResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def rejected(self) -> int:
        return sum(t.rejected for t in self.tables)


def _hit(name: str, target: str, patterns: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatchcase(name, p) or fnmatch.fnmatchcase(target, p) for p in patterns)


def select(
    tables: list[TableDef], include: tuple[str, ...], exclude: tuple[str, ...]
) -> list[TableDef]:
    picked = [
        t
        for t in tables
        if (not include or _hit(t.name, t.target, include)) and not _hit(t.name, t.target, exclude)
    ]
    # MariaDB/MySQL on Linux tell `Users` from `users` (columns never differ by case only)
    seen: dict[str, str] = {}
    for t in picked:
        if t.target in seen:
            raise UsageError(
                f"tables {seen[t.target]!r} and {t.name!r} would both be {t.target!r}"
                " on the target",
                hint="keep their case with --keep-case, or leave one out with --exclude",
            )
        seen[t.target] = t.name
    return picked


def clone_foreign(cfg: ForeignCloneConfig, reporter: Reporter | None = None) -> ForeignCloneResult:
    if cfg.schema_only and cfg.data_only:
        raise UsageError("--schema-only and --data-only exclude each other")
    if cfg.jobs < 1:
        raise UsageError(f"--jobs must be at least 1, not {cfg.jobs}")
    if cfg.nul not in NUL_POLICIES:
        raise UsageError(f"--nul must be one of {', '.join(NUL_POLICIES)}")
    rep = reporter or NullReporter()
    result = ForeignCloneResult(run=session.new_run_id())
    started = time.monotonic()
    src = source_for(cfg.source, keep_case=cfg.keep_case, casts=list(cfg.casts), nul=cfg.nul)
    try:
        result.notes += src.open(min(cfg.jobs, src.max_readers))
        tables = select(src.catalog(result.notes), cfg.tables, cfg.exclude)
        if cfg.tables and not tables:
            raise UsageError(f"no source table matches --table {' '.join(cfg.tables)}")
        views = [
            v
            for v in src.views(result.notes)
            if (not cfg.tables or _hit(v.name, v.target, cfg.tables))
            and not _hit(v.name, v.target, cfg.exclude)
        ]
        with session.tagged("clone", result.run):
            tgt = connect(cfg.target, autocommit=True)
            try:
                session.lock(tgt, mask_password(cfg.target))
                _run(cfg, src, tables, views, tgt, rep, result)
            finally:
                tgt.close()
    finally:
        src.close()
    for n in result.notes:
        rep.note(n)
    result.seconds = time.monotonic() - started
    return result


def _present(tgt: psycopg.Connection[Any], schema: str) -> set[str]:
    rows = tgt.execute(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = %s AND c.relkind IN ('r', 'p')",
        [schema],
    )
    return {r[0] for r in rows}


def _preflight(
    cfg: ForeignCloneConfig, tgt: psycopg.Connection[Any], tables: list[TableDef]
) -> None:
    present = _present(tgt, cfg.schema)
    names = [t.target for t in tables]
    if cfg.data_only:
        absent = [n for n in names if n not in present]
        if absent:
            raise TableNotFound(
                f"--data-only: table {cfg.schema}.{absent[0]} does not exist on the target",
                hint="create the schema first (clone --schema-only)",
                table=absent[0],
            )
    elif not cfg.resume:
        clash = sorted(present & set(names))
        if clash:
            raise TargetNotEmpty(
                f"the target already has table {cfg.schema}.{clash[0]}"
                + (f" (and {len(clash) - 1} more)" if len(clash) > 1 else ""),
                hint="clone into an empty schema (--schema NAME), use --data-only, or --resume",
            )


def _run(
    cfg: ForeignCloneConfig,
    src: Source,
    tables: list[TableDef],
    views: list[ViewDef],
    tgt: psycopg.Connection[Any],
    rep: Reporter,
    result: ForeignCloneResult,
) -> None:
    ledger = Ledger(tgt)
    done = ledger.done() if cfg.resume else set()
    if not cfg.resume or not ledger.exists():
        _preflight(cfg, tgt, tables)
        ledger.create("foreign:" + src.where)
    # the runs that wrote here before: a split table redone drops their rejects
    prior = [i.removeprefix("run:") for i in done if i.startswith("run:")]
    ledger.mark("run:" + result.run)
    with tgt.transaction():
        load.ensure_rejects(tgt)

    def phase(name: str, fn: Any) -> None:
        item = f"phase:{name}"
        if item in done:
            result.skipped.append(name)
            return
        t0 = time.monotonic()
        rep.phase_start(name, None)
        fn()
        ledger.mark(item)
        secs = time.monotonic() - t0
        result.phases.append((name, secs))
        rep.phase_done(name, secs)

    def pre_data() -> None:
        with tgt.transaction():
            tgt.execute(
                sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(cfg.schema))
            )
            for t in tables:
                load.create_table(tgt, cfg.schema, t, result.notes)

    if not cfg.data_only:
        phase("pre-data", pre_data)
    if not cfg.schema_only:
        todo = [t for t in tables if f"table:{cfg.schema}.{t.target}" not in done]
        result.skipped += [t.target for t in tables if t not in todo]
        phase("data", lambda: _copy(cfg, src, todo, rep, result, prior))
    if not cfg.data_only:

        def post() -> None:
            with tgt.transaction():
                load.post_data(tgt, cfg.schema, tables, result.notes)
                _create_views(tgt, src, cfg.schema, views, result.notes)
            for t in tables:
                tgt.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(cfg.schema, t.target)))

        phase("post-data", post)
    # finished: the ledger goes; the rejects stay while there are any
    tgt.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier("pgferry", "clone_progress")))
    row = tgt.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(*load.REJECTS)))
    if (row.fetchone() or (0,))[0] == 0:
        tgt.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(load.REJECTS[0])))


def _create_views(
    tgt: psycopg.Connection[Any],
    src: Source,
    schema: str,
    views: list[ViewDef],
    notes: list[str],
) -> None:
    """Translated views, each under a savepoint; one that reads a view not
    yet made is tried again after the others (dependency order)."""
    todo: dict[str, tuple[ViewDef, sql.Composed]] = {}
    for v in views:
        try:
            todo[v.name] = (v, src.translate(v, schema))
        except Untranslatable as e:
            notes.append(f"view {v.name} skipped: {e} (recreate it by hand)")
    while todo:
        before = len(todo)
        failed: dict[str, str] = {}
        for name, (_v, stmt) in list(todo.items()):
            try:
                with tgt.transaction():
                    tgt.execute(stmt)
                del todo[name]
            except psycopg.errors.UndefinedTable as e:
                failed[name] = e.diag.message_primary or str(e)
            except psycopg.Error as e:
                # class 42 (grouping, unknown column or function...) and 22 only
                if (e.sqlstate or "")[:2] not in ("42", "22"):
                    raise
                notes.append(
                    f"view {name} skipped: PostgreSQL refused its translation:"
                    f" {e.diag.message_primary} (recreate it by hand)"
                )
                del todo[name]
        if len(todo) == before:  # no progress: what is missing is not coming
            for name, why in failed.items():
                notes.append(
                    f"view {name} skipped: PostgreSQL refused its translation: {why}"
                    " (recreate it by hand)"
                )
            return


@dataclass
class _Unit:
    """One COPY: a whole table, or one range of its integer key."""

    table: TableDef
    part: Range | None = None
    index: int = 0
    parts: int = 1
    est: int = 0


@dataclass
class _Split:
    """The parts of a split table finished so far."""

    left: int
    started: float
    rows: int = 0
    rejected: int = 0
    nbytes: int = 0


def _plan(
    cfg: ForeignCloneConfig, src: Source, tables: list[TableDef], notes: list[str]
) -> list[_Unit]:
    """Units, largest first; a table above --split-tables-larger-than becomes
    ranges of its integer key (like a PostgreSQL source's clone)."""
    units: list[_Unit] = []
    for t in tables:
        big = cfg.split_bytes is not None and t.bytes_estimate > cfg.split_bytes
        if not big or cfg.jobs < 2 or src.max_readers < 2:
            units.append(_Unit(t, est=t.rows_estimate))
            continue
        key = t.int_key
        bounds = src.bounds(t) if key is not None else None
        if key is None or bounds is None:
            if key is None:
                notes.append(
                    f"{t.target}: larger than --split-tables-larger-than but without a one-column"
                    " integer primary key, so copied in one stream"
                )
            units.append(_Unit(t, est=t.rows_estimate))
            continue
        assert cfg.split_bytes is not None
        n = max(2, min(-(-t.bytes_estimate // cfg.split_bytes), 4 * cfg.jobs))
        lo, hi = bounds
        cuts = sorted({lo + (hi - lo + 1) * i // n for i in range(1, n)} - {lo})
        # open-ended first and last ranges: nothing is lost to a rounded bound
        edges: list[int | None] = [None, *cuts, None]
        ranges = [Range(edges[i], edges[i + 1]) for i in range(len(edges) - 1)]
        notes.append(
            f"{t.target}: copied as {len(ranges)} parallel ranges of its primary key {key.target}"
        )
        units += [
            _Unit(t, r, i, len(ranges), t.rows_estimate // len(ranges))
            for i, r in enumerate(ranges)
        ]
    units.sort(key=lambda u: -u.est)
    return units


def _copy(
    cfg: ForeignCloneConfig,
    src: Source,
    tables: list[TableDef],
    rep: Reporter,
    result: ForeignCloneResult,
    prior: list[str],
) -> None:
    units = _plan(cfg, src, tables, result.notes)
    splits: dict[str, _Split] = {}
    split_tables = {u.table.target: u.table for u in units if u.parts > 1}
    if split_tables:
        # the parts commit one by one: empty the table (and drop the rejects
        # of an interrupted run's parts) first, so a redo holds no duplicates
        with psycopg.connect(cfg.target, autocommit=True) as conn, conn.transaction():
            for t in split_tables.values():
                conn.execute(sql.SQL("TRUNCATE {}").format(sql.Identifier(cfg.schema, t.target)))
                if prior:
                    conn.execute(
                        sql.SQL("DELETE FROM {} WHERE table_name = %s AND run = ANY(%s)").format(
                            sql.Identifier(*load.REJECTS)
                        ),
                        [t.target, prior],
                    )
    work: queue.Queue[_Unit] = queue.Queue()
    for u in units:
        work.put(u)
    errors: list[BaseException] = []
    lock = threading.Lock()
    readers = min(cfg.jobs, src.max_readers, max(len(units), 1))

    def worker(reader: int) -> None:
        try:
            with psycopg.connect(cfg.target, autocommit=True) as conn:
                while not errors:
                    try:
                        u = work.get_nowait()
                    except queue.Empty:
                        return
                    t = u.table
                    key = f"{cfg.schema}.{t.target}"
                    ukey = key if u.parts == 1 else f"{key}[{u.index + 1}/{u.parts}]"
                    rep.unit_start(ukey, 0)
                    t0 = time.monotonic()
                    if u.parts > 1:
                        with lock:
                            splits.setdefault(t.target, _Split(u.parts, t0))
                    with conn.transaction():
                        if u.parts == 1:
                            conn.execute(
                                sql.SQL("TRUNCATE {}").format(sql.Identifier(cfg.schema, t.target))
                            )
                        stats = load.load_rows(
                            conn,
                            cfg.schema,
                            t,
                            src.rows(reader, t, part=u.part),
                            result.run,
                            functools.partial(rep.unit_progress, ukey),
                        )
                        if u.parts == 1:
                            mark_in(conn, f"table:{key}", stats.rows, stats.nbytes)
                    secs = time.monotonic() - t0
                    rep.unit_done(ukey, stats.rows, stats.nbytes, secs)
                    done: TableResult | None = None
                    with lock:
                        if u.parts == 1:
                            done = TableResult(key, stats.rows, stats.rejected, stats.nbytes, secs)
                        else:
                            sp = splits[t.target]
                            sp.left -= 1
                            sp.rows += stats.rows
                            sp.rejected += stats.rejected
                            sp.nbytes += stats.nbytes
                            if sp.left == 0:
                                secs = time.monotonic() - sp.started
                                done = TableResult(
                                    key, sp.rows, sp.rejected, sp.nbytes, secs, u.parts
                                )
                        if done is not None:
                            result.tables.append(done)
                    if done is not None and u.parts > 1:
                        # every part committed: the table is done
                        mark_in(conn, f"table:{key}", done.rows, done.nbytes)
        except BaseException as e:  # re-raised in the caller's thread
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(readers)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    if errors:
        raise errors[0]
