"""`pgferry import` of a prefix, folder or glob: one line per object, then
the total (or one JSON object with the per-object results)."""

from __future__ import annotations

import json

import click

from pgferry.cli.output import progress_bar
from pgferry.imports import ImportSpec


def run(spec: ImportSpec, *, jobs: int, commit_each: bool, as_json: bool) -> None:
    from pgferry.many import run_many

    with progress_bar(f"import {spec.source}", enabled=not as_json) as advance:
        result = run_many(spec, jobs=jobs, commit_each=commit_each, on_bytes=advance)
    if as_json:
        click.echo(json.dumps(result.to_dict()))
    else:
        if result.created_table:
            click.echo(result.created_table + ";")
        for o in result.objects:
            if o.status == "loaded":
                click.echo(f"{o.uri}: {o.rows} rows, {o.bytes} bytes, {o.seconds:.1f} s")
            else:
                click.echo(f"{o.uri}: {o.status}" + (f": {o.error}" if o.error else ""))
        click.echo(result.message)
    if result.failed:
        raise click.exceptions.Exit(1)
