"""CLI commands `replica create/status/promote/drop`: online migration over
PostgreSQL's logical replication (pgferry.migrate.replica*)."""

from __future__ import annotations

import json
import re
import time
from typing import Any

import click

from pgferry import units
from pgferry.cli import checked_url, json_option
from pgferry.errors import UsageError

NAME_HELP = "Name of the set-up; its slot, publication and subscription are pgferry_NAME."


def _duration(text: str, option: str) -> float:
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|min|h)?\s*", text)
    if not m:
        raise UsageError(f"cannot read {option} {text!r}", hint="write it like 60s, 2m or 500ms")
    factor = {"ms": 0.001, "s": 1, None: 1, "m": 60, "min": 60, "h": 3600}[m.group(2)]
    return float(m.group(1)) * factor


def _size(text: str, option: str) -> int:
    # '0' is a real limit here (promote only when fully caught up)
    return units.parse_size(text, what=option, hint="write it like 64MB or 0", allow_none=True) or 0


def _human(n: float | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


@click.group("replica")
def replica_group() -> None:
    """Online migration: keep --target a logical replica of --source, then promote it."""


@replica_group.command("create")
@click.option("--source", required=True, metavar="URL", callback=checked_url, help="Source URL.")
@click.option("--target", required=True, metavar="URL", callback=checked_url, help="Target URL.")
@click.option("--name", default="main", show_default=True, help=NAME_HELP)
@click.option(
    "--source-for-target",
    metavar="URL",
    callback=checked_url,
    help="The source as the target server reaches it (default: --source).",
)
@click.option("--table", "tables", multiple=True, metavar="PATTERN", help="Only these tables.")
@click.option("--exclude", multiple=True, metavar="PATTERN", help="Skip these tables.")
@click.option("--jobs", "-j", default=4, show_default=True, help="Parallel connections.")
@click.option(
    "--split-tables-larger-than",
    "split",
    default="1GB",
    show_default=True,
    metavar="SIZE",
    help="Copy bigger tables as parallel ranges ('none': never).",
)
@click.option(
    "--replica-identity-full",
    is_flag=True,
    help="Set REPLICA IDENTITY FULL on tables without a primary key.",
)
@click.option("--check", is_flag=True, help="Only run the preflight and print its report.")
@click.option("--resume", is_flag=True, help="Finish (or restart) an interrupted create.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
@json_option
def create_cmd(
    source: str,
    target: str,
    name: str,
    source_for_target: str | None,
    tables: tuple[str, ...],
    exclude: tuple[str, ...],
    jobs: int,
    split: str,
    replica_identity_full: bool,
    check: bool,
    resume: bool,
    quiet: bool,
    as_json: bool,
) -> None:
    """Copy --source into --target inside a replication slot's snapshot, then
    subscribe the target to the slot."""
    from pgferry.cli.migrate import _reporting
    from pgferry.migrate.replica import CreateConfig, create
    from pgferry.migrate.replica_preflight import BLOCKER

    cfg = CreateConfig(
        source=source,
        target=target,
        name=name,
        source_for_target=source_for_target,
        tables=tables,
        exclude=exclude,
        jobs=jobs,
        split_bytes=units.parse_size(split, allow_none=True),
        replica_identity_full=replica_identity_full,
        check=check,
        resume=resume,
    )
    with _reporting(quiet or as_json, "replica create") as reporter:
        result = create(cfg, reporter)
    blocked = any(f.level == BLOCKER for f in result.findings)
    if as_json:
        out: dict[str, Any] = {
            "name": result.name,
            "findings": [f.__dict__ for f in result.findings],
            "published": result.published,
            "consistent_lsn": result.consistent_lsn,
            "subscription_options": result.subscription_options,
            "notes": result.notes,
            "steps": result.steps,
        }
        click.echo(json.dumps(out))
    else:
        for f in result.findings:
            click.echo(f"{f.level}: {f.message}")
        for note in result.notes:
            click.echo(f"note: {note}", err=True)
        if result.steps and not result.checked_only:
            click.echo(f"{'step':<40}{'seconds':>10}")
            for step, secs in result.steps:
                click.echo(f"{step:<40}{secs:>10.2f}")
        if not result.checked_only and result.published:
            click.echo(
                f"replica {result.name!r} is streaming: {len(result.published)} table(s)"
                f" published, slot pgferry_{result.name} from {result.consistent_lsn}"
            )
            click.echo(f"next: pgferry replica status --name {result.name}")
    if check and blocked:
        click.get_current_context().exit(1)


def _print_status(st: Any) -> None:
    click.echo(f"replica {st.name} ({st.stage}, {st.direction})")
    lag_s = "-" if st.lag_seconds is None else f"{st.lag_seconds:.2f} s"
    if st.lag_seconds is None and st.applied_beat_age is not None:
        lag_s = f">= {st.applied_beat_age:.1f} s (heartbeat not applied yet)"
    rows = [
        ("lag (bytes)", _human(st.lag_bytes)),
        ("lag (seconds)", lag_s),
        (
            "slot",
            f"{st.slot} {'active' if st.slot_active else 'inactive'}"
            if st.slot_exists
            else "missing",
        ),
        ("wal_status", st.wal_status or "-"),
        ("retained WAL", _human(st.retained_wal_bytes)),
        (
            "safe_wal_size",
            _human(st.safe_wal_size) if st.safe_wal_size is not None else "unlimited",
        ),
        ("source WAL size", _human(st.wal_dir_bytes)),
        (
            "free storage",
            _human(st.free_storage_bytes)
            if st.free_storage_bytes is not None
            else "not readable from here",
        ),
        ("writes blocked", "yes" if st.writes_blocked else "no"),
    ]
    sub = st.subscription
    if sub:
        rows.append(("subscription", "enabled" if sub.get("enabled") else "disabled"))
        rows.append(("apply worker", str(sub.get("worker_pid") or "not running")))
        if "apply_error_count" in sub:
            rows.append(("apply errors", str(sub["apply_error_count"])))
        if st.conflict:
            c = st.conflict
            key = f" key {c['key']}" if c["key"] else ""
            rows.append(("apply stuck on", f"{c['table']}{key} (at {c['finish_lsn']})"))
        if "conflicts" in sub:
            told = [f"{k} {v}" for k, v in sub["conflicts"].items() if v]
            rows.append(("conflicts", ", ".join(told) or "0"))
    for k, v in rows:
        click.echo(f"  {k:<18}{v}")
    for t in st.tables_not_ready:
        click.echo(f"  table not ready: {t}")
    for d in st.drift:
        click.echo(f"  drift: {d}")
    for w in st.warnings:
        click.echo(f"warning: {w}", err=True)


@replica_group.command("status")
@click.option("--name", default="main", show_default=True, help=NAME_HELP)
@click.option("--source", metavar="URL", callback=checked_url, help="Override the recorded source.")
@click.option("--target", metavar="URL", callback=checked_url, help="Override the recorded target.")
@click.option(
    "--watch",
    "watch",
    default=None,
    type=float,
    is_flag=False,
    flag_value=5.0,
    metavar="SECONDS",
    help="Repeat every SECONDS (default 5) until Ctrl-C.",
)
@click.option("--max-retained-wal", metavar="SIZE", help="Warn when the slot retains more WAL.")
@json_option
def status_cmd(
    name: str,
    source: str | None,
    target: str | None,
    watch: float | None,
    max_retained_wal: str | None,
    as_json: bool,
) -> None:
    """Lag in bytes and seconds, WAL the slot retains, apply errors, drift.
    Exit 1 when there is a warning (lost slot, apply errors, drift)."""
    from pgferry.migrate import replica_state as state
    from pgferry.migrate.replica_status import status

    setup = state.load(name)
    setup.source = source or setup.source
    setup.target = target or setup.target
    limit = _size(max_retained_wal, "--max-retained-wal") if max_retained_wal else None
    while True:
        st = status(setup, max_retained_wal=limit)
        if as_json:
            click.echo(json.dumps(st.to_dict(), default=str))
        else:
            _print_status(st)
        if watch is None:
            break
        time.sleep(watch)
    if st.warnings or st.drift:
        click.get_current_context().exit(1)


@replica_group.command("promote")
@click.option("--name", default="main", show_default=True, help=NAME_HELP)
@click.option("--source", metavar="URL", callback=checked_url, help="Override the recorded source.")
@click.option("--target", metavar="URL", callback=checked_url, help="Override the recorded target.")
@click.option(
    "--max-lag",
    default="64MB",
    show_default=True,
    metavar="SIZE",
    help="Refuse while the target is further behind.",
)
@click.option(
    "--timeout",
    default="60s",
    show_default=True,
    metavar="DURATION",
    help="How long to wait for the target to apply the last writes.",
)
@click.option("--no-block-writes", is_flag=True, help="Do not block writes on the source.")
@click.option(
    "--verify",
    type=click.Choice(["quick", "full", "none"]),
    default="quick",
    show_default=True,
    help="Before the cutover: quick compares row counts, full runs pgferry verify --data-only.",
)
@click.option(
    "--reverse",
    is_flag=True,
    help="Then replicate from the new primary back to the old one, for a fallback.",
)
@click.option(
    "--target-for-source",
    metavar="URL",
    callback=checked_url,
    help="The target as the source server reaches it (default: --target or the recorded one).",
)
@json_option
def promote_cmd(
    name: str,
    source: str | None,
    target: str | None,
    max_lag: str,
    timeout: str,
    no_block_writes: bool,
    verify: str,
    reverse: bool,
    target_for_source: str | None,
    as_json: bool,
) -> None:
    """Block writes on the source, let the target catch up, carry sequences
    and large objects, stop replication: the target is the new primary."""
    from pgferry.migrate.replica_promote import PromoteConfig, promote

    cfg = PromoteConfig(
        name=name,
        source=source,
        target=target,
        max_lag=_size(max_lag, "--max-lag"),
        timeout=_duration(timeout, "--timeout"),
        block_writes=not no_block_writes,
        verify=verify,
        reverse=reverse,
        target_for_source=target_for_source or target,
    )
    result = promote(cfg)
    if as_json:
        click.echo(json.dumps(result.__dict__, default=str))
        return
    for note in result.notes:
        click.echo(f"note: {note}", err=True)
    if not result.steps:
        return
    click.echo(f"{'step':<50}{'seconds':>10}")
    for step, secs in result.steps:
        click.echo(f"{step:<50}{secs:>10.3f}")
    click.echo(f"lag before: {_human(result.lag_bytes_before)}; cutover at {result.cutover_lsn}")
    if result.sessions_ended:
        click.echo(f"ended {result.sessions_ended} session(s) on the source")
    if result.counts:
        click.echo(f"row counts equal in {len(result.counts)} table(s)")
    if result.write_unavailable_seconds is not None:
        click.echo(f"writes unavailable for {result.write_unavailable_seconds:.2f}s")
        click.echo(
            "the source stays read-only; point the application at the target"
            f" ('pgferry replica drop --name {name}' makes the source writable again)"
        )
    if result.reverse_options:
        click.echo(
            f"the source now follows the target (subscription pgferry_{name}_back);"
            f" 'pgferry replica status --name {name}' shows its lag"
        )


@replica_group.command("drop")
@click.option("--name", default="main", show_default=True, help=NAME_HELP)
@click.option("--source", metavar="URL", callback=checked_url, help="Override the recorded source.")
@click.option("--target", metavar="URL", callback=checked_url, help="Override the recorded target.")
def drop_cmd(name: str, source: str | None, target: str | None) -> None:
    """Remove the set-up's slot, publication, subscription and heartbeat on
    both sides and unblock the source's writes; the copied data stays."""
    from pgferry.migrate.replica import drop

    result = drop(name, source, target)
    for line in result.done:
        click.echo(line)
    click.echo(f"replica {name!r} dropped")


def register(cli: click.Group) -> None:
    cli.add_command(replica_group)
