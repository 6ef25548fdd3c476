"""Which row an apply worker is stuck on, told from the catalogs.

The apply worker's error ("duplicate key value violates unique constraint
... Key (id)=(20001) already exists") goes to the target's server log,
which a client cannot read in general.  What a client can read:

- on the target, the subscription's replication origin: the end of the
  last source transaction it applied (`pg_replication_origin_status`);
- on the source, the changes the slot still holds.  A temporary copy of
  the slot (`pg_copy_logical_replication_slot`, PostgreSQL 12+) decodes
  them with pgoutput without touching the real slot or its subscriber.

Apply is in commit order, so the stuck transaction is the first one that
finishes past the origin's position.  Its inserts (and updates that change
a key) are looked up on the target by every unique index: the first key
the target already holds is the conflict, as the apply worker met it.
When no such key is found the cause is another constraint or a schema
difference, and only the transaction (its LSN and first table) is named.
"""

from __future__ import annotations

import contextlib
import os
import struct
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any, cast

import psycopg
from psycopg import sql

#: changes of the stuck transaction looked up on the target at most
MAX_LOOKUPS = 2000
#: decoded messages read at most (the slot may hold a long backlog)
MAX_MESSAGES = 200_000


@dataclass
class Conflict:
    #: 'schema.table' of the stuck change (the first change of the
    #: transaction when no duplicate key was found)
    table: str
    #: the source transaction's finish LSN: what ALTER SUBSCRIPTION SKIP takes
    finish_lsn: str
    #: '(id)=(20001)' when the target holds a row with that key, else None
    key: str | None = None
    #: the unique index the key belongs to
    index: str | None = None


def lsn_text(v: int) -> str:
    return f"{v >> 32:X}/{v & 0xFFFFFFFF:X}"


def lsn_int(text: str) -> int:
    hi, _, lo = text.partition("/")
    return (int(hi, 16) << 32) | int(lo, 16)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.d, self.i = data, 0

    def take(self, fmt: str) -> Any:
        v = struct.unpack_from(fmt, self.d, self.i)
        self.i += struct.calcsize(fmt)
        return v[0]

    def cstr(self) -> str:
        end = self.d.index(b"\0", self.i)
        s = self.d[self.i : end].decode()
        self.i = end + 1
        return s

    def tuple(self) -> list[str | bool | None]:
        """Column values as text; None is NULL, False an unchanged TOAST value."""
        out: list[str | bool | None] = []
        for _ in range(self.take("!h")):
            kind = self.take("!c")
            if kind == b"n":
                out.append(None)
            elif kind == b"u":
                out.append(False)
            else:  # 't' (text; binary is never asked for)
                n = self.take("!i")
                out.append(self.d[self.i : self.i + n].decode())
                self.i += n
        return out


@dataclass
class _Change:
    table: str
    #: column name -> text value of the row as the change leaves it
    new: dict[str, str | bool | None] | None
    #: the old row's known columns (the replica identity, or all with FULL)
    old: dict[str, str | bool | None] | None
    update: bool = False


def _first_pending(
    src: psycopg.Connection[Any], slot: str, after: int
) -> tuple[int, list[_Change]] | None:
    """The first transaction the slot holds that finishes at or past
    `after`: its finish LSN and its row changes (None: none pending)."""
    probe = f"{slot}_probe_{os.getpid()}"  # two status runs at once: two probes
    src.execute("SELECT pg_copy_logical_replication_slot(%s, %s, true)", [slot, probe])
    try:
        rels: dict[int, tuple[str, list[str]]] = {}
        changes: list[_Change] = []
        finish: int | None = None
        q = (
            "SELECT data FROM pg_logical_slot_peek_binary_changes(%s, NULL, %s,"
            " 'proto_version', '1', 'publication_names', %s)"
        )
        # a generator: closing it early cancels the rest of the peek
        rows = cast(Generator[Any], src.cursor().stream(q, [probe, MAX_MESSAGES, slot]))
        for (data,) in rows:
            r = _Reader(bytes(data))
            tag = r.take("!c")
            if tag == b"B":
                final = r.take("!q")
                if final >= after:
                    finish = final
            elif tag == b"R":
                relid, ns, name = r.take("!I"), r.cstr(), r.cstr()
                r.take("!b")  # replica identity setting
                cols = []
                for _ in range(r.take("!h")):
                    r.take("!b")
                    cols.append(r.cstr())
                    r.take("!I")
                    r.take("!i")
                rels[relid] = (f"{ns}.{name}", cols)
            elif finish is not None and tag in (b"I", b"U", b"D"):
                table, cols = rels[r.take("!I")]
                old = new = None
                kind = r.take("!c")
                if kind in (b"K", b"O"):
                    old = dict(zip(cols, r.tuple(), strict=False))
                    if tag == b"U":
                        kind = r.take("!c")
                if kind == b"N":
                    new = dict(zip(cols, r.tuple(), strict=False))
                changes.append(_Change(table, new, old, tag == b"U"))
            elif finish is not None and tag == b"C":
                rows.close()  # the rest is not needed: cancels the peek
                return finish, changes
        return None
    finally:
        # temporary: it goes with this session anyway
        with contextlib.suppress(psycopg.Error):
            src.execute("SELECT pg_drop_replication_slot(%s)", [probe])


UNIQUE_SQL = """
SELECT i.indexrelid::regclass::text,
       array_agg(a.attname::text ORDER BY k.ord)
  FROM pg_index i
  JOIN pg_class c ON c.oid = i.indrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
 CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY k(attnum, ord)
  JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
 WHERE n.nspname = %s AND c.relname = %s AND i.indisunique AND i.indisvalid
   AND i.indpred IS NULL AND NOT (0 = ANY(i.indkey::int2[]))
 GROUP BY i.indexrelid, i.indisprimary
 ORDER BY i.indisprimary DESC, 1
"""


def _duplicate(
    tgt: psycopg.Connection[Any], changes: list[_Change]
) -> tuple[_Change, str, list[str], list[str]] | None:
    """The first change whose new key the target holds already (and that the
    transaction did not delete or move away first)."""
    indexes: dict[str, list[tuple[str, list[str]]]] = {}
    freed: set[tuple[str, tuple[str, ...]]] = set()
    blind: set[str] = set()
    for ch in changes[:MAX_LOOKUPS]:
        if ch.table not in indexes:
            schema, _, name = ch.table.partition(".")
            indexes[ch.table] = [
                (str(r[0]), list(r[1])) for r in tgt.execute(UNIQUE_SQL, [schema, name])
            ]
        for index, cols in indexes[ch.table]:
            old = _key(ch.old, cols)
            if old is not None:
                freed.add((index, old))
            elif ch.old is not None:
                # a row deleted or changed whose key in this index was not
                # sent: any key may have been freed, so none can be told
                blind.add(index)
            new = _key(ch.new, cols)
            if new is None or new == old or (index, new) in freed or index in blind:
                continue
            if ch.update and old is None:
                # an update that sends no old key keeps its replica identity
                continue
            schema, _, name = ch.table.partition(".")
            q = sql.SQL("SELECT 1 FROM {} WHERE {} LIMIT 1").format(
                sql.Identifier(schema, name),
                sql.SQL(" AND ").join(sql.SQL("{} = %s").format(sql.Identifier(c)) for c in cols),
            )
            # text values go as 'unknown': the server casts them to each column's type
            if tgt.execute(q, list(new)).fetchone():
                return ch, index, cols, list(new)
    return None


def _key(row: dict[str, str | bool | None] | None, cols: list[str]) -> tuple[str, ...] | None:
    if row is None:
        return None
    vals = [row.get(c) for c in cols]
    if any(not isinstance(v, str) for v in vals):
        return None  # NULLs never conflict; unknown (TOAST, not sent) cannot be told
    return tuple(str(v) for v in vals)


def applied_end(tgt: psycopg.Connection[Any], subscription: str) -> int | None:
    """Where the subscription's origin says apply has got to (None: unknown)."""
    try:
        row = tgt.execute(
            "SELECT o.remote_lsn::text FROM pg_subscription s"
            " JOIN pg_replication_origin_status o ON o.external_id = 'pg_' || s.oid"
            " WHERE s.subname = %s",
            [subscription],
        ).fetchone()
    except psycopg.errors.InsufficientPrivilege:
        return None
    return lsn_int(row[0]) if row and row[0] else None


def probe(src: psycopg.Connection[Any], tgt: psycopg.Connection[Any], slot: str) -> Conflict | None:
    """The transaction apply is stuck on, and its conflicting key when the
    target holds one.  None when nothing is pending or this cannot be read
    (source before PostgreSQL 12, no free replication slot, the target
    role may not read pg_replication_origin_status)."""
    if src.info.server_version < 120000:
        return None
    end = applied_end(tgt, slot)
    if end is None:
        # the slot's confirmed position trails what was applied, so without
        # the origin an applied row could pass for a duplicate: say nothing
        return None
    try:
        found = _first_pending(src, slot, end)
    except (
        psycopg.errors.ConfigurationLimitExceeded,  # no free slot for the copy
        psycopg.errors.DuplicateObject,
        psycopg.errors.InsufficientPrivilege,
        psycopg.errors.ObjectNotInPrerequisiteState,
        psycopg.errors.UndefinedObject,  # the slot went meanwhile
    ):
        return None
    if found is None:
        return None
    finish, changes = found
    if not changes:
        return None
    dup = _duplicate(tgt, changes)
    if dup is None:
        return Conflict(changes[0].table, lsn_text(finish))
    ch, index, cols, vals = dup
    key = f"({', '.join(cols)})=({', '.join(vals)})"
    return Conflict(ch.table, lsn_text(finish), key, index)


def describe(c: Conflict, subscription: str, target_major: int) -> tuple[str, str]:
    """What is stuck, and what to do (joined by '; ' they make one line)."""
    skip = (
        f", or drop that source transaction's changes on the target with ALTER SUBSCRIPTION"
        f" {subscription} SKIP (lsn = '{c.finish_lsn}')"
        if target_major >= 15
        else ""
    )
    if c.key is not None:
        return (
            f"apply is stuck on {c.table}: the target already has the row with key {c.key}"
            f" that the source's transaction finishing at {c.finish_lsn} adds",
            f"delete that row on the target and apply resumes by itself{skip}",
        )
    return (
        f"apply is stuck on the source's transaction finishing at {c.finish_lsn}"
        f" (first change on {c.table}); no duplicate key was found on the target",
        "the target's server log names the failing constraint or column: fix the target"
        f" and apply resumes by itself{skip}",
    )


def worker(tgt: psycopg.Connection[Any], subscription: str) -> tuple[bool, bool, int | None]:
    """(subscription enabled, apply worker running, apply_error_count (15+,
    else None))."""
    row = tgt.execute(
        "SELECT s.subenabled, p.pid IS NOT NULL FROM pg_subscription s"
        " LEFT JOIN pg_stat_subscription p ON p.subid = s.oid AND p.relid IS NULL"
        " WHERE s.subname = %s",
        [subscription],
    ).fetchone()
    errors = None
    if tgt.info.server_version >= 150000:
        e = tgt.execute(
            "SELECT apply_error_count FROM pg_stat_subscription_stats WHERE subname = %s",
            [subscription],
        ).fetchone()
        errors = int(e[0]) if e else None
    return bool(row and row[0]), bool(row and row[1]), errors
