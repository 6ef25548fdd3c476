"""`--on-error skip-rows`: load an object's good rows, keep the bad ones aside.

Used only after the object failed to load whole with a row error (the fast
path is one COPY). The object is read again, one window of lines at a time;
each window is COPYed in a savepoint, and a window that fails is split in
halves until the bad lines stand alone. Each rejected line goes to
`pgferry.watch_rejects` (key, ETag, line number, raw text, error) in the
same transaction as the good rows and the ledger row.

A row is a line here: a CSV value holding a line break cannot be split out
on its own (such a row is rejected with its neighbours' pieces). Memory is
bounded by the window.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg

from pgferry.fetch import open_decoded
from pgferry.sink.copyin import copy_statement, map_db_error
from pgferry.sink.names import parse_table_name, split_identifiers
from pgferry.sink.options import CopyOptions, parse_copy_options
from pgferry.stores import ObjectRef
from pgferry.stores.s3 import S3Config

WINDOW = 10_000  # lines per first attempt


@dataclass(frozen=True)
class Outcome:
    rows: int
    rejected: int


def load_skipping(
    conn: psycopg.Connection[Any],
    *,
    pipeline: str,
    ref: ObjectRef,
    table: str,
    columns: str,
    options: str,
    s3: S3Config,
    content_encoding: str,
) -> Outcome:
    """Load `ref`'s good lines into `table` (which must exist), record the
    bad ones; in the caller's transaction."""
    opts = parse_copy_options(options)
    header = opts.header
    plain = CopyOptions({k: v for k, v in opts.values.items() if k != "header"})
    cols = split_identifiers(columns)
    name = parse_table_name(table)
    loader = _Loader(conn, pipeline, ref, name, cols, plain)
    with open_decoded(ref, s3, content_encoding=content_encoding) as obj:
        first = 2 if header else 1
        lines = _lines(obj.stream())
        if header:
            next(lines, None)
        window: list[bytes] = []
        for line in lines:
            window.append(line)
            if len(window) == WINDOW:
                loader.load(window, first)
                first += len(window)
                window = []
        if window:
            loader.load(window, first)
    return Outcome(loader.rows, loader.rejected)


@dataclass
class _Loader:
    conn: psycopg.Connection[Any]
    pipeline: str
    ref: ObjectRef
    table: tuple[str, ...]
    columns: list[str]
    options: CopyOptions
    rows: int = 0
    rejected: int = 0

    def load(self, lines: list[bytes], first: int) -> None:
        """COPY `lines` (numbered from `first`); on a row error, halve."""
        stmt = copy_statement(self.table, self.columns, self.options)
        try:
            with self.conn.transaction(), self.conn.cursor() as cur:
                with cur.copy(stmt) as copy:
                    for line in lines:
                        copy.write(line)
                self.rows += max(cur.rowcount, 0)
            return
        except (psycopg.errors.DataError, psycopg.errors.IntegrityError) as e:
            # classes 22 and 23: this data, not the table or the session
            error = _one_line(e.diag.message_primary or str(e))
        except psycopg.Error as e:
            raise map_db_error(e, self.table, self.ref) from None
        if len(lines) == 1:
            self._reject(first, lines[0], error)
            return
        half = len(lines) // 2
        self.load(lines[:half], first)
        self.load(lines[half:], first + half)

    def _reject(self, line: int, raw: bytes, error: str) -> None:
        self.rejected += 1
        self.conn.execute(
            "INSERT INTO pgferry.watch_rejects (pipeline, bucket, key, etag, line, raw, error) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
            [
                self.pipeline,
                self.ref.bucket,
                self.ref.key,
                self.ref.etag,
                line,
                raw.rstrip(b"\r\n").decode("utf-8", "replace").replace("\x00", ""),
                error,
            ],
        )


def _lines(chunks: Iterator[bytes]) -> Iterator[bytes]:
    rest = b""
    for chunk in chunks:
        rest += chunk
        *whole, rest = rest.split(b"\n")
        for line in whole:
            yield line + b"\n"
    if rest:
        yield rest + b"\n"


def _one_line(text: str) -> str:
    return " ".join(text.split())
