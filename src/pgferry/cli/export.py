"""`pgferry export`."""

from __future__ import annotations

import json

import click

from pgferry.cli import checked_url, json_option
from pgferry.cli.output import progress_bar


@click.command("export")
@click.argument("dest")
@click.option("--query", "-q", help="SQL query whose result is exported.")
@click.option("--table", "-t", help="Table to export (instead of --query).")
@click.option(
    "--options",
    "copy_options",
    default="",
    help="COPY TO options, e.g. '(format csv, header true)'.",
)
@click.option(
    "--format",
    "data_format",
    type=click.Choice(("csv", "text", "binary", "jsonl", "parquet")),
    help="COPY format (also settable in --options; default text, as COPY's); jsonl: one "
    "JSON object per row; parquet: complete Parquet files, typed from the result.",
)
@click.option(
    "--part-size",
    default="6GB",
    show_default=True,
    help="Start a new file (KEY_part2, ...) after about this many bytes.",
)
@click.option(
    "--content-encoding",
    type=click.Choice(("none", "gzip", "zstd")),
    default="none",
    show_default=True,
    help="Compress each file (and set its Content-Encoding).",
)
@click.option(
    "--source",
    metavar="URL",
    callback=checked_url,
    help="Database to export from; default: PGFERRY_TARGET, DATABASE_URL, the PG* environment, "
    "else the embedded local server.",
)
@click.option("--region", help="Region of the bucket.")
@click.option("--endpoint-url", help="S3-compatible endpoint (default: AWS_ENDPOINT_URL).")
@click.option("--profile", help="AWS profile from ~/.aws/config.")
@json_option
def export_cmd(
    dest: str,
    query: str | None,
    table: str | None,
    copy_options: str,
    data_format: str | None,
    part_size: str,
    content_encoding: str,
    source: str | None,
    region: str | None,
    endpoint_url: str | None,
    profile: str | None,
    as_json: bool,
) -> None:
    """Export a query's result or a table to DEST (s3://bucket/key): the client-side twin of
    aws_s3.query_export_to_s3 (files KEY, KEY_part2, ...). Credentials come from the AWS
    environment or --profile."""
    from pgferry.export import ExportSpec, run_export
    from pgferry.stores.s3 import S3Config

    if bool(query) == bool(table):
        raise click.UsageError("give either --query or --table")
    spec = ExportSpec(
        dest=dest,
        query=query,
        table=table,
        options=copy_options,
        format=data_format,
        part_size=part_size,
        content_encoding=content_encoding,
        source=source,
        s3=S3Config(region=region, endpoint_url=endpoint_url, profile=profile),
    )
    with progress_bar(f"export to {dest}", enabled=not as_json) as advance:
        result = run_export(spec, on_bytes=advance)
    if as_json:
        click.echo(json.dumps(result.to_dict()))
    else:
        click.echo(result.message)


def register(cli: click.Group) -> None:
    cli.add_command(export_cmd)
