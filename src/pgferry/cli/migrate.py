"""CLI commands for `migrate`: clone, verify, snapshot create/restore/list.

Each command builds a config, calls one function of pgferry.migrate and
prints: progress bars on a terminal, a summary table, or one JSON object.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import asdict
from typing import Any

import click

from pgferry.cli import json_option, target_option
from pgferry.errors import UsageError
from pgferry.migrate import CloneConfig, clone
from pgferry.migrate.verify import VerifyConfig, VerifyResult, verify
from pgferry.target import resolve_target

_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_size(text: str) -> int | None:
    """'512MB', '2G', '100k', '0' or 'none' (never split)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*", text.lower())
    if text.strip().lower() in ("none", "off"):
        return None
    if not m:
        raise UsageError(
            f"cannot read the size {text!r}", hint="write it like 512MB, 2GB or none"
        )
    value = int(float(m.group(1)) * _UNITS[m.group(2)])
    return value or None


def _reporter(quiet: bool) -> Any:
    if quiet or not sys.stderr.isatty():
        return None
    from pgferry.migrate.display import RichReporter

    return RichReporter()


def _human(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def _clone_options(f: Any) -> Any:
    opts = [
        click.option("--source", required=True, metavar="URL", help="libpq URL of the source."),
        target_option,
        click.option("--jobs", "-j", default=4, show_default=True, help="Parallel connections."),
        click.option(
            "--split-tables-larger-than", "split", default="1GB", show_default=True,
            metavar="SIZE", help="Copy bigger tables as parallel ranges ('none': never).",
        ),
        click.option("--table", "tables", multiple=True, metavar="PATTERN",
                     help="Only these tables (glob on schema.table); repeatable."),
        click.option("--exclude", multiple=True, metavar="PATTERN",
                     help="Skip these tables (glob on schema.table); repeatable."),
        click.option("--no-owner", is_flag=True, help="Do not set object owners."),
        click.option("--no-acl", is_flag=True, help="Do not restore grants."),
        click.option("--quiet", "-q", is_flag=True, help="No progress bars."),
        json_option,
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


@click.command("clone")
@_clone_options
@click.option("--schema-only", is_flag=True, help="Copy the schema, no rows.")
@click.option("--data-only", is_flag=True, help="Copy rows into an existing schema.")
@click.option("--resume", is_flag=True, help="Finish an interrupted clone into this target.")
def clone_cmd(
    source: str, target: str | None, jobs: int, split: str, tables: tuple[str, ...],
    exclude: tuple[str, ...], no_owner: bool, no_acl: bool, quiet: bool, as_json: bool,
    schema_only: bool, data_only: bool, resume: bool,
) -> None:
    """Copy a whole database from --source into --target, in parallel."""
    cfg = CloneConfig(
        source=source, target=resolve_target(target).conninfo, jobs=jobs,
        split_bytes=parse_size(split), tables=tables, exclude=exclude,
        schema_only=schema_only, data_only=data_only, no_owner=no_owner, no_acl=no_acl,
        resume=resume,
    )
    reporter = _reporter(quiet or as_json)
    try:
        result = clone(cfg, reporter)
    finally:
        if reporter is not None:
            reporter.close()
    if as_json:
        click.echo(json.dumps(asdict(result)))
        return
    for note in result.notes:
        click.echo(f"note: {note}", err=True)
    click.echo(f"{'phase':<24}{'seconds':>10}")
    for name, secs in result.phases:
        click.echo(f"{name:<24}{secs:>10.2f}")
    if result.skipped:
        click.echo(f"{'(already done, skipped)':<24}{len(result.skipped):>10}")
    if result.tables:
        click.echo(f"\n{'table':<40}{'rows':>12}{'bytes':>12}{'seconds':>10}")
        for t in result.tables:
            click.echo(f"{t.table:<40}{t.rows:>12}{_human(t.nbytes):>12}{t.seconds:>10.2f}")
    click.echo(f"\ncloned in {result.seconds:.1f}s")


def print_verify(result: VerifyResult, as_json: bool) -> None:
    if as_json:
        rows = [dict(asdict(c), status=c.status) for c in result.checks]
        click.echo(json.dumps({"ok": result.ok, "checks": rows}))
        return
    diffs = result.differences
    if not diffs:
        click.echo(f"ok: {len(result.checks)} objects identical")
        return
    click.echo(f"{'object':<44}{'source rows':>12}{'target rows':>12}  status")
    for c in diffs:
        name = f"{c.kind} {c.name}"
        src = "-" if c.source_rows is None else str(c.source_rows)
        tgt = "-" if c.target_rows is None else str(c.target_rows)
        click.echo(f"{name:<44}{src:>12}{tgt:>12}  {c.status}")
    click.echo(f"{len(diffs)} of {len(result.checks)} objects differ")


@click.command("verify")
@click.option("--source", required=True, metavar="URL", help="libpq URL of the source.")
@target_option
@click.option("--table", "tables", multiple=True, metavar="PATTERN", help="Only these tables.")
@click.option("--exclude", multiple=True, metavar="PATTERN", help="Skip these tables.")
@click.option("--jobs", "-j", default=4, show_default=True, help="Parallel connections.")
@json_option
def verify_cmd(
    source: str, target: str | None, tables: tuple[str, ...], exclude: tuple[str, ...],
    jobs: int, as_json: bool,
) -> None:
    """Compare row counts and content checksums; exit 1 when anything differs."""
    cfg = VerifyConfig(source, resolve_target(target).conninfo, tables, exclude, jobs)
    result = verify(cfg)
    print_verify(result, as_json)
    if not result.ok:
        click.get_current_context().exit(1)


def register(cli: click.Group) -> None:
    """Add this module's commands to the top-level group."""
    cli.add_command(clone_cmd)
    cli.add_command(verify_cmd)
