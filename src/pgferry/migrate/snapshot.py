"""`snapshot create` and `snapshot list`: a consistent database copy on S3.

Layout under s3://bucket/prefix/NAME/: schema.dump (pg_dump -Fc, pre- and
post-data), data/NNNNN.copy.zst (one zstd COPY text stream per table or
range), large-objects.zst, and manifest.json, written last: a snapshot
without a manifest is incomplete.  The manifest records each stream's rows
and the sha256 of its stored bytes; restore checks both before committing.
"""

from __future__ import annotations

import json
import re
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import zstandard

from pgferry.errors import ObjectNotFound, UsageError
from pgferry.migrate import catalog, finish, schema
from pgferry.migrate.catalog import Unit
from pgferry.migrate.copier import Pool, UnitStats, copy_out
from pgferry.migrate.errors import BadSnapshotName, SnapshotExists
from pgferry.migrate.progress import NullReporter, Reporter
from pgferry.migrate.s3stream import Encryption, MultipartWriter
from pgferry.migrate.tools import find_tool
from pgferry.stores.s3 import S3Config, make_client, map_error

FORMAT = "pgferry-snapshot/1"
NAME = re.compile(r"[A-Za-z](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){0,62}")


@dataclass(frozen=True)
class SnapshotUri:
    bucket: str
    prefix: str  # ends with '/' or is empty
    name: str

    @property
    def base(self) -> str:
        return f"{self.prefix}{self.name}/"

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.base}"


def check_name(name: str) -> str:
    if not NAME.fullmatch(name):
        raise BadSnapshotName(
            f"invalid snapshot name {name!r}",
            hint="use 1-63 letters, digits or hyphens, starting with a letter, "
            "with no trailing or doubled hyphen",
        )
    return name


def parse_prefix(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://"):
        raise UsageError(f"{uri!r} is not an S3 URI", hint="write it as s3://bucket/prefix/")
    bucket, _, prefix = uri[5:].partition("/")
    if not bucket:
        raise UsageError(f"{uri!r} names no bucket", hint="write it as s3://bucket/prefix/")
    prefix = prefix.strip("/")
    return bucket, f"{prefix}/" if prefix else ""


def parse_uri(uri: str) -> SnapshotUri:
    """s3://bucket/prefix/NAME (a trailing slash is fine)."""
    bucket, path = parse_prefix(uri)
    parts = path.rstrip("/").rsplit("/", 1)
    if not path:
        raise UsageError(f"{uri!r} names no snapshot", hint="write it as s3://bucket/prefix/NAME")
    prefix, name = (parts[0] + "/", parts[1]) if len(parts) == 2 else ("", parts[0])
    return SnapshotUri(bucket, prefix, check_name(name))


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


@dataclass
class SnapshotResult:
    uri: str
    streams: int
    rows: int
    raw_bytes: int
    stored_bytes: int
    seconds: float
    tables: list[UnitStats] = field(default_factory=list)


def read_manifest(client: Any, bucket: str, key: str) -> dict[str, Any] | None:
    try:
        body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
    except Exception as e:
        err = map_error(e, bucket, key)
        if isinstance(err, ObjectNotFound):
            return None
        raise err from None
    data: dict[str, Any] = json.loads(body)
    return data


def create_snapshot(cfg: SnapshotConfig, reporter: Reporter | None = None) -> SnapshotResult:
    rep = reporter or NullReporter()
    where = parse_uri(cfg.uri)
    started = time.monotonic()
    client = make_client(cfg.s3, pool=max(16, cfg.jobs * 4))
    if read_manifest(client, where.bucket, where.base + "manifest.json") is not None:
        raise SnapshotExists(
            f"snapshot {where} already exists",
            hint="pick another NAME, or delete the old one first",
            bucket=where.bucket,
            key=where.base + "manifest.json",
        )
    with (
        finish.connect_source(cfg.source) as src,
        tempfile.TemporaryDirectory(prefix="pgferry-snap-") as tmp,
        ThreadPoolExecutor(cfg.jobs * 2, thread_name_prefix="pgferry-s3") as uploads,
    ):
        major = catalog.server_major(src)
        tools = {n: find_tool(n, major) for n in ("pg_dump", "psql")}
        src.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        src.read_only = True
        snapshot = str(src.execute("SELECT pg_export_snapshot()").fetchone()[0])  # type: ignore[index]
        sel = catalog.select_tables(src, list(cfg.tables), list(cfg.exclude))
        if cfg.tables and not sel.tables:
            raise UsageError(f"no source table matches --table {' '.join(cfg.tables)}")
        keep = {t.oid for t in sel.tables}
        excluded = [] if sel.everything else catalog.excluded_relations(src, keep)
        skip_fks = [] if sel.everything else sorted(catalog.dangling_foreign_keys(src, keep))
        dump = Path(tmp) / "schema.dump"
        rep.phase_start("schema")
        schema.dump_schema(tools["pg_dump"], cfg.source, dump, snapshot=snapshot, exclude=excluded)
        w = MultipartWriter(
            client, where.bucket, where.base + "schema.dump", uploads, cfg.encryption
        )
        with dump.open("rb") as f:
            while block := f.read(1 << 20):
                w.write(block)
        schema_obj = w.close()
        rep.phase_done("schema", 0)
        units = catalog.plan_units(src, sel.leaves, cfg.split_bytes, cfg.jobs)
        rep.phase_start("data", sum(u.est_bytes for u in units))
        pool = Pool(cfg.jobs)
        streams: list[dict[str, Any]] = []

        def work(u: Unit) -> UnitStats:
            t0 = time.monotonic()
            rep.unit_start(u.key, u.est_bytes)
            key = f"{where.base}data/{units.index(u):05d}.copy.zst"
            writer = MultipartWriter(client, where.bucket, key, uploads, cfg.encryption)
            comp = zstandard.ZstdCompressor(level=cfg.level).compressobj()
            rows = raw = 0
            try:
                with copy_out(
                    pool,
                    tools["psql"],
                    cfg.source,
                    snapshot,
                    catalog.copy_out_sql(u).as_string(None),
                ) as blocks:
                    for b in blocks:
                        rows += b.count(b"\n")
                        raw += len(b)
                        writer.write(comp.compress(b))
                        rep.unit_progress(u.key, b.count(b"\n"), len(b))
                writer.write(comp.flush())
                out = writer.close()
            except BaseException:
                writer.abort()
                raise
            streams.append(
                {
                    "table": u.table.qualified,
                    "schema": u.table.schema,
                    "name": u.table.name,
                    "columns": u.table.columns,
                    "part": u.part,
                    "parts": u.parts,
                    "key": out.key,
                    "rows": rows,
                    "bytes": raw,
                    "stored_bytes": out.nbytes,
                    "sha256": out.sha256,
                }
            )
            stats = UnitStats(u.key, u.table.qualified, rows, raw, time.monotonic() - t0)
            rep.unit_done(u.key, rows, raw, stats.seconds)
            return stats

        stats = pool.run(units, work)
        rep.phase_done("data", time.monotonic() - started)
        lobs = None if sel.picked else _large_objects(src, client, where, uploads, cfg)
        manifest = {
            "format": FORMAT,
            "name": where.name,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "source": {
                "server_version": src.info.server_version,
                "database": src.info.dbname,
                "pg_dump": tools["pg_dump"].major,
            },
            "compression": "zstd",
            "extensions": catalog.extensions(src),
            "schema": asdict(schema_obj),
            "tables": [
                {
                    "schema": t.schema,
                    "name": t.name,
                    "partitioned": t.partitioned,
                    "columns": t.columns,
                }
                for t in sel.tables
            ],
            "streams": sorted(streams, key=lambda s: str(s["key"])),
            "sequences": catalog.sequences(
                src, None if sel.everything else sel.tables, not sel.picked
            ),
            "large_objects": lobs,
            # foreign keys to tables left out: restore cannot build them
            "skip_foreign_keys": skip_fks,
        }
        src.rollback()
    body = json.dumps(manifest, indent=1).encode()
    try:
        client.put_object(
            Bucket=where.bucket,
            Key=where.base + "manifest.json",
            Body=body,
            ContentType="application/json",
            **cfg.encryption.args(),
        )
    except Exception as e:
        raise map_error(e, where.bucket, where.base + "manifest.json") from None
    return SnapshotResult(
        str(where),
        len(streams),
        sum(s["rows"] for s in streams),
        sum(s["bytes"] for s in streams),
        sum(s["stored_bytes"] for s in streams),
        time.monotonic() - started,
        stats,
    )


def _large_objects(
    src: psycopg.Connection[Any],
    client: Any,
    where: SnapshotUri,
    uploads: ThreadPoolExecutor,
    cfg: SnapshotConfig,
) -> dict[str, Any] | None:
    """All large objects as lines 'oid<TAB>offset<TAB>hex', 1 MiB per line."""
    oids = [r[0] for r in src.execute("SELECT oid FROM pg_largeobject_metadata ORDER BY oid")]
    if not oids:
        return None
    writer = MultipartWriter(
        client, where.bucket, where.base + "large-objects.zst", uploads, cfg.encryption
    )
    comp = zstandard.ZstdCompressor(level=cfg.level).compressobj()
    for oid in oids:
        offset = 0
        while True:
            row = src.execute(
                "SELECT lo_get(%s, %s, %s)", [oid, offset, finish.LO_CHUNK]
            ).fetchone()
            data = bytes(row[0]) if row and row[0] is not None else b""
            if not data and offset > 0:
                break
            writer.write(comp.compress(f"{oid}\t{offset}\t{data.hex()}\n".encode()))
            offset += len(data)
            if not data:
                break
    writer.write(comp.flush())
    out = writer.close()
    return {"key": out.key, "count": len(oids), "stored_bytes": out.nbytes, "sha256": out.sha256}


@dataclass
class SnapshotInfo:
    name: str
    uri: str
    complete: bool
    created: str | None = None
    server_version: int | None = None
    tables: int = 0
    rows: int = 0
    stored_bytes: int = 0


def list_snapshots(uri: str, s3: S3Config | None = None) -> list[SnapshotInfo]:
    bucket, prefix = parse_prefix(uri)
    client = make_client(s3 or S3Config())
    out = []
    try:
        pages = client.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix=prefix, Delimiter="/"
        )
        names = [
            cp["Prefix"][len(prefix) :].rstrip("/")
            for page in pages
            for cp in page.get("CommonPrefixes", [])
        ]
    except Exception as e:
        raise map_error(e, bucket, prefix) from None
    for name in sorted(names):
        m = read_manifest(client, bucket, f"{prefix}{name}/manifest.json")
        info = SnapshotInfo(name, f"s3://{bucket}/{prefix}{name}/", m is not None)
        if m is not None:
            info.created = m["created"]
            info.server_version = m["source"]["server_version"]
            info.tables = len(m["tables"])
            info.rows = sum(s["rows"] for s in m["streams"])
            info.stored_bytes = sum(s["stored_bytes"] for s in m["streams"])
        out.append(info)
    return out
