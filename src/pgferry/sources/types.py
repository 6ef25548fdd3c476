"""Type mapping from MariaDB/MySQL to PostgreSQL, and the --cast overrides.

The table in README ("From MySQL, MariaDB or SQLite") is this module in
prose; keep them in step.  Integers are widened by the UNSIGNED flag, never
by display width (`bigint(20) unsigned` is numeric(20), whose maximum
18446744073709551615 survives).  A value without a faithful PostgreSQL form
(a zero date in a NOT NULL column, NUL in text, 2 in a tinyint(1)) raises
RowRejected: the row is recorded in the rejects table, never altered.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pgferry.errors import UsageError
from pgferry.sources.model import Converter, RowRejected

NUL_POLICIES = ("reject", "strip")
_TYPE_SYNTAX = re.compile(
    r"^[a-z][a-z0-9_ ]*(\(\s*\d+\s*(,\s*\d+\s*)?\))?( with(out)? time zone)?(\[\])?$"
)
_DISPLAY_WIDTH = re.compile(r"^(tinyint|smallint|mediumint|int|integer|bigint)\(\d+\)")


@dataclass(frozen=True)
class Cast:
    kind: str  # "type" or "column"
    match: str  # source type (lower case) or [db.]table.column
    pg_type: str


def parse_cast(spec: str) -> Cast:
    """'type:tinyint(1)=boolean' or 'column:db.t.c=text' (db optional)."""
    kind, _, rest = spec.partition(":")
    match, eq, pg_type = rest.rpartition("=")
    pg_type = " ".join(pg_type.lower().split())
    if kind not in ("type", "column") or not eq or not match:
        raise UsageError(
            f"--cast {spec!r}: expected 'type:SOURCE_TYPE=PG_TYPE'"
            " or 'column:[DB.]TABLE.COLUMN=PG_TYPE'",
            hint="e.g. --cast 'type:tinyint(1)=smallint'",
        )
    if not _TYPE_SYNTAX.match(pg_type):
        # the type goes into CREATE TABLE as SQL: only plain type names pass
        raise UsageError(
            f"--cast {spec!r}: {pg_type!r} is not a PostgreSQL type name",
            hint="use a name with optional (precision[, scale]) and [], e.g. numeric(20,0)",
        )
    if kind == "column" and match.count(".") not in (1, 2):
        raise UsageError(f"--cast {spec!r}: name the column as TABLE.COLUMN or DB.TABLE.COLUMN")
    return Cast(kind, " ".join(match.lower().split()) if kind == "type" else match, pg_type)


def find_cast(
    casts: list[Cast], db: str, table: str, column: str, column_type: str, data_type: str
) -> Cast | None:
    names = {f"{table}.{column}", f"{db}.{table}.{column}"}
    for c in casts:
        if c.kind == "column" and c.match in names:
            return c
    ct = " ".join(column_type.lower().split())
    forms = {ct, _DISPLAY_WIDTH.sub(r"\1", ct), data_type.lower()}
    for c in casts:
        if c.kind == "type" and c.match in forms:
            return c
    return None


# -- converters ------------------------------------------------------------

#: converters whose output never holds a backslash, tab or newline: COPY
#: takes it without escaping (the loader skips str.translate for them)
SAFE: set[Converter] = set()


def _safe(conv: Converter) -> Converter:
    SAFE.add(conv)
    return conv


def _text(column: str, nul: str) -> Converter:
    def conv(v: object) -> str | None:
        if v is None:
            return None
        s = v.decode("utf-8") if isinstance(v, bytes) else str(v)
        if "\x00" in s:
            if nul == "strip":
                return s.replace("\x00", "")
            raise RowRejected(
                "text contains a NUL byte, which PostgreSQL text cannot hold "
                "(--nul strip removes them)",
                column,
                s.replace("\x00", "\\0"),
            )
        return s

    return conv


@_safe
def _plain(v: object) -> str | None:
    return None if v is None else v.decode("ascii") if isinstance(v, bytes) else str(v)


def _bytea(v: object) -> str | None:  # its backslash must be escaped: not SAFE
    if v is None:
        return None
    b = v if isinstance(v, bytes) else str(v).encode("utf-8")
    return "\\x" + b.hex()


def _boolean(column: str) -> Converter:
    def conv(v: object) -> str | None:
        if v is None:
            return None
        if isinstance(v, bytes) and len(v) == 1:  # bit(1)
            v = v[0]
        s = str(v)
        if s in ("0", "1"):
            return "t" if s == "1" else "f"
        raise RowRejected(
            f"{s} is not 0 or 1, so not a boolean"
            f" (--cast 'column:TABLE.{column}=smallint' keeps it)",
            column,
            s,
        )

    return _safe(conv)


def _bits(n: int) -> Converter:
    def conv(v: object) -> str | None:
        if v is None:
            return None
        b = v if isinstance(v, bytes) else bytes(str(v), "latin1")
        return format(int.from_bytes(b, "big"), f"0{n}b")

    return _safe(conv)


def _zero_date(column: str, nullable: bool, suffix: str = "") -> Converter:
    def conv(v: object) -> str | None:
        if v is None:
            return None
        s = v.decode("ascii") if isinstance(v, bytes) else str(v)
        # '0000-00-00', and the partial zeros ('2020-00-10') of a lax sql_mode
        if s[5:7] == "00" or s[8:10] == "00" or s.startswith("0000"):
            if nullable:
                return None
            raise RowRejected(
                "zero date in a NOT NULL column: PostgreSQL has no such date", column, s
            )
        return s + suffix

    return _safe(conv)


def _set(column: str) -> Converter:
    def conv(v: object) -> str | None:
        if v is None:
            return None
        s = str(v)
        if not s:
            return "{}"
        items = ('"' + i.replace("\\", "\\\\").replace('"', '\\"') + '"' for i in s.split(","))
        return "{" + ",".join(items) + "}"

    return conv


def cast_converter(
    pg_type: str, column: str, nullable: bool, data_type: str, nul: str
) -> Converter:
    """For a --cast target: the raw value as PostgreSQL input, which parses
    it (or rejects the row); dates keep the zero-date rule."""
    base = pg_type.split("(")[0].strip()
    if base in ("boolean", "bool"):
        return _boolean(column)
    if base == "bytea":
        return _bytea
    if data_type in ("date", "datetime", "timestamp"):
        return _zero_date(
            column, nullable, "+00" if data_type == "timestamp" and "zone" in pg_type else ""
        )
    return _text(column, nul)


# -- MariaDB/MySQL ---------------------------------------------------------


@dataclass(frozen=True)
class Mapped:
    pg_type: str
    convert: Converter
    check_values: list[str] | None = None  # enum: the allowed values
    note: str | None = None


_INTS = {
    # (signed, unsigned): unsigned needs the next wider type to keep its maximum
    "tinyint": ("smallint", "smallint"),
    "smallint": ("smallint", "integer"),
    "mediumint": ("integer", "integer"),
    "int": ("integer", "bigint"),
    "integer": ("integer", "bigint"),
    "bigint": ("bigint", "numeric(20)"),
}
_TEXTS = ("tinytext", "text", "mediumtext", "longtext")
_BLOBS = ("tinyblob", "blob", "mediumblob", "longblob", "binary", "varbinary")
#: spatial types: read as WKT text by the server (ST_AsText), not as its binary form
GEOMETRY = (
    "geometry", "point", "linestring", "polygon", "multipoint", "multilinestring",
    "multipolygon", "geometrycollection",
)  # fmt: skip


def enum_values(column_type: str) -> list[str]:
    """enum('a','b''c') -> ['a', "b'c"] (MariaDB doubles quotes inside)."""
    inner = column_type[column_type.index("(") + 1 : column_type.rindex(")")]
    return [
        m.replace("''", "'").replace("\\\\", "\\") for m in re.findall(r"'((?:[^']|'')*)'", inner)
    ]


def map_mysql(
    column: str,
    data_type: str,
    column_type: str,
    nullable: bool,
    *,
    precision: int | None,
    scale: int | None,
    char_length: int | None,
    datetime_precision: int | None,
    charset: str | None,
    time_fits: bool,
    json: bool,
    nul: str,
) -> Mapped:
    dt = data_type.lower()
    ct = column_type.lower()
    unsigned = " unsigned" in ct
    if json:
        return Mapped("jsonb", _text(column, nul))
    if dt == "tinyint" and ct.startswith("tinyint(1)") and not unsigned:
        return Mapped("boolean", _boolean(column))
    if dt in _INTS:
        return Mapped(_INTS[dt][unsigned], _plain)
    if dt == "bit":
        n = precision or 1
        return Mapped("boolean", _boolean(column)) if n == 1 else Mapped(f"bit({n})", _bits(n))
    if dt == "decimal":
        return Mapped(f"numeric({precision},{scale})", _plain)
    if dt == "float":
        return Mapped("real", _plain)
    if dt == "double":
        return Mapped("double precision", _plain)
    if dt == "year":
        return Mapped("smallint", _plain)
    fsp = f"({datetime_precision})" if datetime_precision else "(0)"
    if dt == "date":
        return Mapped("date", _zero_date(column, nullable))
    if dt == "datetime":
        return Mapped(f"timestamp{fsp}", _zero_date(column, nullable))
    if dt == "timestamp":
        # read with the session time zone at UTC, so the text is UTC
        return Mapped(f"timestamp{fsp} with time zone", _zero_date(column, nullable, "+00"))
    if dt == "time":
        if time_fits:
            return Mapped(f"time{fsp}", _plain)
        note = "time values outside 00:00-24:00, so interval"
        return Mapped(f"interval{fsp}" if datetime_precision else "interval", _plain, note=note)
    if dt == "enum":
        return Mapped("text", _text(column, nul), check_values=enum_values(column_type))
    if dt == "set":
        return Mapped("text[]", _set(column))
    if dt in ("char", "varchar"):
        if charset in (None, "binary"):
            return Mapped("bytea", _bytea)
        return Mapped(
            f"{'character' if dt == 'char' else 'varchar'}({char_length})", _text(column, nul)
        )
    if dt in _TEXTS:
        return Mapped("text", _text(column, nul))
    if dt in _BLOBS:
        return Mapped("bytea", _bytea)
    if dt == "uuid":  # MariaDB 10.7+
        return Mapped("uuid", _plain)
    if dt in ("inet4", "inet6"):  # MariaDB 10.10+ / 10.5+
        return Mapped("inet", _plain)
    if dt in GEOMETRY:
        note = f"{dt} copied as WKT text (the SRID is not kept)"
        return Mapped("text", _text(column, nul), note=note)
    if dt == "json":  # MySQL's own json type (MariaDB's is longtext + json_valid)
        return Mapped("jsonb", _text(column, nul))
    note = f"type {column_type} has no mapping, copied as text"
    return Mapped("text", _text(column, nul), note=note)
