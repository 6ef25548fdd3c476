"""Large objects: copied in batches, with their owners, grants and comments.

pg_dump's own large-object entries are left out of the schema (`pg_dump -B`):
restored in one transaction, a million of them exhaust the lock table
(one lock per object), and `--single-transaction` is all or nothing.  Here
they go BATCH objects per transaction, each batch recorded in the ledger in
the same transaction as its objects, so a crash loses at most one batch and
`--resume` skips the batches done.  A batch is idempotent: an object that
already exists on the target is dropped and made again.

Clone reads the source inside the exported snapshot; a snapshot stores each
batch as one zstd stream of frames: a JSON header line per object, then its
bytes as `<length>\\n<bytes>` chunks ending with `0\\n`.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from pgferry.errors import SourceError, TargetError
from pgferry.migrate.progress import mark_in
from pgferry.migrate.schema import RestoreOptions
from pgferry.target import connect

BATCH = 1000
CHUNK = 1 << 20
HEAD = 64 << 10
GROUP = 64  # heads per query: at most GROUP x HEAD bytes in memory
_PRIVILEGES = {"SELECT": sql.SQL("SELECT"), "UPDATE": sql.SQL("UPDATE")}

META_SQL = """
SELECT m.oid, r.rolname, m.lomacl IS NOT NULL,
       ARRAY(SELECT ARRAY[coalesce(g.rolname, ''), a.privilege_type,
                          CASE WHEN a.is_grantable THEN 't' ELSE 'f' END]
               FROM aclexplode(m.lomacl) a LEFT JOIN pg_roles g ON g.oid = a.grantee),
       obj_description(m.oid, 'pg_largeobject')
  FROM pg_largeobject_metadata m JOIN pg_roles r ON r.oid = m.lomowner
 WHERE m.oid = ANY(%s)
 ORDER BY m.oid
"""


@dataclass
class LargeObject:
    """One large object's metadata.  `acl` False: default privileges;
    `grants` are (grantee, privilege, grantable), grantee '' for PUBLIC,
    the owner's own included (it may have revoked some of them)."""

    oid: int
    owner: str
    acl: bool
    grants: list[tuple[str, str, bool]]
    comment: str | None

    def to_json(self) -> bytes:
        return json.dumps(
            {
                "oid": self.oid,
                "owner": self.owner,
                "acl": self.acl,
                "grants": self.grants,
                "comment": self.comment,
            }
        ).encode()

    @classmethod
    def from_json(cls, line: bytes) -> LargeObject:
        d = json.loads(line)
        return cls(
            int(d["oid"]),
            str(d["owner"]),
            bool(d["acl"]),
            [(str(g), str(p), bool(w)) for g, p, w in d["grants"]],
            d["comment"],
        )


def any_in(src: psycopg.Connection[Any]) -> bool:
    """Whether the database has large objects (most have none: then no
    connections are opened for them)."""
    return bool(_read(src, "SELECT EXISTS (SELECT FROM pg_largeobject_metadata)")[0][0])


def batches(src: psycopg.Connection[Any]) -> list[list[int]]:
    """Every large object's oid, in batches of BATCH, in oid order."""
    oids = [int(r[0]) for r in _read(src, "SELECT oid FROM pg_largeobject_metadata ORDER BY 1")]
    return [oids[i : i + BATCH] for i in range(0, len(oids), BATCH)]


def _read(
    src: psycopg.Connection[Any], query: str, params: list[Any] | None = None
) -> list[tuple[Any, ...]]:
    try:
        return src.execute(query, params).fetchall()
    except psycopg.Error as e:
        raise SourceError(
            f"reading large objects from the source failed: {e.diag.message_primary or e}",
            hint="the role reading the source needs SELECT on every large object",
            sqlstate=e.sqlstate,
        ) from None


def _target_error(e: psycopg.Error, what: str) -> TargetError:
    # 42704: a role named as owner or grantee does not exist on the target
    hint = (
        "create the role on the target, or pass --no-owner --no-acl"
        if e.sqlstate == "42704"
        else "nothing of this batch was kept; fix the cause and rerun with --resume"
    )
    return TargetError(
        f"restoring {what} failed: {e.diag.message_primary or e}", hint=hint, sqlstate=e.sqlstate
    )


def item(batch: list[int]) -> str:
    """The ledger item of a batch."""
    return f"large-objects:{batch[0]}-{batch[-1]}"


def metadata(src: psycopg.Connection[Any], oids: list[int]) -> list[LargeObject]:
    return [
        LargeObject(
            int(r[0]),
            str(r[1]),
            bool(r[2]),
            [(g, p, w == "t") for g, p, w in r[3]],
            r[4],
        )
        for r in _read(src, META_SQL, [oids])
    ]


def objects(
    src: psycopg.Connection[Any], batch: list[int]
) -> Iterator[tuple[LargeObject, Iterator[bytes]]]:
    """(metadata, its bytes in pieces) for each object of a batch, read in
    `src`'s transaction.  The first HEAD bytes of GROUP objects come in one
    query: most large objects are small, and a query each would cost a
    round trip per object."""
    meta = metadata(src, batch)
    for i in range(0, len(meta), GROUP):
        group = meta[i : i + GROUP]
        heads = {
            int(r[0]): bytes(r[1] or b"")
            for r in _read(
                src,
                "SELECT o, lo_get(o, 0, %s) FROM unnest(%s::oid[]) o",
                [HEAD, [lo.oid for lo in group]],
            )
        }
        for lo in group:
            yield lo, _pieces(src, lo.oid, heads[lo.oid])


def _pieces(src: psycopg.Connection[Any], oid: int, head: bytes) -> Iterator[bytes]:
    if head:
        yield head
    if len(head) < HEAD:
        return  # the whole object
    offset = len(head)
    while True:
        found = _read(src, "SELECT lo_get(%s::oid, %s, %s)", [oid, offset, CHUNK])
        data = bytes(found[0][0]) if found and found[0][0] is not None else b""
        if not data:
            return
        yield data
        offset += len(data)


def put(
    t: psycopg.Connection[Any], lo: LargeObject, chunks: Iterable[bytes], opts: RestoreOptions
) -> None:
    """Make one large object on the target, in `t`'s current transaction.
    No statement waits for a result, so this runs in pipeline mode."""
    num = sql.SQL(str(int(lo.oid)))  # an int we read: LARGE OBJECT takes a bare number
    t.execute("SELECT lo_unlink(oid) FROM pg_largeobject_metadata WHERE oid = %s::oid", [lo.oid])
    pieces = iter(chunks)
    first = next(pieces, b"")
    t.execute("SELECT lo_from_bytea(%s::oid, %s)", [lo.oid, first])
    offset = len(first)
    for data in pieces:
        t.execute("SELECT lo_put(%s::oid, %s, %s)", [lo.oid, offset, data])
        offset += len(data)
    if not opts.no_owner:
        t.execute(
            sql.SQL("ALTER LARGE OBJECT {} OWNER TO {}").format(num, sql.Identifier(lo.owner))
        )
    if lo.acl and not opts.no_acl:
        owner = sql.SQL("CURRENT_USER") if opts.no_owner else sql.Identifier(lo.owner)
        t.execute(sql.SQL("REVOKE ALL ON LARGE OBJECT {} FROM PUBLIC").format(num))
        t.execute(sql.SQL("REVOKE ALL ON LARGE OBJECT {} FROM {}").format(num, owner))
        for grantee, privilege, grantable in lo.grants:
            if privilege not in _PRIVILEGES:
                continue  # large objects have only SELECT and UPDATE
            who: sql.Composable = (
                sql.SQL("PUBLIC")
                if grantee == ""
                else owner
                if grantee == lo.owner
                else sql.Identifier(grantee)
            )
            t.execute(
                sql.SQL("GRANT {} ON LARGE OBJECT {} TO {}{}").format(
                    _PRIVILEGES[privilege],
                    num,
                    who,
                    sql.SQL(" WITH GRANT OPTION") if grantable else sql.SQL(""),
                )
            )
    if lo.comment is not None:
        t.execute(sql.SQL("COMMENT ON LARGE OBJECT {} IS {}").format(num, sql.Literal(lo.comment)))


def copy(
    src: psycopg.Connection[Any],
    target: str,
    done: set[str],
    opts: RestoreOptions,
    stop: threading.Event | None = None,
) -> int:
    """Clone: every large object, read in `src`'s transaction (the exported
    snapshot), one transaction per batch on the target.  Returns the count.
    `stop` set (the clone failed meanwhile): return after the current batch."""
    count = 0
    todo = batches(src)
    if not todo:
        return 0  # most databases: no target connection for nothing
    with connect(target) as t:
        for batch in todo:
            if stop is not None and stop.is_set():
                break
            count += len(batch)
            if item(batch) in done:
                continue
            try:
                with t.transaction(), t.pipeline():
                    for lo, pieces in objects(src, batch):
                        put(t, lo, pieces, opts)
                    mark_in(t, item(batch), len(batch))
            except psycopg.Error as e:
                raise _target_error(e, f"large objects {batch[0]}-{batch[-1]}") from None
    return count


# --- the snapshot stream of one batch ---------------------------------------


def encode(src: psycopg.Connection[Any], batch: list[int]) -> Iterator[bytes]:
    """The frames of one batch (uncompressed)."""
    for lo, pieces in objects(src, batch):
        yield lo.to_json() + b"\n"
        for data in pieces:
            yield b"%d\n" % len(data) + data
        yield b"0\n"


class _Buffer:
    """Reads lines and exact byte counts out of a stream of blocks."""

    def __init__(self, blocks: Iterator[bytes]) -> None:
        self.blocks = blocks
        self.buf = bytearray()

    def _fill(self) -> bool:
        block = next(self.blocks, None)
        if block is None:
            return False
        self.buf += block
        return True

    def line(self) -> bytes | None:
        while (i := self.buf.find(b"\n")) < 0:
            if not self._fill():
                if self.buf:
                    raise ValueError("the stream ends inside a line")
                return None
        out = bytes(self.buf[:i])
        del self.buf[: i + 1]
        return out

    def take(self, n: int) -> bytes:
        while len(self.buf) < n:
            if not self._fill():
                raise ValueError("the stream ends inside an object")
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out


def decode(blocks: Iterator[bytes]) -> Iterator[tuple[LargeObject, Iterator[bytes]]]:
    """(metadata, its chunks) for each object of a batch stream; each
    object's chunks must be consumed before asking for the next one.
    Raises ValueError on a malformed stream."""
    buf = _Buffer(blocks)

    def chunks() -> Iterator[bytes]:
        while True:
            head = buf.line()
            if head is None:
                raise ValueError("the stream ends inside an object")
            n = int(head)
            if n == 0:
                return
            yield buf.take(n)

    while (line := buf.line()) is not None:
        yield LargeObject.from_json(line), chunks()


def load(
    t: psycopg.Connection[Any],
    blocks: Iterator[bytes],
    opts: RestoreOptions,
    ledger_item: str,
) -> int:
    """Restore: one batch stream in one transaction; returns its count."""
    n = 0
    try:
        with t.transaction(), t.pipeline():
            for lo, chunks in decode(blocks):
                put(t, lo, chunks, opts)
                n += 1
            mark_in(t, ledger_item, n)
    except psycopg.Error as e:
        raise _target_error(e, ledger_item.replace("large-objects:", "large objects ")) from None
    return n
