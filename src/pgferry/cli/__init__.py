"""The `pgferry` command: a thin layer over the library.

Each command builds a typed config and calls one public function; this
package only parses arguments, prints results and maps errors to exit codes
(0 ok, 1 failed, 2 usage).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from pgferry.errors import PgferryError

F = TypeVar("F", bound=Callable[..., Any])


# command name -> module of pgferry.cli that registers it; modules load on
# first use, so `pgferry import` never pays for importing the migrate code
_COMMANDS = {
    "import": "imports",
    "export": "export",
    "target": "local",
    "psql": "local",
    "embedded": "local",
    "clone": "migrate",
    "verify": "migrate",
    "snapshot": "migrate",
    "extension": "extension",
    "watch": "watch",
    "files": "watch",
    "replica": "replica",
}

# `pgferry --help` lists these without loading any command module (a test
# checks they match each command's own short help)
SHORT_HELP = {
    "clone": "Copy a whole database from --source into --target, in parallel.",
    "embedded": "Manage the embedded local PostgreSQL (the default target).",
    "export": "Export a query's result or a table to DEST (s3://bucket/key): the client-side "
    "twin of aws_s3.query_export_to_s3 (files KEY, KEY_part2, ...).",
    "extension": "The aws_s3 / aws_commons extensions for self-hosted PostgreSQL.",
    "files": "List, retry or skip the object versions in the watch ledger.",
    "import": "Import SOURCE (s3://bucket/key, file://, a path, or - for stdin) into a table.",
    "replica": "Online migration: keep --target a logical replica of --source, then promote it.",
    "psql": "Open psql on the target; every other argument goes to psql.",
    "snapshot": "Consistent database snapshots on S3: create, restore, list, delete.",
    "target": "Print the resolved target URL (password masked) and where it came from.",
    "watch": "Load every object under an S3 prefix into a table, exactly once, as it lands.",
    "verify": "Compare rows and schema objects; exit 1 when anything differs, 2 when "
    "the comparison could not finish.",
}


class PgferryGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(_COMMANDS)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        names = self.list_commands(ctx)
        limit = formatter.width - 6 - max(len(n) for n in names)
        rows = [(name, self._short_help(ctx, name, limit)) for name in names]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def _short_help(self, ctx: click.Context, name: str, limit: int) -> str:
        if name in SHORT_HELP and name not in self.commands:
            # click's own shortening, without loading the command
            return click.Command(name, help=SHORT_HELP[name]).get_short_help_str(limit)
        command = self.get_command(ctx, name)
        return command.get_short_help_str(limit) if command else ""

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in _COMMANDS:
            importlib.import_module(f"pgferry.cli.{_COMMANDS[cmd_name]}").register(self)
        return self.commands.get(cmd_name)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as e:  # `pgferry --bogus`; a bare `pgferry` shows help
            if isinstance(e, getattr(click.exceptions, "NoArgsIsHelpError", ())):
                raise
            _usage_line(e)
            ctx.exit(e.exit_code)

    def invoke(self, ctx: click.Context) -> Any:
        from pgferry.cli.output import setup_logging

        setup_logging()  # every command's warnings and notes, one line each
        try:
            return super().invoke(ctx)
        except PgferryError as e:
            click.echo(f"error: {e.message}", err=True)
            ctx.exit(e.exit_code)
        except click.UsageError as e:
            if isinstance(e, getattr(click.exceptions, "NoArgsIsHelpError", ())):
                raise
            _usage_line(e)
            ctx.exit(e.exit_code)
        except KeyboardInterrupt:
            click.echo("error: interrupted", err=True)
            ctx.exit(130)


def _usage_line(e: click.UsageError) -> None:
    """click's four-line usage block, as one line like every error."""
    where = e.ctx.command_path if e.ctx else "pgferry"
    what = e.format_message().rstrip(".")
    click.echo(f"error: {what}; see '{where} --help'", err=True)


@click.group(cls=PgferryGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="pgferry")
def cli() -> None:
    """Get data into PostgreSQL: import from S3, migrate databases, run aws_s3 in-database."""


def checked_url(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """Click callback: a malformed connection string is a usage error (exit 2)
    naming the option, raised before any work starts."""
    if value:
        from pgferry.conninfo import check

        check(value, f"--{param.name}")
    return value


def target_option(f: F) -> F:
    return click.option(
        "--target",
        metavar="URL",
        callback=checked_url,
        help="libpq URL or conninfo of the target; default: PGFERRY_TARGET, "
        "DATABASE_URL, the PG* environment, else the embedded local server.",
    )(f)


def json_option(f: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")(f)


def main(argv: list[str] | None = None) -> None:
    try:
        cli.main(args=argv, prog_name="pgferry", standalone_mode=True)
    except SystemExit as e:
        sys.exit(e.code)
