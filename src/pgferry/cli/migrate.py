"""CLI commands for `migrate`: clone, verify, snapshot create/restore/list/delete.

Each command builds a config, calls one function of pgferry.migrate and
prints: progress bars on a terminal, a summary table, or one JSON object.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from typing import TYPE_CHECKING, Any, NoReturn

import click

from pgferry import units
from pgferry.cli import checked_url, json_option, target_option
from pgferry.cli.foreign import foreign_only, foreign_options, run_clone, run_verify
from pgferry.cli.output import print_notes, print_phases
from pgferry.errors import PostDataIncomplete
from pgferry.sources.url import is_foreign

# the migrate code (psycopg, boto3) loads inside each command's body, so
# `pgferry clone --help` stays fast
if TYPE_CHECKING:
    from pgferry.migrate.verify import VerifyResult
    from pgferry.stores.s3 import S3Config


def parse_size(text: str) -> int | None:
    """'512MB', '2G', '100k', '0' or 'none' (never split)."""
    return units.parse_size(text, allow_none=True)


@contextmanager
def _reporting(quiet: bool, resumable: str | None = None) -> Iterator[Any]:
    """Progress bars on a terminal (None otherwise), closed however the work
    ends; Ctrl-C on a `resumable` command says how to finish it."""
    reporter = None
    if not quiet and sys.stderr.isatty():
        from pgferry.migrate.display import RichReporter

        reporter = RichReporter()
    try:
        yield reporter
    except KeyboardInterrupt:
        if resumable is None:
            raise
        if reporter is not None:
            reporter.close()
            reporter = None
        _interrupted(resumable)
    finally:
        if reporter is not None:
            reporter.close()


def _interrupted(command: str) -> NoReturn:
    # unlike an import, finished tables stay committed: say how to go on
    click.echo(
        f"error: interrupted; tables already copied are kept, rerun the same {command}"
        " with --resume to finish",
        err=True,
    )
    click.get_current_context().exit(130)


def _human(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def _source_options(f: Any) -> Any:
    opts = [
        click.option(
            "--source",
            required=True,
            metavar="URL",
            callback=checked_url,
            help="libpq URL of the source.",
        ),
        click.option("--jobs", "-j", default=4, show_default=True, help="Parallel connections."),
        click.option(
            "--split-tables-larger-than",
            "split",
            default="1GB",
            show_default=True,
            metavar="SIZE",
            help="Copy bigger tables as parallel ranges ('none': never).",
        ),
        click.option(
            "--table",
            "tables",
            multiple=True,
            metavar="PATTERN",
            help="Only these tables (glob on schema.table); repeatable.",
        ),
        click.option(
            "--exclude",
            multiple=True,
            metavar="PATTERN",
            help="Skip these tables (glob on schema.table); repeatable.",
        ),
        click.option("--quiet", "-q", is_flag=True, help="No progress bars."),
        json_option,
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


@click.command("clone")
@_source_options
@target_option
@click.option("--no-owner", is_flag=True, help="Do not set object owners.")
@click.option("--no-acl", is_flag=True, help="Do not restore grants.")
@click.option("--schema-only", is_flag=True, help="Copy the schema, no rows.")
@click.option("--data-only", is_flag=True, help="Copy rows into an existing schema.")
@click.option("--resume", is_flag=True, help="Finish an interrupted clone into this target.")
@click.option(
    "--database-settings",
    is_flag=True,
    help="Also carry the database's comment, grants and ALTER DATABASE/ROLE ... SET.",
)
@foreign_options
def clone_cmd(
    source: str,
    jobs: int,
    split: str,
    tables: tuple[str, ...],
    exclude: tuple[str, ...],
    quiet: bool,
    as_json: bool,
    target: str | None,
    no_owner: bool,
    no_acl: bool,
    schema_only: bool,
    data_only: bool,
    resume: bool,
    database_settings: bool,
    **foreign: Any,
) -> None:
    """Copy a whole database from --source into --target, in parallel.
    --source may also be mysql://, mariadb:// or sqlite:///PATH."""
    from pgferry.target import resolve_target

    if is_foreign(source):
        from pgferry.sources.clone import ForeignCloneConfig

        cfg_f = ForeignCloneConfig(
            source, resolve_target(target).conninfo, foreign["schema"], jobs, tables, exclude,
            schema_only, data_only, resume, foreign["keep_case"], foreign["casts"], foreign["nul"],
            parse_size(split),
        )  # fmt: skip
        with _reporting(quiet or as_json, "clone") as reporter:
            run_clone(cfg_f, foreign["max_rejects"], as_json, reporter)
        return
    foreign_only(foreign)
    from pgferry.migrate import CloneConfig, clone

    cfg = CloneConfig(
        source=source,
        target=resolve_target(target).conninfo,
        jobs=jobs,
        split_bytes=parse_size(split),
        tables=tables,
        exclude=exclude,
        schema_only=schema_only,
        data_only=data_only,
        no_owner=no_owner,
        no_acl=no_acl,
        resume=resume,
        database_settings=database_settings,
    )
    with _reporting(quiet or as_json, "clone") as reporter:
        try:
            result = clone(cfg, reporter)
        except PostDataIncomplete as e:
            # the one-line error follows; first what exactly is missing
            for line in e.missing:
                click.echo(f"missing: {line}", err=True)
            raise
    if as_json:
        click.echo(json.dumps(asdict(result)))
        return
    print_phases(result.notes, result.phases, result.skipped)
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
@click.option(
    "--source",
    required=True,
    metavar="URL",
    callback=checked_url,
    help="libpq URL of the source.",
)
@target_option
@click.option("--table", "tables", multiple=True, metavar="PATTERN", help="Only these tables.")
@click.option("--exclude", multiple=True, metavar="PATTERN", help="Skip these tables.")
@click.option("--jobs", "-j", default=4, show_default=True, help="Parallel connections.")
@click.option("--data-only", is_flag=True, help="Compare rows only, not the schema.")
@click.option("--schema-only", is_flag=True, help="Compare the schema only, not rows.")
@click.option("--no-owner", is_flag=True, help="Do not compare owners.")
@click.option("--no-acl", is_flag=True, help="Do not compare grants and default privileges.")
@json_option
@foreign_options
def verify_cmd(
    source: str,
    target: str | None,
    tables: tuple[str, ...],
    exclude: tuple[str, ...],
    jobs: int,
    data_only: bool,
    schema_only: bool,
    no_owner: bool,
    no_acl: bool,
    as_json: bool,
    **foreign: Any,
) -> None:
    """Compare rows and schema objects; exit 1 when anything differs, 2 when
    the comparison could not finish.  With a mysql://, mariadb:// or
    sqlite:/// --source: row counts and per-column checksums."""
    from pgferry.target import resolve_target

    if is_foreign(source):
        ok = run_verify(source, resolve_target(target).conninfo, tables, exclude, as_json, foreign)
        if not ok:
            click.get_current_context().exit(1)
        return
    foreign_only(foreign)
    from pgferry.migrate.verify import VerifyConfig, verify

    cfg = VerifyConfig(
        source,
        resolve_target(target).conninfo,
        tables,
        exclude,
        jobs,
        data=not schema_only,
        schema=not data_only,
        owners=not no_owner,
        acl=not no_acl,
    )
    result = verify(cfg)
    print_verify(result, as_json)
    if not result.ok:
        click.get_current_context().exit(1)


def _s3_options(f: Any) -> Any:
    for opt in reversed(
        [
            click.option("--region", help="AWS region (default: the SDK's)."),
            click.option("--endpoint-url", help="S3-compatible endpoint (or AWS_ENDPOINT_URL)."),
            click.option("--profile", help="AWS profile to use."),
        ]
    ):
        f = opt(f)
    return f


def _s3(region: str | None, endpoint_url: str | None, profile: str | None) -> S3Config:
    from pgferry.stores.s3 import S3Config

    return S3Config(region=region, endpoint_url=endpoint_url, profile=profile)


@click.group("snapshot")
def snapshot_group() -> None:
    """Consistent database snapshots on S3: create, restore, list, delete."""


@snapshot_group.command("create")
@click.argument("uri", metavar="s3://BUCKET/PREFIX/NAME")
@_source_options
@click.option("--sse", type=click.Choice(["AES256", "aws:kms"]), help="Encryption at rest.")
@click.option("--sse-kms-key-id", metavar="ID", help="KMS key for --sse aws:kms.")
@click.option("--resume", is_flag=True, help="Finish an interrupted create of this snapshot.")
@_s3_options
def snapshot_create_cmd(
    uri: str,
    source: str,
    jobs: int,
    split: str,
    tables: tuple[str, ...],
    exclude: tuple[str, ...],
    quiet: bool,
    as_json: bool,
    sse: str | None,
    sse_kms_key_id: str | None,
    resume: bool,
    region: str | None,
    endpoint_url: str | None,
    profile: str | None,
) -> None:
    """Take a consistent snapshot of --source to S3."""
    from pgferry.migrate.snapshot import SnapshotConfig, create_snapshot
    from pgferry.stores.multipart import Encryption

    cfg = SnapshotConfig(
        source=source,
        uri=uri,
        jobs=jobs,
        split_bytes=parse_size(split),
        tables=tables,
        exclude=exclude,
        encryption=Encryption(sse, sse_kms_key_id),
        s3=_s3(region, endpoint_url, profile),
        resume=resume,
    )
    with _reporting(quiet or as_json, "snapshot create") as reporter:
        result = create_snapshot(cfg, reporter)
    if as_json:
        click.echo(json.dumps(asdict(result)))
        return
    click.echo(
        f"snapshot {result.uri}: {result.streams} streams, {result.rows} rows, "
        f"{_human(result.raw_bytes)} as COPY text, {_human(result.stored_bytes)} stored, "
        f"in {result.seconds:.1f}s"
    )


@snapshot_group.command("restore")
@click.argument("uri", metavar="s3://BUCKET/PREFIX/NAME")
@target_option
@click.option("--jobs", "-j", default=4, show_default=True, help="Parallel connections.")
@click.option("--no-owner", is_flag=True, help="Do not set object owners.")
@click.option("--no-acl", is_flag=True, help="Do not restore grants.")
@click.option("--resume", is_flag=True, help="Finish an interrupted restore into this target.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
@json_option
@_s3_options
def snapshot_restore_cmd(
    uri: str,
    target: str | None,
    jobs: int,
    no_owner: bool,
    no_acl: bool,
    resume: bool,
    quiet: bool,
    as_json: bool,
    region: str | None,
    endpoint_url: str | None,
    profile: str | None,
) -> None:
    """Restore a snapshot into --target."""
    from pgferry.migrate.restore import RestoreConfig, restore_snapshot
    from pgferry.target import resolve_target

    cfg = RestoreConfig(
        uri=uri,
        target=resolve_target(target).conninfo,
        jobs=jobs,
        no_owner=no_owner,
        no_acl=no_acl,
        resume=resume,
        s3=_s3(region, endpoint_url, profile),
    )
    with _reporting(quiet or as_json, "snapshot restore") as reporter:
        result = restore_snapshot(cfg, reporter)
    if as_json:
        click.echo(json.dumps(asdict(result)))
        return
    print_notes(result.notes)
    rows = sum(t.rows for t in result.tables)
    click.echo(
        f"restored {uri}: {len(result.tables)} streams, {rows} rows, in {result.seconds:.1f}s"
    )


@snapshot_group.command("list")
@click.argument("uri", metavar="s3://BUCKET/PREFIX/")
@json_option
@_s3_options
def snapshot_list_cmd(
    uri: str, as_json: bool, region: str | None, endpoint_url: str | None, profile: str | None
) -> None:
    """List the snapshots under a prefix."""
    from pgferry.migrate.snapshot import list_snapshots

    found = list_snapshots(uri, _s3(region, endpoint_url, profile))
    if as_json:
        click.echo(json.dumps([asdict(i) for i in found]))
        return
    click.echo(f"{'name':<24}{'created':<27}{'tables':>7}{'rows':>12}{'stored':>12}")
    for i in found:
        if i.problem:
            click.echo(f"{i.name:<24}(unreadable: {i.problem})")
            continue
        if not i.complete:
            click.echo(f"{i.name:<24}{'(incomplete: no manifest)':<27}")
            continue
        click.echo(
            f"{i.name:<24}{i.created or '':<27}{i.tables:>7}{i.rows:>12}"
            f"{_human(i.stored_bytes):>12}"
        )


@snapshot_group.command("delete")
@click.argument("uri", metavar="s3://BUCKET/PREFIX/NAME")
@_s3_options
def snapshot_delete_cmd(
    uri: str, region: str | None, endpoint_url: str | None, profile: str | None
) -> None:
    """Delete a snapshot (complete or not) and every object under it."""
    from pgferry.migrate.snapshot import delete_snapshot

    n = delete_snapshot(uri, _s3(region, endpoint_url, profile))
    click.echo(f"deleted {uri.rstrip('/')}/: {n} objects")


def register(cli: click.Group) -> None:
    """Add this module's commands to the top-level group."""
    cli.add_command(clone_cmd)
    cli.add_command(verify_cmd)
    cli.add_command(snapshot_group)
