"""Terminal output shared by commands: warnings, progress bars."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterable, Iterator, Sized
from contextlib import contextmanager

import click


class _OneLine(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        from pgferry.conninfo import scrub

        prefix = getattr(record, "prefix", record.levelname.lower())
        click.echo(f"{prefix}: {scrub(record.getMessage())}", err=True)


def setup_logging(verbose: bool = False) -> None:
    root = logging.getLogger("pgferry")
    if not any(isinstance(h, _OneLine) for h in root.handlers):
        root.addHandler(_OneLine())
    root.setLevel(logging.INFO if verbose else logging.WARNING)
    root.propagate = False


@contextmanager
def progress_bar(
    label: str, total: int | None = None, *, enabled: bool = True
) -> Iterator[Callable[[int, int], None]]:
    """A byte-progress bar on an interactive stderr, fed `(done, total)`;
    a no-op otherwise."""
    if not enabled or not sys.stderr.isatty():
        yield lambda done, total: None
        return
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        transient=True,
        console=__import__("rich.console").console.Console(stderr=True),
    ) as progress:
        task = progress.add_task(label, total=total)
        yield lambda done, total: progress.update(task, completed=done, total=total)


def print_notes(notes: Iterable[str]) -> None:
    """What a migration skipped or chose, on stderr, one line each."""
    for note in notes:
        click.echo(f"note: {note}", err=True)


def print_phases(notes: Iterable[str], phases: Iterable[tuple[str, float]], skipped: Sized) -> None:
    """Notes on stderr, then the phase timings: the start of every clone summary."""
    print_notes(notes)
    click.echo(f"{'phase':<24}{'seconds':>10}")
    for name, secs in phases:
        click.echo(f"{name:<24}{secs:>10.2f}")
    if skipped:
        click.echo(f"{'(already done, skipped)':<24}{len(skipped):>10}")
