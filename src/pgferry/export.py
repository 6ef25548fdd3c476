"""`pgferry export`: a query's result or a table, to S3 objects, from the
client. The twin of aws_s3.query_export_to_s3 without the extension: COPY
TO STDOUT streams into files of about `part_size` bytes named KEY,
KEY_part2, ... (split at row ends, stores/parts.py), each uploaded through
the one multipart writer with its parts sent in parallel. Memory stays near
(inflight + 1) x 8 MiB whatever the size of the result.

A failed export leaves nothing behind: the file in progress is aborted and
the files already uploaded are deleted.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from pgferry import units
from pgferry.errors import PermissionDenied, PgferryError, TargetError, UsageError
from pgferry.extension.options import parse_for
from pgferry.sink.names import parse_table_name, table_ident
from pgferry.sink.options import CopyOptions
from pgferry.stores import parse_source
from pgferry.stores.multipart import MultipartWriter, Written
from pgferry.stores.parts import PartSplitter, row_ends
from pgferry.stores.s3 import S3Config, make_client, map_error
from pgferry.target import connect, resolve_target

log = logging.getLogger("pgferry.export")

DEFAULT_PART = 6 << 30  # aws_s3's part size: about 6 GB
ENCODINGS = ("none", "gzip", "zstd")
BATCH = 1 << 20


@dataclass(frozen=True)
class ExportSpec:
    dest: str
    query: str | None = None
    table: str | None = None
    options: str = ""
    format: str | None = None
    part_size: str | int | None = None
    content_encoding: str = "none"
    source: str | None = None
    s3: S3Config = field(default_factory=S3Config)


@dataclass
class ExportResult:
    rows_uploaded: int
    files_uploaded: int
    bytes_uploaded: int
    keys: list[str]
    bucket: str
    seconds: float = 0.0

    @property
    def message(self) -> str:
        return (
            f"{self.rows_uploaded} rows, {self.files_uploaded} files, "
            f"{self.bytes_uploaded} bytes uploaded to s3://{self.bucket}/{self.keys[0]}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows_uploaded": self.rows_uploaded,
            "files_uploaded": self.files_uploaded,
            "bytes_uploaded": self.bytes_uploaded,
            "bucket": self.bucket,
            "keys": self.keys,
            "seconds": self.seconds,
            "message": self.message,
        }


class _Compressed:
    """A part whose bytes are compressed on the way; `size` counts the
    uncompressed bytes, so --part-size means rows' worth of data."""

    def __init__(self, writer: MultipartWriter, codec: str) -> None:
        self.writer = writer
        self._in = 0
        self._c: Any
        if codec == "gzip":
            from isal import isal_zlib

            self._c = isal_zlib.compressobj(1, isal_zlib.DEFLATED, 31)
        else:
            import zstandard

            self._c = zstandard.ZstdCompressor(level=3).compressobj()

    @property
    def size(self) -> int:
        return self._in

    def write(self, data: bytes) -> None:
        self._in += len(data)
        out = self._c.compress(data)
        if out:
            self.writer.write(out)

    def close(self) -> Written:
        self.writer.write(self._c.flush())
        return self.writer.close()

    def abort(self) -> None:
        self.writer.abort()


def _options(spec: ExportSpec) -> CopyOptions:
    opts = parse_for(spec.options, "export")
    if spec.format in ("jsonl", "parquet"):
        if spec.options.strip():
            raise UsageError(
                f"--options are COPY's options; --format {spec.format} takes none",
                hint="drop --options",
            )
        if spec.format == "parquet" and spec.content_encoding != "none":
            raise UsageError(
                "--content-encoding does not apply to Parquet, which compresses inside the file",
                hint="drop --content-encoding",
            )
        return CopyOptions({"format": "text"})  # one JSON object a line: text's row ends
    if spec.format:
        if spec.format not in ("csv", "text", "binary"):
            raise UsageError(
                f"export --format {spec.format} is not supported",
                hint="use csv, text, binary, jsonl or parquet",
            )
        have = opts.values.get("format")
        if have and str(have).lower() != spec.format:
            raise UsageError(
                f"--format {spec.format} and --options format {have} disagree",
                hint="drop one of them",
            )
        opts = CopyOptions({"format": spec.format, **opts.values})
    if spec.content_encoding not in ENCODINGS:
        raise UsageError(
            f"unknown --content-encoding {spec.content_encoding!r}",
            hint=f"use one of {', '.join(ENCODINGS)}",
        )
    return opts


_NAMED = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}
_PACKED = {".gz": "gzip", ".gzip": "gzip", ".zst": "zstd", ".zstd": "zstd"}
_WRITTEN = {
    "text": "COPY's text format (tab-separated, \\N for NULL: the default, as aws_s3's)",
    "binary": "COPY's binary format",
    "csv": "CSV",
    "jsonl": "JSON Lines",
    "parquet": "Parquet",
}


def name_warnings(dest: str, fmt: str, encoding: str) -> list[str]:
    """What the destination's name promises and the export will not write:
    `x.csv` written as text (COPY's and aws_s3's default), `x.csv.gz`
    written uncompressed.  A reader that goes by the name (pgferry's own
    import does) would misread the files."""
    lower = dest.lower()
    out = []
    packed = next((c for ext, c in _PACKED.items() if lower.endswith(ext)), None)
    if packed:
        lower = lower[: lower.rfind(".")]
        if encoding != packed:
            out.append(
                f"{dest} is named like a {packed} file but is written uncompressed;"
                f" pass --content-encoding {packed} to compress it"
                if encoding == "none"
                else f"{dest} is named like a {packed} file but is written as {encoding}"
            )
    named = next((f for ext, f in _NAMED.items() if lower.endswith(ext)), None)
    if named and named != fmt:
        out.append(
            f"{dest} is named like {_WRITTEN[named]} but is written as {_WRITTEN[fmt]};"
            f" pass --format {named} to write {_WRITTEN[named]}"
        )
    return out


def _statement(conn: psycopg.Connection[Any], spec: ExportSpec, opts: CopyOptions) -> sql.Composed:
    if bool(spec.query) == bool(spec.table):
        raise UsageError("give either --query or --table", hint="e.g. --table public.orders")
    jsonl = spec.format == "jsonl"
    if spec.table:
        ident = table_ident(parse_table_name(spec.table))
        if jsonl:
            return sql.SQL("SELECT row_to_json(q)::text FROM {} q").format(ident)
        if spec.format == "parquet":
            return sql.SQL("SELECT * FROM {}").format(ident)
        return sql.SQL("COPY {} TO STDOUT {}").format(ident, opts.render())
    query = (spec.query or "").strip().rstrip(";").strip()
    # The query is SQL by intent (as in psql -c); it is spliced into COPY (...)
    # only after the server parsed it alone as one statement, so it cannot
    # close the parenthesis and add COPY clauses of its own.
    res = conn.pgconn.prepare(b"", query.encode())
    if res.status != psycopg.pq.ExecStatus.COMMAND_OK:
        primary = res.error_field(psycopg.pq.DiagnosticField.MESSAGE_PRIMARY) or b""
        state = res.error_field(psycopg.pq.DiagnosticField.SQLSTATE)
        raise UsageError(
            f"the server refused the query: {primary.decode(errors='replace')}",
            hint="give one SELECT, VALUES, TABLE or WITH query, without a trailing statement",
            sqlstate=state.decode() if state else None,
        )
    if jsonl:
        return sql.SQL("SELECT row_to_json(q)::text FROM ({}) q").format(sql.SQL(query))
    if spec.format == "parquet":
        return sql.SQL("SELECT * FROM ({}) q").format(sql.SQL(query))
    return sql.SQL("COPY ({}) TO STDOUT {}").format(sql.SQL(query), opts.render())


def run_export(
    spec: ExportSpec, *, on_bytes: Callable[[int, int], None] | None = None
) -> ExportResult:
    ref = parse_source(spec.dest, spec.s3.region)
    if ref.is_local:
        raise UsageError(
            f"export writes to S3, not {spec.dest}", hint="give s3://bucket/key as the destination"
        )
    assert ref.bucket is not None
    bucket, key = ref.bucket, ref.key
    opts = _options(spec)
    written = spec.format or str(opts.values.get("format") or "text").lower()
    for warning in name_warnings(spec.dest, written, spec.content_encoding):
        log.warning("%s", warning)
    limit = units.parse_size(
        spec.part_size or DEFAULT_PART, what="--part-size", hint="e.g. 6GB, 64MB or 1048576"
    )
    assert limit is not None
    started = time.monotonic()
    client = make_client(spec.s3, spec.s3.region)
    codec = None if spec.content_encoding == "none" else spec.content_encoding
    with ThreadPoolExecutor(4, thread_name_prefix="pgferry-export") as pool:

        def open_part(k: str) -> Any:
            w = MultipartWriter(client, bucket, k, pool=pool, content_encoding=codec)
            return _Compressed(w, codec) if codec else w

        conn = connect(resolve_target(spec.source), side="source")
        parts: Any = None
        try:
            with conn.transaction():
                stmt = _statement(conn, spec, opts)
                if spec.format == "parquet":
                    from pgferry.export_parquet import ParquetParts

                    parts = ParquetParts(open_part, key, limit)
                    rows = parts.write_query(conn, stmt, on_bytes)
                else:
                    parts = PartSplitter(
                        open_part, key, limit, row_ends(opts), opts.format != "binary"
                    )
                    if spec.format == "jsonl":
                        rows = _jsonl(conn, stmt, parts, on_bytes)
                    else:
                        rows = _copy_out(conn, stmt, parts, on_bytes)
            written = parts.close()
        except BaseException as e:
            if parts is not None:
                parts.abort()
                _delete(client, bucket, [w.key for w in parts.written])
            if isinstance(e, psycopg.Error):
                raise _db_error(e, spec) from None
            if isinstance(e, PgferryError) or not isinstance(e, Exception):
                raise
            raise map_error(e, bucket, key) from None
        finally:
            conn.close()
    return ExportResult(
        rows_uploaded=rows,
        files_uploaded=len(written),
        bytes_uploaded=sum(w.nbytes for w in written),
        keys=[w.key for w in written],
        bucket=bucket,
        seconds=round(time.monotonic() - started, 3),
    )


def _copy_out(
    conn: psycopg.Connection[Any],
    stmt: sql.Composed,
    parts: PartSplitter,
    on_bytes: Callable[[int, int], None] | None,
) -> int:
    with conn.cursor() as cur:
        with cur.copy(stmt) as copy:
            # COPY TO sends a message per row: hand them on in 1 MiB runs
            buf = bytearray()
            for data in copy:
                buf += data
                if len(buf) >= BATCH:
                    parts.write(bytes(buf))
                    buf.clear()
                    if on_bytes is not None:
                        on_bytes(parts.total, 0)
            if buf:
                parts.write(bytes(buf))
        return max(cur.rowcount, 0)


def _jsonl(
    conn: psycopg.Connection[Any],
    stmt: sql.Composed,
    parts: PartSplitter,
    on_bytes: Callable[[int, int], None] | None,
) -> int:
    """One JSON object per row (row_to_json), through a server-side cursor:
    COPY's text format would escape the JSON's backslashes."""
    rows = 0
    with conn.cursor(name="pgferry_export") as cur:
        cur.itersize = 5000
        cur.execute(stmt)
        buf = bytearray()
        for (line,) in cur:
            buf += line.encode("utf-8")
            buf += b"\n"
            rows += 1
            if len(buf) >= BATCH:
                parts.write(bytes(buf))
                buf.clear()
                if on_bytes is not None:
                    on_bytes(parts.total, 0)
        if buf:
            parts.write(bytes(buf))
    return rows


def _delete(client: Any, bucket: str, keys: list[str]) -> None:
    """Best effort: the export's error is the one to report."""
    for k in keys:
        with contextlib.suppress(Exception):
            client.delete_object(Bucket=bucket, Key=k)


def _db_error(e: psycopg.Error, spec: ExportSpec) -> PgferryError:
    primary = e.diag.message_primary or str(e).strip()
    what = f"table {spec.table}" if spec.table else "the query"
    state = e.sqlstate
    if state == "42501":
        return PermissionDenied(
            f"cannot export {what}: {primary}",
            hint="GRANT SELECT on it to this role; nothing was uploaded",
            sqlstate=state,
            table=spec.table,
        )
    if state in ("42P01", "42703", "42601", "42883"):
        return UsageError(
            f"cannot export {what}: {primary}",
            hint="fix the query or table name; nothing was uploaded",
            sqlstate=state,
            table=spec.table,
        )
    return TargetError(
        f"exporting {what} failed: {primary}",
        hint="nothing was uploaded",
        sqlstate=state,
        table=spec.table,
    )
