"""`snapshot create`, `list` and `delete`: a consistent database copy on S3.

Layout under s3://bucket/prefix/NAME/: creating.json (the create marker,
written first, removed at the end), schema.dump (pg_dump -Fc, pre- and
post-data), data/t<oid>-<part>.copy.zst (one zstd COPY text stream per table
or range), large-objects/<first>-<last>.zst (one stream per batch), and
manifest.json, written last: a snapshot without a manifest is incomplete.
The manifest records each stream's rows and the sha256 of its stored bytes;
restore checks both before committing.

While a create runs, progress/ holds one record per finished table and
large-object batch, so `--resume` keeps what an interrupted run finished
(after checking each stored stream is still there, whole) and redoes the rest.
"""

from __future__ import annotations

import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import zstandard

from pgferry.errors import SnapshotExists, UsageError
from pgferry.migrate import catalog, finish, largeobjects, restorable, schema
from pgferry.migrate.catalog import Table, Unit
from pgferry.migrate.copier import Pool, UnitStats, copy_out
from pgferry.migrate.manifest import (
    FORMAT,
    LargeObjectBatch,
    Manifest,
    Source,
    StoredObject,
    Stream,
    TableEntry,
)
from pgferry.migrate.progress import NullReporter, Reporter
from pgferry.migrate.snapstore import (
    MANIFEST,
    MARKER,
    PROGRESS,
    SCHEMA,
    SnapshotInfo,
    SnapshotStore,
    SnapshotUri,
    check_name,
    delete_snapshot,
    list_snapshots,
    parse_prefix,
    parse_uri,
)
from pgferry.migrate.tools import Tool, find_tool
from pgferry.stores.multipart import Encryption
from pgferry.stores.s3 import S3Config, make_client

__all__ = [
    "SnapshotConfig",
    "SnapshotInfo",
    "SnapshotResult",
    "SnapshotUri",
    "check_name",
    "create_snapshot",
    "delete_snapshot",
    "list_snapshots",
    "parse_prefix",
    "parse_uri",
]


@dataclass(frozen=True)
class SnapshotConfig:
    source: str
    uri: str
    jobs: int = 4
    split_bytes: int | None = 1 << 30
    tables: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    encryption: Encryption = field(default_factory=Encryption)
    s3: S3Config = field(default_factory=S3Config)
    level: int = 3
    resume: bool = False


@dataclass
class SnapshotResult:
    uri: str
    streams: int
    rows: int
    #: the tables' COPY text
    raw_bytes: int
    #: everything stored: schema, table streams, large objects
    stored_bytes: int
    seconds: float
    tables: list[UnitStats] = field(default_factory=list)
    #: tables and large-object batches an interrupted run had finished
    reused: list[str] = field(default_factory=list)


def create_snapshot(cfg: SnapshotConfig, reporter: Reporter | None = None) -> SnapshotResult:
    rep = reporter or NullReporter()
    where = parse_uri(cfg.uri)
    started = time.monotonic()
    store = SnapshotStore(make_client(cfg.s3, pool=max(16, cfg.jobs * 4)), where)
    marker = _existing(store, cfg)
    with (
        finish.connect_source(cfg.source) as src,
        tempfile.TemporaryDirectory(prefix="pgferry-snap-") as tmp,
        ThreadPoolExecutor(cfg.jobs * 2, thread_name_prefix="pgferry-s3") as uploads,
    ):
        identity = finish.source_identity(src)
        src.rollback()
        major = catalog.server_major(src)
        tools = {n: find_tool(n, major) for n in ("pg_dump", "psql")}
        src.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        src.read_only = True
        snapshot = str(src.execute("SELECT pg_export_snapshot()").fetchone()[0])  # type: ignore[index]
        sel = catalog.select_tables(src, list(cfg.tables), list(cfg.exclude))
        if cfg.tables and not sel.tables:
            raise UsageError(f"no source table matches --table {' '.join(cfg.tables)}")
        catalog.check_readable(src, sel.tables)
        keep = {t.oid for t in sel.tables}
        excluded = [] if sel.everything else catalog.excluded_relations(src, keep)
        restorable.check(src, excluded)
        skip_fks = [] if sel.everything else sorted(catalog.dangling_foreign_keys(src, keep))

        resumed, done = _start(store, cfg, marker, identity)

        dump = Path(tmp) / "schema.dump"
        t0 = time.monotonic()
        rep.phase_start("schema")
        schema.dump_schema(tools["pg_dump"], cfg.source, dump, snapshot=snapshot, exclude=excluded)
        w = store.writer(SCHEMA, uploads, cfg.encryption)
        with dump.open("rb") as f:
            while block := f.read(1 << 20):
                w.write(block)
        schema_obj = w.close()
        rep.phase_done("schema", time.monotonic() - t0)

        reused: list[str] = []
        streams: list[Stream] = []
        todo = []
        for t in sel.leaves:
            prev = done.get(_table_record(t))
            if prev is not None and _still_there(store, t, prev):
                streams += [Stream(**s) for s in prev["streams"]]
                reused.append(t.qualified)
            else:
                todo.append(t)
        units = catalog.plan_units(src, todo, cfg.split_bytes, cfg.jobs)
        t0 = time.monotonic()
        rep.phase_start("data", sum(u.est_bytes for u in units))
        stats = _copy_units(cfg, rep, store, tools["psql"], snapshot, units, uploads, streams)
        rep.phase_done("data", time.monotonic() - t0)

        lobs: list[LargeObjectBatch] = []
        if not sel.picked:
            t0 = time.monotonic()
            rep.phase_start("large-objects")
            for batch in largeobjects.batches(src):
                lobs.append(_lo_batch(cfg, store, src, batch, uploads, done, reused))
            rep.phase_done("large-objects", time.monotonic() - t0)

        manifest = Manifest(
            name=where.name,
            created=_now(),
            source=Source(
                int(src.info.server_version), src.info.dbname, int(tools["pg_dump"].major)
            ),
            schema=StoredObject(schema_obj.key, schema_obj.nbytes, schema_obj.sha256),
            extensions=catalog.extensions(src),
            tables=[TableEntry(t.schema, t.name, t.partitioned, t.columns) for t in sel.tables],
            streams=sorted(streams, key=lambda s: s.key),
            sequences=catalog.sequences(
                src, None if sel.everything else sel.tables, not sel.picked
            ),
            large_objects=lobs,
            skip_foreign_keys=[(a, b) for a, b in skip_fks],
            resumed=resumed,
        )
        src.rollback()
    store.put(MANIFEST, manifest.to_json(), cfg.encryption, "application/json")
    store.tidy(manifest)
    return SnapshotResult(
        str(where),
        len(manifest.streams),
        manifest.rows,
        sum(s.bytes for s in manifest.streams),
        manifest.stored_bytes,
        time.monotonic() - started,
        stats,
        reused,
    )


def _existing(store: SnapshotStore, cfg: SnapshotConfig) -> dict[str, Any] | None:
    """Refuse to overwrite a snapshot; the create marker of an unfinished
    one (None: a new snapshot)."""
    where = store.where
    if store.get(MANIFEST) is not None:
        raise SnapshotExists(
            f"snapshot {where} already exists"
            + ("; there is nothing to resume" if cfg.resume else ""),
            hint="pick another NAME, or delete the old one first"
            f" (pgferry snapshot delete {where})",
            bucket=where.bucket,
            key=where.base + MANIFEST,
        )
    marker = store.get_json(MARKER)
    if marker is not None and not cfg.resume:
        raise SnapshotExists(
            f"snapshot {where} was started before and not finished",
            hint=f"rerun with --resume to finish it, or pgferry snapshot delete {where}",
            bucket=where.bucket,
            key=where.base + MARKER,
        )
    return marker


def _start(
    store: SnapshotStore, cfg: SnapshotConfig, marker: dict[str, Any] | None, identity: str
) -> tuple[list[str], dict[str, Any]]:
    """Write the create marker; on --resume, check it is the same snapshot
    and return (times resumed, the progress records of earlier runs)."""
    where = store.where
    wanted = {
        "format": FORMAT,
        "source": identity,
        "tables": list(cfg.tables),
        "exclude": list(cfg.exclude),
    }
    resumed: list[str] = []
    done: dict[str, Any] = {}
    if marker is not None:
        if {k: marker.get(k) for k in wanted} != wanted:
            raise SnapshotExists(
                f"--resume: the unfinished snapshot {where} was of another source"
                " database or another --table/--exclude selection",
                hint=f"pass the same options, or pgferry snapshot delete {where}",
                bucket=where.bucket,
                key=where.base + MARKER,
            )
        resumed = [*marker.get("resumed", []), _now()]
        done = store.finished()
    store.put_json(MARKER, {**wanted, "started": _now(), "resumed": resumed}, cfg.encryption)
    return resumed, done


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _table_record(t: Table) -> str:
    return f"{PROGRESS}t{t.oid}.json"


def _still_there(store: SnapshotStore, t: Table, prev: dict[str, Any]) -> bool:
    """The per-stream check of --resume: the table still has the columns its
    streams hold, and every stream is stored whole."""
    if prev.get("columns") != t.columns:
        return False
    return all(store.size(s["key"]) == s["stored_bytes"] for s in prev["streams"])


def _copy_units(
    cfg: SnapshotConfig,
    rep: Reporter,
    store: SnapshotStore,
    psql: Tool,
    snapshot: str,
    units: list[Unit],
    uploads: ThreadPoolExecutor,
    streams: list[Stream],
) -> list[UnitStats]:
    """COPY each unit out into its own stream; a table's progress record is
    written once all its units are stored."""
    pool = Pool(cfg.jobs)
    lock = threading.Lock()
    left = Counter(u.table.oid for u in units)
    per_table: dict[int, list[Stream]] = {}

    def work(u: Unit) -> UnitStats:
        t0 = time.monotonic()
        rep.unit_start(u.key, u.est_bytes)
        writer = store.writer(f"data/t{u.table.oid}-{u.part + 1}.copy.zst", uploads, cfg.encryption)
        comp = zstandard.ZstdCompressor(level=cfg.level).compressobj()
        rows = raw = 0
        try:
            sql_text = catalog.copy_out_sql(u).as_string(None)
            with copy_out(pool, psql, cfg.source, snapshot, sql_text) as blocks:
                for b in blocks:
                    n = b.count(b"\n")
                    rows += n
                    raw += len(b)
                    writer.write(comp.compress(b))
                    rep.unit_progress(u.key, n, len(b))
            writer.write(comp.flush())
            out = writer.close()
        except BaseException:
            writer.abort()
            raise
        t = u.table
        stream = Stream(
            out.key, out.nbytes, out.sha256, t.qualified, t.schema, t.name, t.columns,
            u.part, u.parts, rows, raw,
        )  # fmt: skip
        with lock:
            streams.append(stream)
            per_table.setdefault(t.oid, []).append(stream)
            left[t.oid] -= 1
            finished = per_table[t.oid] if left[t.oid] == 0 else None
        if finished is not None:
            record = {
                "table": t.qualified,
                "columns": t.columns,
                "streams": [asdict(s) for s in finished],
            }
            store.put_json(_table_record(t), record, cfg.encryption)
        stats = UnitStats(u.key, t.qualified, rows, raw, time.monotonic() - t0)
        rep.unit_done(u.key, rows, raw, stats.seconds)
        return stats

    return pool.run(units, work)


def _lo_batch(
    cfg: SnapshotConfig,
    store: SnapshotStore,
    src: psycopg.Connection[Any],
    batch: list[int],
    uploads: ThreadPoolExecutor,
    done: dict[str, Any],
    reused: list[str],
) -> LargeObjectBatch:
    """One batch of large objects as one stream (kept if a previous run
    stored the same batch whole)."""
    name = f"{batch[0]}-{batch[-1]}"
    record = f"{PROGRESS}lo-{name}.json"
    prev = done.get(record)
    if prev is not None and prev.get("count") == len(batch):
        kept = LargeObjectBatch(**prev)
        if store.size(kept.key) == kept.stored_bytes:
            reused.append(largeobjects.item(batch))
            return kept
    writer = store.writer(f"large-objects/{name}.zst", uploads, cfg.encryption)
    comp = zstandard.ZstdCompressor(level=cfg.level).compressobj()
    try:
        for piece in largeobjects.encode(src, batch):
            writer.write(comp.compress(piece))
        writer.write(comp.flush())
        out = writer.close()
    except BaseException:
        writer.abort()
        raise
    out_batch = LargeObjectBatch(out.key, out.nbytes, out.sha256, len(batch), batch[0], batch[-1])
    store.put_json(record, asdict(out_batch), cfg.encryption)
    return out_batch
