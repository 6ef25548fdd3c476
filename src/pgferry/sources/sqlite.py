"""SQLite files as a source (the standard library's sqlite3, read-only).

Declared types are read as SQLite's affinities (its rules: INT -> INTEGER;
CHAR, CLOB, TEXT -> TEXT; BLOB or none -> BLOB; REAL, FLOA, DOUB -> REAL;
anything else NUMERIC), with the common NUMERIC spellings (BOOLEAN, DATE,
DATETIME, DECIMAL(p,s), JSON) given their PostgreSQL type.  SQLite lets
any column hold any value; the rule for values that do not fit the
column's type is stated in README and applied by `_convert`: it is copied
when its storage class fits, otherwise the row is rejected, never altered.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pgferry.errors import SourceUnreachable
from pgferry.sources import types
from pgferry.sources.model import Column, Converter, ForeignKey, Index, RowRejected, TableDef
from pgferry.sources.names import Namer

_NUMBER = re.compile(r"^-?\d+(\.\d+)?([eE][-+]?\d+)?$")
_PRECISION = re.compile(r"\(\s*(\d+)\s*(?:,\s*(\d+)\s*)?\)")


def pg_type(declared: str) -> str:
    d = declared.upper()
    if "INT" in d:
        return "bigint"
    if any(k in d for k in ("CHAR", "CLOB", "TEXT")):
        return "text"
    if "BLOB" in d:
        return "bytea"
    if not d.strip():
        return "text"
    if any(k in d for k in ("REAL", "FLOA", "DOUB")):
        return "double precision"
    base = d.split("(")[0].strip()
    if base in ("BOOLEAN", "BOOL"):
        return "boolean"
    if base == "DATE":
        return "date"
    if base in ("DATETIME", "TIMESTAMP"):
        return "timestamp"
    if base == "JSON":
        return "jsonb"
    m = _PRECISION.search(d)
    if base in ("DECIMAL", "NUMERIC") and m:
        return f"numeric({m.group(1)},{m.group(2) or 0})"
    return "numeric"


def _kind(v: object) -> str:
    return {int: "integer", float: "real", str: "text", bytes: "blob"}.get(
        type(v), type(v).__name__
    )


def _converter(target: str, column: str, nul: str) -> Converter:
    text = types._text(column, nul)

    def reject(v: object) -> RowRejected:
        shown = v.hex() if isinstance(v, bytes) else str(v)
        return RowRejected(
            f"a {_kind(v)} value does not fit {target} (SQLite stores any value in any column)",
            column,
            shown[:200],
        )

    def conv(v: object) -> str | None:
        if v is None:
            return None
        base = target.split("(")[0]
        if base == "bigint":
            if isinstance(v, int):
                return str(v)
        elif base in ("double precision", "numeric"):
            if isinstance(v, int | float):
                return repr(v) if isinstance(v, float) else str(v)
            if base == "numeric" and isinstance(v, str) and _NUMBER.match(v.strip()):
                return v.strip()
        elif base == "text":
            if isinstance(v, int | float | str):
                return text(
                    v if isinstance(v, str) else repr(v) if isinstance(v, float) else str(v)
                )
            if isinstance(v, bytes):
                try:
                    return text(v.decode("utf-8"))
                except UnicodeDecodeError:
                    pass
        elif base == "bytea":
            if isinstance(v, bytes | str):
                return types._bytea(v)
        elif base == "boolean":
            if v in (0, 1) and isinstance(v, int):
                return "t" if v else "f"
        elif base in ("date", "timestamp", "jsonb"):
            if isinstance(v, str):
                return text(v)
        else:  # a --cast type: PostgreSQL parses the value's text
            if isinstance(v, bytes):
                return types._bytea(v)
            return text(str(v))
        raise reject(v)

    return conv


_COLLATE = re.compile(r"\bcollate\s+(?!binary\b)", re.I)


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class Reader:
    def __init__(self, path: str, namer: Namer, casts: list[types.Cast], nul: str) -> None:
        self.path, self.namer, self.casts, self.nul = path, namer, casts, nul
        self.conn: sqlite3.Connection | None = None

    def open(self) -> None:
        if not Path(self.path).is_file():
            raise SourceUnreachable(
                f"source: no SQLite file at {self.path}",
                hint="check the path in --source sqlite:///PATH",
            )
        uri = Path(self.path).resolve().as_uri() + "?mode=ro"
        try:
            self.conn = sqlite3.connect(
                uri, uri=True, isolation_level=None, check_same_thread=False
            )
            self.conn.execute("BEGIN")  # one read snapshot for the whole copy
            self.conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.DatabaseError as e:
            raise SourceUnreachable(
                f"source: {self.path} is not a readable SQLite database: {e}",
                hint="check the path in --source sqlite:///PATH",
            ) from None

    def _c(self) -> sqlite3.Connection:
        assert self.conn is not None
        return self.conn

    def views(self) -> list[tuple[str, str]]:
        """(name, CREATE VIEW text) of every view."""
        rows = self._c().execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'view' ORDER BY name"
        )
        return [(str(r[0]), str(r[1])) for r in rows]

    def collated(self) -> bool:
        """Whether a table declares a collation other than BINARY (NOCASE,
        RTRIM, or an application's own) on a column."""
        rows = self._c().execute("SELECT sql FROM sqlite_master WHERE type = 'table'")
        return any(_COLLATE.search(str(r[0] or "")) for r in rows)

    def catalog(self, notes: list[str]) -> list[TableDef]:
        c = self._c()
        out = []
        for name, ddl in c.execute(
            "SELECT name, sql FROM sqlite_master"
            " WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
        ):
            t = TableDef(name, self.namer.table(name), [])
            info = c.execute(f"PRAGMA table_info({_q(name)})").fetchall()
            pk = [r for r in sorted(info, key=lambda r: r[5]) if r[5]]
            rowid_alias = len(pk) == 1 and str(pk[0][2]).upper() == "INTEGER"
            for _cid, col, declared, notnull, dflt, _pk in info:
                target = pg_type(declared or "")
                convert = _converter(target, col, self.nul)
                cast = types.find_cast(
                    self.casts, "main", name, col, declared or "", (declared or "").split("(")[0]
                )
                if cast:
                    target = cast.pg_type
                    convert = _converter(target, col, self.nul)
                column = Column(
                    col,
                    self.namer.column(col),
                    declared or "",
                    target,
                    not notnull and not _pk,
                    convert,
                    identity=rowid_alias and bool(_pk),
                )
                column.default = self._default(dflt, column, notes, name)
                t.columns.append(column)
            if pk:
                t.indexes.append(
                    Index(f"{t.target}_pkey", [self.namer.column(r[1]) for r in pk], True, True)
                )
            for _seq, iname, unique, origin, *_ in c.execute(
                f"PRAGMA index_list({_q(name)})"
            ).fetchall():
                if origin == "pk":
                    continue
                cols = [r[2] for r in c.execute(f"PRAGMA index_info({_q(iname)})").fetchall()]
                if None in cols:
                    notes.append(f"{name}: expression index {iname} skipped")
                    continue
                t.indexes.append(
                    Index(
                        self.namer.index(name, iname),
                        [self.namer.column(x) for x in cols],
                        bool(unique),
                    )
                )
            fks: dict[int, ForeignKey] = {}
            for fid, _seq, ref, frm, to, on_update, on_delete, _m in c.execute(
                f"PRAGMA foreign_key_list({_q(name)})"
            ).fetchall():
                fk = fks.setdefault(
                    fid,
                    ForeignKey(
                        self.namer.index(name, f"fk{fid}"),
                        [],
                        self.namer.table(ref),
                        [],
                        on_delete,
                        on_update,
                    ),
                )
                fk.columns.append(self.namer.column(frm))
                if to is None:  # the referenced table's primary key
                    to = [r[1] for r in c.execute(f"PRAGMA table_info({_q(ref)})") if r[5]][
                        len(fk.ref_columns)
                    ]
                fk.ref_columns.append(self.namer.column(to))
            t.foreign_keys = list(fks.values())
            if ddl and "CHECK" in ddl.upper():
                notes.append(f"{name}: CHECK constraints of SQLite tables are not carried over")
            (n,) = c.execute(f"SELECT count(*) FROM {_q(name)}").fetchone()
            t.rows_estimate = int(n)
            out.append(t)
        return out

    def _default(
        self, dflt: str | None, col: Column, notes: list[str], table: str
    ) -> tuple[str, str] | None:
        if dflt is None or dflt.upper() == "NULL":
            return None
        up = dflt.upper()
        if up == "CURRENT_TIMESTAMP":
            return ("now", "")
        if up == "CURRENT_DATE":
            return ("today", "")
        raw: object
        if dflt.startswith("'") and dflt.endswith("'"):
            raw = dflt[1:-1].replace("''", "'")
        elif _NUMBER.match(dflt):
            raw = float(dflt) if any(ch in dflt for ch in ".eE") else int(dflt)
        else:
            notes.append(f"{table}.{col.name}: default {dflt} not translated, left out")
            return None
        return col.default_value(raw, dflt, table, notes)

    def rows(self, t: TableDef) -> Iterator[tuple[Any, ...]]:
        cols = ", ".join(_q(c.name) for c in t.columns)
        cur = self._c().execute(f"SELECT {cols} FROM {_q(t.name)}")
        while batch := cur.fetchmany(1000):
            yield from batch

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None
