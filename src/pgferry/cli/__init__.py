"""The `pgferry` command: a thin layer over the library.

Each command builds a typed config and calls one public function; this
package only parses arguments, prints results and maps errors to exit codes
(0 ok, 1 failed, 2 usage).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from pgferry.errors import PgferryError

F = TypeVar("F", bound=Callable[..., Any])


class PgferryGroup(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except PgferryError as e:
            click.echo(f"error: {e.message}", err=True)
            ctx.exit(e.exit_code)
        except KeyboardInterrupt:
            click.echo("error: interrupted; nothing was committed", err=True)
            ctx.exit(130)


@click.group(cls=PgferryGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="pgferry")
def cli() -> None:
    """Get data into PostgreSQL: import from S3, watch, migrate, export."""


def target_option(f: F) -> F:
    return click.option(
        "--target",
        metavar="URL",
        help="libpq URL or conninfo of the target; default: PGFERRY_TARGET, "
        "DATABASE_URL, the PG* environment, else the embedded local server.",
    )(f)


def json_option(f: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")(f)


def _register() -> None:
    import importlib

    for name in ("imports", "migrate", "extension"):
        importlib.import_module(f"pgferry.cli.{name}").register(cli)


def main(argv: list[str] | None = None) -> None:
    _register()
    try:
        cli.main(args=argv, prog_name="pgferry", standalone_mode=True)
    except SystemExit as e:
        sys.exit(e.code)
