"""JSON Lines to COPY: one JSON value per line, as CSV text COPY reads.

Two ways to load a line: its fields into the columns of the same name
(`fields`), or the whole line into one json/jsonb column (`whole`, when the
target is exactly one such column). Blank lines are skipped; `LineMap`
turns the row numbers COPY reports back into the file's line numbers.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

from pgferry.decode.formats import UTF8_BOM
from pgferry.errors import DataError
from pgferry.infer import Column
from pgferry.stores import ObjectRef


class LineMap:
    """Row numbers COPY sees -> line numbers of the file (blank lines skipped)."""

    def __init__(self) -> None:
        self.blanks: list[int] = []  # file line numbers of skipped lines, ascending

    def line_of(self, row: int) -> int:
        line = row
        for b in self.blanks:
            if b <= line:
                line += 1
            else:
                break
        return line


def lines(stream: Iterator[bytes], skipped: LineMap | None = None) -> Iterator[tuple[int, bytes]]:
    """(line number, line) of every non-blank line, without its line end."""
    rest = b""
    n = 0
    first = True
    for chunk in stream:
        if first and chunk:
            chunk = chunk.removeprefix(UTF8_BOM)
            first = False
        parts = (rest + chunk).split(b"\n")
        rest = parts.pop()
        for raw in parts:
            n += 1
            text = raw.strip()
            if text:
                yield n, text
            elif skipped is not None:
                skipped.blanks.append(n)
    if rest.strip():
        yield n + 1, rest.strip()


def _quote(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


def _field(v: Any) -> str:
    if v is None:
        return ""  # unquoted empty: NULL
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        return _quote(v)
    return _quote(json.dumps(v, ensure_ascii=False))


def _json_field(v: Any) -> str:
    return "" if v is None else _quote(json.dumps(v, ensure_ascii=False))


def _bad(ref: ObjectRef, line: int, what: str, hint: str, column: str | None = None) -> DataError:
    return DataError(
        f"{ref.uri} line {line} {what}",
        hint=hint,
        line=line,
        column=column,
        bucket=ref.bucket,
        key=ref.key,
    )


def parse(ref: ObjectRef, line: int, text: bytes) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except (ValueError, UnicodeDecodeError) as e:
        raise _bad(
            ref, line, f"is not valid JSON: {e}", "fix the line; nothing was loaded"
        ) from None
    if not isinstance(value, dict):
        raise _bad(
            ref,
            line,
            f"is a JSON {type(value).__name__}, not an object",
            "load whole lines into one jsonb column (a table with one jsonb column, or "
            "--columns naming one); nothing was loaded",
        )
    return value


def csv_rows(
    stream: Iterator[bytes],
    ref: ObjectRef,
    columns: Sequence[str],
    *,
    whole: bool,
    strict: bool,
    skipped: LineMap,
    json_columns: Sequence[str] = (),
    table_columns: Sequence[str] = (),
    batch: int = 1 << 20,
) -> Iterator[bytes]:
    """COPY CSV text: one row per non-blank line. In `fields` mode a field
    no column takes is an error when `strict` (the columns were not chosen
    with --columns), so no value is dropped silently."""
    known = set(columns)
    # a json/jsonb column takes any value as JSON text, strings included
    as_json = [c in json_columns for c in columns]
    out: list[str] = []
    size = 0
    for n, text in lines(stream, skipped):
        if whole:
            row = _quote(text.decode("utf-8", "surrogateescape"))
        else:
            obj = parse(ref, n, text)
            if strict:
                extra = [k for k in obj if k not in known]
                if extra:
                    what = (
                        f"has field {extra[0]!r}, which the first lines do not have "
                        "(pgferry loads the fields they have)"
                        if extra[0] in table_columns
                        else f"has field {extra[0]!r}, which no column of the table takes"
                    )
                    raise _bad(
                        ref,
                        n,
                        what,
                        "add the column, or pass --columns to choose the fields to load; "
                        "nothing was loaded",
                        column=extra[0],
                    )
            row = ",".join(
                _json_field(obj.get(c)) if j else _field(obj.get(c))
                for c, j in zip(columns, as_json, strict=True)
            )
        out.append(row)
        size += len(row)
        if size >= batch:
            yield ("\n".join(out) + "\n").encode("utf-8", "surrogateescape")
            out, size = [], 0
    if out:
        yield ("\n".join(out) + "\n").encode("utf-8", "surrogateescape")


def sample_keys(sample: bytes, complete: bool) -> set[str]:
    """The fields of the JSON objects among the sample's lines."""
    rows = list(lines(iter([sample])))
    if not complete and rows:
        rows = rows[:-1]
    keys: set[str] = set()
    for _, text in rows:
        try:
            value = json.loads(text)
        except ValueError:
            continue  # reported with its line number when it is loaded
        if isinstance(value, dict):
            keys.update(value)
    return keys


def infer_columns(sample: bytes, ref: ObjectRef, complete: bool) -> list[Column]:
    """Columns for --create-table from a sample: every field seen, in order
    of first appearance, typed by the JSON values it holds."""
    seen: dict[str, set[str]] = {}
    rows = list(lines(iter([sample])))
    if not complete and rows:
        rows = rows[:-1]  # the last line of a cut sample may be cut too
    for n, text in rows:
        for k, v in parse(ref, n, text).items():
            kinds = seen.setdefault(k, set())
            if v is not None:
                kinds.add(_kind(v))
    return [Column(k, _type(kinds)) for k, kinds in seen.items()]


def _kind(v: Any) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float"
    if isinstance(v, str):
        return "str"
    return "json"


def _type(kinds: set[str]) -> str:
    if not kinds or kinds == {"str"}:
        return "text"
    if kinds == {"bool"}:
        return "boolean"
    if kinds == {"int"}:
        return "bigint"
    if kinds <= {"int", "float"}:
        return "double precision"
    return "jsonb"  # objects, arrays, or values of mixed kinds
