"""`--on-error skip-rows`: load what loads, keep every rejected row.

The rows are cut at row ends client-side (CSV quotes tracked) and sent in
batches, each COPY in a savepoint. When COPY rejects a row it names its
line: the savepoint is rolled back, the rows before it are sent again, the
row goes to the rejects table (object, line, raw text, column, error) and
the batch goes on after it. On PostgreSQL 17 and later COPY itself skips
rows whose values do not convert (`ON_ERROR ignore`, `LOG_VERBOSITY
verbose`), so a batch with bad values costs one COPY instead of one per bad
row; the notices it sends name each skipped row, which is kept as above.
Rows COPY cannot skip (constraint violations, a wrong number of columns)
take the savepoint path on every version.

The rejects table is written in the load's transaction: all or nothing
holds for the rejects too. Past `--max-errors` the load fails (exit 1).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from pgferry.errors import DataError, UsageError
from pgferry.sink.copyin import _LINE, copy_statement, map_db_error
from pgferry.sink.names import display_table, parse_table_name, table_ident
from pgferry.sink.options import CopyOptions
from pgferry.stores import ObjectRef
from pgferry.stores.parts import row_ends

log = logging.getLogger("pgferry.import")

ON_ERROR = ("abort", "skip-rows")
DEFAULT_TABLE = "pgferry_rejects"
BATCH_ROWS = 10_000
BATCH_BYTES = 4 << 20
# PostgreSQL 17+'s NOTICE for a row ON_ERROR ignore skipped (LOG_VERBOSITY
# verbose). Read for its line and column only; a notice that does not match
# (a translated server) sends the batch down the savepoint path instead.
_SKIP_NOTICE = re.compile(r'\bline (\d+) for column "((?:[^"]|"")*)"')


@dataclass(frozen=True)
class ErrorPolicy:
    """What to do with rows COPY rejects."""

    on_error: str = "abort"
    #: stop past this many rejected rows (None: no limit)
    max_rows: int | None = None
    #: stop when more than this share (0-100) of an object's rows are rejected
    max_percent: float | None = None
    table: str = DEFAULT_TABLE

    @property
    def skipping(self) -> bool:
        return self.on_error == "skip-rows"


def policy(on_error: str, max_errors: str | int | None, table: str | None) -> ErrorPolicy:
    if on_error not in ON_ERROR:
        raise UsageError(f"unknown --on-error {on_error!r}", hint="use abort or skip-rows")
    rows: int | None = None
    pct: float | None = None
    text = "" if max_errors is None else str(max_errors).strip()
    if text:
        if on_error != "skip-rows":
            raise UsageError("--max-errors goes with --on-error skip-rows", hint="add it")
        try:
            if text.endswith("%"):
                pct = float(text[:-1])
                ok = 0 <= pct <= 100
            else:
                rows = int(text)
                ok = rows >= 0
        except ValueError:
            ok = False
        if not ok:
            raise UsageError(
                f"cannot read --max-errors {text!r}", hint="write a count (100) or a share (0.5%)"
            )
    if table and on_error != "skip-rows":
        raise UsageError("--rejects-table goes with --on-error skip-rows", hint="add it")
    return ErrorPolicy(on_error, rows, pct, table or DEFAULT_TABLE)


def split_rows(stream: Iterator[bytes], options: CopyOptions) -> Iterator[bytes]:
    """Every row of `stream` with its line end (the last one may lack it)."""
    ends = row_ends(options)
    pending = b""
    for chunk in stream:
        pos = 0
        state = ends.open
        while True:
            i = chunk.find(b"\n", pos)
            if i < 0:
                break
            if ends.csv:
                state ^= ends.flip(chunk[pos:i])
            pos = i + 1
            if not state:
                yield pending + chunk[:pos] if pending else chunk[:pos]
                chunk, pos, pending = chunk[pos:], 0, b""
        ends.open = state ^ (ends.flip(chunk[pos:]) if ends.csv else False)
        pending += chunk
    if pending:
        yield pending


@dataclass
class _Rejects:
    policy: ErrorPolicy
    ref: ObjectRef
    target: str
    count: int = 0
    first: str | None = None
    rows: list[tuple[Any, ...]] = field(default_factory=list)


def ensure_table(conn: psycopg.Connection[Any], name: str) -> None:
    conn.execute(
        sql.SQL(
            "CREATE TABLE IF NOT EXISTS {} (loaded_at timestamptz NOT NULL DEFAULT now(), "
            "target text, object text, line bigint, raw text, column_name text, error text, "
            "sqlstate text)"
        ).format(table_ident(parse_table_name(name)))
    )


class SkippingLoader:
    """COPY in batches, keeping rejected rows (see the module doc)."""

    def __init__(self, policy: ErrorPolicy) -> None:
        self.policy = policy

    def load(
        self,
        conn: psycopg.Connection[Any],
        table: tuple[str, ...],
        columns: Sequence[str],
        options: CopyOptions,
        stream: Iterator[bytes],
        *,
        ref: ObjectRef,
    ) -> tuple[int, int]:
        if options.format == "binary":
            raise UsageError(
                "--on-error skip-rows reads rows of csv or text, not binary",
                hint="drop --on-error, or export the data as csv",
            )
        ensure_table(conn, self.policy.table)
        rej = _Rejects(self.policy, ref, display_table(table))
        server_skips = conn.info.server_version >= 170000
        rows = split_rows(stream, options)
        line = 0
        first_opts = options
        # the header goes to COPY with the first batch only
        rest = CopyOptions({**options.values, "header": False}) if options.header else options
        loaded = 0
        count = 0
        batch: list[bytes] = []
        size = 0
        opts = first_opts
        for row in rows:
            batch.append(row)
            size += len(row)
            if len(batch) >= BATCH_ROWS or size >= BATCH_BYTES:
                loaded += self._batch(conn, table, columns, opts, batch, line, rej, server_skips)
                self._store(conn, rej)  # memory stays near one batch, rejects included
                line += _lines(batch)
                count += len(batch)
                batch, size, opts = [], 0, rest
        if batch:
            loaded += self._batch(conn, table, columns, opts, batch, line, rej, server_skips)
            count += len(batch)
        self._store(conn, rej)
        data_rows = count - (1 if options.header else 0)
        pct = self.policy.max_percent
        if pct is not None and data_rows and rej.count * 100 > pct * data_rows:
            raise self._too_many(rej, f"{rej.count} of {data_rows} rows ({pct:g}% allowed)")
        if rej.count:
            log.warning(
                "%s: %d %s rejected, kept in %s",
                ref.uri,
                rej.count,
                "row" if rej.count == 1 else "rows",
                self.policy.table,
            )
        return loaded, rej.count

    def _batch(
        self,
        conn: psycopg.Connection[Any],
        table: tuple[str, ...],
        columns: Sequence[str],
        options: CopyOptions,
        batch: list[bytes],
        before: int,
        rej: _Rejects,
        server: bool,
    ) -> int:
        """Load `batch`, which starts after line `before` of the object; return
        the rows loaded. Lines are physical, as COPY counts them."""
        loaded = 0
        todo, start, opts = batch, before, options
        while todo:
            try:
                return loaded + self._attempt(conn, table, columns, opts, todo, start, rej, server)
            except _Unattributed:
                server = False
                continue
            except psycopg.Error as e:
                state = e.sqlstate or ""
                m = _LINE.search(e.diag.context or "")
                idx = _locate(todo, int(m.group(1))) if m else None
                header = idx == 0 and opts.header  # the header row itself: not a data row
                if state[:2] not in ("22", "23") or idx is None or header:
                    raise map_db_error(e, table, rej.ref) from None
                column = m.group(2).strip() if m and m.group(2) else None
                primary = e.diag.message_primary or state
            if idx:  # the rows before it loaded (or were skipped) until then: again
                try:
                    loaded += self._attempt(
                        conn, table, columns, opts, todo[:idx], start, rej, server
                    )
                except _Unattributed:
                    server = False
                    continue
            at = start + _lines(todo[:idx]) + 1
            self._reject(rej, at, todo[idx], column, primary, state)
            start += _lines(todo[: idx + 1])
            todo = todo[idx + 1 :]
            opts = CopyOptions({**opts.values, "header": False}) if opts.header else opts
        return loaded

    def _attempt(
        self,
        conn: psycopg.Connection[Any],
        table: tuple[str, ...],
        columns: Sequence[str],
        opts: CopyOptions,
        todo: list[bytes],
        start: int,
        rej: _Rejects,
        server: bool,
    ) -> int:
        """One COPY of `todo` in a savepoint; rows the server skipped are kept."""
        skipped: list[tuple[int, str, str]] = []
        with conn.transaction():
            n = self._copy(conn, table, columns, opts, todo, server, skipped)
            if server and len(skipped) != len(todo) - n - (1 if opts.header else 0):
                raise _Unattributed()
        for line, col, text in skipped:
            idx = _locate(todo, line)
            if idx is None:
                raise AssertionError(f"COPY skipped line {line} of {len(todo)} rows")
            self._reject(rej, start + _lines(todo[:idx]) + 1, todo[idx], col, text, None)
        return n

    @staticmethod
    def _copy(
        conn: psycopg.Connection[Any],
        table: tuple[str, ...],
        columns: Sequence[str],
        options: CopyOptions,
        rows: list[bytes],
        server_skips: bool,
        skipped: list[tuple[int, str, str]],
    ) -> int:
        if server_skips:
            options = CopyOptions(
                {**options.values, "on_error": "ignore", "log_verbosity": "verbose"}
            )

        def notice(diag: psycopg.errors.Diagnostic) -> None:
            text = diag.message_primary or ""
            m = _SKIP_NOTICE.search(text)
            if m:
                skipped.append((int(m.group(1)), m.group(2).replace('""', '"'), text))

        if server_skips:
            conn.add_notice_handler(notice)
        try:
            with conn.cursor() as cur:
                with cur.copy(copy_statement(table, columns, options)) as copy:
                    copy.write(b"".join(rows))
                return max(cur.rowcount, 0)
        finally:
            if server_skips:
                conn.remove_notice_handler(notice)

    def _reject(
        self,
        rej: _Rejects,
        line: int,
        raw: bytes,
        column: str | None,
        error: str,
        state: str | None,
    ) -> None:
        rej.count += 1
        where = f"line {line}" + (f", column {column}" if column else "")
        if rej.first is None:
            rej.first = f"{where}: {error}"
        text = raw.rstrip(b"\r\n").decode("utf-8", "replace").replace("\x00", "\ufffd")
        rej.rows.append((rej.target, rej.ref.uri, line, text, column, error, state))
        if self.policy.max_rows is not None and rej.count > self.policy.max_rows:
            raise self._too_many(rej, f"more than {self.policy.max_rows}")

    def _store(self, conn: psycopg.Connection[Any], rej: _Rejects) -> None:
        if not rej.rows:
            return
        name = table_ident(parse_table_name(self.policy.table))
        with conn.cursor() as cur:
            cur.executemany(
                sql.SQL(
                    "INSERT INTO {} (target, object, line, raw, column_name, error, sqlstate) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s)"
                ).format(name),
                rej.rows,
            )
        rej.rows.clear()

    @staticmethod
    def _too_many(rej: _Rejects, how: str) -> DataError:
        return DataError(
            f'{rej.ref.uri}: too many rejected rows ({how}) for table "{rej.target}"; '
            f"the first: {rej.first}",
            hint="fix the file or raise --max-errors; nothing was loaded",
            table=rej.target,
            bucket=rej.ref.bucket,
            key=rej.ref.key,
        )


def _lines(rows: Sequence[bytes]) -> int:
    """Physical lines in `rows` (a quoted newline starts a new one, as COPY counts)."""
    return sum(r.count(b"\n") + (0 if r.endswith(b"\n") else 1) for r in rows)


def _locate(rows: Sequence[bytes], line: int) -> int | None:
    """Index of the row COPY means by `line` (it reports a row's last line)."""
    seen = 0
    for i, r in enumerate(rows):
        seen += r.count(b"\n") + (0 if r.endswith(b"\n") else 1)
        if seen >= line:
            return i
    return None


class _Unattributed(Exception):
    """The server skipped rows its notices did not name: redo the batch."""
