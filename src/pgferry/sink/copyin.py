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
    DataError,
    PermissionDenied,
    TableNotFound,
    TargetError,
    TargetUnreachable,
)
from pgferry.sink.names import display_table, table_ident
from pgferry.sink.options import CopyOptions

_LINE = re.compile(r"\bline (\d+)(?:, column ([^:]+))?")
# SQLSTATE classes where the same statement may succeed later
_TRANSIENT_CLASSES = ("08", "40", "53", "57")


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
    source: str,
) -> int:
    """Run one COPY FROM STDIN fed by `chunks`; return the rows COPY reports.

    The caller owns the transaction: on any error here (from the database
    or from `chunks`) COPY is aborted and nothing it sent stays.
    """
    stmt = copy_statement(table, columns, options)
    try:
        with conn.cursor() as cur:
            with cur.copy(stmt) as copy:
                for chunk in chunks:
                    copy.write(chunk)
            return max(cur.rowcount, 0)
    except psycopg.Error as e:
        raise map_db_error(e, table, source) from None


def map_db_error(e: psycopg.Error, table: tuple[str, ...], source: str) -> TargetError:
    name = display_table(table)
    state = e.sqlstate or ""
    diag = e.diag
    primary = (diag.message_primary or str(e).strip().splitlines()[0]) if str(e) else state
    ctx: dict[str, Any] = {"table": name, "sqlstate": state or None}
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
        return _data_error(e, name, source, primary, ctx)
    if not state or state[:2] in _TRANSIENT_CLASSES:
        return TargetUnreachable(
            f'lost the target while loading table "{name}" from {source}: {primary}',
            hint="nothing was committed; retry when the server is reachable",
            **ctx,
        )
    return TargetError(f'loading table "{name}" from {source} failed: {primary}', **ctx)


def _data_error(
    e: psycopg.Error, name: str, source: str, primary: str, ctx: dict[str, Any]
) -> DataError:
    m = _LINE.search(e.diag.context or "")
    line = int(m.group(1)) if m else None
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
