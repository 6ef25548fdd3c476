"""Create a missing table from a CSV/text file's header and a sample of rows.

A column gets a typed SQL type only when every non-null sampled value
parses as it, and only for values PostgreSQL reads the same way: codes with
leading zeros (`02134`) and impossible dates (`2024-02-30`) keep the column
text. The sample is the first `sample_rows` rows (at most `SAMPLE_CAP`
bytes), peeked from the decoded stream and handed back in front of it, so
nothing is read twice.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import io
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from psycopg import sql

from pgferry.errors import UsageError
from pgferry.sink.names import table_ident
from pgferry.sink.options import CopyOptions
from pgferry.stores import ObjectRef

SAMPLE_ROWS = 1000
#: the most bytes a sample may take, whatever the row count
SAMPLE_CAP = 64 << 20
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
_INT = re.compile(r"[+-]?(0|[1-9]\d{0,17})")
_NUM = re.compile(r"[+-]?((0|[1-9]\d*)(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
_BOOL = re.compile(r"(?i)true|false|t|f")
_DATE = re.compile(r"(\d{4})-(\d{2})-(\d{2})")
_TS = re.compile(
    r"(\d{4}-\d{2}-\d{2})[ T](\d{2}):(\d{2})(?::(\d{2})(\.\d{1,6})?)?"
    r"(Z|[+-]\d{2}(:?\d{2})?)?"
)
#: a type as written in --column-type: one word (or one of SQL's few multi-word
#: type names), an optional (n[,m]) and an optional []; nothing else can reach SQL
_MULTI_WORD = "double precision|character varying|bit varying|time(?:stamp)? with(?:out)? time zone"
_TYPE_NAME = re.compile(rf"(?i)(?:{_MULTI_WORD}|[a-z_][a-z0-9_]*)(\(\d+(,\d+)?\))?(\[\])?")


def _is_date(v: str) -> bool:
    if not _DATE.fullmatch(v):
        return False
    try:
        dt.date.fromisoformat(v)
    except ValueError:
        return False
    return True


def _timestamp(v: str, zoned: bool) -> bool:
    m = _TS.fullmatch(v)
    if not m or bool(m.group(6)) != zoned or not _is_date(m.group(1)):
        return False
    hour, minute, second = int(m.group(2)), int(m.group(3)), int(m.group(4) or 0)
    return hour < 24 and minute < 60 and second < 60


_TYPES: list[tuple[str, Callable[[str], bool]]] = [
    ("bigint", lambda v: bool(_INT.fullmatch(v))),
    ("numeric", lambda v: bool(_NUM.fullmatch(v))),
    ("boolean", lambda v: bool(_BOOL.fullmatch(v))),
    ("date", _is_date),
    ("timestamp", lambda v: _timestamp(v, zoned=False)),
    ("timestamptz", lambda v: _timestamp(v, zoned=True)),
]


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    #: True when the type came from the sample, not from --column-type
    guessed: bool = True


def peek(
    stream: Iterator[bytes], enough: Callable[[bytes], bool]
) -> tuple[bytes, Iterator[bytes], bool]:
    """Read pieces until `enough(piece)` says so (it sees each piece once), the
    end, or SAMPLE_CAP bytes. Returns the sample, a stream that yields it
    again followed by the rest, and whether the sample is the whole stream."""
    taken: list[bytes] = []
    size = 0
    complete = True
    for chunk in stream:
        taken.append(chunk)
        size += len(chunk)
        if size >= SAMPLE_CAP or enough(chunk):
            complete = False
            break
    sample = b"".join(taken)

    def again() -> Iterator[bytes]:
        if sample:
            yield sample
        yield from stream

    return sample, again(), complete


def bytes_enough(limit: int) -> Callable[[bytes], bool]:
    seen = 0

    def enough(chunk: bytes) -> bool:
        nonlocal seen
        seen += len(chunk)
        return seen >= limit

    return enough


def lines_enough(rows: int) -> Callable[[bytes], bool]:
    """Enough once more than `rows` line ends went by (LF, or CR for files
    with CR-only line ends). A quoted record may span lines, so the sample
    may hold a few rows less; it never splits a row it keeps."""
    seen = 0

    def enough(chunk: bytes) -> bool:
        nonlocal seen
        seen += chunk.count(b"\n") or chunk.count(b"\r")
        return seen > rows

    return enough


def decode_text(sample: bytes, options: CopyOptions) -> str:
    codec = _PY_CODECS.get((options.encoding or "UTF8").upper(), "utf-8")
    # CR-only (classic Mac, Excel for Mac) and CRLF line ends read as LF
    text = codecs.decode(sample, codec, "replace")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def parse_column_types(pairs: Mapping[str, str] | Sequence[str]) -> dict[str, str]:
    """`["zip=text", "n=numeric(10,2)"]` (or a mapping) -> {name: type}."""
    items: list[tuple[str, str]] = []
    if isinstance(pairs, Mapping):
        items = list(pairs.items())
    else:
        for pair in pairs:
            name, sep, typ = pair.partition("=")
            if not sep or not name.strip():
                raise UsageError(
                    f"--column-type {pair!r} is not NAME=TYPE", hint="e.g. --column-type zip=text"
                )
            items.append((name.strip(), typ))
    out: dict[str, str] = {}
    for name, typ in items:
        typ = " ".join(typ.split()).replace(" (", "(").replace(", ", ",")
        if not _TYPE_NAME.fullmatch(typ):
            raise UsageError(
                f"invalid type {typ!r} for column {name!r}",
                hint="write a type name, e.g. text, numeric(10,2), varchar(20), date",
                column=name,
            )
        out[name] = typ
    return out


def infer_columns(
    sample: bytes,
    options: CopyOptions,
    names: Sequence[str],
    complete: bool,
    *,
    sample_rows: int = SAMPLE_ROWS,
    types: Mapping[str, str] | None = None,
    table: str | None = None,
    ref: ObjectRef | None = None,
) -> list[Column]:
    """The columns for `table`, from the sample of `ref` (both only name them
    in errors, which carry them as attributes)."""
    ctx: dict[str, Any] = {
        "table": table,
        "bucket": ref.bucket if ref else None,
        "key": ref.key if ref else None,
    }
    what = f'table "{table}"' if table else "a table"
    source = f" {ref.uri}" if ref else ""
    if options.format == "binary":
        raise UsageError(
            f"cannot infer {what} from binary COPY data{source}",
            hint="create the table first",
            **ctx,
        )
    rows = read_rows(decode_text(sample, options), options, complete, ctx=ctx)
    if not rows:
        raise UsageError(
            f"cannot create {what} from the empty file{source}",
            hint="create the table first, then import",
            **ctx,
        )
    header = [h.strip() for h in rows[0]] if options.header else None
    data = (rows[1:] if options.header else rows)[:sample_rows]
    width = max(len(r) for r in rows)
    if names:
        cols = list(names)
    elif header:
        cols = [h or f"column{i + 1}" for i, h in enumerate(header)]
    else:
        cols = [f"column{i + 1}" for i in range(width)]
    if len(set(cols)) != len(cols):
        raise UsageError(
            f"duplicate column names in the header of{source or ' the file'}: {cols}",
            hint="rename them, or name the columns with --columns",
            **ctx,
        )
    given = dict(types or {})
    unknown = set(given) - set(cols)
    if unknown:
        raise UsageError(
            f"--column-type names {', '.join(sorted(unknown))}, not a column of the file",
            hint=f"the columns are {', '.join(cols)}",
            **ctx,
        )
    null = options.values.get("null")
    null_str = str(null) if null is not None else ("" if options.format == "csv" else "\\N")
    return [
        Column(name, given[name], guessed=False)
        if name in given
        else Column(name, type_of([r[i] for r in data if i < len(r)], null_str))
        for i, name in enumerate(cols)
    ]


def read_rows(
    text: str, options: CopyOptions, complete: bool, *, ctx: Mapping[str, Any] | None = None
) -> list[list[str]]:
    if not complete:
        # the sample may end mid-record: keep whole lines only
        text = text[: text.rfind("\n") + 1]
    if options.format == "csv":
        quote = str(options.values.get("quote") or '"')
        reader = csv.reader(io.StringIO(text), delimiter=options.delimiter, quotechar=quote)
        # COPY takes fields of any length; the csv module stops at 128 KiB by default
        limit = csv.field_size_limit(SAMPLE_CAP)
        try:
            rows = list(reader)
        except csv.Error as e:
            raise UsageError(
                f"cannot read the sample as CSV: {e}",
                hint="check the options (delimiter, quote), or create the table first",
                **(ctx or {}),
            ) from None
        finally:
            csv.field_size_limit(limit)
        if not complete and rows:
            rows = rows[:-1] if len(rows) > 1 else rows
    else:
        rows = [line.split(options.delimiter) for line in text.split("\n")]
    return [r for r in rows if r and r != [""]]


def type_of(values: Sequence[str], null: str) -> str:
    present = [v.strip() for v in values if v != null]
    if not present:
        return "text"
    for name, fits in _TYPES:
        if all(fits(v) for v in present):
            return name
    return "text"


def create_table_sql(table: tuple[str, ...], columns: Sequence[Column]) -> sql.Composed:
    # types are ours or matched _TYPE_NAME: a type name and digits, never a clause
    body = sql.SQL(", ").join(
        sql.SQL("{} {}").format(sql.Identifier(c.name), sql.SQL(c.type)) for c in columns
    )
    return sql.SQL("CREATE TABLE {} ({})").format(table_ident(table), body)


def looks_like_header(
    sample: bytes, options: CopyOptions, columns: Sequence[str] | None = None
) -> bool:
    """True when the first record reads as column names: with `columns`,
    when every field is one of them (ignoring case and blanks); without,
    when every field is non-empty, distinct, and no number, boolean or date."""
    rows = read_rows(decode_text(sample, options), options, complete=False)
    if not rows:
        rows = read_rows(decode_text(sample, options), options, complete=True)
    if not rows:
        return False
    first = [f.strip() for f in rows[0]]
    if columns is not None:
        names = {c.lower() for c in columns}
        return bool(first) and all(f.lower() in names for f in first)
    if not all(first) or len(set(first)) != len(first):
        return False
    return all(type_of([f], "") == "text" for f in first)
