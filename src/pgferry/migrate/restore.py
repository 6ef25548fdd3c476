"""`snapshot restore`: load a snapshot from S3 into a target database.

Same phases and ledger as clone.  Each stream is loaded in one transaction
that commits only after its sha256 and row count matched the manifest, so a
corrupt or truncated object never leaves rows behind.  Like clone, restore
refuses a target that already has tables or large objects; a fresh restore
that fails before its schema is in drops its bookkeeping again, leaving the
target as it found it.
"""

from __future__ import annotations

import contextlib
import hashlib
import tempfile
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from pgferry.decode.compression import decompress
from pgferry.errors import DecodeError, ObjectNotFound
from pgferry.migrate import catalog, largeobjects, schema
from pgferry.migrate.catalog import Table, Unit
from pgferry.migrate.copier import Pool, UnitStats, load_units
from pgferry.migrate.errors import ExtensionMissing, SnapshotCorrupt, TargetNotEmpty
from pgferry.migrate.manifest import LargeObjectBatch, Manifest, Stream
from pgferry.migrate.phases import MigrateResult, Phases, PostData, after_data
from pgferry.migrate.progress import Ledger, NullReporter, Reporter
from pgferry.migrate.snapstore import SnapshotStore, parse_uri
from pgferry.migrate.tools import Tool, find_tool
from pgferry.stores import ObjectRef
from pgferry.stores.s3 import S3Config, S3Reader, make_client
from pgferry.target import connect, mask_password


@dataclass(frozen=True)
class RestoreConfig:
    uri: str
    target: str
    jobs: int = 4
    no_owner: bool = False
    no_acl: bool = False
    resume: bool = False
    s3: S3Config = field(default_factory=S3Config)


def _stream(s3: S3Config, bucket: str, key: str, expect: str, what: str) -> Iterator[bytes]:
    """Decompressed blocks of one stored stream; raises SnapshotCorrupt at the
    end (before the caller commits) if the stored bytes' sha256 differs."""
    raw = _stream_raw(s3, bucket, key, expect, what)
    try:
        yield from decompress(raw, "zstd", where=f"s3://{bucket}/{key}", bucket=bucket, key=key)
    except DecodeError as e:
        raise SnapshotCorrupt(
            f"{what} (s3://{bucket}/{key}) is not valid zstd: {e.what}",
            hint="the snapshot is damaged; take a new one",
            bucket=bucket,
            key=key,
        ) from None


def restore_snapshot(cfg: RestoreConfig, reporter: Reporter | None = None) -> MigrateResult:
    rep = reporter or NullReporter()
    where = parse_uri(cfg.uri)
    started = time.monotonic()
    m = SnapshotStore(make_client(cfg.s3), where).manifest()
    if m is None:
        raise ObjectNotFound(
            f"no complete snapshot at {where} (manifest.json is missing)",
            hint="check the URI with 'pgferry snapshot list'",
            bucket=where.bucket,
            key=where.base + "manifest.json",
        )
    result = MigrateResult()
    tools = {n: find_tool(n, m.source.pg_dump) for n in ("pg_restore",)}
    result.tools = {n: f"{t.path} ({t.major})" for n, t in tools.items()}
    with (
        connect(cfg.target, autocommit=True) as tgt,
        tempfile.TemporaryDirectory(prefix="pgferry-restore-") as tmp,
    ):
        ledger = Ledger(tgt)
        origin = f"snapshot {where} {m.created}"
        fresh = not ledger.exists()
        _preflight(cfg, m, tgt, ledger, origin)
        done = ledger.done() if cfg.resume else set()
        if fresh:
            ledger.create(origin)
        try:
            _run(cfg, rep, m, where.bucket, tgt, ledger, done, result, Path(tmp), tools)
        except BaseException:
            # nothing of a fresh restore was kept before pre-data committed:
            # leave no bookkeeping a later run would call an interrupted restore
            with contextlib.suppress(psycopg.Error):  # the first error is the one to report
                if fresh and "phase:pre-data" not in ledger.done():
                    ledger.drop()
            raise
        ledger.drop()
    result.seconds = time.monotonic() - started
    return result


def _preflight(
    cfg: RestoreConfig, m: Manifest, tgt: psycopg.Connection[Any], ledger: Ledger, origin: str
) -> None:
    if ledger.exists():
        if not cfg.resume:
            raise TargetNotEmpty(
                f"the target {mask_password(cfg.target)} holds an interrupted restore or clone",
                hint="rerun with --resume to finish it, or DROP SCHEMA pgferry CASCADE",
            )
        if ledger.origin() != origin:
            raise TargetNotEmpty(
                "--resume: the interrupted work in the target came from elsewhere",
                hint=f"it came from {ledger.origin()}; DROP SCHEMA pgferry CASCADE to start over",
            )
    else:
        present = [f"table {t}" for t in target_tables(tgt)]
        los = tgt.execute("SELECT count(*) FROM pg_largeobject_metadata").fetchone()
        if los and los[0]:
            present.append(f"{los[0]} large object(s)")
        if present:
            more = f" (and {len(present) - 1} more)" if len(present) > 1 else ""
            if cfg.resume:
                raise TargetNotEmpty(
                    f"--resume: the target holds no interrupted restore, and already has"
                    f" {present[0]}{more}",
                    hint="there is nothing to resume (a restore that finished leaves no"
                    " schema pgferry); restore into an empty database",
                )
            raise TargetNotEmpty(
                f"the target already has {present[0]}{more}",
                hint="restore into an empty database",
            )
    catalog.check_not_older(m.source.server_version // 10000, tgt, "the snapshot's source")
    avail = {r[0] for r in tgt.execute("SELECT name FROM pg_available_extensions")}
    missing = [e for e in m.extensions if e not in avail]
    if missing:
        raise ExtensionMissing(
            f"the snapshot uses extension(s) {', '.join(missing)}, "
            "which the target server cannot install",
            hint="install them on the target server first",
        )


def target_tables(tgt: psycopg.Connection[Any]) -> list[str]:
    """The user tables a target already has (what clone and restore refuse)."""
    return [
        f"{r[0]}.{r[1]}"
        for r in tgt.execute(
            "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n"
            " ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p')"
            " AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pgferry')"
            " AND n.nspname !~ '^pg_' ORDER BY 1, 2"
        )
    ]


def _run(
    cfg: RestoreConfig,
    rep: Reporter,
    m: Manifest,
    bucket: str,
    tgt: psycopg.Connection[Any],
    ledger: Ledger,
    done: set[str],
    result: MigrateResult,
    tmp: Path,
    tools: dict[str, Tool],
) -> None:
    ph = Phases(ledger, done, result, rep)
    dump = tmp / "schema.dump"
    with dump.open("wb") as f:
        for block in _stream_raw(cfg.s3, bucket, m.schema.key, m.schema.sha256):
            f.write(block)
    opts = schema.RestoreOptions(cfg.no_owner, cfg.no_acl)

    def pre_data() -> None:
        orphans, notes = schema.orphan_mappings(tgt, dump, opts)
        for message in notes:
            ph.note(message)
        schema.restore_pre_data(
            tools["pg_restore"], dump, cfg.target, opts, skip=orphans, workdir=tmp
        )

    ph.run("pre-data", pre_data)
    tables = {
        (t.schema, t.name): Table(0, t.schema, t.name, t.partitioned, 0, t.columns, None, None)
        for t in m.tables
    }
    streams = [s for s in m.streams if f"table:{s.table}" not in done]
    if "phase:data" not in done:
        result.skipped += sorted({s.table for s in m.streams} - {s.table for s in streams})

    def data() -> None:
        result.tables = _load_all(cfg, rep, bucket, streams, tables, ledger, bool(done))

    ph.run("data", data, sum(s.bytes for s in streams))
    if m.large_objects:
        ph.run("large-objects", lambda: _load_large_objects(cfg, bucket, m.large_objects, done))
    after_data(
        ph,
        PostData(
            tools["pg_restore"],
            dump,
            opts,
            tmp,
            cfg.resume,
            set(m.skip_foreign_keys),
        ),
        tgt,
        cfg.target,
        cfg.jobs,
        sequences=list(m.sequences),
        leaves=[t for t in tables.values() if not t.partitioned],
        parents=[t for t in tables.values() if t.partitioned],
    )


def _stream_raw(
    s3: S3Config, bucket: str, key: str, expect: str, what: str | None = None
) -> Iterator[bytes]:
    """The stored bytes of one object, checked against the manifest's sha256
    once the last one has been handed on (so before the caller commits)."""
    reader = S3Reader(ObjectRef(key=key, bucket=bucket), s3)
    digest = hashlib.sha256()
    try:
        for chunk in reader.chunks():
            digest.update(chunk)
            yield chunk
    finally:
        reader.close()
    if digest.hexdigest() != expect:
        name = f"{what} (s3://{bucket}/{key})" if what else f"s3://{bucket}/{key}"
        raise SnapshotCorrupt(
            f"{name} does not match its checksum in the manifest",
            hint="nothing of it was loaded; the snapshot is damaged, take a new one",
            bucket=bucket,
            key=key,
        )


def _load_all(
    cfg: RestoreConfig,
    rep: Reporter,
    bucket: str,
    streams: list[Stream],
    tables: dict[tuple[str, str], Table],
    ledger: Ledger,
    resuming: bool,
) -> list[UnitStats]:
    streams = sorted(streams, key=lambda s: -s.bytes)
    units = [Unit(tables[s.schema, s.name], None, s.part, s.parts, s.bytes) for s in streams]
    by_key = {u.key: s for u, s in zip(units, streams, strict=True)}

    def blocks(pool: Pool, u: Unit) -> AbstractContextManager[Iterator[bytes]]:
        s = by_key[u.key]
        return nullcontext(_stream(cfg.s3, bucket, s.key, s.sha256, u.key))

    def check(u: Unit, rows: int) -> None:
        s = by_key[u.key]
        if rows != s.rows:
            raise SnapshotCorrupt(
                f"{u.key}: {rows} rows read, the manifest says {s.rows}",
                hint="nothing of it was loaded; the snapshot is damaged",
                bucket=bucket,
                key=s.key,
            )

    return load_units(
        cfg.target,
        units,
        blocks,
        jobs=cfg.jobs,
        ledger=ledger,
        reporter=rep,
        resuming=resuming,
        check=check,
    )


def _load_large_objects(
    cfg: RestoreConfig, bucket: str, batches: list[LargeObjectBatch], done: set[str]
) -> None:
    """One transaction per batch, recorded with it: --resume skips those done."""
    opts = schema.RestoreOptions(cfg.no_owner, cfg.no_acl)
    with connect(cfg.target) as t:
        for b in batches:
            item = f"large-objects:{b.first_oid}-{b.last_oid}"
            if item in done:
                continue
            what = f"large objects {b.first_oid}-{b.last_oid}"
            blocks = _stream(cfg.s3, bucket, b.key, b.sha256, what)
            try:
                n = largeobjects.load(t, blocks, opts, item)
            except (ValueError, KeyError, TypeError) as e:
                raise SnapshotCorrupt(
                    f"{what} (s3://{bucket}/{b.key}) is malformed: {e}",
                    hint="nothing of it was loaded; the snapshot is damaged, take a new one",
                    bucket=bucket,
                    key=b.key,
                ) from None
            if n != b.count:
                raise SnapshotCorrupt(
                    f"{what}: {n} read, the manifest says {b.count}",
                    hint="the snapshot is damaged; take a new one",
                    bucket=bucket,
                    key=b.key,
                )
