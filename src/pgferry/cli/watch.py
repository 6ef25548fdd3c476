"""`pgferry watch` (load every new object under a prefix, once) and
`pgferry files` (look at and fix the ledger's entries)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import click

from pgferry.cli import json_option, target_option
from pgferry.cli.output import setup_logging
from pgferry.decode.compression import CHOICES


class _WatchGroup(click.Group):
    """`pgferry watch s3://...` runs a watcher; `pgferry watch status` reports."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


@click.group("watch", cls=_WatchGroup)
def watch_group() -> None:
    """Load every object under an S3 prefix into a table, exactly once, as it lands.

    pgferry watch s3://bucket/prefix/ --table T [options]  (see pgferry watch run --help)
    """


@watch_group.command("run")
@click.argument("source", required=False)
@click.option("--table", "-t", help="Target table, e.g. t or schema.t.")
@click.option(
    "--config",
    "config_path",
    metavar="FILE",
    help="Run the pipelines of a TOML file instead of SOURCE and --table.",
)
@click.option(
    "--pipeline", help="Name of this prefix-to-table pipeline in the ledger (default: the table)."
)
@click.option(
    "--pattern", metavar="GLOB", help="Load only keys whose name after the prefix matches."
)
@click.option("--columns", default="", help="Columns in file order, e.g. a,b,d (default: all).")
@click.option("--options", "copy_options", default="", help="COPY options, e.g. '(format csv)'.")
@click.option("--create-table", is_flag=True, help="Create the table from the first object.")
@click.option("--column-type", "column_types", multiple=True, metavar="NAME=TYPE")
@click.option("--sample-rows", type=click.IntRange(min=1), default=1000, show_default=True)
@click.option("--interval", default="5s", show_default=True, help="Time between listings.")
@click.option(
    "--full-sweep",
    default="1m",
    show_default=True,
    help="Time between full listings (others start after the highest key seen).",
)
@click.option(
    "--ready-suffix",
    metavar="SUFFIX",
    help="Load x.csv only once x.csv<SUFFIX> exists (e.g. .ready); markers are not loaded.",
)
@click.option(
    "--ready-marker",
    metavar="NAME",
    help="Load a folder's objects only once its NAME exists (e.g. _SUCCESS).",
)
@click.option(
    "--settle",
    metavar="DURATION",
    help="Load an object only once the same version was seen for this long (e.g. 30s).",
)
@click.option("--once", is_flag=True, help="Load what is there now, then exit.")
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True)
@click.option(
    "--batch",
    type=click.IntRange(1, 1000),
    default=20,
    show_default=True,
    help="Load up to this many small objects (<= 1 MiB) per transaction, each with its own "
    "ledger row (1: one transaction per object).",
)
@click.option(
    "--on-change",
    type=click.Choice(("reload", "skip", "error")),
    default="reload",
    show_default=True,
    help="An object overwritten after it was loaded: load the new version, skip it, "
    "or mark it failed.",
)
@click.option(
    "--notify-listen",
    metavar="HOST:PORT",
    help="Also take S3 event notifications (SNS or SeaweedFS filer webhook) here.",
)
@click.option(
    "--metrics",
    "metrics_listen",
    metavar="HOST:PORT",
    help="Serve Prometheus metrics here (e.g. 127.0.0.1:9187).",
)
@click.option(
    "--on-error",
    type=click.Choice(("abort-file", "skip-rows")),
    default="abort-file",
    show_default=True,
    help="A row the table rejects: fail the object, or load the other rows and keep it in "
    "pgferry.watch_rejects.",
)
@click.option("--max-attempts", type=click.IntRange(min=1), default=5, show_default=True)
@click.option("--retry-delay", default="2s", show_default=True, help="First retry delay.")
@target_option
@click.option("--region", help="Region of the bucket.")
@click.option("--endpoint-url", help="S3-compatible endpoint (default: AWS_ENDPOINT_URL).")
@click.option("--profile", help="AWS profile (credentials come from the AWS default chain).")
@click.option("--content-encoding", type=click.Choice(CHOICES), default="auto")
@click.option("--verbose", "-v", is_flag=True, help="One line per object loaded.")
@click.option(
    "--log-format",
    type=click.Choice(("text", "json")),
    default="text",
    show_default=True,
    help="json: one JSON object per line on stderr (time, level, logger, message).",
)
@click.pass_context
def run_cmd(
    ctx: click.Context,
    source: str | None,
    table: str | None,
    config_path: str | None,
    pipeline: str | None,
    pattern: str | None,
    columns: str,
    copy_options: str,
    create_table: bool,
    column_types: tuple[str, ...],
    sample_rows: int,
    interval: str,
    full_sweep: str,
    ready_suffix: str | None,
    ready_marker: str | None,
    settle: str | None,
    once: bool,
    workers: int,
    batch: int,
    on_change: str,
    on_error: str,
    notify_listen: str | None,
    metrics_listen: str | None,
    max_attempts: int,
    retry_delay: str,
    target: str | None,
    region: str | None,
    endpoint_url: str | None,
    profile: str | None,
    content_encoding: str,
    verbose: bool,
    log_format: str,
) -> None:
    """Load every object version under SOURCE (s3://bucket/prefix/) exactly once."""
    from pgferry.infer import parse_column_types
    from pgferry.ingest import config
    from pgferry.ingest.discover import Prefix, parse_prefix
    from pgferry.ingest.durations import parse_duration
    from pgferry.ingest.notify import parse_listen
    from pgferry.ingest.worker import WatchSpec, run_all
    from pgferry.sink.names import parse_table_name
    from pgferry.stores.s3 import S3Config

    setup_logging(verbose)
    if log_format == "json":
        _json_logging()
    if config_path and (source or table or pipeline):
        raise click.UsageError("--config names the sources and tables: drop SOURCE and --table")
    if not config_path and not (source and table):
        raise click.UsageError("give SOURCE and --table (or --config FILE)")
    base = WatchSpec(
        where=parse_prefix(source) if source else Prefix("", ""),
        table=table or "",
        pipeline=pipeline or table or "",
        pattern=pattern,
        columns=columns,
        options=copy_options,
        create_table=create_table,
        column_types=parse_column_types(list(column_types)),
        sample_rows=sample_rows,
        content_encoding=content_encoding,
        target=target,
        s3=S3Config(region=region, endpoint_url=endpoint_url, profile=profile),
        interval=parse_duration(interval, what="--interval"),
        full_sweep=parse_duration(full_sweep, what="--full-sweep"),
        once=once,
        workers=workers,
        batch=batch,
        on_change=on_change,
        on_error=on_error,
        max_attempts=max_attempts,
        retry_delay=parse_duration(retry_delay, what="--retry-delay"),
        notify_listen=parse_listen(notify_listen, "--notify-listen") if notify_listen else None,
        metrics_listen=parse_listen(metrics_listen, "--metrics") if metrics_listen else None,
        ready_suffix=ready_suffix or None,
        ready_marker=ready_marker or None,
        settle=parse_duration(settle, what="--settle") if settle else 0.0,
    )
    if config_path:
        specs = config.load(config_path, base)
    else:
        assert table is not None
        parse_table_name(table)  # a bad name is a usage error before any work
        specs = [base]
    results = run_all(specs)
    for spec, totals in zip(specs, results, strict=True):
        who = f"{spec.pipeline}: " if config_path else ""
        summary = f"{totals.loaded} objects loaded ({totals.rows} rows), {totals.failed} failed"
        if log_format == "json":
            doc = {
                "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
                "level": "info",
                "logger": "pgferry.watch",
                "message": who + summary,
                "pipeline": spec.pipeline,
                "loaded": totals.loaded,
                "rows": totals.rows,
                "failed": totals.failed,
            }
            click.echo(json.dumps(doc), err=True)
        else:
            click.echo(who + summary, err=True)
    failed = sum(t.failed for t in results)
    if failed and once:  # a service keeps going past a failed object: see files list
        ctx.exit(1)


class _JsonLines(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        from pgferry.conninfo import scrub

        doc = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": scrub(record.getMessage()),
        }
        click.echo(json.dumps(doc), err=True)


def _json_logging() -> None:
    root = logging.getLogger("pgferry")
    for h in list(root.handlers):
        root.removeHandler(h)
    root.addHandler(_JsonLines())


@watch_group.command("status")
@click.option("--pipeline", help="Only this pipeline.")
@target_option
@json_option
def status_cmd(pipeline: str | None, target: str | None, as_json: bool) -> None:
    """Per pipeline: pending, loading, loaded, failed, oldest pending age, rates."""
    from pgferry.ingest import ledger

    with _ledger_conn(target) as conn:
        rows = ledger.status(conn, pipeline) if ledger.exists(conn) else []
    if as_json:
        click.echo(json.dumps({"pipelines": rows}, default=_jsonable))
        return
    if not rows:
        click.echo("no pipelines in the ledger")
        return
    for r in rows:
        age = r["oldest_pending_seconds"]
        click.echo(
            f"{r['pipeline']}: {r['pending']} pending, {r['loading']} loading, "
            f"{r['loaded']} loaded, {r['failed']} failed, {r['skipped']} skipped; "
            f"oldest pending {'-' if age is None else f'{age:.0f} s'}; "
            f"{r['files_per_s']} files/s, {r['rows_per_s']} rows/s (last minute)"
        )
        if r["last_error"]:
            click.echo(f"  last error: {r['last_error']}")


# --- pgferry files ------------------------------------------------------------


@click.group("files")
def files_group() -> None:
    """List, retry or skip the object versions in the watch ledger."""


@files_group.command("list")
@click.option("--pipeline", help="Only this pipeline.")
@click.option(
    "--status",
    "statuses",
    multiple=True,
    type=click.Choice(("pending", "loaded", "failed", "skipped", "superseded", "gone")),
    help="Only these statuses (repeatable).",
)
@click.option("--limit", type=click.IntRange(min=1), help="At most this many rows.")
@target_option
@json_option
def files_list(
    pipeline: str | None,
    statuses: tuple[str, ...],
    limit: int | None,
    target: str | None,
    as_json: bool,
) -> None:
    """One line per object version: status, attempts, rows, key, last error."""
    from pgferry.ingest import ledger

    with _ledger_conn(target) as conn:
        rows = (
            ledger.files(conn, pipeline=pipeline, statuses=statuses, limit=limit)
            if ledger.exists(conn)
            else []
        )
    if as_json:
        click.echo(json.dumps({"files": rows}, default=_jsonable))
        return
    for r in rows:
        rows_text = "" if r["row_count"] is None else str(r["row_count"])
        line = (
            f"{r['status']:<10} {r['attempts']:>3} {rows_text:>9}"
            f"  s3://{r['bucket']}/{r['key']} ({r['etag']}, {r['pipeline']})"
        )
        if r["last_error"] and r["status"] != "loaded":
            line += f": {r['last_error']}"
        click.echo(line)


@files_group.command("retry")
@click.argument("key", required=False)
@click.option("--all-failed", is_flag=True, help="Every failed version (of --pipeline).")
@click.option("--pipeline", help="Only this pipeline.")
@target_option
def files_retry(
    key: str | None, all_failed: bool, pipeline: str | None, target: str | None
) -> None:
    """Load KEY's newest failed or skipped version again (or --all-failed)."""
    if bool(key) == all_failed:
        raise click.UsageError("give a KEY or --all-failed (one of them)")
    _move(key, pipeline, target, to="pending", from_statuses=("failed", "skipped"))


@files_group.command("skip")
@click.argument("key")
@click.option("--pipeline", help="Only this pipeline.")
@target_option
def files_skip(key: str, pipeline: str | None, target: str | None) -> None:
    """Stop trying KEY's newest pending or failed version."""
    _move(key, pipeline, target, to="skipped", from_statuses=("pending", "failed"))


def _move(
    key: str | None,
    pipeline: str | None,
    target: str | None,
    *,
    to: str,
    from_statuses: tuple[str, ...],
) -> None:
    from pgferry.errors import LedgerEntryNotFound
    from pgferry.ingest import ledger

    key = _strip_uri(key)
    with _ledger_conn(target) as conn:
        changed = (
            ledger.set_status(conn, to=to, from_statuses=from_statuses, pipeline=pipeline, key=key)
            if ledger.exists(conn)
            else []
        )
    if not changed and key is not None:
        raise LedgerEntryNotFound(
            f"no {' or '.join(from_statuses)} version of {key!r} in the watch ledger",
            hint="see pgferry files list (keys are written without s3://bucket/)",
            key=key,
        )
    for p, bucket, k in changed:
        click.echo(f"{to}: s3://{bucket}/{k} ({p})")
    if not changed:
        click.echo(f"nothing to change: no {' or '.join(from_statuses)} versions")


def _strip_uri(key: str | None) -> str | None:
    """`s3://bucket/k` is accepted for `k`: that is what files list prints."""
    if key and key.lower().startswith("s3://"):
        return key[5:].partition("/")[2]
    return key


@contextmanager
def _ledger_conn(target: str | None) -> Iterator[Any]:
    from pgferry.target import connect, resolve_target

    conn = connect(resolve_target(target), autocommit=True)
    try:
        yield conn
    finally:
        conn.close()


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def register(cli: click.Group) -> None:
    cli.add_command(watch_group)
    cli.add_command(files_group)
