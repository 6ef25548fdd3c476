"""`clone`: copy a whole database from a source server into a target one.

Phases: pre-data schema, data (parallel COPY in one exported snapshot),
large objects, indexes and constraints (parallel), sequence values,
VACUUM ANALYZE, the rest of post-data.  Each finished phase and table is
recorded in the target's ledger so `resume=True` skips it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from pgferry.errors import TableNotFound, UsageError
from pgferry.migrate import (
    catalog,
    dbsettings,
    finish,
    largeobjects,
    schema,
    selection,
    session,
)
from pgferry.migrate.background import Background
from pgferry.migrate.catalog import Selection, Table, Unit
from pgferry.migrate.copier import Pool, UnitStats, copy_out, load_units
from pgferry.migrate.errors import ExtensionMissing, TargetNotEmpty
from pgferry.migrate.indexer import Indexer
from pgferry.migrate.indexer import by_table as indexer_by_table
from pgferry.migrate.phases import MigrateResult, Phase, Phases, PostData, after_data
from pgferry.migrate.progress import Ledger, NullReporter, Reporter
from pgferry.migrate.smallcopy import SMALL_UNIT_BYTES, SnapshotReaders
from pgferry.migrate.toc import Section
from pgferry.migrate.tools import Running, Tool, find_tool
from pgferry.target import connect, mask_password


@dataclass(frozen=True)
class CloneConfig:
    source: str
    target: str
    jobs: int = 4
    #: tables larger than this (bytes on disk) are copied as parallel ranges
    split_bytes: int | None = 1 << 30
    tables: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    schema_only: bool = False
    data_only: bool = False
    no_owner: bool = False
    no_acl: bool = False
    resume: bool = False
    #: carry the database's comment, grants and ALTER DATABASE/ROLE ... SET
    database_settings: bool = False
    #: read the source in this exported snapshot (replica create: the one its
    #: replication slot exported) instead of exporting one of our own
    snapshot: str | None = None


CloneResult = MigrateResult
#: tables at least this big (on the source's disk) get their indexes built early
EARLY_INDEX_BYTES = 16 << 20


def _tools(major: int, result: CloneResult, rep: Reporter) -> dict[str, Tool]:
    tools = {name: find_tool(name, major) for name in ("pg_dump", "pg_restore", "psql")}
    for name, tool in tools.items():
        result.tools[name] = f"{tool.path} ({tool.major})"
        if tool.major != major and name != "psql":
            msg = f"no {name} {major} found; using {name} {tool.major} ({tool.path})"
            result.notes.append(msg)
            rep.note(msg)
    return tools


def _preflight(
    cfg: CloneConfig, src: psycopg.Connection[Any], tgt: psycopg.Connection[Any], sel: Selection
) -> None:
    if cfg.tables and not sel.tables:
        raise UsageError(
            f"no source table matches --table {' '.join(cfg.tables)}",
            hint="patterns are globs on schema.table (or on table alone)",
        )
    if not cfg.data_only:
        catalog.check_not_older(catalog.server_major(src), tgt, "the source")
        wanted = catalog.extensions(src)
        avail = {r[0] for r in tgt.execute("SELECT name FROM pg_available_extensions")}
        missing = [e for e in wanted if e not in avail]
        if missing:
            raise ExtensionMissing(
                f"the source uses extension(s) {', '.join(missing)}, "
                "which the target server cannot install",
                hint="install them on the target server (its package), or exclude what uses them",
            )
    present = {
        f"{r[0]}.{r[1]}"
        for r in tgt.execute(
            "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n"
            " ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p')"
            " AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pgferry')"
            " AND n.nspname !~ '^pg_'"
        )
    }
    names = [t.qualified for t in sel.tables]
    if cfg.data_only:
        absent = [n for n in names if n not in present]
        if absent:
            raise TableNotFound(
                f"--data-only: table {absent[0]} does not exist on the target"
                + (f" (and {len(absent) - 1} more)" if len(absent) > 1 else ""),
                hint="create the schema first (clone --schema-only)",
                table=absent[0],
            )
    elif not cfg.resume:
        clash = sorted(present & set(names)) if not sel.everything else sorted(present)
        if clash:
            raise TargetNotEmpty(
                f"the target already has table {clash[0]}"
                + (f" (and {len(clash) - 1} more)" if len(clash) > 1 else ""),
                hint="clone into an empty database, or use --data-only",
            )


def clone(cfg: CloneConfig, reporter: Reporter | None = None) -> CloneResult:
    """Raises PostDataIncomplete (everything else done; --resume retries the
    missing items) and IndexesInvalid among the MigrateErrors."""
    if cfg.schema_only and cfg.data_only:
        raise UsageError("--schema-only and --data-only exclude each other")
    if cfg.jobs < 1:
        raise UsageError(f"--jobs must be at least 1, not {cfg.jobs}")
    rep = reporter or NullReporter()
    result = CloneResult()
    started = time.monotonic()
    run_id = session.new_run_id()
    # every connection and child of this run is tagged, so that a resume
    # after a kill can end what is left of it
    with session.tagged("clone", run_id):
        src = finish.connect_source(cfg.source)
        tgt = connect(cfg.target, autocommit=True)
        try:
            session.lock(tgt, mask_password(cfg.target))
            with session.temp_dir("clone") as tmp:
                _run(cfg, rep, result, src, tgt, Path(tmp), run_id)
        finally:
            src.close()
            session.unlock(tgt)
            tgt.close()
    result.seconds = time.monotonic() - started
    return result


def _run(
    cfg: CloneConfig,
    rep: Reporter,
    result: CloneResult,
    src: psycopg.Connection[Any],
    tgt: psycopg.Connection[Any],
    tmp: Path,
    run_id: str,
) -> None:
    major = catalog.server_major(src)
    tools = _tools(major, result, rep)
    ledger = Ledger(tgt)
    shown = mask_password(cfg.target)
    if ledger.exists() and not cfg.resume:
        raise TargetNotEmpty(
            f"the target {shown} holds an interrupted clone (schema pgferry)",
            hint="rerun with --resume to finish it, or DROP SCHEMA pgferry CASCADE to start over",
        )
    origin = finish.source_identity(src)
    src.rollback()
    done = ledger.done() if cfg.resume else set()
    if cfg.resume and ledger.exists() and ledger.origin() != origin:
        raise TargetNotEmpty(
            "--resume: the interrupted clone in the target came from another source database",
            hint="pass the same --source, or DROP SCHEMA pgferry CASCADE and start over",
        )
    # the coordinator: holds the exported snapshot until every reader is done
    src.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
    src.read_only = True
    if cfg.snapshot:
        src.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(cfg.snapshot)))
        snapshot = cfg.snapshot
    else:
        snapshot = str(src.execute("SELECT pg_export_snapshot()").fetchone()[0])  # type: ignore[index]
    sel = catalog.select_tables(src, list(cfg.tables), list(cfg.exclude))
    catalog.check_readable(src, sel.tables)
    if cfg.resume and not ledger.exists() and _finished(cfg, tgt, sel):
        ph = Phases(ledger, done, result, rep)
        ph.note(f"nothing to resume: {shown} holds no interrupted clone (it has finished)")
        return
    dump = tmp / "schema.dump"
    dumping: Running | None = None
    if not cfg.data_only:
        excluded: list[str] = []
        if not sel.everything:
            excluded = catalog.excluded_relations(src, {t.oid for t in sel.tables})
        # pg_dump reads the catalogs while we check and set up the target
        dumping = schema.start_dump(
            tools["pg_dump"], cfg.source, dump, snapshot=snapshot, exclude=excluded
        )
    lobs: Background[int] | None = None
    try:
        _preflight(cfg, src, tgt, sel)
        seqs = catalog.sequences(src, None if sel.everything else sel.tables, True)
        if ledger.exists():
            for old in sorted(i[len("run:") :] for i in ledger.done() if i.startswith("run:")):
                if n := session.end_leftovers(tgt, "clone", old):
                    msg = f"ended {n} session(s) the interrupted run {old} left on the target"
                    result.notes.append(msg)
                    rep.note(msg)
        else:
            ledger.create(origin)
        ledger.mark(f"run:{run_id}")
        if (
            not cfg.schema_only
            and not sel.picked
            and Phase.LARGE_OBJECTS.item not in done
            and largeobjects.any_in(src)
        ):
            # large objects need neither the schema nor the rows: they are
            # copied meanwhile, in the snapshot, on connections of their own
            lobs = _large_objects(cfg, snapshot, done)
        if dumping is not None:
            dumping.wait()
        _phases(cfg, rep, result, src, tgt, tmp, tools, ledger, done, snapshot, sel, seqs, lobs)
    except BaseException:
        if dumping is not None:
            dumping.kill()
        if lobs is not None:
            lobs.cancel()
        raise


def _large_objects(cfg: CloneConfig, snapshot: str, done: set[str]) -> Background[int]:
    opts = schema.RestoreOptions(cfg.no_owner, cfg.no_acl)

    def work(stop: threading.Event) -> int:
        readers = SnapshotReaders(cfg.source, snapshot)
        try:
            return largeobjects.copy(readers.connection(), cfg.target, done, opts, stop)
        finally:
            readers.close()

    return Background(work, "pgferry-large-objects")


def _phases(
    cfg: CloneConfig,
    rep: Reporter,
    result: CloneResult,
    src: psycopg.Connection[Any],
    tgt: psycopg.Connection[Any],
    tmp: Path,
    tools: dict[str, Tool],
    ledger: Ledger,
    done: set[str],
    snapshot: str,
    sel: Selection,
    seqs: list[tuple[str, str, int, bool]],
    lobs: Background[int] | None,
) -> None:
    ph = Phases(ledger, done, result, rep)
    opts = schema.RestoreOptions(cfg.no_owner, cfg.no_acl)
    dump = tmp / "schema.dump"
    post_skip: set[int] = set()
    if not cfg.data_only:
        pre_skip: set[int] = set()
        if not sel.everything:
            keep = {t.oid for t in sel.tables}
            out = selection.left_out(src, dump, keep, catalog.kept_relations(src, keep))
            for message in out.notes:
                ph.note(message)
            pre_skip, post_skip = out.pre, out.post

        def pre_data() -> None:
            orphans, notes = schema.orphan_mappings(tgt, dump, opts)
            for message in notes:
                ph.note(message)
            schema.restore_pre_data(
                tools["pg_restore"], dump, cfg.target, opts, skip=pre_skip | orphans, workdir=tmp
            )

        ph.run(Phase.PRE_DATA, pre_data)
    indexer: Indexer | None = None
    vacuumed: set[str] = set()
    if not cfg.schema_only:
        todo = [t for t in sel.leaves if f"table:{t.qualified}" not in done]
        if Phase.DATA.item not in done:
            result.skipped += [t.qualified for t in sel.leaves if t not in todo]
        units = catalog.plan_units(src, todo, cfg.split_bytes, cfg.jobs)

        if not cfg.data_only:
            early = schema.split_post_data(schema.toc(dump, Section.POST_DATA))[0]
            indexer = Indexer(
                tools["pg_restore"],
                dump,
                cfg.target,
                opts,
                tmp,
                # a resumed data phase may reload tables whose indexes exist
                indexer_by_table(
                    src, schema.missing_on_target(tgt, early) if cfg.resume else early
                ),
                cfg.jobs,
            )

        expression_indexed = {
            int(r[0])
            for r in src.execute("SELECT indrelid FROM pg_index WHERE indexprs IS NOT NULL")
        }

        def data() -> None:
            result.tables = _copy(
                cfg,
                rep,
                tools["psql"],
                snapshot,
                units,
                ledger,
                bool(done),
                indexer,
                lambda t: t.bytes < EARLY_INDEX_BYTES and t.oid not in expression_indexed,
                vacuumed,
            )

        ph.run(Phase.DATA, data, sum(u.est_bytes for u in units))
        if not sel.picked:
            ph.run(Phase.LARGE_OBJECTS, lambda: lobs.result() if lobs else None)
    # --data-only after --schema-only: matviews were refreshed over empty tables
    refresh = finish.populated_matviews(src, tgt) if cfg.data_only else None
    invalid = set(schema.invalid_indexes(src))
    src.rollback()  # the snapshot is no longer needed
    post = (
        None
        if cfg.data_only
        else PostData(
            tools["pg_restore"],
            dump,
            opts,
            tmp,
            cfg.resume,
            skip=post_skip,
            expected_invalid=invalid,
        )
    )
    after_data(
        ph,
        post,
        tgt,
        cfg.target,
        cfg.jobs,
        sequences=None if cfg.schema_only else seqs,
        leaves=sel.leaves,
        parents=[t for t in sel.tables if t.partitioned],
        vacuumed=vacuumed | (indexer.finished if indexer else set()),
        refresh=refresh,
    )
    if cfg.database_settings:
        found = dbsettings.read(src)

        def settings() -> None:
            for message in dbsettings.apply(tgt, found, acl=not cfg.no_acl):
                ph.note(message)

        ph.run(Phase.DATABASE_SETTINGS, settings)
    ledger.drop()


def _finished(cfg: CloneConfig, tgt: psycopg.Connection[Any], sel: catalog.Selection) -> bool:
    """No ledger, and the selected tables are there: a clone that ended."""
    if not sel.tables:
        return False
    t = sel.tables[0]
    row = tgt.execute("SELECT to_regclass(%s) IS NOT NULL", [t.ident.as_string(tgt)]).fetchone()
    return bool(row and row[0])


def _copy(
    cfg: CloneConfig,
    rep: Reporter,
    psql: Tool,
    snapshot: str,
    units: list[Unit],
    ledger: Ledger,
    resuming: bool,
    indexer: Indexer | None,
    vacuum_now: Callable[[Table], bool],
    vacuumed: set[str],
) -> list[UnitStats]:
    """`vacuum_now`: tables vacuumed and analyzed on their worker's connection
    as soon as their rows are in (added to `vacuumed`), not in a phase of
    their own with connections of its own.  Small tables only (big ones are
    vacuumed with their early indexes), and none with an expression index:
    ANALYZE gathers its statistics only once the index exists."""
    readers = SnapshotReaders(cfg.source, snapshot)

    def blocks(pool: Pool, u: Unit) -> AbstractContextManager[Iterator[bytes]]:
        stmt = catalog.copy_out_sql(u).as_string(None)
        if u.est_bytes < SMALL_UNIT_BYTES:
            return readers.copy_out(stmt)
        return copy_out(pool, psql, cfg.source, snapshot, stmt)

    def table_done(t: Table) -> None:
        # a big table's indexes are built as soon as its rows are in, while
        # others are still copied; a small one's wait for the index phase,
        # which builds them all in one pg_restore (a pg_restore per small
        # table costs more than its indexes)
        if indexer is not None and t.bytes >= EARLY_INDEX_BYTES:
            indexer.table_done(t.qualified, t.ident)

    try:
        stats = load_units(
            cfg.target,
            units,
            blocks,
            jobs=finish.useful_jobs(cfg.jobs, sum(u.est_bytes for u in units)),
            ledger=ledger,
            reporter=rep,
            resuming=resuming,
            replica=cfg.data_only,
            truncate=not cfg.data_only,
            table_done=table_done,
            vacuum_now=vacuum_now,
            vacuumed=vacuumed,
        )
    except BaseException:
        if indexer is not None:
            indexer.close()
        raise
    finally:
        readers.close()
    if indexer is not None:
        indexer.wait()
    per_table: dict[str, UnitStats] = {}
    for s in stats:
        agg = per_table.setdefault(s.table, UnitStats(s.table, s.table, 0, 0, 0.0))
        agg.rows += s.rows
        agg.nbytes += s.nbytes
        agg.seconds = max(agg.seconds, s.seconds)
    return sorted(per_table.values(), key=lambda s: -s.nbytes)
