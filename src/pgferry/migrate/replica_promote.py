"""`replica promote`: the cutover.

Refuse while the target lags more than --max-lag.  Block writes on the
source (ALTER DATABASE ... SET default_transaction_read_only = on, then end
the database's client sessions: reconnecting, they are read-only), commit
a heartbeat marker and wait until the target has applied it: apply is in
commit order, so then it holds every write the source accepted.  Then what
logical replication does not carry: sequences, large objects, materialized
views; a row count of every table; last, drop the subscription, slot,
publication and heartbeat.

Every failure before that last step unblocks the source and leaves the
replica streaming.  The block is recorded before it is made, so after a
kill, `promote` again finishes and `drop` unblocks.  A finished promote
leaves the source read-only, so that nothing writes to the old primary by
mistake; `replica drop` lifts that.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from pgferry.errors import ApplyConflict, ReplicaError, ReplicaLagging, ReplicaTimeout, SlotLost
from pgferry.migrate import catalog, finish, largeobjects
from pgferry.migrate import replica_conflict as conflict
from pgferry.migrate import replica_objects as objs
from pgferry.migrate import replica_state as state
from pgferry.migrate.replica_state import Setup, Stage
from pgferry.migrate.replica_status import slot_row
from pgferry.migrate.schema import RestoreOptions
from pgferry.target import connect


@dataclass(frozen=True)
class PromoteConfig:
    name: str = "main"
    source: str | None = None
    target: str | None = None
    max_lag: int = 64 << 20
    timeout: float = 60.0
    block_writes: bool = True
    verify: str = "quick"
    #: then replicate from the new primary back to the old one
    reverse: bool = False
    #: the target as the source server reaches it (default: the target URL)
    target_for_source: str | None = None


@dataclass
class PromoteResult:
    name: str
    steps: list[tuple[str, float]] = field(default_factory=list)
    #: from the write block to the end (None with --no-block-writes)
    write_unavailable_seconds: float | None = None
    lag_bytes_before: int | None = None
    cutover_lsn: str | None = None
    sessions_ended: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    reverse_options: list[str] = field(default_factory=list)


class _Steps:
    def __init__(self, result: PromoteResult) -> None:
        self.result = result
        self.t = time.monotonic()

    def done(self, name: str) -> None:
        now = time.monotonic()
        self.result.steps.append((name, round(now - self.t, 3)))
        self.t = now


def promote(cfg: PromoteConfig) -> PromoteResult:
    setup = state.load(cfg.name)
    setup.source = cfg.source or setup.source
    setup.target = cfg.target or setup.target
    result = PromoteResult(setup.name)
    if setup.stage == Stage.PROMOTED:
        result.notes.append(f"{setup.name!r} is promoted already")
        return result
    if setup.stage not in (Stage.STREAMING, Stage.PROMOTING):
        raise ReplicaError(
            f"replica {setup.name!r} is not streaming yet (stage {setup.stage})",
            hint="finish it with 'pgferry replica create --resume' first",
        )
    with (
        finish.connect_source(setup.source, autocommit=True) as src,
        connect(setup.target, autocommit=True) as tgt,
    ):
        _run(cfg, setup, result, src, tgt)
    return result


def _check_lag(
    cfg: PromoteConfig,
    setup: Setup,
    src: psycopg.Connection[Any],
    tgt: psycopg.Connection[Any],
    result: PromoteResult,
) -> None:
    row = slot_row(src, setup.object_name)
    if row is None or row[1] == "lost":
        raise SlotLost(
            f"the replication slot {setup.object_name} is "
            + ("lost (the source removed WAL it needed)" if row else "missing on the source"),
            hint="the target cannot catch up: run 'pgferry replica drop', then create it again",
        )
    result.lag_bytes_before = max(0, int(row[2] or 0))
    if result.lag_bytes_before > cfg.max_lag:
        raise ReplicaLagging(
            f"the target is {result.lag_bytes_before} bytes behind the source,"
            f" more than --max-lag ({cfg.max_lag})",
            hint="wait for 'pgferry replica status' to show less lag, or raise --max-lag",
        )
    _, running, errors = conflict.worker(tgt, setup.object_name)
    if not running or errors:  # the worker exits on an apply error and restarts
        found = conflict.probe(src, tgt, setup.object_name)
        if found is not None and found.key is not None:
            raise _conflict_error(found, setup, tgt, "promote refused: ", "")


def _conflict_error(
    found: conflict.Conflict,
    setup: Setup,
    tgt: psycopg.Connection[Any],
    prefix: str,
    suffix: str,
) -> ApplyConflict:
    what, todo = conflict.describe(found, setup.object_name, tgt.info.server_version // 10000)
    return ApplyConflict(
        f"{prefix}{what}{suffix}",
        hint=todo,
        table=found.table,
        row_key=found.key,
        lsn=found.finish_lsn,
    )


def _run(
    cfg: PromoteConfig,
    setup: Setup,
    result: PromoteResult,
    src: psycopg.Connection[Any],
    tgt: psycopg.Connection[Any],
) -> None:
    objs.writable(src)
    streaming = objs.subscription_exists(tgt, setup.object_name)
    if setup.stage == Stage.STREAMING:
        _check_lag(cfg, setup, src, tgt, result)
    if not setup.writes_blocked:
        setup.previous_read_only = objs.read_only_setting(src)
    setup.stage = Stage.PROMOTING
    setup.writes_blocked = setup.writes_blocked or cfg.block_writes
    state.save(setup)  # before the block: a kill from here on is undone by drop
    started = time.monotonic()
    steps = _Steps(result)
    try:
        if cfg.block_writes:
            result.sessions_ended = objs.block_writes(src)
            steps.done("block writes")
        if streaming:
            _catch_up(cfg, setup, result, src, tgt)
            steps.done("wait for the target to apply")
        _finish_data(setup, src, tgt)
        steps.done("sequences, large objects, materialized views")
        if cfg.verify == "quick":
            result.counts = _verify_counts(setup)
            steps.done("verify row counts")
        elif cfg.verify == "full":
            _verify_full(setup)
            steps.done("verify rows (pgferry verify --data-only)")
    except BaseException:
        if streaming and setup.writes_blocked:
            objs.unblock_writes(src, setup.previous_read_only)
            setup.writes_blocked = False
            setup.stage = Stage.STREAMING
            state.save(setup)
        raise
    # the point of no return: replication stops for good
    objs.drop_subscription(tgt, setup.object_name)
    objs.drop_slot(src, setup.object_name)
    objs.drop_publication(src, setup.object_name)
    objs.drop_heartbeat(src, setup.name)
    objs.drop_heartbeat(tgt, setup.name)
    steps.done("drop subscription, slot, publication, heartbeat")
    if cfg.reverse:
        setup.reverse = True
        setup.target_for_source = cfg.target_for_source
        state.save(setup)  # before the objects: drop knows to look for them
        result.reverse_options = objs.create_reverse(src, tgt, setup)
        steps.done("replicate back to the source (--reverse)")
    if setup.writes_blocked:
        result.write_unavailable_seconds = round(time.monotonic() - started, 3)
    setup.stage = Stage.PROMOTED
    setup.promoted_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    state.save(setup)


def _catch_up(
    cfg: PromoteConfig,
    setup: Setup,
    result: PromoteResult,
    src: psycopg.Connection[Any],
    tgt: psycopg.Connection[Any],
) -> None:
    """Wait, by the marker's arrival (and so by LSN), never by elapsed time."""
    marker = objs.beat(src, setup.name)
    row = src.execute("SELECT pg_current_wal_lsn()::text").fetchone()
    result.cutover_lsn = str(row[0]) if row else None
    deadline = time.monotonic() + cfg.timeout
    while True:
        got = objs.applied_beat(tgt, setup.name)
        if got is not None and got[0] >= marker:
            return
        if time.monotonic() > deadline:
            enabled, running, errors = conflict.worker(tgt, setup.object_name)
            # a key the target holds is proof; else only a worker that is
            # down while enabled (it exits on each error) says apply is stuck
            found = None
            if enabled and (not running or errors):
                found = conflict.probe(src, tgt, setup.object_name)
            if found is not None and (found.key is not None or not running):
                raise _conflict_error(
                    found,
                    setup,
                    tgt,
                    "the target did not apply up to the cutover point: ",
                    "; writes on the source are unblocked again",
                )
            raise ReplicaTimeout(
                f"the target did not apply up to the cutover point ({result.cutover_lsn})"
                f" within --timeout {cfg.timeout:g}s; writes on the source are unblocked again",
                hint="check 'pgferry replica status' for apply errors, then retry promote",
            )
        time.sleep(0.02)


def _finish_data(setup: Setup, src: psycopg.Connection[Any], tgt: psycopg.Connection[Any]) -> None:
    sel = catalog.select_tables(src, setup.tables, setup.exclude)
    seqs = catalog.sequences(src, None if sel.everything else sel.tables, not sel.picked)
    # (schema, name) -> (increment, last value or None when never called)
    there = {
        (str(r[0]), str(r[1])): (int(r[2]), r[3])
        for r in tgt.execute(
            "SELECT schemaname, sequencename, increment_by, last_value FROM pg_sequences"
        )
    }
    # at least the source's value: one the target used already (a row added
    # there by hand) is never handed out again
    finish.set_sequences(
        setup.target,
        [s for s in seqs if (s[0], s[1]) in there and not _ahead(there[s[0], s[1]], s[2], s[3])],
    )
    if not sel.picked:
        _large_objects(src, setup.target)
    finish.refresh_matviews(setup.target, finish.populated_matviews(src, tgt))


def _ahead(target: tuple[int, int | None], last: int, called: bool) -> bool:
    """Whether the target's sequence has gone past the source's value."""
    inc, tlast = target
    if tlast is None:
        return False  # never called on the target
    if not called:
        return (tlast >= last) if inc > 0 else (tlast <= last)
    return (tlast > last) if inc > 0 else (tlast < last)


def _large_objects(src: psycopg.Connection[Any], target: str) -> None:
    """The source's large objects as they are now (written while the replica
    streamed, they were not replicated); the target's others go."""
    opts = RestoreOptions()
    with connect(target) as t:
        keep = [oid for batch in largeobjects.batches(src) for oid in batch]
        with t.transaction():
            t.execute(
                "SELECT lo_unlink(oid) FROM pg_largeobject_metadata WHERE oid <> ALL(%s::oid[])",
                [keep],
            )
        for batch in largeobjects.batches(src):
            with t.transaction(), t.pipeline():
                for lo, pieces in largeobjects.objects(src, batch):
                    largeobjects.put(t, lo, pieces, opts)


def _verify_counts(setup: Setup, jobs: int = 4) -> dict[str, int]:
    """Every replicated table's row count on both sides, `jobs` counts at a
    time: this runs while writes are blocked, so it is part of the window."""
    names = [n for n in setup.published if n != objs.HEARTBEAT_NAME]

    def count(url: str, name: str) -> int:
        schema, _, table = name.partition(".")
        with connect(url, autocommit=True) as c:
            q = sql.SQL("SELECT count(*) FROM ONLY {}").format(sql.Identifier(schema, table))
            row = c.execute(q).fetchone()
            return int(row[0]) if row else 0

    with ThreadPoolExecutor(max(1, jobs)) as ex:
        a = {n: ex.submit(count, setup.source, n) for n in names}
        b = {n: ex.submit(count, setup.target, n) for n in names}
        counts: dict[str, int] = {}
        for name in names:
            na, nb = a[name].result(), b[name].result()
            if na != nb:
                raise ReplicaError(
                    f"row counts differ after catch-up: {name} has {na} rows on the source,"
                    f" {nb} on the target; writes on the source are unblocked again",
                    hint="check 'pgferry replica status' for apply errors and drift, then retry",
                    table=name,
                )
            counts[name] = na
    return counts


def _verify_full(setup: Setup) -> None:
    """`pgferry verify --data-only` (every row by checksum, sequences, large
    objects, materialized views) while the source is still blocked."""
    from pgferry.migrate.verify import VerifyConfig, verify

    found = verify(
        VerifyConfig(
            setup.source,
            setup.target,
            tuple(setup.tables),
            (*setup.exclude, objs.HEARTBEAT_NAME),
            schema=False,  # the source's publication is not on the target, on purpose
        )
    )
    # sequences were just set to at least the source's values: one the
    # target has taken further is meant to differ
    diffs = [d for d in found.differences if d.kind != "sequence"]
    if diffs:
        first = diffs[0]
        raise ReplicaError(
            f"verify found {len(diffs)} difference(s) after catch-up, first"
            f" {first.kind} {first.name} ({first.status});"
            " writes on the source are unblocked again",
            hint="run 'pgferry verify' for the list, fix the target, then retry promote",
        )
