"""What `clone` and `verify` do with a MariaDB/MySQL or SQLite --source:
called by pgferry.cli.migrate before anything PostgreSQL-specific runs."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

import click

from pgferry.cli.output import print_phases
from pgferry.errors import RowsRejected

if TYPE_CHECKING:  # the source readers load only when a command runs
    from pgferry.sources.clone import ForeignCloneConfig, ForeignCloneResult


def run_clone(cfg: ForeignCloneConfig, max_rejects: int, as_json: bool, reporter: Any) -> None:
    from pgferry.sources.clone import clone_foreign

    result = clone_foreign(cfg, reporter)
    show(result, as_json)
    if result.rejected > max_rejects:
        raise RowsRejected(
            f"{result.rejected} row(s) rejected, recorded in pgferry.rejects (run {result.run!r})",
            hint="fix them at the source or with --cast and load again,"
            " or allow them with --max-rejects N",
        )


def show(result: ForeignCloneResult, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(dict(asdict(result), rejected=result.rejected)))
        return
    print_phases(result.notes, result.phases, result.skipped)
    if result.tables:
        click.echo(f"\n{'table':<40}{'loaded':>12}{'rejected':>10}{'seconds':>10}")
        for t in sorted(result.tables, key=lambda t: t.table):
            click.echo(f"{t.table:<40}{t.rows:>12}{t.rejected:>10}{t.seconds:>10.2f}")
    loaded = sum(t.rows for t in result.tables)
    click.echo(
        f"\ncloned in {result.seconds:.1f}s: {loaded} rows loaded, {result.rejected} rejected"
    )


def foreign_options(f: Any) -> Any:
    """clone's options that only a MariaDB/MySQL or SQLite source takes."""
    for opt in reversed(
        [
            click.option("--schema", default="public", show_default=True, metavar="NAME",
                         help="Target schema (foreign sources)."),
            click.option("--keep-case", is_flag=True,
                         help="Keep identifiers' case (foreign sources; default: lower case)."),
            click.option("--cast", "casts", multiple=True, metavar="RULE",
                         help="'type:SRC=PG' or 'column:[DB.]T.C=PG' (foreign sources)."),
            click.option("--nul", type=click.Choice(["reject", "strip"]), default="reject",
                         show_default=True, help="Text with NUL bytes (foreign sources)."),
            click.option("--max-rejects", type=click.IntRange(min=0), default=0, show_default=True,
                         metavar="N", help="Rejected rows allowed (foreign sources)."),
        ]
    ):  # fmt: skip
        f = opt(f)
    return f


def foreign_only(values: dict[str, Any]) -> None:
    """A PostgreSQL --source with an option it does not take: usage error."""
    defaults = {
        "schema": "public",
        "keep_case": False,
        "casts": (),
        "nul": "reject",
        "max_rejects": 0,
    }
    for name, default in defaults.items():
        if values.get(name) != default:
            flag = "--" + name.replace("_", "-").replace("casts", "cast")
            raise click.UsageError(
                f"{flag} applies to mysql://, mariadb:// and sqlite:/// sources only"
            )


def run_verify(
    source: str,
    target: str,
    tables: tuple[str, ...],
    exclude: tuple[str, ...],
    as_json: bool,
    foreign: dict[str, Any],
) -> bool:
    from pgferry.cli.migrate import print_verify
    from pgferry.sources.verify import verify_foreign

    result = verify_foreign(
        source, target, foreign["schema"], tables, exclude,
        keep_case=foreign["keep_case"], casts=foreign["casts"], nul=foreign["nul"],
    )  # fmt: skip
    print_verify(result, as_json)
    return result.ok
