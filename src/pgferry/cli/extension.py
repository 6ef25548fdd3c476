"""CLI commands for `extension` (registered by pgferry.cli)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from pgferry.cli import checked_url


def register(cli: click.Group) -> None:
    """Add this module's commands to the top-level group."""
    cli.add_command(extension)


@click.group()
def extension() -> None:
    """The aws_s3 / aws_commons extensions for self-hosted PostgreSQL."""


@extension.command()
@click.option(
    "--target",
    metavar="URL",
    callback=checked_url,
    help="The server to install for (its version picks the pg_config; as a superuser "
    "we also check that it can run the fetcher).",
)
@click.option(
    "--pg-config",
    "pg_config",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="pg_config of the server's installation.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def install(target: str | None, pg_config: Path | None, as_json: bool) -> None:
    """Install aws_commons and aws_s3 into the server's extension directory.

    Run on the database host as root (or the owner of the extension
    directory), then CREATE EXTENSION aws_s3 CASCADE in each database.
    """
    from pgferry.extension.install import as_dict
    from pgferry.extension.install import install as do_install

    report = do_install(target=target, pg_config=pg_config)
    if as_json:
        click.echo(json.dumps(as_dict(report)))
    else:
        for line in report.lines():
            click.echo(line)
