"""`replica status`: how far behind the target is, and what the slot costs
the source.

Lag in bytes is the source's current WAL position minus what the
subscriber has confirmed (`confirmed_flush_lsn`).  Lag in seconds comes
from the heartbeat: status writes a new beat into the replicated
heartbeat table on the source and times its arrival on the target.  An
idle source therefore shows about zero (the beat arrives at once), and
writes in other databases of the source cannot hide lag: the beat is in
this database's stream, behind everything committed before it.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from pgferry.migrate import catalog
from pgferry.migrate import replica_conflict as conflict
from pgferry.migrate import replica_objects as objs
from pgferry.migrate.finish import connect_source
from pgferry.migrate.replica_preflight import unlogged
from pgferry.migrate.replica_state import Setup
from pgferry.target import connect


@dataclass
class Status:
    name: str
    stage: str
    slot: str
    slot_exists: bool = False
    slot_active: bool = False
    wal_status: str | None = None
    #: source WAL position minus the slot's confirmed_flush_lsn
    lag_bytes: int | None = None
    #: heartbeat round trip; None when the beat did not arrive in time
    lag_seconds: float | None = None
    #: age of the newest beat the target has (a lower bound when lag_seconds is None)
    applied_beat_age: float | None = None
    #: WAL the slot holds back on the source (from restart_lsn)
    retained_wal_bytes: int | None = None
    safe_wal_size: int | None = None
    wal_dir_bytes: int | None = None
    free_storage_bytes: int | None = None
    subscription: dict[str, Any] = field(default_factory=dict)
    tables_not_ready: list[str] = field(default_factory=list)
    drift: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    #: the row apply is stuck on: table, finish_lsn, key, index (None: not stuck
    #: or not told; see replica_conflict)
    conflict: dict[str, Any] | None = None
    writes_blocked: bool = False
    #: which way rows flow: after promote --reverse, from the target back
    direction: str = "source -> target"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


SLOT_SQL = """
SELECT active, wal_status,
       pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint,
       pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint,
       safe_wal_size
  FROM pg_replication_slots WHERE slot_name = %s
"""


def status(
    setup: Setup, *, heartbeat_wait: float = 5.0, max_retained_wal: int | None = None
) -> Status:
    st = Status(setup.name, setup.stage, setup.object_name, writes_blocked=setup.writes_blocked)
    with (
        connect_source(setup.source, autocommit=True) as src,
        connect(setup.target, autocommit=True) as tgt,
    ):
        if setup.stage == "promoted" and setup.reverse:
            # the way back: the target publishes, the old source subscribes
            st.slot, st.direction = setup.reverse_name, "target -> source (--reverse)"
            _slot(tgt, st)
            _wal_dir(tgt, st)
            _subscription(src, st)
        else:
            _slot(src, st)
            _wal_dir(src, st)
            _subscription(tgt, st)
            _drift(src, tgt, setup, st)
            stuck = _heartbeat(src, tgt, setup, st, heartbeat_wait)
            if stuck and st.wal_status != "lost":
                found = conflict.probe(src, tgt, st.slot)
                if found is not None:
                    st.conflict = asdict(found)
                    what, todo = conflict.describe(found, st.slot, tgt.info.server_version // 10000)
                    st.warnings.append(f"{what}; {todo}")
    if st.slot_exists and st.wal_status == "lost":
        st.warnings.append(
            f"the slot {st.slot} is lost (the source removed WAL it needed): the target can"
            " no longer catch up; run 'pgferry replica drop', then create the replica again"
        )
    elif not st.slot_exists and (setup.stage != "promoted" or setup.reverse):
        st.warnings.append(f"the slot {st.slot} does not exist on the source")
    if max_retained_wal is not None and (st.retained_wal_bytes or 0) > max_retained_wal:
        st.warnings.append(
            f"the slot retains {st.retained_wal_bytes} bytes of WAL on the source,"
            f" more than --max-retained-wal ({max_retained_wal})"
        )
    seen = st.subscription.get("conflicts", {})
    missing = seen.get("update_missing", 0) + seen.get("delete_missing", 0)
    if missing:
        st.warnings.append(
            f"the target lacked {missing} row(s) the source updated or deleted (apply skips"
            " such changes, so the target has diverged): run 'pgferry verify' to find them and"
            " copy them from the source; the count stays until pg_stat_reset_subscription_stats"
        )
    errors = st.subscription.get("apply_error_count")
    # a count since creation: once a fresh beat arrives, apply runs again
    if errors and st.conflict is None and st.lag_seconds is None:
        st.warnings.append(
            f"the subscription reported {errors} apply error(s) since it was created and"
            " has not applied a fresh heartbeat: the target's server log names the table and"
            " key; fix or remove the conflicting row on the target and apply resumes by itself"
        )
    return st


def slot_row(src: psycopg.Connection[Any], slot: str) -> tuple[Any, ...] | None:
    """(active, wal_status, lag bytes, retained bytes, safe_wal_size) of the slot."""
    try:
        return src.execute(SLOT_SQL, [slot]).fetchone()
    except psycopg.errors.UndefinedColumn:  # 11-12: no wal_status/safe_wal_size
        return src.execute(
            "SELECT active, NULL,"
            " pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint,"
            " pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint, NULL"
            " FROM pg_replication_slots WHERE slot_name = %s",
            [slot],
        ).fetchone()


def _slot(src: psycopg.Connection[Any], st: Status) -> None:
    row = slot_row(src, st.slot)
    if row is None:
        return
    st.slot_exists = True
    st.slot_active, st.wal_status = bool(row[0]), row[1]
    st.lag_bytes = None if row[2] is None else max(0, int(row[2]))
    st.retained_wal_bytes = None if row[3] is None else int(row[3])
    st.safe_wal_size = None if row[4] is None else int(row[4])


def _wal_dir(src: psycopg.Connection[Any], st: Status) -> None:
    # pg_ls_waldir needs superuser or pg_monitor
    try:
        row = src.execute("SELECT coalesce(sum(size), 0)::bigint FROM pg_ls_waldir()").fetchone()
        st.wal_dir_bytes = int(row[0]) if row else None
    except psycopg.errors.InsufficientPrivilege:
        pass
    st.free_storage_bytes = free_storage(src)


def free_storage(conn: psycopg.Connection[Any]) -> int | None:
    """Free bytes on the server's data disk, when that disk is this host's.

    SQL has no way to read it, so only a server on this machine (a Unix
    socket or a loopback address) can be measured, by statvfs of its data
    directory; the directory is proven to be that server's by its
    postmaster.pid, whose third line is the start time the server reports.
    Elsewhere (a managed database) it stays None: read FreeStorageSpace
    from the host or the cloud console."""
    host = conn.info.host or ""
    if not (host.startswith("/") or conn.info.hostaddr in ("127.0.0.1", "::1")):
        return None
    try:
        row = conn.execute(
            "SELECT current_setting('data_directory'),"
            " floor(extract(epoch FROM pg_postmaster_start_time()))::bigint"
        ).fetchone()
    except psycopg.errors.InsufficientPrivilege:  # data_directory: pg_read_all_settings
        return None
    if row is None:
        return None
    datadir, started = Path(str(row[0])), int(row[1])
    try:
        lines = (datadir / "postmaster.pid").read_text().splitlines()
        # the file's time is taken a moment before the one SQL reports
        if len(lines) < 3 or abs(int(lines[2]) - started) > 1:
            return None  # another server's directory at the same path
        fs = os.statvfs(datadir)
    except (OSError, ValueError):
        return None
    return fs.f_bavail * fs.f_frsize


def _subscription(tgt: psycopg.Connection[Any], st: Status) -> None:
    row = tgt.execute(
        "SELECT s.subenabled, p.pid, p.received_lsn::text, p.latest_end_lsn::text,"
        " p.last_msg_receipt_time"
        " FROM pg_subscription s LEFT JOIN pg_stat_subscription p"
        "   ON p.subid = s.oid AND p.relid IS NULL"
        " WHERE s.subname = %s",
        [st.slot],
    ).fetchone()
    if row is None:
        return
    st.subscription = {
        "enabled": bool(row[0]),
        "worker_pid": row[1],
        "received_lsn": row[2],
        "latest_end_lsn": row[3],
        "last_message": row[4].isoformat() if row[4] else None,
    }
    if tgt.info.server_version >= 150000:
        stats = tgt.execute(
            "SELECT apply_error_count, sync_error_count FROM pg_stat_subscription_stats"
            " WHERE subname = %s",
            [st.slot],
        ).fetchone()
        if stats:
            st.subscription["apply_error_count"] = int(stats[0])
            st.subscription["sync_error_count"] = int(stats[1])
    if tgt.info.server_version >= 180000:
        # 18+ counts conflicts by kind, those apply skips silently included
        cur = tgt.execute("SELECT * FROM pg_stat_subscription_stats WHERE subname = %s", [st.slot])
        row = cur.fetchone()
        if row and cur.description:
            st.subscription["conflicts"] = {
                d.name.removeprefix("confl_"): int(v)
                for d, v in zip(cur.description, row, strict=True)
                if d.name.startswith("confl_")
            }
    st.tables_not_ready = [
        f"{r[0]} ({r[1]})"
        for r in tgt.execute(
            "SELECT r.srrelid::regclass::text, r.srsubstate FROM pg_subscription_rel r"
            " JOIN pg_subscription s ON s.oid = r.srsubid"
            " WHERE s.subname = %s AND r.srsubstate <> 'r' ORDER BY 1",
            [st.slot],
        )
    ]


# a table without columns still has its row (attname NULL): it exists
COLUMNS_SQL = """
SELECT n.nspname || '.' || c.relname, a.attname, format_type(a.atttypid, a.atttypmod)
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
 WHERE n.nspname || '.' || c.relname = ANY(%s)
"""


def _drift(
    src: psycopg.Connection[Any], tgt: psycopg.Connection[Any], setup: Setup, st: Status
) -> None:
    """Columns added, dropped or retyped on one side of a published table;
    DDL is not replicated, and apply stops at the first row that needs it."""
    names = [n for n in setup.published if n != objs.HEARTBEAT_NAME]
    if not names or setup.stage == "promoted":
        return
    cols: list[dict[str, dict[str, str]]] = []
    for conn in (src, tgt):
        found: dict[str, dict[str, str]] = {}
        for table, col, typ in conn.execute(COLUMNS_SQL, [names]):
            columns = found.setdefault(table, {})
            if col is not None:
                columns[col] = typ
        cols.append(found)
    s, t = cols
    # a new table the selection matches is not in the publication
    sel = catalog.select_tables(src, setup.tables, setup.exclude)
    loose = {t.oid for t in unlogged(src, sel.leaves)}  # never published
    for table in sel.leaves:
        if (
            table.qualified not in names
            and table.qualified != objs.HEARTBEAT_NAME
            and (table.oid not in loose)
        ):
            st.drift.append(
                f"{table.qualified}: new on the source, not replicated"
                " (drop and create the replica again to include it)"
            )
    # and one made on the target alone (it would outlive the cutover unnoticed)
    on_source = {t.qualified for t in sel.tables}
    for table in catalog.select_tables(tgt, setup.tables, setup.exclude).tables:
        if table.qualified not in on_source and table.qualified != objs.HEARTBEAT_NAME:
            st.drift.append(f"{table.qualified}: new on the target, not on the source")
    for table in names:
        if table not in s:
            st.drift.append(f"{table}: dropped on the source")
            continue
        if table not in t:
            st.drift.append(f"{table}: missing on the target")
            continue
        for col in sorted(set(s[table]) | set(t[table])):
            a, b = s[table].get(col), t[table].get(col)
            if a is None:
                st.drift.append(f"{table}.{col}: only on the target")
            elif b is None:
                st.drift.append(f"{table}.{col}: only on the source (add it on the target)")
            elif a != b:
                st.drift.append(f"{table}.{col}: {a} on the source, {b} on the target")


def _heartbeat(
    src: psycopg.Connection[Any],
    tgt: psycopg.Connection[Any],
    setup: Setup,
    st: Status,
    wait: float,
) -> bool:
    """Time a fresh beat's arrival.  True when it did not arrive and apply
    looks stuck: the worker was seen not running (it exits on an error and
    restarts) or its error count grew while we waited."""
    if not (st.slot_exists and st.subscription):
        return False
    try:
        n = objs.beat(src, setup.name)
    except (psycopg.errors.ReadOnlySqlTransaction, psycopg.errors.UndefinedTable):
        return False  # writes blocked by promote, or no heartbeat table: no fresh beat
    _, running, errors0 = conflict.worker(tgt, st.slot)
    t0 = time.monotonic()
    while True:
        got = objs.applied_beat(tgt, setup.name)
        if got is not None and got[0] >= n:
            st.lag_seconds = round(time.monotonic() - t0, 3)
            st.applied_beat_age = 0.0
            return False
        if time.monotonic() - t0 >= wait:
            break
        time.sleep(0.05)
        _, seen, _ = conflict.worker(tgt, st.slot)
        running = running and seen
    if got is not None:
        row = src.execute("SELECT extract(epoch FROM clock_timestamp() - %s)", [got[1]]).fetchone()
        st.applied_beat_age = float(row[0]) if row else None
    enabled, _, errors1 = conflict.worker(tgt, st.slot)
    grew = errors0 is not None and errors1 is not None and errors1 > errors0
    return enabled and (grew or not running)
