"""Import one object (S3 or local file) into a table: the client-side
equivalent of aws_s3.table_import_from_s3, for any PostgreSQL.

All or nothing: the rows (and the table, with create_table) are written in
one transaction, or in a savepoint of the caller's transaction when a
connection is passed in, so callers can commit their own bookkeeping in the
same transaction as the rows.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import psycopg

from pgferry import infer
from pgferry.errors import UsageError
from pgferry.fetch import Decoded, open_decoded
from pgferry.sink.copyin import copy_in, map_db_error
from pgferry.sink.names import display_table, parse_table_name, split_identifiers
from pgferry.sink.options import parse_copy_options
from pgferry.stores import ObjectRef, parse_source
from pgferry.stores.s3 import S3Config
from pgferry.target import connect, resolve_target

log = logging.getLogger("pgferry.import")


@dataclass(frozen=True)
class ImportSpec:
    """Everything one import needs. `source` is s3://bucket/key, file:// or a
    path; alternatively give `bucket` and `key`."""

    table: str
    source: str | None = None
    bucket: str | None = None
    key: str | None = None
    region: str | None = None
    columns: str | Sequence[str] = ""
    options: str = ""
    target: str | None = None
    s3: S3Config = field(default_factory=S3Config)
    content_encoding: str = "auto"
    create_table: bool = False

    def object_ref(self) -> ObjectRef:
        region = self.region or self.s3.region
        if self.source and (self.bucket or self.key):
            raise UsageError(
                "give either a source URI or bucket and key, not both", hint="drop one"
            )
        if self.source:
            return parse_source(self.source, region)
        if self.bucket and self.key:
            return ObjectRef(key=self.key, bucket=self.bucket, region=region)
        raise UsageError("no object to import", hint="give s3://bucket/key, or bucket and key")


@dataclass(frozen=True)
class ImportResult:
    rows: int
    bytes: int
    bucket: str | None
    key: str
    table: str
    compression: str | None = None
    created_table: str | None = None
    seconds: float = 0.0

    @property
    def message(self) -> str:
        # aws_s3's exact wording, so scripts that parse it keep working
        return (
            f'{self.rows} rows imported into relation "{self.table}" '
            f"from file {self.key} of {self.bytes} bytes"
        )

    def __str__(self) -> str:
        return self.message

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "message": self.message}


def import_from_s3(
    table: str,
    source: str | None = None,
    *,
    conn: psycopg.Connection[Any] | None = None,
    on_bytes: Callable[[int, int], None] | None = None,
    **spec: Any,
) -> ImportResult:
    """Import one object into `table`. See ImportSpec for the keywords
    (bucket, key, region, columns, options, target, s3, content_encoding,
    create_table)."""
    return run_import(ImportSpec(table=table, source=source, **spec), conn=conn, on_bytes=on_bytes)


def run_import(
    spec: ImportSpec,
    conn: psycopg.Connection[Any] | None = None,
    *,
    on_bytes: Callable[[int, int], None] | None = None,
) -> ImportResult:
    table = parse_table_name(spec.table)
    columns = (
        split_identifiers(spec.columns) if isinstance(spec.columns, str) else list(spec.columns)
    )
    options = parse_copy_options(spec.options)
    ref = spec.object_ref()
    started = time.monotonic()
    own = conn is None
    if conn is None:
        conn = connect(resolve_target(spec.target))
    try:
        with open_decoded(
            ref, spec.s3, content_encoding=spec.content_encoding, on_bytes=on_bytes
        ) as obj:
            if obj.size == 0:
                log.warning("%s is empty (0 bytes): nothing to load", ref.uri)
            if not own and not conn.autocommit:
                _join_implicit_transaction(conn)
            rows, ddl = _load(conn, obj, table, columns, options, spec.create_table)
    finally:
        if own:
            conn.close()
    return ImportResult(
        rows=rows,
        bytes=obj.size,
        bucket=ref.bucket,
        key=ref.key,
        table=spec.table,
        compression=obj.codec,
        created_table=ddl,
        seconds=round(time.monotonic() - started, 3),
    )


def _load(
    conn: psycopg.Connection[Any],
    obj: Decoded,
    table: tuple[str, ...],
    columns: list[str],
    options: Any,
    create: bool,
) -> tuple[int, str | None]:
    stream = obj.stream()
    ddl: str | None = None
    source = obj.ref.uri
    try:
        with conn.transaction():
            if create and not _table_exists(conn, table):
                sample, stream = infer.peek(stream)
                complete = len(sample) < infer.SAMPLE_BYTES
                cols = infer.infer_columns(sample, options, columns, complete)
                stmt = infer.create_table_sql(table, cols)
                ddl = stmt.as_string(conn)
                conn.execute(stmt)
            rows = copy_in(conn, table, columns, options, stream, source=source)
    except psycopg.Error as e:
        raise map_db_error(e, table, source) from None
    if ddl:
        log.info("created table %s: %s", display_table(table), ddl)
    return rows, ddl


def _join_implicit_transaction(conn: psycopg.Connection[Any]) -> None:
    """On a caller's non-autocommit connection the rows belong to the caller's
    transaction: start it now if idle, so that our block below becomes a
    savepoint (undone alone on failure) and the caller decides on COMMIT."""
    if conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
        conn.execute("SELECT 1")


def _table_exists(conn: psycopg.Connection[Any], table: tuple[str, ...]) -> bool:
    from pgferry.sink.names import table_ident

    name = table_ident(table).as_string(conn)
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", [name]).fetchone()
    return bool(row and row[0])
