"""The snapshot manifest: what a snapshot holds, typed, and its JSON form.

`manifest.json` is written last; a snapshot without one is incomplete.  The
`format` field names the layout; restore refuses any format it does not know
rather than guess (version 1 stored large objects in one stream, without
owners or grants).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from pgferry.errors import SnapshotCorrupt, UnsupportedSnapshot

FORMAT = "pgferry-snapshot/2"
KNOWN = (FORMAT,)


@dataclass
class StoredObject:
    """One object under the snapshot, with the sha256 of its stored bytes."""

    key: str
    stored_bytes: int
    sha256: str


@dataclass
class Stream(StoredObject):
    """The COPY text of one table, or of one range of a split table."""

    table: str = ""
    schema: str = ""
    name: str = ""
    columns: list[str] = field(default_factory=list)
    part: int = 0
    parts: int = 1
    rows: int = 0
    bytes: int = 0


@dataclass
class LargeObjectBatch(StoredObject):
    """Up to a batch of large objects, restored in one transaction each."""

    count: int = 0
    first_oid: int = 0
    last_oid: int = 0


@dataclass
class TableEntry:
    schema: str
    name: str
    partitioned: bool
    columns: list[str]


@dataclass
class Source:
    server_version: int
    database: str
    pg_dump: int


@dataclass
class Manifest:
    name: str
    created: str
    source: Source
    schema: StoredObject
    extensions: list[str] = field(default_factory=list)
    tables: list[TableEntry] = field(default_factory=list)
    streams: list[Stream] = field(default_factory=list)
    #: (schema, name, last_value, is_called)
    sequences: list[tuple[str, str, int, bool]] = field(default_factory=list)
    large_objects: list[LargeObjectBatch] = field(default_factory=list)
    #: (schema, 'table constraint') of foreign keys to tables left out
    skip_foreign_keys: list[tuple[str, str]] = field(default_factory=list)
    #: times `snapshot create --resume` continued this snapshot (empty: one run)
    resumed: list[str] = field(default_factory=list)
    compression: str = "zstd"
    format: str = FORMAT

    @property
    def rows(self) -> int:
        return sum(s.rows for s in self.streams)

    @property
    def stored_bytes(self) -> int:
        return (
            self.schema.stored_bytes
            + sum(s.stored_bytes for s in self.streams)
            + sum(b.stored_bytes for b in self.large_objects)
        )

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), indent=1).encode()

    @classmethod
    def from_json(cls, body: bytes, *, bucket: str, key: str) -> Manifest:
        where = f"s3://{bucket}/{key}"
        try:
            d = json.loads(body)
            fmt = d.get("format") if isinstance(d, dict) else None
        except ValueError:
            fmt, d = None, None
        if not isinstance(d, dict) or not isinstance(fmt, str):
            raise SnapshotCorrupt(
                f"{where} is not a pgferry snapshot manifest",
                hint="the snapshot is damaged; take a new one",
                bucket=bucket,
                key=key,
            )
        if fmt not in KNOWN:
            raise UnsupportedSnapshot(
                f"{where} has format {fmt!r}; this pgferry reads only {', '.join(KNOWN)}",
                hint="use the pgferry version that made it, or take a new snapshot",
                bucket=bucket,
                key=key,
            )
        try:
            return cls(
                name=d["name"],
                created=d["created"],
                source=Source(**d["source"]),
                schema=StoredObject(**d["schema"]),
                extensions=list(d["extensions"]),
                tables=[TableEntry(**t) for t in d["tables"]],
                streams=[Stream(**s) for s in d["streams"]],
                sequences=[(a, b, int(c), bool(e)) for a, b, c, e in d["sequences"]],
                large_objects=[LargeObjectBatch(**b) for b in d["large_objects"]],
                skip_foreign_keys=[(a, b) for a, b in d["skip_foreign_keys"]],
                resumed=list(d.get("resumed", [])),
                compression=d["compression"],
                format=fmt,
            )
        except (KeyError, TypeError, ValueError) as e:
            raise SnapshotCorrupt(
                f"{where} is incomplete or malformed ({type(e).__name__}: {e})",
                hint="the snapshot is damaged; take a new one",
                bucket=bucket,
                key=key,
            ) from None
