"""`replica create` and `replica drop`: make the target a logical replica of
the source, and take such a set-up apart.

Create: preflight; on the source a heartbeat table, a publication of the
selected tables, then the slot, created on a replication connection that
exports its snapshot; the clone (migrate/clone.py) copies schema and rows
inside that snapshot; last, a subscription on the target that starts from
the slot without copying (create_slot = false, copy_data = false).  Rows
committed after the snapshot come through the slot, so each arrives
exactly once.  Each step is recorded first (replica_state), so `--resume`
and `drop` know what may exist.
"""

from __future__ import annotations

import datetime
import time
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from pgferry.errors import (
    PgferryError,
    ReplicaError,
    ReplicaExists,
    ReplicaNotFound,
    ReplicaPreflightFailed,
)
from pgferry.migrate import catalog
from pgferry.migrate import replica_objects as objs
from pgferry.migrate import replica_preflight as preflight
from pgferry.migrate import replica_state as state
from pgferry.migrate.clone import CloneConfig, CloneResult, clone
from pgferry.migrate.finish import connect_source
from pgferry.migrate.progress import SCHEMA as LEDGER_SCHEMA
from pgferry.migrate.progress import TABLE as LEDGER_TABLE
from pgferry.migrate.progress import Reporter
from pgferry.migrate.replica_state import Setup, Stage
from pgferry.target import connect


@dataclass(frozen=True)
class CreateConfig:
    source: str
    target: str
    name: str = "main"
    #: the source as the target server reaches it; default: `source`
    source_for_target: str | None = None
    tables: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    jobs: int = 4
    split_bytes: int | None = 1 << 30
    replica_identity_full: bool = False
    check: bool = False
    resume: bool = False


@dataclass
class CreateResult:
    name: str
    findings: list[preflight.Finding] = field(default_factory=list)
    clone: CloneResult | None = None
    published: list[str] = field(default_factory=list)
    consistent_lsn: str | None = None
    subscription_options: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    checked_only: bool = False
    #: (step, seconds): preflight, slot, copy (the clone), subscribe
    steps: list[tuple[str, float]] = field(default_factory=list)

    def step(self, name: str, since: float) -> float:
        now = time.monotonic()
        self.steps.append((name, round(now - since, 3)))
        return now


def _selection(src: psycopg.Connection[Any], setup: Setup) -> catalog.Selection:
    sel = catalog.select_tables(src, setup.tables, setup.exclude)
    src.rollback()
    return sel


def create(cfg: CreateConfig, reporter: Reporter | None = None) -> CreateResult:
    name = state.check_name(cfg.name)
    result = CreateResult(name)
    if state.exists(name):
        if not cfg.resume and not cfg.check:
            raise ReplicaExists(
                f"a replica set-up named {name!r} already exists",
                hint="use 'replica status/promote/drop', 'create --resume' to finish it,"
                " or another --name",
            )
        setup = state.load(name)
        setup.source, setup.target = cfg.source, cfg.target
        setup.source_for_target = cfg.source_for_target or cfg.source
    elif cfg.resume:
        raise ReplicaNotFound(
            f"--resume: no replica set-up named {name!r} is recorded",
            hint="run 'pgferry replica create' without --resume",
        )
    else:
        setup = Setup(
            name,
            cfg.source,
            cfg.target,
            cfg.source_for_target or cfg.source,
            tables=list(cfg.tables),
            exclude=list(cfg.exclude),
            created_at=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        )
    if setup.stage in (Stage.STREAMING, Stage.PROMOTING, Stage.PROMOTED) and not cfg.check:
        result.notes.append(f"nothing to resume: {name!r} is {setup.stage}")
        return result
    t0 = time.monotonic()
    src = connect_source(setup.source, autocommit=True)
    tgt = connect(setup.target, autocommit=True)
    try:
        sel = _selection(src, setup)
        user = [t for t in sel.leaves if t.qualified != objs.HEARTBEAT_NAME]
        result.findings = preflight.run(
            src, tgt, user, identity_full=cfg.replica_identity_full, resuming=cfg.resume
        )
        if cfg.check:
            result.checked_only = True
            return result
        result.step("preflight", t0)
        if bad := preflight.blockers(result.findings):
            raise ReplicaPreflightFailed(
                f"preflight: {bad[0].message}"
                + (f" (and {len(bad) - 1} more blocker(s))" if len(bad) > 1 else ""),
                hint="run 'pgferry replica create --check' for the whole report",
            )
        _build(cfg, setup, result, src, tgt, user, reporter)
    finally:
        src.close()
        tgt.close()
    return result


def _build(
    cfg: CreateConfig,
    setup: Setup,
    result: CreateResult,
    src: psycopg.Connection[Any],
    tgt: psycopg.Connection[Any],
    user: list[catalog.Table],
    reporter: Reporter | None,
) -> None:
    slot = setup.object_name
    smajor, tmajor = catalog.server_major(src), catalog.server_major(tgt)
    ledger = tgt.execute("SELECT to_regclass(%s)", [f"{LEDGER_SCHEMA}.{LEDGER_TABLE}"]).fetchone()
    has_ledger = bool(ledger and ledger[0])
    copied = setup.stage == Stage.SUBSCRIBE or (
        setup.stage == Stage.COPY and not has_ledger and _tables_there(tgt, setup.published)
    )
    data_done = has_ledger and _ledger_has(tgt, "phase:data")
    if not copied:
        t0 = time.monotonic()
        keep_slot = setup.stage == Stage.COPY and data_done and objs.slot_exists(src, slot)
        repl: psycopg.Connection[Any] | None = None
        snapshot: str | None = None
        if not keep_slot:
            # the snapshot of an interrupted copy died with its connection:
            # start over from a new slot, reloading whatever was copied
            if objs.slot_exists(src, slot):
                objs.drop_slot(src, slot)
                result.notes.append(f"dropped the slot {slot} of the interrupted run")
            setup.stage = Stage.SLOT
            state.save(setup)
            if cfg.replica_identity_full:
                for t in preflight.without_identity(src, user):
                    src.execute(sql.SQL("ALTER TABLE {} REPLICA IDENTITY FULL").format(t.ident))
                    result.notes.append(f"set REPLICA IDENTITY FULL on {t.qualified}")
            objs.create_heartbeat(src, setup.name)
            loose = {t.oid for t in preflight.unlogged(src, user)}
            sel = _selection(src, setup)
            published = [t for t in sel.leaves if t.oid not in loose]
            if setup.tables and not any(t.qualified == objs.HEARTBEAT_NAME for t in published):
                hb = catalog.select_tables(src, [objs.HEARTBEAT_NAME], [])
                src.rollback()
                published += hb.leaves
            objs.create_publication(src, slot, published)
            setup.published = [t.qualified for t in published]
            if has_ledger:
                _reset_data(tgt)
            repl, setup.consistent_lsn, snapshot = objs.create_slot(setup.source, slot, smajor)
            setup.stage = Stage.COPY
            state.save(setup)
        t0 = result.step("heartbeat, publication, slot", t0)
        try:
            tables = tuple(setup.tables) + ((objs.HEARTBEAT_NAME,) if setup.tables else ())
            result.clone = clone(
                CloneConfig(
                    source=setup.source,
                    target=setup.target,
                    jobs=cfg.jobs,
                    split_bytes=cfg.split_bytes,
                    tables=tables,
                    exclude=tuple(setup.exclude),
                    resume=has_ledger or keep_slot,
                    snapshot=snapshot,
                ),
                reporter,
            )
        except BaseException:
            if repl is not None:
                repl.close()
                repl = None
            _after_failed_copy(setup, src, tgt)
            raise
        finally:
            if repl is not None:
                repl.close()  # the snapshot is no longer needed
        setup.stage = Stage.SUBSCRIBE
        state.save(setup)
        result.step("copy (clone in the slot's snapshot)", t0)
    t0 = time.monotonic()
    # the clone restored the source's publication too; the target publishes nothing
    objs.drop_publication(tgt, slot)
    objs.create_heartbeat(tgt, setup.name, row=False)
    if not objs.subscription_exists(tgt, slot):
        result.subscription_options = objs.create_subscription(tgt, setup, smajor, tmajor)
    setup.stage = Stage.STREAMING
    state.save(setup)
    result.step("subscription", t0)
    result.published = setup.published
    result.consistent_lsn = setup.consistent_lsn


def _after_failed_copy(
    setup: Setup, src: psycopg.Connection[Any], tgt: psycopg.Connection[Any]
) -> None:
    """A copy that failed before its rows were all in cannot go on from this
    slot (its snapshot dies with us), so the slot goes now rather than hold
    WAL on the source until someone notices; --resume starts a new one."""
    try:
        ledger = tgt.execute(
            "SELECT to_regclass(%s)", [f"{LEDGER_SCHEMA}.{LEDGER_TABLE}"]
        ).fetchone()
        if ledger and ledger[0] and _ledger_has(tgt, "phase:data"):
            return  # the rows are in: --resume goes on from this slot
        objs.drop_slot(src, setup.object_name)
        setup.stage = Stage.SLOT
        state.save(setup)
    except (psycopg.Error, PgferryError):
        pass  # the record still names the slot: --resume or drop removes it


def _tables_there(tgt: psycopg.Connection[Any], names: list[str]) -> bool:
    if not names:
        return False
    for n in names:
        schema, _, table = n.partition(".")
        ident = sql.Identifier(schema, table).as_string(tgt)
        row = tgt.execute("SELECT to_regclass(%s)", [ident]).fetchone()
        if not (row and row[0]):
            return False
    return True


def _ledger_has(tgt: psycopg.Connection[Any], item: str) -> bool:
    row = tgt.execute(
        sql.SQL("SELECT 1 FROM {} WHERE item = %s").format(
            sql.Identifier(LEDGER_SCHEMA, LEDGER_TABLE)
        ),
        [item],
    ).fetchone()
    return row is not None


def _reset_data(tgt: psycopg.Connection[Any]) -> None:
    """Forget the rows an interrupted copy loaded: they came from a snapshot
    the new slot does not continue; the schema (pre-data) stays."""
    tgt.execute(
        sql.SQL(
            "DELETE FROM {} WHERE item LIKE 'table:%%' OR item LIKE 'lo:%%'"
            " OR (item LIKE 'phase:%%' AND item <> 'phase:pre-data')"
        ).format(sql.Identifier(LEDGER_SCHEMA, LEDGER_TABLE))
    )


# --- drop ---------------------------------------------------------------------


@dataclass
class DropResult:
    name: str
    done: list[str] = field(default_factory=list)


def drop(name: str, source: str | None = None, target: str | None = None) -> DropResult:
    """Remove every object of the set-up on both sides and unblock the
    source's writes; the copied data on the target stays.  Each side is
    tried even when the other fails; the record goes only when both are clean."""
    setup = state.load(name)
    setup.source = source or setup.source
    setup.target = target or setup.target
    result = DropResult(name)
    errors: list[PgferryError] = []
    slot = setup.object_name
    try:
        # the way back first: its subscription holds the target's slot
        if setup.reverse:
            with connect_source(setup.source, autocommit=True) as src:
                objs.writable(src)
                if objs.subscription_exists(src, setup.reverse_name):
                    objs.drop_subscription(src, setup.reverse_name)
                    result.done.append(f"dropped subscription {setup.reverse_name} on the source")
    except PgferryError as e:
        errors.append(e)
    except psycopg.Error as e:
        errors.append(PgferryError(f"source: {e}", sqlstate=e.sqlstate))
    try:
        with connect(setup.target, autocommit=True) as tgt:
            if objs.subscription_exists(tgt, slot):
                objs.drop_subscription(tgt, slot)
                result.done.append(f"dropped subscription {slot} on the target")
            objs.drop_heartbeat(tgt, setup.name)
            objs.drop_publication(tgt, slot)
            if setup.reverse and objs.slot_exists(tgt, setup.reverse_name):
                objs.drop_slot(tgt, setup.reverse_name)
                result.done.append(f"dropped slot {setup.reverse_name} on the target")
            objs.drop_publication(tgt, setup.reverse_name)
    except PgferryError as e:
        errors.append(e)
    except psycopg.Error as e:
        errors.append(PgferryError(f"target: {e}", sqlstate=e.sqlstate))
    try:
        with connect_source(setup.source, autocommit=True) as src:
            objs.writable(src)
            if setup.writes_blocked:
                objs.unblock_writes(src, setup.previous_read_only)
                setup.writes_blocked = False
                state.save(setup)
                result.done.append("unblocked writes on the source")
            if objs.slot_exists(src, slot):
                objs.drop_slot(src, slot)
                result.done.append(f"dropped slot {slot} on the source")
            objs.drop_publication(src, slot)
            objs.drop_heartbeat(src, setup.name)
    except PgferryError as e:
        errors.append(e)
    except psycopg.Error as e:
        errors.append(PgferryError(f"source: {e}", sqlstate=e.sqlstate))
    if errors:
        raise ReplicaError(
            f"replica drop {name!r} is incomplete: {errors[0].what}",
            hint="fix that, then rerun 'pgferry replica drop' (the record is kept)",
            sqlstate=errors[0].sqlstate,
        )
    state.forget(name)
    return result
