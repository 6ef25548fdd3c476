"""`pgferry target`, `pgferry psql`, `pgferry embedded`: the local side."""

from __future__ import annotations

import json
import os

import click

from pgferry.cli import json_option, target_option


@click.command("target")
@target_option
@json_option
def target_cmd(target: str | None, as_json: bool) -> None:
    """Print the resolved target URL (password masked) and where it came from."""
    from pgferry.target import resolve_target

    resolved = resolve_target(target)
    if as_json:
        click.echo(json.dumps({"target": resolved.describe(), "origin": resolved.origin}))
    else:
        click.echo(resolved.describe())
        click.echo(f"(from {resolved.origin})", err=True)


# -h is psql's --host here: only --help shows this command's help
@click.command(
    "psql",
    context_settings={"ignore_unknown_options": True, "help_option_names": ["--help"]},
)
@target_option
@click.argument("psql_args", nargs=-1, type=click.UNPROCESSED)
def psql_cmd(target: str | None, psql_args: tuple[str, ...]) -> None:
    """Open psql on the target; every other argument goes to psql.

    Runs the psql of the server's major version (the bundled one for the
    embedded server); the URL's settings reach psql as PG* variables, so
    psql's own flags (-h, -p, -U, -d) override them.
    """
    from pgferry.target import psql_invocation, resolve_target

    argv, env = psql_invocation(resolve_target(target), psql_args)
    os.execvpe(argv[0], argv, env)  # noqa: S606 - replaces this process, no shell


@click.group("embedded")
def embedded_group() -> None:
    """Manage the embedded local PostgreSQL (the default target)."""


@embedded_group.command("start")
def embedded_start() -> None:
    """Start it (initialising it on first use) and print its URL."""
    from pgferry.embedded import ensure_embedded

    click.echo(ensure_embedded().conninfo())


@embedded_group.command("stop")
def embedded_stop() -> None:
    """Stop it; the data stays for the next start."""
    from pgferry.embedded import embedded_server

    server = embedded_server()
    if not server.initialised():
        # nothing ran, nothing to keep: not an error (as status, but exit 0)
        click.echo(f"not initialised: nothing to stop (data would live in {server.datadir})")
        return
    server.stop()
    click.echo(f"stopped (data kept in {server.datadir})")


@embedded_group.command("status")
def embedded_status() -> None:
    """Say whether it runs and where its data lives; exit 3 when it does not
    run (as `pg_ctl status` does)."""
    from pgferry.embedded import embedded_server

    server = embedded_server()
    if not server.initialised():
        click.echo(f"not initialised (data would live in {server.datadir})")
        click.get_current_context().exit(3)
    if not server.running():
        click.echo(f"stopped: {server.conninfo()} (data in {server.datadir})")
        click.get_current_context().exit(3)
    click.echo(f"running: {server.conninfo()} (data in {server.datadir})")


def register(cli: click.Group) -> None:
    for command in (target_cmd, psql_cmd, embedded_group):
        cli.add_command(command)
