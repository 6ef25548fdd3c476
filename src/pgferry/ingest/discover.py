"""Finding the objects under a prefix: listing is the source of truth.

Between full sweeps a listing starts after the highest key seen so far
(ListObjectsV2 StartAfter), which is cheap on layouts whose new keys sort
last (dates, sequence numbers). A full sweep every `full_sweep` seconds
catches everything else: late keys that sort before loaded ones, and
overwrites of existing keys. There is no last-modified cursor: a clock or an
upload that finished late never hides an object.

A full sweep of a large prefix is expensive (100,000 keys took 9-31 s
and 7.5 s of client CPU against SeaweedFS here), so sweeps are spaced at least
SWEEP_SHARE times their own duration apart: on any prefix size, full sweeps
take at most about a tenth of the time, and the incremental listings in
between cost one request when nothing is new.
"""

from __future__ import annotations

import fnmatch
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from pgferry.errors import UsageError
from pgferry.ingest.gate import Gate
from pgferry.ingest.ledger import Listed
from pgferry.stores.s3 import map_error

log = logging.getLogger("pgferry.watch")
#: a full sweep waits at least this many times its own duration after the last
SWEEP_SHARE = 10


@dataclass(frozen=True)
class Prefix:
    bucket: str
    prefix: str

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"


def parse_prefix(uri: str) -> Prefix:
    """`s3://bucket/` or `s3://bucket/some/prefix/` (any key start, not only folders)."""
    if not uri.lower().startswith("s3://"):
        raise UsageError(
            f"{uri!r} is not an S3 prefix", hint="write it as s3://bucket/prefix/ (or s3://bucket/)"
        )
    bucket, _, prefix = uri[5:].partition("/")
    if not bucket:
        raise UsageError(f"{uri!r} names no bucket", hint="write it as s3://bucket/prefix/")
    return Prefix(bucket, prefix)


def matches(key: str, prefix: str, pattern: str | None) -> bool:
    """Whether a listed key is loaded: not a folder marker, and its name
    after the prefix matches the glob (`*` also crosses `/`)."""
    if key.endswith("/"):
        return False
    return pattern is None or fnmatch.fnmatchcase(key[len(prefix) :], pattern)


def list_objects(
    client: Any,
    where: Prefix,
    pattern: str | None,
    start_after: str | None = None,
    also: Callable[[str], bool] | None = None,
) -> Iterator[Listed]:
    """The objects under the prefix that match; `also` lets more keys through
    (ready markers, which the pattern need not match)."""
    args: dict[str, Any] = {"Bucket": where.bucket, "Prefix": where.prefix}
    if start_after:
        args["StartAfter"] = start_after
    try:
        for page in client.get_paginator("list_objects_v2").paginate(**args):
            for obj in page.get("Contents", ()):
                key = str(obj["Key"])
                if matches(key, where.prefix, pattern) or (also is not None and also(key)):
                    yield Listed(
                        key=key,
                        etag=str(obj["ETag"]).strip('"'),
                        size=int(obj["Size"]),
                        last_modified=obj.get("LastModified"),
                    )
    except Exception as e:  # botocore raises several unrelated classes
        raise map_error(e, where.bucket, where.prefix or None) from None


@dataclass
class Lister:
    """Chooses between an incremental listing and a full sweep."""

    client: Any
    where: Prefix
    pattern: str | None
    full_sweep: float
    gate: Gate = field(default_factory=lambda: Gate())
    highest: str | None = None
    _last_full: float = field(default=float("-inf"))
    #: how long the last full sweep took (listing and gate)
    last_full_seconds: float = 0.0

    @property
    def full_every(self) -> float:
        """Seconds between full sweeps: --full-sweep, or longer on a prefix
        so large that a sweep takes more than a tenth of that."""
        return max(self.full_sweep, SWEEP_SHARE * self.last_full_seconds)

    def due_full(self) -> bool:
        return time.monotonic() - self._last_full >= self.full_every

    def listing(self, *, full: bool = False) -> list[Listed]:
        full = full or self.highest is None or self.due_full()
        started = time.monotonic()
        also = self.gate.is_marker if self.gate.active else None
        start = None if full else self.highest
        found = list(list_objects(self.client, self.where, self.pattern, start, also))
        if found:
            top = max(o.key for o in found)
            self.highest = top if self.highest is None else max(self.highest, top)
        admitted = self.admit(found, full=full)
        if full:
            self._last_full = started
            self.last_full_seconds = time.monotonic() - started
            if self.full_every > self.full_sweep:
                log.info(
                    "%s: a full listing of %d keys took %.1f s; the next one in %.0f s",
                    self.where.uri,
                    len(found),
                    self.last_full_seconds,
                    self.full_every,
                )
        return admitted

    def admit(self, found: list[Listed], *, full: bool) -> list[Listed]:
        """Through the gate; with --settle, a released version is checked
        (HEAD) to be still the current one: incremental listings do not show
        a key again, so an overwrite during the settle time is seen here."""
        ready = self.gate.admit(found, full=full)
        if not self.gate.settle:
            return ready
        kept = []
        for obj in ready:
            now = head_listed(self.client, self.where, None, obj.key)
            if now is None:
                continue  # deleted meanwhile
            if now.etag == obj.etag:
                kept.append(obj)
            else:
                self.gate.requeue(now)
        return kept


def head_listed(
    client: Any,
    where: Prefix,
    pattern: str | None,
    key: str,
    also: Callable[[str], bool] | None = None,
) -> Listed | None:
    """The current version of one key named by a notification, as a listing
    would show it; None when it is outside the prefix, does not match, or is
    gone (a hint is only a hint)."""
    if not key.startswith(where.prefix):
        return None
    if not matches(key, where.prefix, pattern) and not (also is not None and also(key)):
        return None
    try:
        head = client.head_object(Bucket=where.bucket, Key=key)
    except Exception as e:  # botocore raises several unrelated classes
        err = map_error(e, where.bucket, key)
        if err.transient:
            raise err from None
        return None
    return Listed(
        key=key,
        etag=str(head["ETag"]).strip('"'),
        size=int(head["ContentLength"]),
        last_modified=head.get("LastModified"),
    )
