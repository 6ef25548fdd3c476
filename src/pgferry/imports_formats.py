"""`--format`: which reader a file needs, and the import of the formats COPY
cannot read itself (Parquet, JSON Lines), which pgferry turns into COPY CSV.

csv, text and binary are COPY's own formats: `--format` then only sets
COPY's `format` option and the one-object path (imports.py) does the rest.
Parquet and JSON Lines load here, with the same plan, transaction and
error rules as that path (they share its helpers).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import psycopg
from psycopg import sql

from pgferry import imports, infer
from pgferry.decode import jsonl
from pgferry.errors import DataError, UsageError
from pgferry.fetch import open_decoded
from pgferry.sink.copyin import copy_in, map_db_error
from pgferry.sink.names import table_ident
from pgferry.sink.options import CopyOptions, parse_copy_options
from pgferry.stores import ObjectRef
from pgferry.target import connect, resolve_target

FORMATS = ("csv", "text", "binary", "parquet", "jsonl")
#: formats pgferry reads itself; the others are COPY's
STRUCTURED = ("parquet", "jsonl")
_BY_SUFFIX = {
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".csv": "csv",
    ".tsv": "csv",
}
_COMPRESSED = (".gz", ".gzip", ".zst", ".zstd", ".bz2")


def from_name(key: str) -> str | None:
    name = key.lower()
    for suffix in _COMPRESSED:
        name = name.removesuffix(suffix)
    return next((f for s, f in _BY_SUFFIX.items() if name.endswith(s)), None)


def detect(fmt: str | None, ref: ObjectRef, options: str = "") -> str | None:
    """The format asked for, else the one the name says, else None (COPY's
    options decide, text by default). Given COPY options, the name does not
    decide: `data.json` with options is COPY's (the quote/delimiter trick
    that loads JSON lines as text keeps working)."""
    if fmt and fmt != "auto":
        if fmt not in FORMATS:
            raise UsageError(f"unknown --format {fmt!r}", hint=f"use one of {', '.join(FORMATS)}")
        return fmt
    return None if options.strip() else from_name(ref.key)


def with_copy_format(spec: imports.ImportSpec, fmt: str, ref: ObjectRef) -> imports.ImportSpec:
    """`spec` with COPY's format option set to `fmt` (csv, text, binary)."""
    opts = parse_copy_options(spec.options)
    have = opts.values.get("format")
    if have:
        if str(have).lower() != fmt:
            raise UsageError(
                f"--format {fmt} and --options format {have} disagree", hint="drop one of them"
            )
        return spec
    if not spec.options.strip() and fmt == from_name(ref.key):
        return spec  # a .csv/.tsv name: the one-object path also guesses the header
    text = CopyOptions({"format": fmt, **opts.values}).render().as_string(None)
    return replace(spec, options=text)


def run_structured(
    spec: imports.ImportSpec,
    ref: ObjectRef,
    fmt: str,
    conn: psycopg.Connection[Any] | None = None,
    *,
    on_bytes: Callable[[int, int], None] | None = None,
) -> imports.ImportResult:
    if spec.options.strip():
        raise UsageError(
            f"--options are COPY's options for csv, text and binary; --format {fmt} takes none",
            hint="drop --options",
        )
    plan = imports._plan(spec, ref)
    if plan.policy.skipping:
        raise UsageError(
            f"--on-error skip-rows reads rows of csv or text, not {fmt}",
            hint="drop --on-error; a bad value stops the load naming its line",
        )
    started = time.monotonic()
    own = conn is None
    if conn is None:
        conn = connect(resolve_target(spec.target))
    codec = None
    try:
        with contextlib.ExitStack() as stack:
            if fmt == "parquet":
                from pgferry.decode.parquet import ParquetSource

                if ref.key == "-" and ref.is_local:
                    raise UsageError(
                        "Parquet cannot be read from stdin (its index is at the end)",
                        hint="name the file or the S3 object",
                    )
                src = ParquetSource(ref, spec.s3, on_bytes)
                stack.callback(src.close)
                if not own and not conn.autocommit:
                    imports._join_implicit_transaction(conn)
                rows, ddl = _load(conn, plan, lambda c, e: _parquet(c, e, plan, src))
                size = src.size
            else:
                obj = stack.enter_context(
                    open_decoded(
                        ref, spec.s3, content_encoding=spec.content_encoding, on_bytes=on_bytes
                    )
                )
                codec = obj.codec
                if not own and not conn.autocommit:
                    imports._join_implicit_transaction(conn)
                skipped = jsonl.LineMap()
                rows, ddl = _load(
                    conn, plan, lambda c, e: _jsonl(c, e, plan, obj.stream(), skipped), skipped
                )
                size = obj.size
    finally:
        if own:
            conn.close()
    return imports.ImportResult(
        rows=rows,
        bytes=size,
        bucket=ref.bucket,
        key=ref.key,
        table=spec.table,
        compression=codec,
        created_table=ddl,
        seconds=round(time.monotonic() - started, 3),
        options=f"format {fmt}",
    )


# (connection, table exists) -> columns to COPY, their CSV text, the CREATE TABLE run
_Prepare = Callable[[psycopg.Connection[Any], bool], tuple[list[str], Iterator[bytes], str | None]]


def _load(
    conn: psycopg.Connection[Any],
    plan: Any,
    prepare: _Prepare,
    lines: jsonl.LineMap | None = None,
) -> tuple[int, str | None]:
    table = plan.table
    try:
        with conn.transaction():
            exists = imports._table_exists(conn, table)
            if exists and plan.mode == "replace":
                imports._prepare(conn, sql.SQL("DROP TABLE {}"), "replace", plan)
                exists = False
            elif exists and plan.mode == "truncate":
                imports._prepare(conn, sql.SQL("TRUNCATE {}"), "truncate", plan)
            columns, chunks, ddl = prepare(conn, exists)
            options = CopyOptions({"format": "csv"})
            rows, _ = copy_in(conn, table, columns, options, chunks, ref=plan.ref)
    except psycopg.Error as e:
        raise map_db_error(e, table, plan.ref) from None
    except DataError as e:
        if lines is not None and e.sqlstate and e.line:
            # COPY counts rows; the file also has the blank lines pgferry skipped
            line = lines.line_of(e.line)
            e.what = e.what.replace(f" line {e.line}", f" line {line}", 1)
            e.line = line
        raise
    return rows, ddl


def _create(conn: psycopg.Connection[Any], plan: Any, columns: list[infer.Column]) -> str:
    typed = [
        infer.Column(c.name, plan.types.get(c.name, c.type), c.name not in plan.types)
        for c in columns
    ]
    return imports._create(conn, infer.create_table_sql(plan.table, typed), plan)


def _parquet(
    conn: psycopg.Connection[Any], exists: bool, plan: Any, src: Any
) -> tuple[list[str], Iterator[bytes], str | None]:
    columns: list[str] = src.select(plan.columns)
    ddl = None
    if plan.create and not exists:
        ddl = _create(conn, plan, src.columns(columns))
    return columns, src.csv_chunks(columns), ddl


def _jsonl(
    conn: psycopg.Connection[Any],
    exists: bool,
    plan: Any,
    stream: Iterator[bytes],
    skipped: jsonl.LineMap,
) -> tuple[list[str], Iterator[bytes], str | None]:
    ddl = None
    if exists:
        found = _table_columns(conn, plan.table)
    elif plan.create:
        if len(plan.columns) == 1:  # one column named: the whole line goes there
            made = [infer.Column(plan.columns[0], "jsonb")]
        else:
            sample, stream, complete = infer.peek(stream, infer.lines_enough(plan.sample_rows))
            made = jsonl.infer_columns(sample, plan.ref, complete)
            if plan.columns:
                kinds = {c.name: c.type for c in made}
                made = [infer.Column(n, kinds.get(n, "text")) for n in plan.columns]
            if not made:
                raise UsageError(
                    f"{plan.ref.uri} has no fields in its first lines to create a table from",
                    hint="create the table first",
                    key=plan.ref.key,
                    bucket=plan.ref.bucket,
                )
        ddl = _create(conn, plan, made)
        found = {c.name: plan.types.get(c.name, c.type) for c in made}
    else:
        found = {}  # COPY reports the missing table
    if plan.columns:
        names = list(plan.columns)
    elif exists:
        # an existing table's columns may have defaults (serial ids, load
        # times): load the columns the first lines have fields for
        sample, stream, complete = infer.peek(stream, infer.lines_enough(plan.sample_rows))
        keys = jsonl.sample_keys(sample, complete)
        names = [c for c in found if c in keys]
        docs = [c for c, t in found.items() if t in ("json", "jsonb")]
        if not names and len(docs) == 1:
            names = docs  # no field names a column: whole lines into the one jsonb column
        names = names or list(found)
    else:
        names = list(found)
    json_cols = [n for n in names if found.get(n) in ("json", "jsonb")]
    whole = len(names) == 1 and names[0] in json_cols
    chunks = jsonl.csv_rows(
        stream,
        plan.ref,
        names,
        whole=whole,
        strict=not plan.columns,
        skipped=skipped,
        json_columns=json_cols,
        table_columns=list(found),
    )
    return names, chunks, ddl


def _table_columns(conn: psycopg.Connection[Any], table: tuple[str, ...]) -> dict[str, str]:
    name = table_ident(table).as_string(conn)
    found = conn.execute(
        "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
        "WHERE attrelid = to_regclass(%s) AND attnum > 0 AND NOT attisdropped "
        "AND attgenerated = '' ORDER BY attnum",
        [name],
    ).fetchall()
    return {str(n): str(t) for n, t in found}
