"""Create a missing table from a CSV/text file's header and a sample of rows.

A column gets a typed SQL type only when every non-null sampled value
parses as it; anything ambiguous stays text, so the load itself does not
fail on a guess. The sample is peeked from the decoded stream and handed
back in front of it, so nothing is read twice.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from psycopg import sql

from pgferry.errors import UsageError
from pgferry.sink.names import table_ident
from pgferry.sink.options import CopyOptions

SAMPLE_BYTES = 1 << 20
SAMPLE_ROWS = 1000
_PY_CODECS = {
    "UTF8": "utf-8",
    "WIN1252": "cp1252",
    "LATIN1": "latin-1",
    "LATIN9": "iso8859-15",
    "SQL_ASCII": "latin-1",
    "WIN1250": "cp1250",
    "WIN1251": "cp1251",
    "SJIS": "shift_jis",
    "EUC_JP": "euc_jp",
    "GBK": "gbk",
    "UHC": "cp949",
    "BIG5": "big5",
}
_TYPES: list[tuple[str, re.Pattern[str]]] = [
    ("bigint", re.compile(r"[+-]?\d{1,18}")),
    ("numeric", re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")),
    ("boolean", re.compile(r"(?i)true|false|t|f")),
    ("date", re.compile(r"\d{4}-\d{2}-\d{2}")),
    ("timestamp", re.compile(r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?")),
    (
        "timestamptz",
        re.compile(r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}(:?\d{2})?)"),
    ),
]


@dataclass(frozen=True)
class Column:
    name: str
    type: str


def peek(stream: Iterator[bytes], limit: int = SAMPLE_BYTES) -> tuple[bytes, Iterator[bytes]]:
    """Read at least `limit` bytes (or all) and return them with a stream
    that yields them again followed by the rest."""
    taken: list[bytes] = []
    size = 0
    for chunk in stream:
        taken.append(chunk)
        size += len(chunk)
        if size >= limit:
            break
    sample = b"".join(taken)

    def again() -> Iterator[bytes]:
        if sample:
            yield sample
        yield from stream

    return sample, again()


def infer_columns(
    sample: bytes, options: CopyOptions, names: Sequence[str], complete: bool
) -> list[Column]:
    if options.format == "binary":
        raise UsageError(
            "cannot infer a table from binary COPY data", hint="create the table first"
        )
    text = codecs.decode(
        sample, _PY_CODECS.get((options.encoding or "UTF8").upper(), "utf-8"), "replace"
    )
    rows = _rows(text, options, complete)
    if not rows:
        raise UsageError(
            "cannot create a table from an empty file", hint="create the table first, then import"
        )
    header = [h.strip() for h in rows[0]] if options.header else None
    data = rows[1:] if options.header else rows
    width = max(len(r) for r in rows)
    if names:
        cols = list(names)
    elif header:
        cols = [h or f"column{i + 1}" for i, h in enumerate(header)]
    else:
        cols = [f"column{i + 1}" for i in range(width)]
    if len(set(cols)) != len(cols):
        raise UsageError(f"duplicate column names in the header: {cols}", hint="rename them")
    null = options.values.get("null")
    null_str = str(null) if null is not None else ("" if options.format == "csv" else "\\N")
    return [
        Column(name, _type_of([r[i] for r in data[:SAMPLE_ROWS] if i < len(r)], null_str))
        for i, name in enumerate(cols)
    ]


def _rows(text: str, options: CopyOptions, complete: bool) -> list[list[str]]:
    if not complete:
        # the sample may end mid-record: keep whole lines only
        text = text[: text.rfind("\n") + 1]
    if options.format == "csv":
        quote = str(options.values.get("quote") or '"')
        reader = csv.reader(io.StringIO(text), delimiter=options.delimiter, quotechar=quote)
        rows = list(reader)
        if not complete and rows:
            rows = rows[:-1] if len(rows) > 1 else rows
    else:
        rows = [line.split(options.delimiter) for line in text.splitlines()]
    return [r for r in rows if r]


def _type_of(values: list[str], null: str) -> str:
    present = [v for v in values if v != null]
    if not present:
        return "text"
    for name, pattern in _TYPES:
        if all(pattern.fullmatch(v.strip()) for v in present):
            return name
    return "text"


def create_table_sql(table: tuple[str, ...], columns: Sequence[Column]) -> sql.Composed:
    body = sql.SQL(", ").join(
        sql.SQL("{} {}").format(sql.Identifier(c.name), sql.SQL(c.type)) for c in columns
    )
    return sql.SQL("CREATE TABLE {} ({})").format(table_ident(table), body)
