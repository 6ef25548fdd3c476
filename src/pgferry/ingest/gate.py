"""Which listed objects are complete enough to record: ready markers and settling.

Without options every listed object is (a listing never shows an upload in
progress). For writers that finish a file in several steps:

- `--ready-suffix .ready`: `x.csv` waits until `x.csv.ready` exists;
- `--ready-marker _SUCCESS`: every object of a folder waits until the
  folder's `_SUCCESS` exists (Spark, Hadoop and many exporters write one);
- `--settle 30s`: an object waits until this watcher has seen the same
  version (ETag) for that long.

Markers are never loaded. Waiting objects are kept in memory, so a marker
that arrives in a later (incremental) listing releases them; after a restart
the first listing is a full one and finds them again.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from pgferry.ingest.ledger import Listed


@dataclass
class Gate:
    ready_suffix: str | None = None
    ready_marker: str | None = None
    settle: float = 0.0
    markers: set[str] = field(default_factory=set)
    #: key -> (the version seen, when this watcher first saw it)
    waiting: dict[str, tuple[Listed, float]] = field(default_factory=dict)

    @property
    def active(self) -> bool:
        return bool(self.ready_suffix or self.ready_marker or self.settle)

    def is_marker(self, key: str) -> bool:
        if self.ready_suffix and key.endswith(self.ready_suffix):
            return True
        return bool(self.ready_marker) and key.rpartition("/")[2] == self.ready_marker

    def admit(self, found: list[Listed], *, full: bool) -> list[Listed]:
        """The objects of `found` (and of earlier listings) now complete."""
        if not self.active:
            return found
        now = time.monotonic()
        listed = set()
        seen_markers = set()
        for obj in found:
            if self.is_marker(obj.key):
                seen_markers.add(obj.key)
                continue
            listed.add(obj.key)
            before = self.waiting.get(obj.key)
            if before is None or before[0].etag != obj.etag:
                self.waiting[obj.key] = (obj, now)
        if full:  # what a full listing no longer shows is gone
            self.markers = seen_markers
            for key in set(self.waiting) - listed:
                del self.waiting[key]
        else:
            self.markers |= seen_markers
        ready = [
            obj
            for obj, since in self.waiting.values()
            if now - since >= self.settle and self._marked(obj.key)
        ]
        for obj in ready:
            del self.waiting[obj.key]
        return ready

    def requeue(self, obj: Listed) -> None:
        """A newer version than the one that settled: it settles anew."""
        self.waiting[obj.key] = (obj, time.monotonic())

    def next_release(self) -> float | None:
        """Seconds until a settling object may be released (None: none waits on time)."""
        if not self.settle or not self.waiting:
            return None
        now = time.monotonic()
        return max(0.0, min(since + self.settle - now for _, since in self.waiting.values()))

    def _marked(self, key: str) -> bool:
        if self.ready_suffix and key + self.ready_suffix not in self.markers:
            return False
        if self.ready_marker:
            folder = key.rpartition("/")[0]
            marker = f"{folder}/{self.ready_marker}" if folder else self.ready_marker
            if marker not in self.markers:
                return False
        return True
