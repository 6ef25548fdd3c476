"""One large object over N connections (`--jobs N` on a single object).

The object is cut into N byte ranges; each connection reads its range with
ranged reads and COPYs it in its own transaction, and the N transactions
end together by two-phase commit (as many.py does for many objects).

Where a range starts is a guess: the first line end at or after its cut.
Each reader starts at a true row start (the first one at byte 0, and each
next one is checked) and tracks CSV quotes through its range, so it knows
the true row end past the next cut. If that is not where the next reader
started, a quoted field holds a line break at the cut: the parallel load is
rolled back and the object loads in one stream, with a warning saying why.
Text format has no such case (COPY escapes line breaks in data).

Not split (one stream, with a warning saying why): compressed objects,
formats other than csv and text, stdin, --on-error skip-rows, a table that
must be created or emptied first, a server without prepared transactions.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import psycopg

from pgferry import imports
from pgferry.decode.compression import sniff
from pgferry.decode.formats import UTF8_BOM, check_head
from pgferry.errors import PgferryError
from pgferry.fetch import HEAD_BYTES, open_object
from pgferry.sink.copyin import copy_in
from pgferry.sink.options import CopyOptions
from pgferry.stores import STDIN, ObjectRef
from pgferry.stores.parts import row_ends
from pgferry.stores.s3 import S3Reader
from pgferry.target import connect, resolve_target

log = logging.getLogger("pgferry.import")

PIECE = 1 << 20
#: bytes read past a range's expected end before asking again
STEP = 4 << 20
#: below this many bytes per connection one stream is as fast
MIN_RANGE = 8 << 20


class _Stopped(Exception):
    """Another range failed: this one stops (its COPY is aborted)."""


@dataclass
class _Range:
    index: int
    cut: int  # where the range is cut (its start is the first row start at or after it)
    next_cut: int | None  # None: the last range, read to the end
    start: int = -1  # the row start this reader used
    end: int = -1  # the row end it stopped at (exclusive)
    rows: int = 0
    error: BaseException | None = None


def run_parallel(
    spec: imports.ImportSpec,
    jobs: int,
    *,
    on_bytes: Callable[[int, int], None] | None = None,
) -> imports.ImportResult:
    """Import one object over `jobs` connections when it can be split, else
    in one stream (see the module doc)."""
    ref = spec.object_ref()
    started = time.monotonic()
    why, size, etag, options = _splittable(spec, ref, jobs)
    if why:
        if why != "small":
            log.warning("--jobs %d: %s; loading %s in one stream", jobs, why, ref.uri)
        return imports.run_import(spec, on_bytes=on_bytes)
    assert options is not None
    target = resolve_target(spec.target)
    conns = [connect(target) for _ in range(jobs)]
    try:
        step = size // jobs
        ranges = [
            _Range(i, i * step, (i + 1) * step if i < jobs - 1 else None) for i in range(jobs)
        ]
        reads = _Progress(size, on_bytes)
        gid = f"pgferry-{uuid.uuid4().hex[:16]}"
        for i, c in enumerate(conns):
            c.tpc_begin(f"{gid}-{i}")
        stop = threading.Event()
        threads = [
            threading.Thread(
                target=_work,
                args=(spec, ref, etag, options, r, c, stop, reads),
                daemon=True,
            )
            for r, c in zip(ranges, conns, strict=True)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        bad = next(
            (r for r in ranges if r.error is not None and not isinstance(r.error, _Stopped)),
            None,
        )
        failed = bad.error if bad is not None else None
        if bad is not None and bad.index > 0 and options.format == "csv":
            # a CSV range that fails may have started inside a quoted field
            # (the range before it stopped before it could tell): one stream
            # decides, and names a bad row by its true line
            for c in conns:
                _rollback(c)
            log.warning(
                "--jobs %d: the range of %s from byte %d failed (a quoted line break at its "
                "cut, or a bad row); loading it in one stream",
                jobs,
                ref.uri,
                bad.start,
            )
            return imports.run_import(spec, on_bytes=on_bytes)
        misaligned = next(
            (
                ranges[i + 1].start
                for i in range(jobs - 1)
                if failed is None and ranges[i].end != ranges[i + 1].start
            ),
            None,
        )
        if failed is not None or misaligned is not None:
            for c in conns:
                _rollback(c)
            if failed is None:
                log.warning(
                    "--jobs %d: %s has a quoted line break near byte %s, so it cannot be cut "
                    "into ranges at line ends; loading it in one stream",
                    jobs,
                    ref.uri,
                    misaligned,
                )
                for c in conns:
                    c.close()
                conns = []
                return imports.run_import(spec, on_bytes=on_bytes)
            raise failed
        for c in conns:
            c.tpc_prepare()
        for c in conns:
            c.tpc_commit()
        log.info("%s: loaded over %d connections", ref.uri, jobs)
    finally:
        for c in conns:
            c.close()
    return imports.ImportResult(
        rows=sum(r.rows for r in ranges),
        bytes=size,
        bucket=ref.bucket,
        key=ref.key,
        table=spec.table,
        seconds=round(time.monotonic() - started, 3),
        options=options.render().as_string(None),
    )


def _splittable(
    spec: imports.ImportSpec, ref: ObjectRef, jobs: int
) -> tuple[str | None, int, str | None, CopyOptions | None]:
    """(why not, size, etag, COPY options): `why` None means split."""
    from pgferry import imports_formats as formats

    if ref.is_local and ref.key == STDIN:
        return "stdin cannot be read in ranges", 0, None, None
    fmt = formats.detect(spec.format, ref, spec.options)
    if fmt in formats.STRUCTURED:
        return f"{fmt} loads in one stream", 0, None, None
    if fmt:
        spec = formats.with_copy_format(spec, fmt, ref)
    plan = imports._plan(spec, ref)
    if plan.options.format not in ("csv", "text"):
        return f"format {plan.options.format} cannot be cut at row ends", 0, None, None
    if plan.policy.skipping:
        return "--on-error skip-rows loads in one stream", 0, None, None
    if (spec.encoding or "").lower() == "auto":
        return "--encoding auto loads in one stream", 0, None, None
    if plan.mode != "append":
        return f"--mode {plan.mode} empties the table in one transaction", 0, None, None
    reader = open_object(ref, spec.s3)
    try:
        size = reader.size
        etag = getattr(reader, "etag", None)
        if isinstance(reader, S3Reader):
            head = reader.first_bytes(HEAD_BYTES)  # not chunks(): it reads megabytes ahead
        else:
            head = next(reader.chunks(), b"")[:HEAD_BYTES]
        encoding = reader.content_encoding
    finally:
        reader.close()
    if spec.content_encoding not in ("auto", "none") or (
        spec.content_encoding == "auto" and (encoding or sniff(head))
    ):
        return "a compressed object cannot be read in ranges", size, etag, None
    if size < jobs * MIN_RANGE:
        return "small", size, etag, None
    check_head(head, ref, codec=None, requested=spec.content_encoding, fmt=plan.options.format)
    with connect(resolve_target(spec.target)) as conn:
        exists = imports._table_exists(conn, plan.table)
        row = conn.execute("SHOW max_prepared_transactions").fetchone()
        prepared = int(row[0]) if row else 0
        options = plan.options
        if not spec.options.strip():
            options, note = imports._options_from_name(
                ref, head, options, imports._column_names(conn, plan)
            )
            if note:
                log.warning("%s", note)
        conn.rollback()
    from pgferry.decode import charset

    options = charset.apply(options, spec.encoding)
    if not exists:
        return "the table must be created in one transaction first", size, etag, None
    if prepared < jobs:
        return (
            f"loading over {jobs} connections all or nothing needs two-phase commit, and the "
            f"target's max_prepared_transactions is {prepared} (set it to at least {jobs})",
            size,
            etag,
            None,
        )
    return None, size, etag, options


class _Progress:
    def __init__(self, total: int, report: Callable[[int, int], None] | None) -> None:
        self.total, self.report, self.done = total, report, 0
        self.lock = threading.Lock()

    def add(self, n: int) -> None:
        if self.report is not None:
            with self.lock:
                self.done += n
                done = self.done
            self.report(done, self.total)


def _work(
    spec: imports.ImportSpec,
    ref: ObjectRef,
    etag: str | None,
    options: CopyOptions,
    r: _Range,
    conn: psycopg.Connection[Any],
    stop: threading.Event,
    reads: _Progress,
) -> None:
    opts = options if r.index == 0 else CopyOptions({**options.values, "header": False})
    plan = imports._plan(replace(spec, options=""), ref)
    try:
        imports._join_implicit_transaction(conn)
        stream = _range_stream(spec, ref, etag, options, r, stop, reads)
        rows, _ = copy_in(conn, plan.table, plan.columns, opts, stream, ref=ref)
        r.rows = rows
    except PgferryError as e:
        if e.line is not None and r.index > 0:
            # COPY counted lines from this range's start
            e.what = e.what.replace(
                f" line {e.line}", f" (the range from byte {r.start}) line {e.line}", 1
            )
        r.error = e
        stop.set()
    except BaseException as e:  # every failure goes back to the caller's thread
        r.error = e
        stop.set()


def _range_stream(
    spec: imports.ImportSpec,
    ref: ObjectRef,
    etag: str | None,
    options: CopyOptions,
    r: _Range,
    stop: threading.Event,
    reads: _Progress,
) -> Iterator[bytes]:
    """The bytes of range `r`: from its first row start to the row end at or
    after the next cut (tracked through CSV quotes)."""
    ends = row_ends(options)
    # a range starts after the first line end at or after byte cut - 1, the
    # same place where the range before it ends when the cut is clean
    pos = max(0, r.cut - 1)
    first = True
    for chunk in _read_from(spec, ref, etag, pos, r.next_cut):
        if stop.is_set():
            raise _Stopped()
        reads.add(len(chunk))
        if first and r.index > 0:
            # the first line end at or after the cut starts this range
            i = chunk.find(b"\n")
            if i < 0:
                pos += len(chunk)
                continue
            chunk, pos = chunk[i + 1 :], pos + i + 1
            first = False
            r.start = pos
        elif first:
            first = False
            r.start = 0
            if chunk.startswith(UTF8_BOM) and imports._utf8(options):
                chunk, pos = chunk[len(UTF8_BOM) :], pos + len(UTF8_BOM)
        if r.next_cut is not None and pos + len(chunk) > r.next_cut - 1:
            cut = ends.first_end(chunk, max(0, r.next_cut - 1 - pos))
            if cut >= 0:
                r.end = pos + cut
                yield chunk[:cut]
                return
        ends.advance(chunk)
        pos += len(chunk)
        yield chunk
    r.end = pos


def _read_from(
    spec: imports.ImportSpec,
    ref: ObjectRef,
    etag: str | None,
    offset: int,
    until: int | None = None,
) -> Iterator[bytes]:
    """Bytes from `offset` on (see _RangeReader for S3)."""
    if ref.is_local:
        with open(ref.key, "rb") as f:
            f.seek(offset)
            while piece := f.read(PIECE):
                yield piece
        return
    reader = _RangeReader(ref, spec.s3, offset, until, etag)
    try:
        yield from reader.chunks()
    finally:
        reader.close()


class _RangeReader(S3Reader):
    """The streaming S3 reader (a thread fetching ahead of COPY, retries,
    If-Match), from `start` on: ranges end a little past `until` (where the
    range is expected to end), then go on in STEP pieces until closed, so
    the server never sends much that this reader does not take."""

    def __init__(
        self, ref: ObjectRef, config: Any, start: int, until: int | None, etag: str | None
    ) -> None:
        super().__init__(ref, config)
        self.start, self.until = start, until
        if etag:
            self.etag = etag  # every range pinned to the version sized up first

    def _produce(self, pieces: Any) -> None:
        offset, until = self.start, self.until
        try:
            while offset < self.size and not self._stop.is_set():
                end = self.size - 1
                if until is not None:
                    end = min(end, max(until, offset) + STEP - 1)
                offset = self._fetch_range(offset, end, pieces)
                until = None if until is None else offset
            self._put(pieces, None)
        except BaseException as e:  # handed to the consumer, like the parent's
            self._put(pieces, e)


def _rollback(conn: psycopg.Connection[Any]) -> None:
    try:
        conn.tpc_rollback()
    except psycopg.Error as e:  # the server rolls back on disconnect anyway
        log.info("rollback failed: %s", e)
