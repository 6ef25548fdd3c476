"""Import one object (S3 or local file) into a table: the client-side
equivalent of aws_s3.table_import_from_s3, for any PostgreSQL.

All or nothing: the rows (and the table, with create_table) are written in
one transaction, or in a savepoint of the caller's transaction when a
connection is passed in, so callers can commit their own bookkeeping in the
same transaction as the rows.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import psycopg
from psycopg import sql

from pgferry import background, infer, rejects
from pgferry.decode import charset
from pgferry.errors import DataError, TargetError, UsageError
from pgferry.fetch import Decoded, checked, is_utf8, open_decoded
from pgferry.sink.copyin import map_db_error
from pgferry.sink.fastcopy import copy_csv
from pgferry.sink.names import display_table, parse_table_name, split_identifiers, table_ident
from pgferry.sink.options import CopyOptions, check_copy_from, parse_copy_options
from pgferry.stores import ObjectReader, ObjectRef, parse_source
from pgferry.stores.s3config import S3Config, check_config
from pgferry.target import connect, resolve_target

log = logging.getLogger("pgferry.import")


Mode = Literal["append", "truncate", "replace"]
MODES: tuple[str, ...] = ("append", "truncate", "replace")
_COMPRESSED_SUFFIXES = (".gz", ".gzip", ".zst", ".zstd", ".bz2")


@dataclass(frozen=True)
class ImportSpec:
    """Everything one import needs. `source` is s3://bucket/key, file://, a
    path or `-` (stdin); alternatively give `bucket` and `key`."""

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
    #: append to the table, empty it first, or drop and re-create it from the file
    mode: str = "append"
    #: rows --create-table looks at to choose column types
    sample_rows: int = infer.SAMPLE_ROWS
    #: column -> SQL type, overriding the guess for a table pgferry creates
    column_types: Mapping[str, str] = field(default_factory=dict)
    #: csv, text, binary (COPY's), parquet, jsonl; auto: from the name
    format: str = "auto"
    #: abort, or skip-rows: rejected rows go to `rejects_table` (see rejects.py)
    on_error: str = "abort"
    max_errors: str | None = None
    rejects_table: str | None = None
    #: COPY's encoding, or auto: UTF-8, UTF-16 or Windows-1252 from the first bytes
    encoding: str | None = None
    #: load only this version of the S3 object (If-Match); None: the current one
    etag: str | None = None

    def object_ref(self) -> ObjectRef:
        region = self.region or self.s3.region
        if self.source and (self.bucket or self.key):
            raise UsageError(
                "give either a source URI or bucket and key, not both", hint="drop one"
            )
        if self.source:
            return parse_source(self.source, region)
        if self.bucket and self.key:
            return ObjectRef(key=self.key, bucket=self.bucket, region=region, etag=self.etag)
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
    #: rows COPY skipped (ON_ERROR IGNORE), as the server reported them
    skipped: int = 0
    #: of `rows`, those sent as COPY BINARY (large CSV loads; see sink/fastcopy.py)
    binary_rows: int = 0
    #: the COPY options used, including any chosen from a .csv/.tsv name
    options: str = ""

    @property
    def message(self) -> str:
        # aws_s3's exact wording, so scripts that parse it keep working
        text = (
            f'{self.rows} rows imported into relation "{self.table}" '
            f"from file {self.key} of {self.bytes} bytes"
        )
        if self.skipped:
            text += f" ({self.skipped} {'row' if self.skipped == 1 else 'rows'} skipped)"
        return text

    def __str__(self) -> str:
        return self.message

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "message": self.message}


def import_from_s3(
    table: str,
    source: str | None = None,
    *,
    bucket: str | None = None,
    key: str | None = None,
    region: str | None = None,
    columns: str | Sequence[str] = "",
    options: str = "",
    target: str | None = None,
    endpoint_url: str | None = None,
    access_key: str | None = None,
    secret_key: str | None = None,
    session_token: str | None = None,
    profile: str | None = None,
    s3: S3Config | None = None,
    content_encoding: str = "auto",
    create_table: bool = False,
    mode: Mode = "append",
    sample_rows: int = infer.SAMPLE_ROWS,
    column_types: Mapping[str, str] | None = None,
    format: str = "auto",
    on_error: str = "abort",
    max_errors: str | None = None,
    rejects_table: str | None = None,
    encoding: str | None = None,
    conn: psycopg.Connection[Any] | None = None,
    on_bytes: Callable[[int, int], None] | None = None,
) -> ImportResult:
    """Import one object (`s3://bucket/key`, a path, `-`, or `bucket` and
    `key`) into `table`. S3 settings come either one by one (`endpoint_url`,
    `access_key`, ...; None means the AWS default chain) or as one `s3`
    S3Config, not both. With `conn` the rows join that connection's
    transaction; otherwise pgferry connects to `target` and commits."""
    loose = (endpoint_url, access_key, secret_key, session_token, profile)
    if s3 is not None and any(v is not None for v in loose):
        raise UsageError(
            "give the S3 settings either one by one or as s3=S3Config(...), not both",
            hint="move them into the S3Config",
        )
    if s3 is None:
        s3 = S3Config(
            region=region,
            endpoint_url=endpoint_url,
            access_key=access_key,
            secret_key=secret_key,
            session_token=session_token,
            profile=profile,
        )
    spec = ImportSpec(
        table=table,
        source=source,
        bucket=bucket,
        key=key,
        region=region,
        columns=columns,
        options=options,
        target=target,
        s3=s3,
        content_encoding=content_encoding,
        create_table=create_table,
        mode=mode,
        sample_rows=sample_rows,
        column_types=dict(column_types or {}),
        format=format,
        on_error=on_error,
        max_errors=max_errors,
        rejects_table=rejects_table,
        encoding=encoding,
    )
    return run_import(spec, conn=conn, on_bytes=on_bytes)


@dataclass
class _Plan:
    """What the load does, settled before the first row is sent."""

    table: tuple[str, ...]
    columns: list[str]
    options: CopyOptions
    create: bool
    mode: str
    types: dict[str, str]
    sample_rows: int
    ref: ObjectRef
    policy: rejects.ErrorPolicy = field(default_factory=rejects.ErrorPolicy)


def _plan(spec: ImportSpec, ref: ObjectRef) -> _Plan:
    if spec.mode not in MODES:
        raise UsageError(f"unknown mode {spec.mode!r}", hint=f"use one of {', '.join(MODES)}")
    if spec.sample_rows < 1:
        raise UsageError(
            f"--sample-rows must be at least 1, not {spec.sample_rows}", hint="e.g. 10000"
        )
    options = parse_copy_options(spec.options)
    check_copy_from(options)
    if not ref.is_local:
        check_config(spec.s3)  # before connecting: a usage mistake is reported as one
    create = spec.create_table or spec.mode == "replace"
    types = infer.parse_column_types(spec.column_types)
    if types and not create:
        raise UsageError(
            "--column-type only applies to a table pgferry creates",
            hint="add --create-table (or --mode replace), or ALTER the existing table",
        )
    columns = (
        split_identifiers(spec.columns) if isinstance(spec.columns, str) else list(spec.columns)
    )
    return _Plan(
        table=parse_table_name(spec.table),
        columns=columns,
        options=options,
        create=create,
        mode=spec.mode,
        types=types,
        sample_rows=spec.sample_rows,
        ref=ref,
        policy=rejects.policy(spec.on_error, spec.max_errors, spec.rejects_table),
    )


def run_import(
    spec: ImportSpec,
    conn: psycopg.Connection[Any] | None = None,
    *,
    on_bytes: Callable[[int, int], None] | None = None,
    reader: ObjectReader | None = None,
    savepoint: bool = True,
) -> ImportResult:
    """`reader`: `ref` already opened by the caller (text formats only).
    `savepoint=False` (with the caller's `conn` in a transaction): no
    savepoint of our own, a failure aborts the caller's transaction whole
    (`pgferry watch` then redoes its batch one savepoint per object)."""
    ref = spec.object_ref()
    from pgferry import imports_formats as formats  # here: imports_formats imports this module

    fmt = formats.detect(spec.format, ref, spec.options)
    if fmt in formats.STRUCTURED:
        if reader is not None:
            reader.close()  # Parquet/JSONL readers open the object their own way
        return formats.run_structured(spec, ref, fmt, conn, on_bytes=on_bytes)
    if fmt:
        spec = formats.with_copy_format(spec, fmt, ref)
    plan = _plan(spec, ref)
    started = time.monotonic()
    own = conn is None
    if conn is None:
        conn, obj = _connect_and_open(spec, ref, on_bytes)
    else:
        obj = open_decoded(
            ref, spec.s3, content_encoding=spec.content_encoding, on_bytes=on_bytes, reader=reader
        )
    try:
        with obj:
            raw, charset_, found = charset.prepare(obj.stream(), spec.encoding, plan.options)
            plan.options = charset.apply(plan.options, charset_)
            # the extension's fetcher makes the same checks (pgferry.fetch)
            head, stream = checked(
                raw,
                ref,
                codec=obj.codec,
                requested=spec.content_encoding,
                fmt=plan.options.format,
                utf8=_utf8(plan.options),
            )
            note = None
            if not spec.options.strip():
                known = None if plan.mode == "replace" else _column_names(conn, plan)
                plan.options, note = _options_from_name(ref, head, plan.options, known)
                plan.options = charset.apply(plan.options, charset_)
            if found:
                log.info("%s: --encoding auto found %s", ref.uri, found)
            if not own and not conn.autocommit:
                _join_implicit_transaction(conn)
            # about what the stream holds: a compressed object decodes to
            # several times its size; a pipe has told only what was read so far
            expected = obj.size * (8 if obj.codec else 1)
            loaded = _load(conn, stream, plan, savepoint=savepoint, size=expected)
            size = obj.size  # after the load: a pipe's size is what was read
    finally:
        if own:
            conn.close()
    if size == 0:
        log.warning("%s is empty (0 bytes): nothing to load", ref.uri)
    if note:
        # after the load: a failure is reported in one line, on its own
        log.warning("%s", note)
    return ImportResult(
        rows=loaded.rows,
        bytes=size,
        bucket=ref.bucket,
        key=ref.key,
        table=spec.table,
        compression=obj.codec,
        created_table=loaded.ddl,
        seconds=round(time.monotonic() - started, 3),
        skipped=loaded.skipped,
        binary_rows=loaded.binary,
        options=plan.options.render().as_string(None),
    )


def _connect_and_open(
    spec: ImportSpec, ref: ObjectRef, on_bytes: Callable[[int, int], None] | None
) -> tuple[psycopg.Connection[Any], Decoded]:
    """Connect to the target while another thread opens the object (S3
    client, HEAD, first GET): the two round trips overlap, which is most of a
    small import's wait. A connection failure is reported first, as when
    the two ran one after the other."""
    opening = background.start(
        open_decoded,
        ref,
        spec.s3,
        name="pgferry-open",
        content_encoding=spec.content_encoding,
        on_bytes=on_bytes,
    )
    try:
        conn = connect(resolve_target(spec.target))
    except BaseException:
        opening.add_done_callback(_close_opened)
        raise
    try:
        return conn, opening.result()
    except BaseException:  # the open failed, or Ctrl-C while waiting for it
        opening.add_done_callback(_close_opened)
        conn.close()
        raise


def _close_opened(opening: Future[Decoded]) -> None:
    if not opening.cancelled() and opening.exception() is None:
        opening.result().close()


def _utf8(options: CopyOptions) -> bool:
    return is_utf8(options.encoding)


def _column_names(conn: psycopg.Connection[Any], plan: _Plan) -> list[str] | None:
    """The columns the file fills (--columns, else the table's), None when the
    table does not exist yet."""
    if plan.columns:
        return list(plan.columns)
    name = table_ident(plan.table).as_string(conn)
    with conn.transaction():  # ends here: the load's own transaction comes next
        found = conn.execute(
            "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(%s) "
            "AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
            [name],
        ).fetchall()
    return [str(r[0]) for r in found] or None


def _options_from_name(
    ref: ObjectRef, head: bytes, options: CopyOptions, known: list[str] | None
) -> tuple[CopyOptions, str | None]:
    """No --options: a `.csv` or `.tsv` name (compressed or not) means CSV
    (tab-delimited for .tsv), with a header when the first line looks like
    one: for an existing table, when it names the table's columns (a data
    row is never dropped on a guess); for a table to create, when it holds
    distinct non-empty names. Returns the options and, when they read the
    file differently from COPY's default (text, tab-delimited), a note."""
    name = ref.key.lower()
    for suffix in _COMPRESSED_SUFFIXES:
        name = name.removesuffix(suffix)
    if name.endswith(".csv"):
        values: dict[str, Any] = {"format": "csv"}
        kind, sep = "CSV", b","
    elif name.endswith(".tsv"):
        values = {"format": "csv", "delimiter": "\t"}
        kind, sep = "tab-separated CSV", b"\t"
    else:
        return options, None
    header = infer.looks_like_header(head, CopyOptions(dict(values)), known)
    if header:
        values["header"] = True
    note = None
    if header or sep in head or b'"' in head:
        note = (
            f"no --options given: read {ref.uri} as {kind} "
            f"{'with a header line' if header else 'without a header line'} (from its name); "
            "pass --options to choose"
        )
    return CopyOptions(values), note


def _load(
    conn: psycopg.Connection[Any],
    stream: Iterator[bytes],
    plan: _Plan,
    *,
    savepoint: bool = True,
    size: int = 0,
) -> _Loaded:
    """`size`: about how many bytes the stream holds (0: unknown)."""
    ddl: str | None = None
    binary = 0
    created: list[infer.Column] = []
    table = plan.table
    try:
        with conn.transaction() if savepoint else contextlib.nullcontext():
            # appending to a table we do not create needs no look first (a
            # round trip per object for `pgferry watch`): COPY says if it is missing
            exists = (plan.mode != "append" or plan.create) and _table_exists(conn, table)
            if exists and plan.mode == "replace":
                _prepare(conn, sql.SQL("DROP TABLE {}"), "replace", plan)
                exists = False
            elif exists and plan.mode == "truncate":
                _prepare(conn, sql.SQL("TRUNCATE {}"), "truncate", plan)
            if plan.create and not exists:
                wanted = plan.sample_rows + (1 if plan.options.header else 0)
                sample, stream, complete = infer.peek(stream, infer.lines_enough(wanted))
                created = infer.infer_columns(
                    sample,
                    plan.options,
                    plan.columns,
                    complete,
                    sample_rows=plan.sample_rows,
                    types=plan.types,
                    table=display_table(table),
                    ref=plan.ref,
                )
                ddl = _create(conn, infer.create_table_sql(table, created), plan)
            if plan.policy.skipping:
                loader = rejects.SkippingLoader(plan.policy)
                rows, skipped = loader.load(
                    conn, table, plan.columns, plan.options, stream, ref=plan.ref
                )
            else:
                rows, skipped, binary = copy_csv(
                    conn, table, plan.columns, plan.options, stream, ref=plan.ref, size=size
                )
    except psycopg.Error as e:
        raise map_db_error(e, table, plan.ref) from None
    except DataError as e:
        raise _misfit(e, created, plan) from None
    if ddl:
        log.info("created table %s: %s", display_table(table), ddl)
    return _Loaded(rows, skipped, ddl, binary)


@dataclass(frozen=True)
class _Loaded:
    rows: int
    skipped: int
    ddl: str | None
    binary: int  # of `rows`, those sent as COPY BINARY


def _create(conn: psycopg.Connection[Any], stmt: sql.Composed, plan: _Plan) -> str:
    try:
        conn.execute(stmt)
    except psycopg.Error as e:
        name = display_table(plan.table)
        primary = e.diag.message_primary or str(e).strip()
        ctx: dict[str, Any] = {"table": name, "sqlstate": e.sqlstate}
        if e.sqlstate == "42704":  # undefined_object: a --column-type names no type
            raise UsageError(
                f'cannot create table "{name}": {primary}',
                hint="fix --column-type to name a type of the target database",
                **ctx,
            ) from None
        raise TargetError(
            f'cannot create table "{name}": {primary}',
            hint="create it yourself, then import without --create-table",
            **ctx,
        ) from None
    return stmt.as_string(conn)


def _prepare(conn: psycopg.Connection[Any], stmt: sql.SQL, verb: str, plan: _Plan) -> None:
    """DROP or TRUNCATE before the load, in its transaction; a refusal (other
    objects depend on the table, a foreign key points at it) names the mode."""
    try:
        conn.execute(stmt.format(table_ident(plan.table)))
    except psycopg.Error as e:
        name = display_table(plan.table)
        primary = e.diag.message_primary or str(e).strip()
        other = "--mode truncate" if verb == "replace" else "--mode append"
        raise TargetError(
            f'cannot {verb} table "{name}" (--mode {verb}): {primary}',
            hint=f"use {other}, or resolve the dependency first; nothing was changed",
            table=name,
            sqlstate=e.sqlstate,
        ) from None


def _misfit(e: DataError, created: Sequence[infer.Column], plan: _Plan) -> DataError:
    """A row past the sample that does not fit a guessed type: say which
    column and how to choose its type."""
    col = next((c for c in created if c.name == e.column and c.guessed), None)
    if col is None or col.type == "text" or e.sqlstate in ("22021", "22P05"):
        return e
    return DataError(
        e.what,
        hint=f"column {col.name} was created as {col.type} from the first {plan.sample_rows} "
        f"rows: pass --column-type {col.name}=text (or a larger --sample-rows); "
        "nothing was loaded",
        table=e.table,
        line=e.line,
        column=e.column,
        sqlstate=e.sqlstate,
        key=e.key,
        bucket=e.bucket,
    )


def _join_implicit_transaction(conn: psycopg.Connection[Any]) -> None:
    """On a caller's non-autocommit connection the rows belong to the caller's
    transaction: start it now if idle, so that our block below becomes a
    savepoint (undone alone on failure) and the caller decides on COMMIT."""
    if conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
        conn.execute("SELECT 1")


def _table_exists(conn: psycopg.Connection[Any], table: tuple[str, ...]) -> bool:
    name = table_ident(table).as_string(conn)
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", [name]).fetchone()
    return bool(row and row[0])
