"""What a source engine's catalog reader hands to the loader: tables with
their target types already chosen, and per-column converters that turn one
raw source value into the text PostgreSQL's COPY reads."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

#: raw value from the driver (str, bytes, int, float) -> COPY field text, None for NULL
Converter = Callable[[object], str | None]


class RowRejected(Exception):
    """A value that has no faithful PostgreSQL form: the row goes to the
    rejects table instead of being changed silently."""

    def __init__(self, error: str, column: str | None = None, value: str | None = None) -> None:
        super().__init__(error)
        self.error = error
        self.column = column
        self.value = value


@dataclass
class Column:
    name: str  # as on the source
    target: str  # as on the target (folded unless --keep-case)
    source_type: str  # e.g. "bigint(20) unsigned"
    pg_type: str  # SQL for the target type: from the mapping or a checked --cast
    nullable: bool
    convert: Converter
    #: ("value", COPY text) | ("now", "") | ("today", ""); None: no default
    default: tuple[str, str] | None = None
    identity: bool = False
    comment: str | None = None
    #: enum: the values a CHECK constraint allows
    enum_values: list[str] | None = None
    #: MariaDB/MySQL fast path: (SQL giving the COPY field, SQL true when the
    #: row needs `convert` instead); None: always `convert`
    server: tuple[str, str | None] | None = None
    #: MariaDB/MySQL: SQL that reads the value (ST_AsText(`c`)); None: the column
    read: str | None = None

    def default_value(
        self, raw: object, text: str, table: str, notes: list[str]
    ) -> tuple[str, str] | None:
        """A literal default `raw` (written `text` on the source), converted
        like data; left out with a note when the target type cannot hold it."""
        try:
            value = self.convert(raw)
        except RowRejected:
            value = None
        if value is None:
            notes.append(
                f"{table}.{self.name}: default {text} does not fit {self.pg_type}, left out"
            )
            return None
        return ("value", value)


@dataclass
class Index:
    name: str
    columns: list[str]  # target names
    unique: bool
    primary: bool = False


@dataclass
class ForeignKey:
    name: str
    columns: list[str]
    ref_table: str  # target name
    ref_columns: list[str]
    on_delete: str = "NO ACTION"
    on_update: str = "NO ACTION"


@dataclass
class TableDef:
    name: str  # on the source
    target: str  # on the target
    columns: list[Column]
    indexes: list[Index] = field(default_factory=list)
    foreign_keys: list[ForeignKey] = field(default_factory=list)
    checks: list[tuple[str, str]] = field(default_factory=list)  # (name, PostgreSQL expression)
    comment: str | None = None
    rows_estimate: int = 0
    #: the source's next AUTO_INCREMENT value: the identity restarts at it
    #: when above max + 1 (ids handed out and deleted are not reused)
    next_id: int | None = None
    bytes_estimate: int = 0  # the source's own figure (MariaDB/MySQL DATA_LENGTH)

    @property
    def key(self) -> list[Column]:
        """The columns that identify a row in the rejects table."""
        pk = next((i for i in self.indexes if i.primary), None)
        if pk is None:
            return []
        by_target = {c.target: c for c in self.columns}
        return [by_target[n] for n in pk.columns]

    @property
    def int_key(self) -> Column | None:
        """The one-column integer primary key a big table is split on."""
        key = self.key
        if len(key) == 1 and key[0].pg_type in ("smallint", "integer", "bigint", "numeric(20)"):
            return key[0]
        return None


@dataclass(frozen=True)
class Range:
    """Rows of a split table whose integer key is in [lo, hi); None: open."""

    lo: int | None
    hi: int | None
