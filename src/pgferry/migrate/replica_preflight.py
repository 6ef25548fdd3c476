"""Can this source replicate logically into this target?  Each finding is a
blocker (create refuses), a warning, or information for the report."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg

from pgferry.migrate import catalog
from pgferry.migrate.catalog import Table

BLOCKER, WARNING, INFO = "blocker", "warning", "info"


@dataclass(frozen=True)
class Finding:
    level: str
    message: str


def _setting(conn: psycopg.Connection[Any], name: str) -> str:
    row = conn.execute("SELECT current_setting(%s)", [name]).fetchone()
    return str(row[0]) if row else ""


def without_identity(conn: psycopg.Connection[Any], tables: list[Table]) -> list[Table]:
    """Tables whose UPDATE/DELETE the source could not publish: no primary
    key under REPLICA IDENTITY DEFAULT, or REPLICA IDENTITY NOTHING."""
    return catalog.tables_where(
        conn,
        tables,
        "c.relreplident = 'n' OR (c.relreplident = 'd' AND NOT EXISTS"
        " (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary))",
    )


def unlogged(conn: psycopg.Connection[Any], tables: list[Table]) -> list[Table]:
    return catalog.tables_where(conn, tables, "c.relpersistence = 'u'")


def _names(tables: list[Table], limit: int = 10) -> str:
    names = [t.qualified for t in tables]
    more = f" (and {len(names) - limit} more)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def run(
    src: psycopg.Connection[Any],
    tgt: psycopg.Connection[Any],
    leaves: list[Table],
    *,
    identity_full: bool,
    resuming: bool = False,
) -> list[Finding]:
    out: list[Finding] = []
    smajor, tmajor = catalog.server_major(src), catalog.server_major(tgt)
    out.append(Finding(INFO, f"source PostgreSQL {smajor}, target PostgreSQL {tmajor}"))
    for side, major in (("source", smajor), ("target", tmajor)):
        if major < 11:
            out.append(Finding(BLOCKER, f"the {side} runs PostgreSQL {major}; 11 or later needed"))
    if tmajor < smajor:
        out.append(
            Finding(
                BLOCKER,
                f"the target runs PostgreSQL {tmajor}, older than the source ({smajor}):"
                " a schema cannot be restored into an older major version",
            )
        )
    level = _setting(src, "wal_level")
    if level != "logical":
        out.append(
            Finding(
                BLOCKER,
                f"wal_level is {level} on the source; set wal_level = logical"
                " and restart the source server",
            )
        )
    slots = src.execute(
        "SELECT current_setting('max_replication_slots')::int"
        " - (SELECT count(*) FROM pg_replication_slots)"
    ).fetchone()
    free_slots = int(slots[0]) if slots else 0
    senders = src.execute(
        "SELECT current_setting('max_wal_senders')::int"
        " - (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'walsender')"
    ).fetchone()
    free_senders = int(senders[0]) if senders else 0
    if free_slots < 1 and not resuming:
        out.append(
            Finding(BLOCKER, "no free replication slot on the source: raise max_replication_slots")
        )
    if free_senders < 1:
        out.append(Finding(BLOCKER, "no free WAL sender on the source: raise max_wal_senders"))
    out.append(
        Finding(
            INFO,
            f"source: {free_slots} free replication slot(s), {free_senders} free WAL sender(s)",
        )
    )
    if smajor >= 13 and _setting(src, "max_slot_wal_keep_size") in ("-1", "-1MB"):
        out.append(
            Finding(
                WARNING,
                "max_slot_wal_keep_size is unlimited on the source: while the target lags,"
                " the slot keeps WAL until the source's disk is full; watch 'replica status'"
                " or set a limit",
            )
        )
    row = src.execute(
        "SELECT rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user"
    ).fetchone()
    if not (row and row[0]):
        out.append(
            Finding(
                BLOCKER,
                "the source role lacks the REPLICATION attribute: ALTER ROLE ... REPLICATION",
            )
        )
    row = tgt.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()
    can_subscribe = bool(row and row[0])
    if not can_subscribe and tmajor >= 16:
        row = tgt.execute("SELECT pg_has_role('pg_create_subscription', 'MEMBER')").fetchone()
        can_subscribe = bool(row and row[0])
    if not can_subscribe:
        out.append(
            Finding(
                BLOCKER,
                "the target role cannot create a subscription: it needs superuser"
                " (or pg_create_subscription on PostgreSQL 16+)",
            )
        )
    denied = catalog.unreadable(src, leaves)
    if denied:
        out.append(
            Finding(
                BLOCKER,
                f"the source role cannot read {len(denied)} table(s): {_names(denied)};"
                " GRANT SELECT on them, or leave them out with --exclude",
            )
        )
    hidden = catalog.filtered(src, leaves)
    if hidden:
        out.append(
            Finding(
                BLOCKER,
                f"row-level security policies would hide rows of {len(hidden)} table(s) from"
                f" the source role: {_names(hidden)}; read the source as a superuser or a role"
                " with BYPASSRLS, or leave them out with --exclude",
            )
        )
    bad = without_identity(src, leaves)
    if bad and identity_full:
        out.append(Finding(INFO, f"REPLICA IDENTITY FULL will be set on {_names(bad)}"))
    elif bad:
        out.append(
            Finding(
                BLOCKER,
                f"{len(bad)} table(s) have no primary key or replica identity, so the source"
                f" would refuse their UPDATE/DELETE once published: {_names(bad)};"
                " add a primary key, or pass --replica-identity-full",
            )
        )
    loose = unlogged(src, leaves)
    if loose:
        out.append(
            Finding(
                WARNING,
                f"unlogged table(s) are copied once but not replicated: {_names(loose)}",
            )
        )
    row = src.execute("SELECT count(*) FROM pg_largeobject_metadata").fetchone()
    if row and row[0]:
        out.append(
            Finding(
                WARNING,
                f"{row[0]} large object(s): logical replication does not carry them;"
                " promote copies them while writes are blocked",
            )
        )
    wanted = catalog.extensions(src)
    avail = {r[0] for r in tgt.execute("SELECT name FROM pg_available_extensions")}
    missing = [e for e in wanted if e not in avail]
    if missing:
        out.append(
            Finding(
                BLOCKER,
                f"extension(s) {', '.join(missing)} used on the source cannot be installed"
                " on the target",
            )
        )
    if not leaves:
        out.append(Finding(BLOCKER, "no table to replicate: check --table/--exclude"))
    src.rollback()
    tgt.rollback()
    return out


def blockers(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if f.level == BLOCKER]
