"""The COPY sink: stream bytes into `COPY table (cols) FROM STDIN (opts)`.

Errors come back as pgferry errors chosen by SQLSTATE class, carrying the
table and, for rejected rows, the line and column COPY reports.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

import psycopg
from psycopg import sql

from pgferry.errors import (
    ColumnNotFound,
    CopyOptionsError,
    DataError,
    PermissionDenied,
    PgferryError,
    StatementCancelled,
    TableNotFound,
    TargetBusy,
    TargetError,
    TargetUnreachable,
)
from pgferry.sink.names import display_table, table_ident
from pgferry.sink.options import CopyOptions
from pgferry.stores import ObjectRef

_LINE = re.compile(r"\bline (\d+)(?:, column ([^:]+))?")
# PostgreSQL 17+'s NOTICE after ON_ERROR IGNORE skipped rows; a count, not a branch
_SKIPPED = re.compile(r"^(\d+) rows? w(?:as|ere) skipped")
# statement-time SQLSTATEs that mean "these COPY options are refused"
_REFUSED_OPTIONS = ("42601", "22023", "0A000")
# SQLSTATE classes where the same statement may succeed later
# 08: the connection; 40 (rollback: deadlock, serialization) and 53 (resources)
# may pass on a retry but are not a lost server: TargetBusy
_BUSY_CLASSES = ("40", "53")
# class 57 (operator intervention), exact codes: the server shut down, crashed
# or is starting (admin_shutdown, crash_shutdown, cannot_connect_now) or closed
# an idle session; 57014 (query_canceled) is a timeout or cancel, and the rest
# (57P04 database_dropped, 57000) will not pass on a retry
UNREACHABLE_STATES = ("57P01", "57P02", "57P03", "57P05")
_QUERY_CANCELED = "57014"


def copy_statement(
    table: tuple[str, ...], columns: Sequence[str], options: CopyOptions
) -> sql.Composed:
    cols = (
        sql.SQL(" ({})").format(sql.SQL(", ").join(map(sql.Identifier, columns)))
        if columns
        else sql.SQL("")
    )
    opts = options.render()
    return sql.SQL("COPY {}{} FROM STDIN {}").format(table_ident(table), cols, opts)


def copy_in(
    conn: psycopg.Connection[Any],
    table: tuple[str, ...],
    columns: Sequence[str],
    options: CopyOptions,
    chunks: Iterable[bytes],
    *,
    ref: ObjectRef,
    line_offset: int = 0,
) -> tuple[int, int]:
    """Run one COPY FROM STDIN fed by `chunks`; return the rows COPY reports
    loaded and the rows it says it skipped (ON_ERROR IGNORE).

    The caller owns the transaction: on any error here (from the database
    or from `chunks`) COPY is aborted and nothing it sent stays.
    `line_offset`: lines of the object before the first one sent here (an
    error names the object's line)."""
    stmt = copy_statement(table, columns, options)
    return run_copy(conn, stmt, chunks, table=table, ref=ref, line_offset=line_offset)


def run_copy(
    conn: psycopg.Connection[Any],
    stmt: sql.Composed,
    chunks: Iterable[bytes | memoryview],
    *,
    table: tuple[str, ...],
    ref: ObjectRef,
    line_offset: int = 0,
) -> tuple[int, int]:
    """`copy_in` for a COPY statement already composed."""
    skipped = 0

    def notice(diag: psycopg.errors.Diagnostic) -> None:
        nonlocal skipped
        m = _SKIPPED.match(diag.message_primary or "")
        if m:
            skipped += int(m.group(1))

    conn.add_notice_handler(notice)
    started = False
    try:
        with conn.cursor() as cur:
            with cur.copy(stmt) as copy:
                started = True
                for chunk in chunks:
                    # psycopg sends a large buffer in 128 kB slices: slices of
                    # a memoryview are views, of bytes they are copies
                    copy.write(memoryview(chunk))
            return max(cur.rowcount, 0), skipped
    except psycopg.Error as e:
        if not started:
            # refused before any row was sent: the statement, not the data
            raise map_statement_error(e, table, ref) from None
        raise map_db_error(e, table, ref, line_offset=line_offset) from None
    finally:
        conn.remove_notice_handler(notice)


def map_statement_error(e: psycopg.Error, table: tuple[str, ...], ref: ObjectRef) -> PgferryError:
    state = e.sqlstate or ""
    if state in _REFUSED_OPTIONS:
        primary = e.diag.message_primary or str(e).strip()
        return CopyOptionsError(
            f"the server refused the COPY options: {primary}",
            hint="fix --options (the server's COPY documentation lists what its version takes)",
            table=display_table(table),
            sqlstate=state,
            bucket=ref.bucket,
            key=ref.key,
        )
    return map_db_error(e, table, ref)


def map_db_error(
    e: psycopg.Error, table: tuple[str, ...], ref: ObjectRef, *, line_offset: int = 0
) -> TargetError:
    """The pgferry error for a failed load of `ref` into `table`, chosen by
    SQLSTATE; a line COPY names is shifted by `line_offset`."""
    name = display_table(table)
    source = ref.uri
    state = e.sqlstate or ""
    diag = e.diag
    primary = (diag.message_primary or str(e).strip().splitlines()[0]) if str(e) else state
    ctx: dict[str, Any] = {
        "table": name,
        "sqlstate": state or None,
        "bucket": ref.bucket,
        "key": ref.key,
    }
    if state == "42P01":
        return TableNotFound(
            f'table "{name}" does not exist',
            hint="create it first, or pass --create-table to create it from the file",
            **ctx,
        )
    if state == "42703":
        return ColumnNotFound(
            f'{primary} (table "{name}")',
            hint="fix the column list (--columns) to name columns of the table",
            **ctx,
        )
    if state == "42501":
        return PermissionDenied(
            f'{primary} (table "{name}")',
            hint="GRANT INSERT on the table (and USAGE on its schema) to this role",
            **ctx,
        )
    if state[:2] in ("22", "23") or state == "0A000":
        return _data_error(e, name, source, primary, ctx, line_offset)
    if state == _QUERY_CANCELED:
        return StatementCancelled(
            f'statement timed out or was cancelled while loading table "{name}" from {source} '
            f"({primary})",
            hint="raise statement_timeout for this role or database (ALTER ROLE ... SET "
            "statement_timeout), or pass a larger one in the target URL (options=-c "
            "statement_timeout=...); nothing was committed",
            **ctx,
        )
    if state[:2] in _BUSY_CLASSES:
        return TargetBusy(
            f'the target rolled back the load of table "{name}" from {source}: {primary}',
            hint="nothing was committed; a deadlock or serialization failure passes on a "
            "retry; for too many connections, memory or disk, free some first",
            **ctx,
        )
    if not state or state[:2] == "08" or state in UNREACHABLE_STATES:
        return TargetUnreachable(
            f'lost the target while loading table "{name}" from {source}: {primary}',
            hint="nothing was committed; retry when the server is reachable",
            **ctx,
        )
    return TargetError(f'loading table "{name}" from {source} failed: {primary}', **ctx)


def _data_error(
    e: psycopg.Error, name: str, source: str, primary: str, ctx: dict[str, Any], line_offset: int
) -> DataError:
    m = _LINE.search(e.diag.context or "")
    line = int(m.group(1)) + line_offset if m else None
    column = m.group(2).strip() if m and m.group(2) else None
    where = f"line {line}" if line else "a row"
    if column:
        where += f", column {column}"
    if ctx["sqlstate"] in ("22021", "22P05"):
        hint = (
            "the file is not in the encoding COPY expects: set it in the options, "
            "e.g. \"encoding 'WIN1252'\"; nothing was loaded"
        )
    else:
        hint = "fix the row, or load into a staging table of text columns; nothing was loaded"
    return DataError(
        f'{source} {where} rejected by table "{name}": {primary}',
        hint=hint,
        line=line,
        column=column,
        **ctx,
    )
