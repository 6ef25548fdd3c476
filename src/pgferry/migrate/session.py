"""One run's footprint on the target, and what a killed run left behind.

Every connection of a run, ours and our children's (pg_restore, psql),
carries application_name `pgferry <command> <run id>`, and the run id is in
the ledger.  A run holds an advisory lock on the target database for its
whole life: a second run into the same target is refused while the first
lives.  When pgferry is killed (SIGKILL: no clean-up), its children die
with it (tools.child_argv), but their server sessions may still be busy,
say building an index; `--resume` ends those sessions first, or it would
race them ("already exists").  Temporary directories of dead runs are
removed at the next start.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg

from pgferry.errors import TargetNotEmpty

#: pg_advisory_lock(int, int) key: 'pgfr', then one for clone and restore
LOCK = (0x70676672, 1)
WAIT_SECONDS = 60.0


def new_run_id() -> str:
    return uuid.uuid4().hex[:12]


def app_name(command: str, run_id: str) -> str:
    return f"pgferry {command} {run_id}"


@contextmanager
def tagged(command: str, run_id: str) -> Iterator[None]:
    """Tag every connection opened meanwhile, ours (libpq reads PGAPPNAME)
    and our children's, with this run's application_name."""
    old = os.environ.get("PGAPPNAME")
    os.environ["PGAPPNAME"] = app_name(command, run_id)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("PGAPPNAME", None)
        else:
            os.environ["PGAPPNAME"] = old


def lock(conn: psycopg.Connection[Any], target: str) -> None:
    """Hold the target's lock for as long as `conn` lives."""
    row = conn.execute("SELECT pg_try_advisory_lock(%s, %s)", list(LOCK)).fetchone()
    if not (row and row[0]):
        raise TargetNotEmpty(
            f"another pgferry run is working on {target}",
            hint="wait for it to finish (or stop it), then rerun",
        )


def unlock(conn: psycopg.Connection[Any]) -> None:
    """Release the lock now: closing the connection releases it only when
    the server has ended the session, which a next run started at once can
    beat (it would then be refused as "another pgferry run")."""
    if conn.closed:
        return
    # a broken connection: its session, and the lock, end with it
    with contextlib.suppress(psycopg.Error):
        conn.execute("SELECT pg_advisory_unlock(%s, %s)", list(LOCK))


def end_leftovers(conn: psycopg.Connection[Any], command: str, run_id: str) -> int:
    """End the sessions a killed run `run_id` left on the target database and
    wait until they are gone; returns how many there were."""
    name = app_name(command, run_id)
    query = (
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
        " AND application_name = %s AND pid <> pg_backend_pid()"
    )
    pids = [r[0] for r in conn.execute(query, [name]).fetchall()]
    for pid in pids:
        conn.execute("SELECT pg_terminate_backend(%s)", [pid])
    deadline = time.monotonic() + WAIT_SECONDS
    while conn.execute(query, [name]).fetchone() is not None:
        if time.monotonic() > deadline:
            raise TargetNotEmpty(
                f"sessions of the interrupted run ({name}) are still busy on the target",
                hint="end them (pg_terminate_backend), then rerun with --resume",
            )
        time.sleep(0.1)
    return len(pids)


def temp_dir(command: str) -> tempfile.TemporaryDirectory[str]:
    """A temporary directory named after our pid; those of dead runs go."""
    prefix = f"pgferry-{command}-"
    root = Path(tempfile.gettempdir())
    for d in root.glob(f"{prefix}*-*"):
        pid = d.name[len(prefix) :].split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(d, ignore_errors=True)
    return tempfile.TemporaryDirectory(prefix=f"{prefix}{os.getpid()}-")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
