"""One interface over the source engines, so clone and verify do not care
whether rows come from MariaDB/MySQL or SQLite."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Protocol

from psycopg import sql

from pgferry.sources import types
from pgferry.sources.model import Range, TableDef
from pgferry.sources.names import Namer
from pgferry.sources.url import MySQLURL, SQLiteURL, parse
from pgferry.sources.views import ViewDef

if TYPE_CHECKING:
    from pgferry.sources.sqlite_views import Names


class Source(Protocol):
    where: str
    #: how many readers can run in parallel (SQLite: one)
    max_readers: int

    def open(self, readers: int) -> list[str]:
        """Connect `readers` readers inside one snapshot; returns notes."""
        ...

    def catalog(self, notes: list[str]) -> list[TableDef]: ...

    def rows(
        self, reader: int, t: TableDef, fast: bool = True, part: Range | None = None
    ) -> Iterator[tuple[Any, ...] | bytes]:
        """Raw rows, or (fast) ready COPY lines mixed with raw rows; only
        those in `part` of the integer key when given."""
        ...

    def bounds(self, t: TableDef) -> tuple[int, int] | None:
        """MIN and MAX of `t.int_key` in the snapshot (reader 0); None: empty."""
        ...

    def views(self, notes: list[str]) -> list[ViewDef]:
        """The views to translate (those never translated get a note here)."""
        ...

    def translate(self, v: ViewDef, schema: str) -> sql.Composed:
        """CREATE VIEW on the target, or views.Untranslatable."""
        ...

    def close(self) -> None: ...


class MySQLSource:
    max_readers = 64

    def __init__(self, url: MySQLURL, namer: Namer, casts: list[types.Cast], nul: str) -> None:
        self.url, self.namer, self.casts, self.nul = url, namer, casts, nul
        self.where = url.where
        self.conns: list[Any] = []
        self.flavour = "mysql"

    def open(self, readers: int) -> list[str]:
        from pgferry.sources import mysql

        self.conns = [mysql.connect(self.url) for _ in range(readers)]
        self.flavour = mysql.check_version(self.conns[0])
        note = mysql.begin_snapshots(self.conns)
        return [note] if note else []

    def catalog(self, notes: list[str]) -> list[TableDef]:
        from pgferry.sources import mysql

        return mysql.read_catalog(
            self.conns[0], self.url.database, self.namer, self.casts, self.nul, self.flavour, notes
        )

    def rows(
        self, reader: int, t: TableDef, fast: bool = True, part: Range | None = None
    ) -> Iterator[tuple[Any, ...] | bytes]:
        from pgferry.sources import mysql

        return mysql.stream(self.conns[reader], t, fast, part)

    def bounds(self, t: TableDef) -> tuple[int, int] | None:
        from pgferry.sources import mysql

        return mysql.bounds(self.conns[0], t)

    def views(self, notes: list[str]) -> list[ViewDef]:
        from pgferry.sources import mysql

        return mysql.read_views(self.conns[0], self.url.database, self.namer)

    def translate(self, v: ViewDef, schema: str) -> sql.Composed:
        from pgferry.sources import views

        return views.translate(v, self.url.database, schema, self.namer)

    def close(self) -> None:
        for c in self.conns:
            with contextlib.suppress(Exception):  # a dead link: nothing to save
                c.close()
        self.conns = []


class SQLiteSource:
    max_readers = 1

    def __init__(self, url: SQLiteURL, namer: Namer, casts: list[types.Cast], nul: str) -> None:
        from pgferry.sources import sqlite

        self.where = url.path
        self.namer = namer
        self.impl = sqlite.Reader(url.path, namer, casts, nul)
        self._tables: list[TableDef] = []
        self._views: list[ViewDef] = []
        self._names: Names | None = None

    def open(self, readers: int) -> list[str]:
        self.impl.open()
        return []

    def catalog(self, notes: list[str]) -> list[TableDef]:
        self._tables = self.impl.catalog(notes)
        return self._tables

    def rows(
        self, reader: int, t: TableDef, fast: bool = True, part: Range | None = None
    ) -> Iterator[tuple[Any, ...] | bytes]:
        assert part is None  # one reader: never split
        return self.impl.rows(t)

    def bounds(self, t: TableDef) -> tuple[int, int] | None:
        return None

    def views(self, notes: list[str]) -> list[ViewDef]:
        self._views = [ViewDef(n, self.namer.table(n), ddl) for n, ddl in self.impl.views()]
        return self._views

    def translate(self, v: ViewDef, schema: str) -> sql.Composed:
        from pgferry.sources import sqlite_views

        if self._names is None:
            names = sqlite_views.Names(collated=self.impl.collated())
            for t in self._tables:
                names.relations[t.name.lower()] = t.target
                for c in t.columns:
                    names.columns.setdefault(c.name.lower(), set()).add(c.target)
            for view in self._views:
                names.relations.setdefault(view.name.lower(), view.target)
            self._names = names
        return sqlite_views.translate(v, schema, self._names, self.namer)

    def close(self) -> None:
        self.impl.close()


def source_for(url: str, *, keep_case: bool, casts: list[str], nul: str) -> Source:
    parsed = parse(url)
    namer = Namer(keep_case)
    checked = [types.parse_cast(c) for c in casts]
    if isinstance(parsed, SQLiteURL):
        return SQLiteSource(parsed, namer, checked, nul)
    return MySQLSource(parsed, namer, checked, nul)
