"""The objects a replica set-up leaves on the servers, made and removed one
at a time, each step safe to repeat: the heartbeat table and the
publication and slot on the source, the subscription on the target, and
the source's write block during promote."""

from __future__ import annotations

import time
from typing import Any

import psycopg
from psycopg import sql

from pgferry.errors import ReplicaError
from pgferry.migrate.catalog import Table
from pgferry.migrate.replica_state import HEARTBEAT_SCHEMA, HEARTBEAT_TABLE, Setup

HEARTBEAT = sql.Identifier(HEARTBEAT_SCHEMA, HEARTBEAT_TABLE)
HEARTBEAT_NAME = f"{HEARTBEAT_SCHEMA}.{HEARTBEAT_TABLE}"


def create_heartbeat(conn: psycopg.Connection[Any], name: str, *, row: bool = True) -> None:
    conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(HEARTBEAT_SCHEMA)))
    conn.execute(
        sql.SQL(
            "CREATE TABLE IF NOT EXISTS {} (name text PRIMARY KEY, n bigint NOT NULL,"
            " beat timestamptz NOT NULL)"
        ).format(HEARTBEAT)
    )
    if row:
        conn.execute(
            sql.SQL(
                "INSERT INTO {} VALUES (%s, 0, clock_timestamp()) ON CONFLICT DO NOTHING"
            ).format(HEARTBEAT),
            [name],
        )


def beat(conn: psycopg.Connection[Any], name: str) -> int:
    """A new heartbeat on the source; returns its number."""
    row = conn.execute(
        sql.SQL(
            "UPDATE {} SET n = n + 1, beat = clock_timestamp() WHERE name = %s RETURNING n"
        ).format(HEARTBEAT),
        [name],
    ).fetchone()
    return int(row[0]) if row else 0


def applied_beat(conn: psycopg.Connection[Any], name: str) -> tuple[int, Any] | None:
    """(number, time) of the last heartbeat the target has applied."""
    try:
        row = conn.execute(
            sql.SQL("SELECT n, beat FROM {} WHERE name = %s").format(HEARTBEAT), [name]
        ).fetchone()
    except psycopg.errors.UndefinedTable:
        return None
    return (int(row[0]), row[1]) if row else None


def drop_heartbeat(conn: psycopg.Connection[Any], name: str) -> None:
    """Remove our row; the table and schema go with the last set-up's row."""
    if conn.execute("SELECT to_regclass(%s)", [HEARTBEAT_NAME]).fetchone() == (None,):
        return
    conn.execute(sql.SQL("DELETE FROM {} WHERE name = %s").format(HEARTBEAT), [name])
    if conn.execute(sql.SQL("SELECT 1 FROM {} LIMIT 1").format(HEARTBEAT)).fetchone() is None:
        conn.execute(
            sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(HEARTBEAT_SCHEMA))
        )


def create_publication(conn: psycopg.Connection[Any], name: str, tables: list[Table]) -> None:
    conn.execute(sql.SQL("DROP PUBLICATION IF EXISTS {}").format(sql.Identifier(name)))
    conn.execute(
        sql.SQL("CREATE PUBLICATION {} FOR TABLE {}").format(
            sql.Identifier(name), sql.SQL(", ").join(t.ident for t in tables)
        )
    )


def drop_publication(conn: psycopg.Connection[Any], name: str) -> None:
    conn.execute(sql.SQL("DROP PUBLICATION IF EXISTS {}").format(sql.Identifier(name)))


def slot_exists(conn: psycopg.Connection[Any], slot: str) -> bool:
    row = conn.execute("SELECT 1 FROM pg_replication_slots WHERE slot_name = %s", [slot]).fetchone()
    return row is not None


def create_slot(conninfo: str, slot: str, major: int) -> tuple[psycopg.Connection[Any], str, str]:
    """Create the logical slot on a replication connection and export its
    snapshot: (the connection, which must stay open and idle while the
    snapshot is read, the consistent LSN, the snapshot's name)."""
    from pgferry.target import connect

    conn = connect(conninfo, autocommit=True, side="source", replication="database")
    how = sql.SQL("(SNAPSHOT 'export')" if major >= 15 else "EXPORT_SNAPSHOT")
    try:
        row = conn.execute(
            sql.SQL("CREATE_REPLICATION_SLOT {} LOGICAL pgoutput {}").format(
                sql.Identifier(slot), how
            )
        ).fetchone()
    except BaseException:
        conn.close()
        raise
    assert row is not None
    return conn, str(row[1]), str(row[2])


def drop_slot(conn: psycopg.Connection[Any], slot: str, wait: float = 30.0) -> None:
    """Drop the slot, ending the WAL sender that still holds it."""
    deadline = time.monotonic() + wait
    while True:
        row = conn.execute(
            "SELECT active_pid FROM pg_replication_slots WHERE slot_name = %s", [slot]
        ).fetchone()
        if row is None:
            return
        if row[0] is None:
            try:
                conn.execute("SELECT pg_drop_replication_slot(%s)", [slot])
                return
            except psycopg.errors.ObjectInUse:
                pass  # a sender took it in between
            except psycopg.errors.UndefinedObject:
                return
        else:
            conn.execute("SELECT pg_terminate_backend(%s)", [row[0]])
        if time.monotonic() > deadline:
            raise ReplicaError(
                f"the replication slot {slot} is still in use after {wait:g}s",
                hint="end the session holding it (pg_stat_replication), then rerun",
            )
        time.sleep(0.1)


def subscription_exists(conn: psycopg.Connection[Any], name: str) -> bool:
    row = conn.execute(
        "SELECT 1 FROM pg_subscription WHERE subname = %s"
        " AND subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())",
        [name],
    ).fetchone()
    return row is not None


def create_subscription(
    conn: psycopg.Connection[Any], setup: Setup, smajor: int, tmajor: int
) -> list[str]:
    """Subscribe on the existing slot, no initial copy; returns the options used."""
    opts = ["create_slot = false", "copy_data = false"]
    # binary send/receive formats are only promised within one major version
    if smajor == tmajor and tmajor >= 14:
        opts.append("binary = true")
    if smajor >= 14 and tmajor >= 14:
        opts.append("streaming = on")
    name = setup.object_name
    conn.execute(
        sql.SQL(
            "CREATE SUBSCRIPTION {} CONNECTION {} PUBLICATION {} WITH (slot_name = {}, {})"
        ).format(
            sql.Identifier(name),
            sql.Literal(setup.source_for_target),
            sql.Identifier(name),
            sql.Literal(name),
            sql.SQL(", ".join(opts)),
        )
    )
    return opts


def create_reverse(
    src: psycopg.Connection[Any], tgt: psycopg.Connection[Any], setup: Setup
) -> list[str]:
    """The way back: the new primary (target) publishes the replicated tables
    into a slot, and the old source subscribes to it, without a copy: both
    hold the same rows now (the source is blocked, the cutover just checked
    them).  Returns the subscription's options."""
    name = setup.reverse_name
    tables = [n for n in setup.published if n != HEARTBEAT_NAME]
    idents = [sql.Identifier(*n.split(".", 1)) for n in tables]
    tgt.execute(sql.SQL("DROP PUBLICATION IF EXISTS {}").format(sql.Identifier(name)))
    tgt.execute(
        sql.SQL("CREATE PUBLICATION {} FOR TABLE {}").format(
            sql.Identifier(name), sql.SQL(", ").join(idents)
        )
    )
    if not slot_exists(tgt, name):
        tgt.execute("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", [name])
    opts = ["create_slot = false", "copy_data = false"]
    # 16+: changes the old source applies are not sent on again (no loops
    # should a forward subscription ever be made again)
    if src.info.server_version >= 160000:
        opts.append("origin = none")
    if not subscription_exists(src, name):
        src.execute(
            sql.SQL(
                "CREATE SUBSCRIPTION {} CONNECTION {} PUBLICATION {} WITH (slot_name = {}, {})"
            ).format(
                sql.Identifier(name),
                sql.Literal(setup.target_for_source or setup.target),
                sql.Identifier(name),
                sql.Literal(name),
                sql.SQL(", ".join(opts)),
            )
        )
    return opts


def drop_subscription(conn: psycopg.Connection[Any], name: str) -> None:
    """Detach the subscription from its slot first: dropping it must not need
    the source (the slot goes separately, by drop_slot)."""
    if not subscription_exists(conn, name):
        return
    ident = sql.Identifier(name)
    conn.execute(sql.SQL("ALTER SUBSCRIPTION {} DISABLE").format(ident))
    conn.execute(sql.SQL("ALTER SUBSCRIPTION {} SET (slot_name = NONE)").format(ident))
    conn.execute(sql.SQL("DROP SUBSCRIPTION {}").format(ident))


# --- the write block during promote ------------------------------------------


def read_only_setting(conn: psycopg.Connection[Any]) -> str | None:
    """The database's own default_transaction_read_only (ALTER DATABASE ...
    SET), None when it has none."""
    row = conn.execute(
        """
        SELECT split_part(s, '=', 2) FROM pg_db_role_setting d, unnest(d.setconfig) s
         WHERE d.setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database())
           AND d.setrole = 0 AND s LIKE 'default_transaction_read_only=%%'
        """
    ).fetchone()
    return str(row[0]) if row else None


def writable(conn: psycopg.Connection[Any]) -> None:
    """Exempt our own session: once promote has blocked the database, new
    sessions start read-only, ours included."""
    conn.execute("SET default_transaction_read_only = off")


def block_writes(conn: psycopg.Connection[Any]) -> int:
    """New sessions of the source database start read-only, and the sessions
    already there are ended (they would keep writing); our own session is
    exempt.  Returns how many sessions were ended."""
    db = sql.Identifier(conn.info.dbname)
    writable(conn)
    conn.execute(sql.SQL("ALTER DATABASE {} SET default_transaction_read_only = on").format(db))
    rows = conn.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        " AND backend_type = 'client backend'"
    ).fetchall()
    return len(rows)


def unblock_writes(conn: psycopg.Connection[Any], previous: str | None) -> None:
    db = sql.Identifier(conn.info.dbname)
    if previous is None:
        conn.execute(sql.SQL("ALTER DATABASE {} RESET default_transaction_read_only").format(db))
    else:
        conn.execute(
            sql.SQL("ALTER DATABASE {} SET default_transaction_read_only = {}").format(
                db, sql.Literal(previous)
            )
        )
