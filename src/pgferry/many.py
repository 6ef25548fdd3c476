"""Import many objects (a prefix, a folder, a glob) into one table.

By default every object loads in one transaction: all or nothing. With
`jobs` > 1 the objects are spread over that many connections and the
transactions end together by two-phase commit (PREPARE TRANSACTION on
each, then COMMIT PREPARED), so a failed object still leaves nothing
behind; where the server allows no prepared transactions the load falls
back to one connection with a warning instead of giving up the guarantee.
`commit_each` commits every object on its own and carries on past a
failed one, reporting it.

Each object goes through `run_import`, the one-object path, as a
savepoint of the connection's transaction.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import psycopg

from pgferry.errors import PgferryError, TargetError, TargetUnreachable, UsageError
from pgferry.imports import ImportSpec, run_import
from pgferry.sink.copyin import UNREACHABLE_STATES
from pgferry.sink.names import parse_table_name, table_ident
from pgferry.stores.listing import Listed, expand
from pgferry.target import connect, resolve_target

log = logging.getLogger("pgferry.import")


@dataclass
class ObjectOutcome:
    """What happened to one object: `loaded` (and committed, unless the
    whole load failed, then `rolled back`), `failed`, or `not started`."""

    uri: str
    bytes: int
    status: str = "not started"
    rows: int = 0
    skipped: int = 0
    seconds: float = 0.0
    compression: str | None = None
    error: str | None = None


@dataclass
class ManyResult:
    table: str
    objects: list[ObjectOutcome]
    jobs: int = 1
    committed: str = "all"  # all | each
    created_table: str | None = None
    seconds: float = 0.0
    errors: list[PgferryError] = field(default_factory=list, repr=False)

    @property
    def rows(self) -> int:
        return sum(o.rows for o in self.objects if o.status == "loaded")

    @property
    def bytes(self) -> int:
        return sum(o.bytes for o in self.objects if o.status == "loaded")

    @property
    def failed(self) -> list[ObjectOutcome]:
        return [o for o in self.objects if o.status == "failed"]

    @property
    def message(self) -> str:
        loaded = [o for o in self.objects if o.status == "loaded"]
        text = (
            f'{self.rows} rows imported into relation "{self.table}" '
            f"from {len(loaded)} of {len(self.objects)} files of {self.bytes} bytes"
        )
        if self.failed:
            text += f" ({len(self.failed)} failed)"
        return text

    def to_dict(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "rows": self.rows,
            "bytes": self.bytes,
            "files": len(self.objects),
            "failed": len(self.failed),
            "jobs": self.jobs,
            "committed": self.committed,
            "created_table": self.created_table,
            "seconds": self.seconds,
            "message": self.message,
            "objects": [asdict(o) for o in self.objects],
        }


class _Shared:
    """State the workers share: the queue of objects, progress, first error."""

    def __init__(
        self,
        spec: ImportSpec,
        listed: list[Listed],
        commit_each: bool,
        on_bytes: Callable[[int, int], None] | None,
        on_object: Callable[[ObjectOutcome, int, int], None] | None = None,
    ) -> None:
        self.on_object = on_object
        self.spec = spec
        self.listed = listed
        self.outcomes = [ObjectOutcome(x.ref.uri, x.size) for x in listed]
        self.commit_each = commit_each
        self.lock = threading.Lock()
        self.next = 0
        self.stop = threading.Event()
        self.errors: list[PgferryError] = []
        # truncate/replace/create happen with the first object that loads
        self.prepared = False
        self.created: str | None = None
        self.total = sum(x.size for x in listed)
        self.done = 0
        self.current: dict[int, int] = {}
        self.on_bytes = on_bytes

    def take(self) -> int | None:
        with self.lock:
            if self.stop.is_set() or self.next >= len(self.listed):
                return None
            self.next += 1
            return self.next - 1

    def progress(self, worker: int, out: ObjectOutcome) -> Callable[[int, int], None] | None:
        report, each = self.on_bytes, self.on_object
        if report is None and each is None:
            return None

        def advance(done: int, total: int) -> None:
            with self.lock:
                self.current[worker] = done
                now = self.done + sum(self.current.values())
            if report is not None:
                report(now, self.total)
            if each is not None:
                each(out, done, total)

        return advance

    def ended(self, out: ObjectOutcome) -> None:
        if self.on_object is not None:
            self.on_object(out, -1, -1)

    def finish_bytes(self, worker: int, size: int) -> None:
        with self.lock:
            self.current.pop(worker, None)
            self.done += size


def run_many(
    spec: ImportSpec,
    *,
    jobs: int = 1,
    commit_each: bool = False,
    on_bytes: Callable[[int, int], None] | None = None,
    listed: list[Listed] | None = None,
    on_object: Callable[[ObjectOutcome, int, int], None] | None = None,
) -> ManyResult:
    """Import every object `spec.source` names (see stores/listing.py).

    All or nothing unless `commit_each`; the first error is raised then,
    after everything was rolled back. With `commit_each` failures are
    reported in the result (`failed`) and the rest still loads.
    `on_bytes(done, total)` follows all objects' stored bytes;
    `on_object(outcome, done, total)` each object's, then (outcome, -1, -1)
    when it ends, its status set."""
    if jobs < 1:
        raise UsageError(f"--jobs must be at least 1, not {jobs}", hint="e.g. --jobs 4")
    if not spec.source:
        raise UsageError("no SOURCE to expand", hint="give s3://bucket/prefix/ or a glob")
    started = time.monotonic()
    if listed is None:
        listed = expand(spec.source, replace(spec.s3, region=spec.region or spec.s3.region))
    shared = _Shared(spec, listed, commit_each, on_bytes, on_object)
    target = resolve_target(spec.target)
    conns = [connect(target)]
    try:
        jobs = min(jobs, len(listed))
        if jobs > 1:
            jobs = _usable_jobs(conns[0], spec, jobs, commit_each)
        if jobs > 1 and spec.on_error == "skip-rows":
            # created by one connection up front: several creating it at once collide
            from pgferry.rejects import DEFAULT_TABLE, ensure_table

            ensure_table(conns[0], spec.rejects_table or DEFAULT_TABLE)
            conns[0].commit()
        conns += [connect(target) for _ in range(jobs - 1)]
        gid = f"pgferry-{uuid.uuid4().hex[:16]}"
        two_phase = jobs > 1 and not commit_each
        if two_phase:
            for i, c in enumerate(conns):
                c.tpc_begin(f"{gid}-{i}")
        threads = [
            threading.Thread(target=_work, args=(shared, i, c), daemon=True)
            for i, c in enumerate(conns)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if not commit_each:
            _finish(conns, shared, two_phase)
    finally:
        for c in conns:
            c.close()
    result = ManyResult(
        table=spec.table,
        objects=shared.outcomes,
        jobs=jobs,
        committed="each" if commit_each else "all",
        created_table=shared.created,
        seconds=round(time.monotonic() - started, 3),
        errors=shared.errors,
    )
    if shared.errors and not commit_each:
        first = shared.errors[0]
        # the one-object hint often ends "nothing was loaded": say it once, for all
        base = (first.hint or "").removesuffix("nothing was loaded").rstrip("; ")
        first.hint = (
            f"{base + '; ' if base else ''}nothing was loaded from the "
            f"{len(listed)} objects (all or nothing; --commit-each keeps those that load)"
        )
        raise first
    return result


def _usable_jobs(conn: psycopg.Connection[Any], spec: ImportSpec, jobs: int, each: bool) -> int:
    usable, why, _ = jobs_plan(conn, spec, jobs, each)
    if why:
        log.warning("--jobs %d: %s; loading over one connection", jobs, why)
    return usable


def jobs_plan(
    conn: psycopg.Connection[Any], spec: ImportSpec, jobs: int, each: bool
) -> tuple[int, str | None, int]:
    """(connections, why only one, the target's max_prepared_transactions):
    how many connections can load this table together. DDL and TRUNCATE
    run in the first transaction and would block (or be invisible to) the
    others, so they need one connection; so does all-or-nothing without
    prepared transactions. Reads only; `--dry-run` reports the same."""
    table = table_ident(parse_table_name(spec.table)).as_string(conn)
    with conn.transaction():
        row = conn.execute(
            "SELECT to_regclass(%s) IS NOT NULL, current_setting('max_prepared_transactions')",
            [table],
        ).fetchone()
    exists, max_prepared = (bool(row[0]), int(row[1])) if row else (False, 0)
    why = None
    if spec.mode != "append":
        why = f"--mode {spec.mode} empties the table in one transaction"
    elif (spec.create_table) and not exists:
        why = "--create-table creates the table in one transaction"
    elif not each and max_prepared < jobs:
        why = (
            f"all or nothing over {jobs} connections needs two-phase commit, and the target's "
            f"max_prepared_transactions is {max_prepared} (set it to at least {jobs} and "
            "restart, or pass --commit-each)"
        )
    return (1 if why else jobs), why, max_prepared


def _work(shared: _Shared, worker: int, conn: psycopg.Connection[Any]) -> None:
    while (i := shared.take()) is not None:
        item, out = shared.listed[i], shared.outcomes[i]
        spec = shared.spec
        with shared.lock:
            first = not shared.prepared
        if not first:
            spec = replace(spec, mode="append")
        spec = replace(spec, source=item.ref.uri, bucket=None, key=None)
        started = time.monotonic()
        try:
            try:
                res = run_import(spec, conn=conn, on_bytes=shared.progress(worker, out))
                if shared.commit_each:
                    conn.commit()
            except psycopg.Error as e:  # COMMIT itself failed
                raise _commit_error(e, spec.table) from None
        except PgferryError as e:
            out.status, out.error = "failed", e.message
            out.seconds = round(time.monotonic() - started, 3)
            with shared.lock:
                shared.errors.append(e)
            if shared.commit_each:
                _rollback(conn)
            else:
                shared.stop.set()
            log.info("%s failed: %s", item.ref.uri, e.message)  # the summary reports it
            shared.ended(out)
            continue
        finally:
            shared.finish_bytes(worker, item.size)
        out.status, out.rows, out.skipped = "loaded", res.rows, res.skipped
        out.bytes, out.compression, out.seconds = res.bytes, res.compression, res.seconds
        with shared.lock:
            shared.prepared = True
            if res.created_table:
                shared.created = res.created_table
        shared.ended(out)


def _finish(conns: list[psycopg.Connection[Any]], shared: _Shared, two_phase: bool) -> None:
    """End the all-or-nothing transactions: commit all, or roll all back."""
    if shared.errors:
        for c in conns:
            _rollback(c, two_phase)
        for o in shared.outcomes:
            if o.status == "loaded":
                o.status = "rolled back"
        return
    table = shared.spec.table
    try:
        if two_phase:
            for c in conns:
                c.tpc_prepare()
        for c in conns:
            if two_phase:
                c.tpc_commit()
            else:
                c.commit()
    except psycopg.Error as e:
        for c in conns:
            _rollback(c, two_phase)
        err = _commit_error(e, table)
        shared.errors.append(err)
        for o in shared.outcomes:
            if o.status == "loaded":
                o.status = "rolled back"


def _commit_error(e: psycopg.Error, table: str) -> TargetError:
    primary = e.diag.message_primary or str(e).strip()
    if e.sqlstate is None or e.sqlstate[:2] == "08" or e.sqlstate in UNREACHABLE_STATES:
        return TargetUnreachable(
            f'lost the target while committing the load of table "{table}": {primary}',
            hint="check the table: a commit cut off may or may not have happened",
            table=table,
            sqlstate=e.sqlstate,
        )
    return TargetError(
        f'committing the load of table "{table}" failed: {primary}',
        table=table,
        sqlstate=e.sqlstate,
    )


def _rollback(conn: psycopg.Connection[Any], two_phase: bool = False) -> None:
    try:
        if conn.info.transaction_status != psycopg.pq.TransactionStatus.UNKNOWN:
            if two_phase:
                conn.tpc_rollback()  # ROLLBACK PREPARED once prepared
            else:
                conn.rollback()
    except psycopg.Error as e:  # the connection is gone: the server rolled back
        log.info("rollback failed (the server rolls back on disconnect): %s", e)
