"""The data phase: parallel COPY streams, all inside one exported snapshot.

The read side is a psql child per unit (`SET TRANSACTION SNAPSHOT`, then
`COPY ... TO STDOUT`): libpq hands rows over one at a time, and doing that
loop in C keeps the Python side to moving 256 KiB blocks.  The write side is
psycopg's COPY FROM STDIN, so target errors keep their SQLSTATE.
"""

from __future__ import annotations

import os
import re
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from pgferry.errors import TargetBusy, TargetError, TargetUnreachable
from pgferry.migrate.catalog import Table, Unit, copy_in_sql
from pgferry.migrate.errors import SnapshotLost, SourceError
from pgferry.migrate.progress import Ledger, Reporter, mark_in
from pgferry.migrate.tools import Tool, child_env, first_error, split_password, sqlstate_of
from pgferry.target import connect

BLOCK = 256 << 10
# text COPY output must not depend on the user's session defaults
# row_security off, as pg_dump: rows a policy would hide from this role fail
# the read (42501) instead of being left out of the copy without a word.
# lc_monetary C on both sides: money's text follows it ("1.234,56 €" under
# de_DE), and a target with another setting would refuse or misread it.
# The target also reads xml as content (open_target), as pg_dump's output
# does: a database set to xmloption = document refuses fragments.
# Rows travel as raw COPY bytes, so both ends name one client encoding,
# UTF8: the source converts to it, the target from it (a LATIN1 target was
# handed UTF-8 bytes as LATIN1, and stored "Ãœ" for "Ü")
SESSION = (
    "-c DateStyle=ISO -c IntervalStyle=postgres -c extra_float_digits=3 -c TimeZone=UTC"
    " -c row_security=off -c lc_monetary=C"
)


@dataclass
class UnitStats:
    key: str
    table: str
    rows: int
    nbytes: int
    seconds: float


class Cancelled(Exception):
    """Another unit failed; this one stopped early."""


class Pool:
    """Runs units on `jobs` threads; the first failure cancels the rest."""

    def __init__(self, jobs: int) -> None:
        self.jobs = max(1, jobs)
        self.cancel = threading.Event()
        self._procs: set[subprocess.Popen[bytes]] = set()
        self._lock = threading.Lock()

    def track(self, proc: subprocess.Popen[bytes], add: bool = True) -> None:
        with self._lock:
            if add:
                self._procs.add(proc)
            else:
                self._procs.discard(proc)

    def run(self, units: list[Unit], work: Callable[[Unit], UnitStats]) -> list[UnitStats]:
        def guarded(u: Unit) -> UnitStats:
            if self.cancel.is_set():
                raise Cancelled(u.key)
            try:
                return work(u)
            except BaseException:
                # at once, in this thread: a worker that is free again must
                # not start another unit before the caller has noticed
                self.cancel.set()
                raise

        results: list[UnitStats] = []
        with ThreadPoolExecutor(self.jobs, thread_name_prefix="pgferry-copy") as ex:
            futures = [ex.submit(guarded, u) for u in units]
            done, _ = wait(futures, return_when=FIRST_EXCEPTION)
            failed = [f for f in done if f.exception() is not None]
            if failed:
                self.cancel.set()
                with self._lock:
                    for p in self._procs:
                        p.kill()
                for f in futures:
                    f.cancel()
                wait(futures)
                errors = [f.exception() for f in futures if f.done() and not f.cancelled()]
                real = [e for e in errors if e is not None and not isinstance(e, Cancelled)]
                raise (real or errors)[0]  # type: ignore[misc]
            results = [f.result() for f in futures]
        return results


@contextmanager
def copy_out(
    pool: Pool, psql: Tool, conninfo: str, snapshot: str | None, copy_sql: str
) -> Iterator[Iterator[bytes]]:
    """Blocks of `COPY ... TO STDOUT` text, read inside `snapshot`."""
    clean, extra = split_password(conninfo)
    env = child_env(extra)
    env["PGOPTIONS"] = (env.get("PGOPTIONS", "") + " " + SESSION).strip()
    env["PGCLIENTENCODING"] = "UTF8"  # what the target is told the bytes are (open_target)
    argv = [
        str(psql.path),
        "-X",
        "-q",
        "-v",
        "ON_ERROR_STOP=1",
        "-v",
        "VERBOSITY=verbose",
        "-d",
        clean,
        "-c",
        "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
    ]
    if snapshot:
        argv += ["-c", f"SET TRANSACTION SNAPSHOT '{_snapshot_id(snapshot)}'"]
    argv += ["-c", copy_sql]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    pool.track(proc)
    assert proc.stdout is not None and proc.stderr is not None
    fd = proc.stdout.fileno()

    def blocks() -> Iterator[bytes]:
        while True:
            b = os.read(fd, BLOCK)
            if not b:
                break
            yield b
        # checked before the caller commits: a reader killed halfway must
        # fail the unit, not end it early
        rc = proc.wait()
        assert proc.stderr is not None
        err = proc.stderr.read().decode(errors="replace")
        if rc != 0:
            if pool.cancel.is_set():
                raise Cancelled(copy_sql)
            state = sqlstate_of(err)
            if snapshot and state in ("42704", "22023", "0A000"):
                raise SnapshotLost(
                    f"the source snapshot {snapshot} is gone: {first_error(err)}",
                    hint="the coordinator connection ended; rerun with --resume",
                    sqlstate=state,
                )
            raise SourceError(f"reading the source failed: {first_error(err)}", sqlstate=state)

    try:
        yield blocks()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()
        pool.track(proc, add=False)


def _snapshot_id(snapshot: str) -> str:
    # exported snapshot ids are hex and dashes; anything else is a bug upstream
    if not all(c in "0123456789ABCDEFabcdef-" for c in snapshot):
        raise ValueError(f"unexpected snapshot id {snapshot!r}")
    return snapshot


def _vacuum(conn: psycopg.Connection[Any], table: Table) -> None:
    # VACUUM cannot run in a transaction block; the worker's connection is
    # idle between units
    conn.autocommit = True
    try:
        conn.execute(sql.SQL("VACUUM (ANALYZE) {}").format(table.ident))
    finally:
        conn.autocommit = False


def open_target(conninfo: str, replica: bool = False) -> psycopg.Connection[Any]:
    conn = connect(conninfo)
    conn.execute(
        "SET DateStyle = ISO; SET IntervalStyle = postgres; SET TimeZone = 'UTC';"
        " SET lc_monetary = 'C'; SET xmloption = content; SET client_encoding = 'UTF8'"
    )
    conn.execute("SET synchronous_commit = off")
    if replica:
        # data-only into existing tables: foreign keys and triggers would fire
        # out of order; needs superuser, so skip it quietly when refused
        try:
            with conn.transaction():
                conn.execute("SET session_replication_role = replica")
        except psycopg.errors.InsufficientPrivilege:
            pass
    conn.commit()
    return conn


def load(
    conn: psycopg.Connection[Any],
    table: Table,
    blocks: Iterator[bytes],
    *,
    key: str,
    reporter: Reporter,
    truncate: bool,
    where: sql.Composable | None = None,
    ledger_item: str | None = None,
    on_block: Callable[[bytes], None] | None = None,
    check: Callable[[int], None] | None = None,
) -> tuple[int, int]:
    """One transaction: clear what this unit owns, COPY the blocks in, record
    the ledger item, commit.  Returns (rows, bytes)."""
    rows = nbytes = 0
    last = time.monotonic()
    pending_rows = pending_bytes = 0
    try:
        with conn.transaction():
            if truncate:
                conn.execute(sql.SQL("TRUNCATE ONLY {}").format(table.ident))
            elif where is not None:
                conn.execute(sql.SQL("DELETE FROM ONLY {} WHERE {}").format(table.ident, where))
            with conn.cursor().copy(copy_in_sql(table, freeze=truncate)) as cp:
                for b in blocks:
                    if on_block:
                        on_block(b)
                    cp.write(b)
                    n = b.count(b"\n")
                    rows += n
                    nbytes += len(b)
                    pending_rows += n
                    pending_bytes += len(b)
                    now = time.monotonic()
                    if now - last > 0.2:
                        reporter.unit_progress(key, pending_rows, pending_bytes)
                        pending_rows = pending_bytes = 0
                        last = now
            if check:
                check(rows)  # raising here rolls the whole unit back
            if ledger_item:
                mark_in(conn, ledger_item, rows, nbytes)
    except psycopg.Error as e:  # the source's errors arrive as SourceError
        raise _load_error(e, table) from None
    reporter.unit_progress(key, pending_rows, pending_bytes)
    return rows, nbytes


def _load_error(e: psycopg.Error, table: Table) -> TargetError:
    state = e.sqlstate or ""
    what = f"loading table {table.qualified} failed on the target: {e.diag.message_primary or e}"
    if e.diag.context and (line := _COPY_LINE.search(e.diag.context)):
        what += f" ({line.group(0)})"
    if state[:2] in ("08", "57") or not state:
        cls: type[TargetError] = TargetUnreachable
    elif state[:2] in ("40", "53"):
        cls = TargetBusy
    else:
        cls = TargetError
    return cls(
        what,
        hint="nothing of this table's part was kept; fix the cause, then rerun with --resume",
        table=table.qualified,
        sqlstate=e.sqlstate,
    )


#: where in the COPY data PostgreSQL's context points: "line 3, column price"
_COPY_LINE = re.compile(r"line \d+(?:, column [^:]+)?")


def load_units(
    target: str,
    units: list[Unit],
    blocks: Callable[[Pool, Unit], AbstractContextManager[Iterator[bytes]]],
    *,
    jobs: int,
    ledger: Ledger,
    reporter: Reporter,
    resuming: bool,
    replica: bool = False,
    truncate: bool = True,
    check: Callable[[Unit, int], None] | None = None,
    table_done: Callable[[Table], None] | None = None,
    vacuum_now: Callable[[Table], bool] | None = None,
    vacuumed: set[str] | None = None,
) -> list[UnitStats]:
    """The data phase of clone and snapshot restore: each unit's `blocks`
    loaded by `load` on its own connection, `jobs` at a time.  A whole table
    is recorded in the ledger with its rows; a split one once its last range
    is in.  `table_done` runs when a table is complete (clone builds its
    indexes then); `check(unit, rows)` may refuse a unit before it commits.
    A complete table for which `vacuum_now` says so is vacuumed and analyzed
    at once on the worker's connection, and added to `vacuumed`."""
    parts = Counter(u.table.qualified for u in units)
    lock = threading.Lock()
    if resuming:
        # a split table interrupted halfway is redone whole, in one snapshot
        with connect(target, autocommit=True) as c:
            for u in {u.table.qualified: u for u in units if u.parts > 1}.values():
                c.execute(sql.SQL("TRUNCATE ONLY {}").format(u.table.ident))
    pool = Pool(jobs)
    # one target connection per worker thread, not per unit: a small
    # database's many small tables each take less time than a connection
    local = threading.local()
    opened: list[psycopg.Connection[Any]] = []

    def target_conn() -> psycopg.Connection[Any]:
        conn: psycopg.Connection[Any] | None = getattr(local, "conn", None)
        if conn is None or conn.closed:
            conn = local.conn = open_target(target, replica=replica)
            with lock:
                opened.append(conn)
        return conn

    def work(u: Unit) -> UnitStats:
        t0 = time.monotonic()
        reporter.unit_start(u.key, u.est_bytes)
        whole = u.parts == 1
        item = f"table:{u.table.qualified}"
        conn = target_conn()
        with blocks(pool, u) as bs:
            rows, nbytes = load(
                conn,
                u.table,
                bs,
                key=u.key,
                reporter=reporter,
                truncate=whole and truncate,
                ledger_item=item if whole else None,
                check=(lambda n: check(u, n)) if check else None,
            )
        last = whole
        if not whole:
            with lock:
                parts[u.table.qualified] -= 1
                last = parts[u.table.qualified] == 0
            if last:
                ledger.mark(item)
        if last and table_done is not None:
            table_done(u.table)
        if last and vacuum_now is not None and vacuum_now(u.table):
            _vacuum(conn, u.table)
            with lock:
                if vacuumed is not None:
                    vacuumed.add(u.table.qualified)
        stats = UnitStats(u.key, u.table.qualified, rows, nbytes, time.monotonic() - t0)
        reporter.unit_done(u.key, rows, nbytes, stats.seconds)
        return stats

    try:
        return pool.run(units, work)
    finally:
        for conn in opened:
            conn.close()
