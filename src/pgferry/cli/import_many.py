"""`pgferry import` of a prefix, folder or glob: one line per object, then
the total (or one JSON object with the per-object results). On a terminal,
progress bars: one overall (bytes, rows so far, rate, ETA) and one per
object being loaded."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import click

from pgferry.imports import ImportSpec

_Bytes = Callable[[int, int], None]
_Each = Callable[[Any, int, int], None]


@contextmanager
def bars(label: str, enabled: bool) -> Iterator[tuple[_Bytes | None, _Each | None]]:
    if not enabled or not sys.stderr.isatty():
        yield None, None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    lock = threading.Lock()
    tasks: dict[str, Any] = {}
    rows = [0]
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        transient=True,
        console=Console(stderr=True),
    ) as progress:
        overall = progress.add_task(label, total=None)

        def advance(done: int, total: int) -> None:
            progress.update(overall, completed=done, total=total)

        def each(out: Any, done: int, total: int) -> None:
            with lock:
                task = tasks.get(out.uri)
                if done < 0:  # the object ended
                    if task is not None:
                        progress.remove_task(task)
                        del tasks[out.uri]
                    rows[0] += out.rows if out.status == "loaded" else 0
                    progress.update(overall, description=f"{label} ({rows[0]} rows)")
                    return
                if task is None:
                    task = tasks[out.uri] = progress.add_task(f"  {out.uri}", total=total)
                    progress.refresh()  # drawn at least once, however fast it loads
                progress.update(task, completed=done, total=total)

        yield advance, each


def run(spec: ImportSpec, *, jobs: int, commit_each: bool, as_json: bool) -> None:
    from pgferry.many import run_many

    with bars(f"import {spec.source}", enabled=not as_json) as (advance, each):
        result = run_many(
            spec, jobs=jobs, commit_each=commit_each, on_bytes=advance, on_object=each
        )
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
