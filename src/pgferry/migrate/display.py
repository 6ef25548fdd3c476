"""A Reporter drawing rich progress bars: one per phase, one per running table.

Bars show rows, bytes, rate and ETA; ETA is estimated from on-disk sizes,
which COPY text only roughly matches, so it is a guide, not a promise.
"""

from __future__ import annotations

import threading
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)


class RichReporter:
    def __init__(self, console: Console | None = None) -> None:
        self.progress = Progress(
            TextColumn("{task.description:<36}"),
            BarColumn(),
            TextColumn("{task.fields[rows]:>12,} rows"),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=console or Console(stderr=True),
            transient=False,
        )
        self._tasks: dict[str, tuple[TaskID, int, int, int]] = {}
        self._phase: TaskID | None = None
        self._phase_rows = 0
        self._phase_bytes = 0
        self._lock = threading.Lock()
        self._started = False

    def _start(self) -> None:
        if not self._started:
            self.progress.start()
            self._started = True

    def phase_start(self, phase: str, total_bytes: int | None = None) -> None:
        self._start()
        self._phase = self.progress.add_task(f"[bold]{phase}", total=total_bytes, rows=0)
        self._phase_rows = 0
        self._phase_bytes = 0

    def phase_done(self, phase: str, seconds: float) -> None:
        if self._phase is not None:
            done = self._phase_bytes or 1
            self.progress.update(self._phase, total=done, completed=done)
        with self._lock:
            for task, _rows, _nbytes, _est in self._tasks.values():
                self.progress.remove_task(task)
            self._tasks.clear()

    def unit_start(self, key: str, est_bytes: int) -> None:
        with self._lock:
            task = self.progress.add_task(key, total=est_bytes or None, rows=0)
            self._tasks[key] = (task, 0, 0, est_bytes)

    def unit_progress(self, key: str, rows: int, nbytes: int) -> None:
        with self._lock:
            if key in self._tasks:
                task, r, b, est = self._tasks[key]
                r, b = r + rows, b + nbytes
                self._tasks[key] = (task, r, b, est)
                # the on-disk estimate can be low: then show no total
                total = est if est and b <= est else None
                self.progress.update(task, completed=b, rows=r, total=total)
            if self._phase is not None:
                self._phase_rows += rows
                self._phase_bytes += nbytes
                self.progress.update(
                    self._phase, completed=self._phase_bytes, rows=self._phase_rows
                )

    def unit_done(self, key: str, rows: int, nbytes: int, seconds: float) -> None:
        with self._lock:
            entry = self._tasks.pop(key, None)
            if entry is not None:
                self.progress.remove_task(entry[0])

    def note(self, message: str) -> None:
        self.progress.console.print(f"note: {message}")

    def close(self) -> None:
        if self._started:
            self.progress.stop()
            self._started = False

    def __enter__(self) -> RichReporter:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
