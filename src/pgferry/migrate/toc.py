"""The table of contents of a pg_dump custom-format archive, read from the file.

`pg_restore -l` prints each entry as one line of space-separated words, so
a schema, table or owner named with a space (`Sales Ops`, `"Web User"`) makes
the line ambiguous.  The archive itself stores every field as a
length-prefixed string, so we read those instead (the layout is pg_dump's
ReadHead/ReadToc in pg_backup_archiver.c, archive versions 1.12 to 1.16:
PostgreSQL 11 to 18).  Lists handed back to `pg_restore -L` carry only the
dump ids, which is all pg_restore reads from a list line.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path

from pgferry.errors import DumpUnreadable

MAGIC = b"PGDMP"
FORMAT_CUSTOM = 1


class Section(IntEnum):
    NONE = 1
    PRE_DATA = 2
    DATA = 3
    POST_DATA = 4


@dataclass(frozen=True)
class TocEntry:
    dump_id: int
    #: catalog of the object (pg_class, pg_constraint, ...) and its oid there
    tableoid: int
    oid: int
    desc: str
    section: Section
    schema: str
    tag: str
    owner: str
    #: the SQL pg_restore runs for this entry
    defn: str
    deps: tuple[int, ...]

    @property
    def line(self) -> str:
        """This entry as a `pg_restore -L` line: the dump id is all it reads."""
        return f"{self.dump_id}; {self.tableoid} {self.oid}"

    @property
    def key(self) -> str:
        """A name for the ledger that stays the same when the dump is retaken
        (dump ids may change): kind, schema and tag, unambiguous."""
        return "\x1f".join((self.desc, self.schema, self.tag))

    def describe(self) -> str:
        where = f"{self.schema}." if self.schema else ""
        return f"{self.desc.lower()} {where}{self.tag}"


class _Reader:
    def __init__(self, data: bytes, where: Path) -> None:
        self.data = data
        self.pos = 0
        self.where = where
        self.int_size = 4
        self.off_size = 8

    def bad(self, why: str) -> DumpUnreadable:
        return DumpUnreadable(
            f"cannot read the table of contents of {self.where}: {why}",
            hint="the dump is damaged or not pg_dump's custom format",
        )

    def bytes(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise self.bad("it ends early")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def byte(self) -> int:
        return self.bytes(1)[0]

    def int(self) -> int:
        # a sign byte, then int_size bytes, least significant first
        sign = self.byte()
        value = int.from_bytes(self.bytes(self.int_size), "little")
        return -value if sign else value

    def str(self) -> str | None:
        n = self.int()
        if n < 0:
            return None
        return self.bytes(n).decode("utf-8", errors="surrogateescape")

    def offset(self) -> None:
        self.bytes(1 + self.off_size)


def read_toc(path: Path) -> list[TocEntry]:
    """Every entry of the archive, in its stored order (pg_restore's order)."""
    data = path.read_bytes()  # the schema sections only: small
    r = _Reader(data, path)
    if r.bytes(5) != MAGIC:
        raise r.bad("no PGDMP header")
    vmaj, vmin, vrev = r.byte(), r.byte(), r.byte()
    version = (vmaj, vmin, vrev)
    if not (1, 12, 0) <= version < (1, 17, 0):
        raise r.bad(f"archive version {vmaj}.{vmin}-{vrev} is not supported")
    r.int_size = r.byte()
    r.off_size = r.byte()
    if r.byte() != FORMAT_CUSTOM:
        raise r.bad("not a custom-format archive")
    if version >= (1, 15, 0):
        r.byte()  # compression algorithm
    else:
        r.int()  # compression level
    for _ in range(7):  # creation time: sec, min, hour, mday, mon, year, isdst
        r.int()
    r.str()  # database name
    r.str()  # server version
    r.str()  # pg_dump version
    entries = []
    # comments, ACLs and security labels are stored without a section: they
    # belong to the section of the entries before them (as in pg_restore)
    current = Section.PRE_DATA
    for _ in range(r.int()):
        dump_id = r.int()
        r.int()  # had a data dumper
        tableoid = int(r.str() or 0)
        oid = int(r.str() or 0)
        tag = r.str() or ""
        desc = r.str() or ""
        section = Section(r.int())
        if section == Section.NONE:
            section = current
        current = section
        defn = r.str() or ""
        r.str()  # drop statement
        r.str()  # copy statement
        schema = r.str() or ""
        r.str()  # tablespace
        r.str()  # table access method
        if version >= (1, 16, 0):
            r.int()  # relkind
        owner = r.str() or ""
        r.str()  # "false": tables WITH OIDS are gone
        deps = []
        while (dep := r.str()) is not None:
            deps.append(int(dep))
        r.offset()  # where the entry's data is
        entries.append(
            TocEntry(dump_id, tableoid, oid, desc, section, schema, tag, owner, defn, tuple(deps))
        )
    return entries
