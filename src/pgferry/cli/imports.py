"""`pgferry import`."""

from __future__ import annotations

import json
import sys

import click

from pgferry.cli import json_option, target_option
from pgferry.cli.output import progress_bar, setup_logging
from pgferry.decode.compression import CHOICES


@click.command("import")
@click.argument("source")
@click.option("--table", "-t", required=True, help="Target table, e.g. t or schema.t.")
@click.option("--columns", default="", help="Columns in file order, e.g. a,b,d (default: all).")
@click.option(
    "--options", "copy_options", default="", help="COPY options, e.g. '(format csv, header true)'."
)
@click.option(
    "--create-table",
    is_flag=True,
    help="Create the table from the header and a sample when missing.",
)
@click.option(
    "--mode",
    type=click.Choice(("append", "truncate", "replace")),
    default="append",
    show_default=True,
    help="append rows; truncate the table first; replace: drop and re-create it from the file "
    "(in the same transaction as the load).",
)
@click.option(
    "--sample-rows",
    type=click.IntRange(min=1),
    default=1000,
    show_default=True,
    help="Rows --create-table reads to choose column types.",
)
@click.option(
    "--column-type",
    "column_types",
    multiple=True,
    metavar="NAME=TYPE",
    help="Type of a column --create-table creates, instead of the guess (repeatable).",
)
@target_option
@click.option("--region", help="Region of the bucket (a mismatch is followed, with a warning).")
@click.option("--endpoint-url", help="S3-compatible endpoint (default: AWS_ENDPOINT_URL).")
@click.option("--access-key", help="Access key id (default: the AWS credential chain).")
@click.option("--secret-key", help="Secret key; '-' reads it from stdin. Prefer the environment.")
@click.option("--session-token", help="Session token for temporary credentials; '-' reads stdin.")
@click.option("--profile", help="AWS profile from ~/.aws/config.")
@click.option(
    "--content-encoding",
    type=click.Choice(CHOICES),
    default="auto",
    show_default=True,
    help="Compression: auto uses Content-Encoding, then magic bytes.",
)
@click.option(
    "--format",
    "data_format",
    type=click.Choice(("auto", "csv", "text", "binary", "parquet", "jsonl")),
    default="auto",
    show_default=True,
    help="File format; auto: from the name (.parquet, .jsonl/.ndjson/.json, .csv/.tsv), "
    "else COPY's options.",
)
@click.option(
    "--encoding",
    metavar="auto|NAME",
    help="File encoding: auto detects UTF-8 (BOM or not), UTF-16 and Windows-1252; "
    "a name (WIN1252, LATIN1, ...) is COPY's encoding option.",
)
@click.option(
    "--on-error",
    type=click.Choice(("abort", "skip-rows")),
    default="abort",
    show_default=True,
    help="skip-rows: load the rows that load, keep the others in the rejects table.",
)
@click.option(
    "--max-errors",
    metavar="N|N%",
    help="With skip-rows: fail (nothing loaded) past N rejected rows, or N% of an object's.",
)
@click.option(
    "--rejects-table",
    metavar="TABLE",
    help="Where skip-rows keeps rejected rows (default pgferry_rejects; created when missing).",
)
@click.option(
    "--jobs",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Connections loading at once: the objects of a prefix or glob, or byte ranges of "
    "one object (still all or nothing).",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Print the plan (objects, sizes, format, compression, the CREATE TABLE, how --jobs "
    "would use its connections) and load nothing.",
)
@click.option(
    "--commit-each",
    is_flag=True,
    help="Prefix or glob: commit each object on its own and go on past a failed one.",
)
@json_option
def import_cmd(
    source: str,
    table: str,
    columns: str,
    copy_options: str,
    create_table: bool,
    mode: str,
    sample_rows: int,
    column_types: tuple[str, ...],
    target: str | None,
    region: str | None,
    endpoint_url: str | None,
    access_key: str | None,
    secret_key: str | None,
    session_token: str | None,
    profile: str | None,
    content_encoding: str,
    data_format: str,
    encoding: str | None,
    on_error: str,
    max_errors: str | None,
    rejects_table: str | None,
    jobs: int,
    dry_run: bool,
    commit_each: bool,
    as_json: bool,
) -> None:
    """Import SOURCE (s3://bucket/key, file://, a path, or - for stdin) into a table.

    SOURCE may also name many objects: a prefix (s3://bucket/dir/), a folder, or a glob
    (s3://bucket/logs/2024-*.csv.gz, ** across folders); they load in one transaction."""
    from pgferry.imports import ImportSpec, run_import
    from pgferry.infer import parse_column_types
    from pgferry.stores import STDIN
    from pgferry.stores.s3config import S3Config

    setup_logging()
    if bool(access_key) != bool(secret_key):
        raise click.UsageError("--access-key and --secret-key go together")
    if session_token and not access_key:
        raise click.UsageError(
            "--session-token goes with --access-key and --secret-key (temporary credentials "
            "are all three); pass them too, or set all three in the AWS environment variables"
        )
    if source == STDIN and sys.stdin.isatty():
        raise click.UsageError(
            "SOURCE - reads the data from stdin, which is a terminal here; "
            "pipe the data in (... | pgferry import - --table T) or name a file"
        )
    if source == STDIN and "-" in (secret_key, session_token):
        raise click.UsageError(
            "SOURCE - reads the data from stdin, so a secret cannot come from stdin too; "
            "set it in the AWS environment variables instead"
        )
    spec = ImportSpec(
        table=table,
        source=source,
        columns=columns,
        options=copy_options,
        target=target,
        region=region,
        s3=S3Config(
            region=region,
            endpoint_url=endpoint_url,
            access_key=access_key,
            secret_key=_secret(secret_key, "--secret-key"),
            session_token=_secret(session_token, "--session-token"),
            profile=profile,
        ),
        content_encoding=content_encoding,
        create_table=create_table,
        mode=mode,
        sample_rows=sample_rows,
        column_types=parse_column_types(list(column_types)),
        format=data_format,
        on_error=on_error,
        max_errors=max_errors,
        rejects_table=rejects_table,
        encoding=encoding,
    )
    from pgferry.stores.listing import is_many

    if commit_each and not is_many(source):
        raise click.UsageError("--commit-each applies to a prefix, folder or glob")
    if dry_run:
        from pgferry.dryrun import dry_run as plan

        planned = plan(spec, jobs=jobs, commit_each=commit_each)
        if as_json:
            click.echo(json.dumps(planned.to_dict()))
        else:
            click.echo("\n".join(planned.lines()))
        return
    if is_many(source):
        from pgferry.cli import import_many

        import_many.run(spec, jobs=jobs, commit_each=commit_each, as_json=as_json)
        return
    with progress_bar(f"import {source}", enabled=not as_json) as advance:
        if jobs > 1:
            from pgferry.parallel import run_parallel

            result = run_parallel(spec, jobs, on_bytes=advance)
        else:
            result = run_import(spec, on_bytes=advance)
    if as_json:
        click.echo(json.dumps(result.to_dict()))
        return
    if result.created_table:
        click.echo(result.created_table + ";")
    click.echo(result.message)


def _secret(value: str | None, flag: str) -> str | None:
    if value == "-":
        return sys.stdin.readline().rstrip("\n")
    if value:
        click.echo(
            f"warning: {flag} on the command line is visible in the process list; "
            "prefer the AWS environment variables, a profile, or '-' to read it from stdin",
            err=True,
        )
    return value


def register(cli: click.Group) -> None:
    cli.add_command(import_cmd)
