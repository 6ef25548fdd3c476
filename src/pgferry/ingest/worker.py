"""`pgferry watch`: discover object versions, load each exactly once.

One discovery loop (the calling thread) records new versions in the ledger;
`workers` threads, each with its own connection, claim pending versions and
load them with the one-object import inside the claim's transaction. Other
processes pointing at the same target share the work through the ledger.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import logging
import queue
import random
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

import psycopg

from pgferry import imports_formats as formats
from pgferry import infer
from pgferry.errors import (
    DataError,
    ObjectChanged,
    ObjectNotFound,
    PgferryError,
    StoreUnreachable,
    TableNotFound,
    TargetUnreachable,
)
from pgferry.imports import ImportResult, ImportSpec, run_import
from pgferry.imports_formats import STRUCTURED
from pgferry.ingest import ledger, rejects
from pgferry.ingest.auth import METRICS_TOKEN_VAR, NOTIFY_TOKEN_VAR, required_token
from pgferry.ingest.discover import Lister, Prefix, head_listed
from pgferry.ingest.gate import Gate
from pgferry.ingest.ledger import Listed
from pgferry.ingest.notify import Hint, NotifyServer
from pgferry.ingest.prefetch import Fetched, Prefetcher
from pgferry.sink.names import parse_table_name, table_ident
from pgferry.sink.options import check_copy_from, parse_copy_options
from pgferry.stores import ObjectRef
from pgferry.stores.s3 import S3Config, make_client, map_error, reuse_clients
from pgferry.target import connect, resolve_target

log = logging.getLogger("pgferry.watch")
#: versions up to this size may share a transaction (--batch) and are fetched ahead
SMALL = 1 << 20
#: small objects fetched ahead of the one being loaded, per worker
AHEAD = 3


@dataclass(frozen=True)
class WatchSpec:
    where: Prefix
    table: str
    pipeline: str
    pattern: str | None = None
    columns: str = ""
    options: str = ""
    create_table: bool = False
    column_types: Mapping[str, str] = field(default_factory=dict)
    sample_rows: int = infer.SAMPLE_ROWS
    content_encoding: str = "auto"
    target: str | None = None
    s3: S3Config = field(default_factory=S3Config)
    interval: float = 5.0
    full_sweep: float = 60.0
    once: bool = False
    workers: int = 1
    on_change: str = "reload"
    max_attempts: int = 5
    retry_delay: float = 2.0
    #: (host, port) of the notification endpoint; None: listings only
    notify_listen: tuple[str, int] | None = None
    #: (host, port) serving Prometheus metrics; None: no metrics
    metrics_listen: tuple[str, int] | None = None
    #: small versions (<= SMALL bytes) loaded in one transaction
    batch: int = 20
    #: abort-file: a bad row fails the object; skip-rows: load the rest, keep it aside
    on_error: str = "abort-file"
    #: ready markers and settling (see gate.py)
    ready_suffix: str | None = None
    ready_marker: str | None = None
    settle: float = 0.0


@dataclass
class Totals:
    loaded: int = 0
    failed: int = 0
    rows: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def backoff(attempt: int, base: float) -> float:
    """Delay before attempt `attempt + 1`: doubling, jittered, capped at 5 min."""
    return float(min(base * 2 ** (attempt - 1), 300.0) * random.uniform(0.8, 1.2))  # noqa: S311 (jitter)


class Watcher:
    def __init__(self, spec: WatchSpec, *, metrics: Any = None) -> None:
        """`metrics`: a Metrics shared by several watchers (run_all); a
        watcher with its own `metrics_listen` makes its own."""
        self.spec = spec
        # a usage mistake is reported once, before any work, not once per object
        check_copy_from(parse_copy_options(spec.options))
        self.stop = threading.Event()
        self.totals = Totals()
        self._target = resolve_target(spec.target)
        self._table = table_ident(parse_table_name(spec.table))
        # wakes idle workers when discovery recorded something
        self._work = threading.Condition()
        self._discovering = True
        #: keys named by notifications (None: wake up, the watcher stops)
        self._hints: queue.Queue[Hint | None] = queue.Queue()
        self._metrics: Any = metrics
        #: an error that stops a worker for good (bad credentials, ...): ends the run
        self._fatal: PgferryError | None = None
        # the endpoints' tokens: a missing one is a usage error before any work
        self._notify_token = (
            required_token(NOTIFY_TOKEN_VAR, "--notify-listen")
            if spec.notify_listen is not None and not spec.once
            else ""
        )
        self._metrics_token = (
            required_token(METRICS_TOKEN_VAR, "--metrics")
            if spec.metrics_listen is not None
            else ""
        )
        #: per worker thread: what to do once its batch commits
        self._local = threading.local()

    # --- the whole run -------------------------------------------------------

    def run(self) -> Totals:
        with self._signals():
            first = connect(self._target, autocommit=True)
            disc: psycopg.Connection[Any] | None = first
            try:
                client = make_client(self.spec.s3)
                self._preflight(first, client)
                ledger.ensure(first)
                lister = Lister(
                    client,
                    self.spec.where,
                    self.spec.pattern,
                    self.spec.full_sweep,
                    Gate(self.spec.ready_suffix, self.spec.ready_marker, self.spec.settle),
                )
                threads = [
                    threading.Thread(target=self._worker, name=f"watch-{i}", daemon=True)
                    for i in range(self.spec.workers)
                ]
                for t in threads:
                    t.start()
                try:
                    with self._notifications(), self._serve_metrics():
                        disc = self._discover(disc, lister)
                finally:
                    with self._work:
                        self._discovering = False
                        self._work.notify_all()
                    for t in threads:
                        t.join()
            finally:
                if disc is not None:
                    disc.close()
        if self._fatal is not None:
            raise self._fatal
        return self.totals

    def _preflight(self, conn: psycopg.Connection[Any], client: Any) -> None:
        """A missing bucket or table is a mistake to report before anything
        is created on the target (the ledger), not a transient failure to
        retry forever."""
        bucket = self.spec.where.bucket
        try:  # what watch does anyway (ListBucket), once, for its error codes
            client.list_objects_v2(Bucket=bucket, Prefix=self.spec.where.prefix, MaxKeys=1)
        except Exception as e:  # botocore's errors, mapped by map_error
            raise map_error(e, bucket, None) from None
        if self.spec.create_table:
            return
        name = self._table.as_string(conn)
        if conn.execute("SELECT to_regclass(%s)", [name]).fetchone() == (None,):
            raise TableNotFound(
                f"table {name} does not exist",
                hint="create it first, or pass --create-table",
                table=self.spec.table,
            )

    def _discover(
        self, conn: psycopg.Connection[Any] | None, lister: Lister
    ) -> psycopg.Connection[Any] | None:
        """List and record until stopped (--once: one full listing); returns
        the connection in use. A lost target is reconnected to, a failed
        listing retried: the next listing finds whatever was missed."""
        failures = 0
        next_listing = 0.0
        hints: list[Hint] = []
        while not self.stop.is_set():
            try:
                if conn is None or conn.closed:
                    conn = connect(self._target, autocommit=True)
                if time.monotonic() >= next_listing or failures:
                    next_listing = time.monotonic() + self.spec.interval
                    found = lister.listing(full=self.spec.once)
                else:
                    found = self._heads(lister, hints)
                new = ledger.record(
                    conn, self.spec.pipeline, self.spec.where.bucket, found, self.spec.on_change
                )
                if new:
                    log.info("%s: %d new object versions", self.spec.where.uri, len(new))
                    self._changed([k for k, status in new if status != "pending"])
                    with self._work:
                        self._work.notify_all()
                failures = 0
            except psycopg.OperationalError as e:
                if self.spec.once:
                    raise TargetUnreachable(
                        f"lost the connection to the target: {_one_line(e)}",
                        hint="check the server, then run again: nothing is loaded twice",
                    ) from None
                failures += 1
                log.warning("target connection lost, reconnecting: %s", _one_line(e))
                if conn is not None:
                    conn.close()
                conn = None
            except PgferryError as e:
                if self.spec.once or not e.transient:
                    raise
                failures += 1
                log.warning("listing %s failed, retrying: %s", self.spec.where.uri, e.message)
            if self._fatal is not None:
                return conn
            if self.spec.once:
                # --once: what is there now, including what is still settling
                release = lister.gate.next_release()
                if release is None or failures:
                    return conn
                hints = self._wait(release)
                continue
            wait = next_listing - time.monotonic() if not failures else min(0.5 * 2**failures, 30)
            release = lister.gate.next_release()
            if release is not None and not failures:
                wait = min(wait, release)
            hints = self._wait(wait)
        return conn

    def _wait(self, seconds: float) -> list[Hint]:
        """Sleep until the next listing is due, a notification names a key of
        ours, or the watcher stops; returns the notified keys."""
        try:
            first = self._hints.get(timeout=max(seconds, 0.001))
        except queue.Empty:
            return []
        got = [first]
        while True:
            try:
                got.append(self._hints.get_nowait())
            except queue.Empty:
                break
        return [h for h in got if h is not None and h[0] == self.spec.where.bucket]

    def _heads(self, lister: Lister, hints: list[Hint]) -> list[Listed]:
        found = []
        also = lister.gate.is_marker if lister.gate.active else None
        for key in dict.fromkeys(k for _, k in hints):  # a duplicated hint is one HEAD
            obj = head_listed(lister.client, self.spec.where, self.spec.pattern, key, also)
            if obj is not None:
                found.append(obj)
        return lister.admit(found, full=False)

    def _changed(self, keys: list[str]) -> None:
        """New versions of loaded keys that --on-change did not queue."""
        for key in keys:
            how = "skipped" if self.spec.on_change == "skip" else "failed"
            log.warning(
                "s3://%s/%s changed after it was loaded: %s (--on-change %s)",
                self.spec.where.bucket,
                key,
                how,
                self.spec.on_change,
            )
        if self.spec.on_change == "error":
            with self.totals.lock:
                self.totals.failed += len(keys)

    # --- one worker ---------------------------------------------------------

    def _worker(self) -> None:
        try:
            with reuse_clients():
                self._work_loop()
        except PgferryError as e:
            self._fatal = self._fatal or e
            self.stop.set()
            self._hints.put(None)

    def _work_loop(self) -> None:
        conn: psycopg.Connection[Any] | None = None
        failures = 0
        ahead = Prefetcher(self.spec.s3, self.spec.s3.region, AHEAD)
        careful = False
        try:
            while not self.stop.is_set():
                try:
                    if conn is None or conn.closed:
                        conn = connect(self._target, autocommit=True)
                    busy = self._load_one(conn, ahead, careful=careful)
                    failures = 0
                    careful = False
                except _Redo:
                    careful = True  # rolled back whole: again, one savepoint per object
                    continue
                except StoreUnreachable as e:
                    # S3 itself is down, not the object: the batch was rolled back
                    # and no attempt is counted, however long the outage lasts
                    failures += 1
                    wait = min(0.5 * 2**failures, 30)
                    log.warning("S3 unreachable, trying again in %.0f s: %s", wait, e.message)
                    self.stop.wait(wait)
                    continue
                except (psycopg.OperationalError, TargetUnreachable) as e:
                    # the target went away: the claim died with the session
                    failures += 1
                    log.warning("target connection lost, reconnecting: %s", _one_line(e))
                    if conn is not None:
                        conn.close()
                    conn = None
                    self.stop.wait(min(0.5 * 2**failures, 30))
                    continue
                if not busy and not self._idle(conn):
                    return
        finally:
            ahead.close()
            if conn is not None:
                conn.close()

    def _idle(self, conn: psycopg.Connection[Any]) -> bool:
        """Nothing claimable now: wait for discovery or for a retry to fall due.
        False when the worker should end (--once drained, or stopping)."""
        due = ledger.next_due(conn, self.spec.pipeline, self.spec.where.bucket)
        with self._work:
            if self.stop.is_set():  # checked under the lock: no wake-up is missed
                return False
            if self.spec.once and not self._discovering:
                if due is None:
                    return False
                # pending rows another session holds are theirs to finish
                if due == 0 and not self._claimable_soon(conn):
                    return False
            wait = min(self.spec.interval, 5.0) if due is None else min(max(due, 0.05), 5.0)
            if self.spec.once:
                wait = min(wait, 0.5)
            self._work.wait(wait)
        return not self.stop.is_set()

    def _claimable_soon(self, conn: psycopg.Connection[Any]) -> bool:
        with conn.transaction() as tx:
            found = ledger.claim(conn, self.spec.pipeline, self.spec.where.bucket)
            raise psycopg.Rollback(tx)  # only looking: release the lock at once
        return found is not None

    def _load_one(self, conn: psycopg.Connection[Any], ahead: Prefetcher, *, careful: bool) -> bool:
        """Claim and load a version, or a batch of small ones, in one
        transaction, each with its own ledger row; False when nothing is due.

        Optimistic first: no savepoint per object (two round trips each, more
        than a small object's COPY). An object that fails inside PostgreSQL
        aborts the transaction: it is rolled back whole, nothing recorded or
        counted (`_Redo`), and the worker's next batch runs `careful`, each
        object in its own savepoint, so a bad object fails alone."""
        after: list[Callable[[], None]] = []  # counts and logs, once committed
        self._local.after = after
        try:
            loaded = self._batch(conn, ahead, careful)
        finally:
            self._local.after = None
        if loaded is None:
            return False
        for fn in after:
            fn()
        for c, result, seconds in loaded:
            if self._metrics is not None:
                self._metrics.loaded(self.spec.pipeline, result.rows, result.bytes, seconds)
            with self.totals.lock:
                self.totals.loaded += 1
                self.totals.rows += result.rows
            log.info("%s: %d rows loaded in %.2f s", _uri(c), result.rows, seconds)
        return True

    def _batch(
        self, conn: psycopg.Connection[Any], ahead: Prefetcher, careful: bool
    ) -> list[tuple[ledger.Claim, ImportResult, float]] | None:
        """The claimed batch's loads, committed; None when nothing was due."""
        spec = self.spec
        loaded: list[tuple[ledger.Claim, ImportResult, float]] = []
        unrecorded: list[tuple[ledger.Claim, ImportResult, float]] = []
        with conn.transaction():
            c = ledger.claim(conn, spec.pipeline, spec.where.bucket)
            if c is None:
                return None
            claims = [c]
            if spec.batch > 1 and c.size <= SMALL:
                # small objects cost more in round trips and commits than in bytes
                claims += ledger.claim_small(conn, c, spec.batch - 1, SMALL)
            for c, opened in self._fetching(claims, ahead):
                done = self._attempt(conn, c, opened, savepoint=careful)
                if done is not None:
                    result, seconds, recorded = done
                    loaded.append((c, result, seconds))
                    if not recorded:
                        unrecorded.append((c, result, seconds))
            # one UPDATE for the batch's loaded rows, in the same transaction
            ledger.finish_loaded(conn, [(c, r.rows, round(t, 3)) for c, r, t in unrecorded])
        return loaded

    def _fetching(
        self, claims: list[ledger.Claim], ahead: Prefetcher
    ) -> Iterator[tuple[ledger.Claim, Future[Fetched] | None]]:
        """Each claim with its small object's GET, started up to AHEAD claims
        early so that S3 answers while the previous object is COPYed; None:
        read it the one-object way (large, empty, Parquet/JSONL)."""
        window: collections.deque[tuple[ledger.Claim, Future[Fetched] | None]] = collections.deque()
        todo = iter(claims)
        try:
            for c in todo:
                window.append((c, self._prefetch(c, ahead)))
                if len(window) > AHEAD:
                    yield window.popleft()
            while window:
                yield window.popleft()
        finally:
            for _, f in window:  # left unread (the transaction failed): drop them
                if f is not None:
                    f.cancel()

    def _prefetch(self, c: ledger.Claim, ahead: Prefetcher) -> Future[Fetched] | None:
        ref = self._ref(c)
        if not 0 < c.size <= SMALL or formats.detect(None, ref, self.spec.options) in STRUCTURED:
            return None
        return ahead.submit(ref, c.size)

    def _ref(self, c: ledger.Claim) -> ObjectRef:
        return ObjectRef(key=c.key, bucket=c.bucket, region=self.spec.s3.region, etag=c.etag)

    def _attempt(
        self,
        conn: psycopg.Connection[Any],
        c: ledger.Claim,
        opened: Future[Fetched] | None,
        *,
        savepoint: bool,
    ) -> tuple[ImportResult, float, bool] | None:
        """One claimed version in the claim's transaction (in a savepoint when
        `savepoint`; without one, a failure inside PostgreSQL raises _Redo); the
        result when loaded (and whether its ledger row says so yet: the
        caller records plain loads in one statement), None when its ledger
        row says what happened. `opened`: its bytes being fetched ahead
        (their errors count here)."""
        started = time.monotonic()
        try:
            reader = opened.result() if opened is not None else None
            if self.spec.create_table:
                # watchers creating the table at once would collide on the catalog
                conn.execute(
                    "SELECT pg_advisory_xact_lock(hashtext(%s))",
                    [f"pgferry.watch.create:{self._table.as_string(conn)}"],
                )
            try:
                result = run_import(
                    self._import_spec(c), conn=conn, reader=reader, savepoint=savepoint
                )
            except PgferryError:
                aborted = conn.info.transaction_status == psycopg.pq.TransactionStatus.INERROR
                if aborted and not savepoint:
                    raise _Redo from None
                raise
        except StoreUnreachable:
            raise  # not this object's fault: the worker rolls back and waits
        except (ObjectChanged, ObjectNotFound) as e:
            # the listed version can never be read again; a newer one is listed anew
            gone = "superseded" if isinstance(e, ObjectChanged) else "gone"
            ledger.finish(conn, c, gone, error=e.message)
            said = e.message

            def went() -> None:
                self._count(gone)
                log.info("%s: %s", _uri(c), said)

            self._later(went)
            return None
        except DataError as e:
            if self.spec.on_error != "skip-rows" or conn.broken or not self._table_exists(conn):
                self._failed(conn, c, e, time.monotonic() - started)
                return None
            return self._skipping(conn, c, started)
        except PgferryError as e:
            if conn.broken or conn.closed:
                raise  # the session (and with it the claims) is gone: reconnect
            # a timeout, deadlock or S3 hiccup on a live session counts as an attempt
            self._failed(conn, c, e, time.monotonic() - started)
            return None
        return result, time.monotonic() - started, False

    def _skipping(
        self, conn: psycopg.Connection[Any], c: ledger.Claim, started: float
    ) -> tuple[ImportResult, float, bool] | None:
        """--on-error skip-rows: the good rows, and the bad ones in the rejects table."""
        s = self.spec
        ref = ObjectRef(key=c.key, bucket=c.bucket, region=s.s3.region, etag=c.etag)
        try:
            out = rejects.load_skipping(
                conn,
                pipeline=s.pipeline,
                ref=ref,
                table=s.table,
                columns=s.columns,
                options=s.options,
                s3=s.s3,
                content_encoding=s.content_encoding,
            )
        except (ObjectChanged, ObjectNotFound) as e:
            gone = "superseded" if isinstance(e, ObjectChanged) else "gone"
            ledger.finish(conn, c, gone, error=e.message)
            return None
        except PgferryError as e:
            if conn.broken or conn.closed:
                raise
            self._failed(conn, c, e, time.monotonic() - started)
            return None
        seconds = time.monotonic() - started
        note = f"{out.rejected} rows rejected (see pgferry.watch_rejects)"
        ledger.finish(
            conn,
            c,
            "loaded",
            rows=out.rows,
            seconds=round(seconds, 3),
            rejected=out.rejected,
            error=note,
        )
        log.warning("%s: %s", _uri(c), note)
        result = ImportResult(
            rows=out.rows, bytes=c.size, bucket=c.bucket, key=c.key, table=s.table
        )
        return result, seconds, True

    def _table_exists(self, conn: psycopg.Connection[Any]) -> bool:
        row = conn.execute(
            "SELECT to_regclass(%s) IS NOT NULL", [self._table.as_string(conn)]
        ).fetchone()
        return bool(row and row[0])

    def _failed(
        self, conn: psycopg.Connection[Any], c: ledger.Claim, e: PgferryError, seconds: float
    ) -> None:
        attempt = c.attempts + 1
        if e.transient and attempt < self.spec.max_attempts:
            delay = backoff(attempt, self.spec.retry_delay)
            ledger.finish(conn, c, "pending", seconds=seconds, error=e.message, retry_in=delay)

            def retried() -> None:
                self._count("retried")
                log.warning(
                    "%s: attempt %d failed, retrying in %.1f s: %s",
                    _uri(c),
                    attempt,
                    delay,
                    e.message,
                )

            self._later(retried)
            return
        ledger.finish(conn, c, "failed", seconds=seconds, error=e.message)

        def failed() -> None:
            self._count("failed")
            with self.totals.lock:
                self.totals.failed += 1
            log.error("%s failed after %d attempt(s): %s", _uri(c), attempt, e.message)

        self._later(failed)

    def _later(self, fn: Callable[[], None]) -> None:
        """Run `fn` once the batch commits (now, outside one)."""
        after: list[Callable[[], None]] | None = getattr(self._local, "after", None)
        if after is None:
            fn()
        else:
            after.append(fn)

    def _import_spec(self, c: ledger.Claim) -> ImportSpec:
        s = self.spec
        return ImportSpec(
            table=s.table,
            bucket=c.bucket,
            key=c.key,
            etag=c.etag,
            columns=s.columns,
            options=s.options,
            s3=s.s3,
            region=s.s3.region,
            content_encoding=s.content_encoding,
            create_table=s.create_table,
            sample_rows=s.sample_rows,
            column_types=dict(s.column_types),
        )

    @contextmanager
    def _serve_metrics(self) -> Iterator[None]:
        if self.spec.metrics_listen is None:
            yield
            return
        from pgferry.ingest.metrics import Metrics  # prometheus_client only when asked

        self._metrics = Metrics([self.spec.pipeline])
        server = self._metrics.serve(self.spec.metrics_listen, self._target, self._metrics_token)
        try:
            yield
        finally:
            server.shutdown()
            server.server_close()

    def _count(self, outcome: str) -> None:
        if self._metrics is not None:
            self._metrics.outcome(self.spec.pipeline, outcome)

    @contextmanager
    def _notifications(self) -> Iterator[None]:
        if self.spec.notify_listen is None or self.spec.once:
            yield
            return
        with NotifyServer(self.spec.notify_listen, self._hints, self._notify_token) as server:
            log.info("notifications: listening on port %d", server.port)
            yield

    # --- signals --------------------------------------------------------------

    def halt(self) -> None:
        """Stop claiming; the objects in flight finish. Safe from a signal handler."""
        self.stop.set()
        self._hints.put(None)
        with self._work:
            self._work.notify_all()

    @contextmanager
    def _signals(self) -> Iterator[None]:
        """SIGTERM/SIGINT: stop claiming; the object in flight commits or rolls
        back, then the process exits 0."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def handler(signum: int, frame: FrameType | None) -> None:
            log.warning("stopping after the objects in flight (signal %d)", signum)
            self.halt()

        old: dict[signal.Signals, Callable[..., Any] | int | None] = {}
        for sig in (signal.SIGTERM, signal.SIGINT):
            old[sig] = signal.signal(sig, handler)
        try:
            yield
        finally:
            for sig, h in old.items():
                signal.signal(sig, h)


class _Redo(Exception):
    """A batch loaded without savepoints hit an error inside PostgreSQL."""


def _uri(c: ledger.Claim) -> str:
    return f"s3://{c.bucket}/{c.key}"


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split())


def run_all(specs: list[WatchSpec]) -> list[Totals]:
    """Several pipelines in one process, one Watcher thread each; a signal
    stops them all (objects in flight finish), a fatal error in one too."""
    if len(specs) == 1:
        return [Watcher(specs[0]).run()]
    notify, listen = specs[0].notify_listen, specs[0].metrics_listen
    shared = None
    if listen is not None:
        from pgferry.ingest.metrics import Metrics  # prometheus_client only when asked

        shared = Metrics([s.pipeline for s in specs])
    # one endpoint and one metrics server for all: each watcher filters the hints
    watchers = [
        Watcher(dataclasses.replace(s, notify_listen=None, metrics_listen=None), metrics=shared)
        for s in specs
    ]
    errors: list[PgferryError] = []

    def one(w: Watcher) -> None:
        try:
            w.run()
        except PgferryError as e:
            errors.append(e)
            for other in watchers:
                other.halt()

    def handler(signum: int, frame: FrameType | None) -> None:
        log.warning("stopping after the objects in flight (signal %d)", signum)
        for w in watchers:
            w.halt()

    threads = [threading.Thread(target=one, args=(w,), daemon=True) for w in watchers]
    old = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    with contextlib.ExitStack() as stack:
        if shared is not None and listen is not None:
            server = shared.serve(
                listen, watchers[0]._target, required_token(METRICS_TOKEN_VAR, "--metrics")
            )
            stack.callback(server.server_close)
            stack.callback(server.shutdown)
        if notify is not None:
            stack.enter_context(
                NotifyServer(
                    notify,
                    _Fanout([w._hints for w in watchers]),
                    required_token(NOTIFY_TOKEN_VAR, "--notify-listen"),
                )
            )
        try:
            for t in threads:
                t.start()
            for t in threads:
                while t.is_alive():
                    t.join(0.5)  # short joins: the main thread must stay free to take signals
        finally:
            for sig, h in old.items():
                signal.signal(sig, h)
    if errors:
        raise errors[0]
    return [w.totals for w in watchers]


@dataclass(frozen=True)
class _Fanout:
    """A notification endpoint's sink feeding several watchers."""

    queues: list[queue.Queue[Hint | None]]

    def put(self, hint: Hint | None) -> None:
        for q in self.queues:
            q.put(hint)
