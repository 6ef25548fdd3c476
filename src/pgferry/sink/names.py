"""Table and column names as PostgreSQL reads them.

aws_s3 takes `table_name` and `column_list` as text. We parse them the way
the server parses identifiers (unquoted parts fold to lower case, "quoted"
parts are kept exactly, dots separate schema and table) and hand the parts to
psycopg.sql.Identifier: a name can never become SQL.
"""

from __future__ import annotations

from psycopg import sql

from pgferry.errors import UsageError


def _parts(text: str, sep: str, what: str) -> list[str]:
    parts: list[str] = []
    buf: list[str] = []
    gap = False  # a blank after part of a name: what follows would be a second word
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if gap and ch != sep and ch.strip():
            example = '"My Table"' if what == "table name" else '"My Column"'
            raise UsageError(
                f"{what} {text!r} has a blank inside a name",
                hint=f"quote a name with blanks, e.g. '{example}' (as in SQL)",
            )
        if ch == '"':
            j = i + 1
            while True:
                j = text.find('"', j)
                if j < 0:
                    raise UsageError(f"unterminated quote in {what} {text!r}", hint='close the "')
                if j + 1 < n and text[j + 1] == '"':
                    j += 2
                    continue
                break
            buf.append(text[i + 1 : j].replace('""', '"'))
            i = j + 1
        elif ch == sep:
            parts.append(_finish(buf, text, what))
            buf = []
            gap = False
            i += 1
        else:
            # outside quotes: letters fold to lower case; blanks may only
            # surround a name (`a, b`), as the server reads it
            if ch.strip():
                buf.append(ch.lower())
            elif buf:
                gap = True
            i += 1
    parts.append(_finish(buf, text, what))
    return parts


def _finish(buf: list[str], text: str, what: str) -> str:
    name = "".join(buf)
    if not name:
        raise UsageError(f"empty name in {what} {text!r}", hint="remove the stray separator")
    return name


def parse_table_name(text: str) -> tuple[str, ...]:
    """`t`, `schema.t`, `"My Table"` -> the identifier's parts."""
    parts = tuple(_parts(text.strip(), ".", "table name"))
    if len(parts) > 3:
        raise UsageError(f"too many dots in table name {text!r}", hint="use schema.table")
    return parts


def split_identifiers(text: str) -> list[str]:
    """`a,b,"D e"` -> ['a', 'b', 'D e']; '' -> []."""
    if not text.strip():
        return []
    return _parts(text, ",", "column list")


def table_ident(parts: tuple[str, ...]) -> sql.Identifier:
    return sql.Identifier(*parts)


def display_table(parts: tuple[str, ...]) -> str:
    return ".".join(parts)
