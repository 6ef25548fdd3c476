"""`--metrics HOST:PORT`: Prometheus metrics of a watcher.

Two kinds: what this process did (objects by outcome, rows, bytes, a
load-time histogram), and what the ledger says at scrape time (versions by
status, backlog, oldest pending age), which is the same whichever of several
watchers is scraped.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from pgferry.errors import PgferryError, UsageError
from pgferry.ingest import ledger
from pgferry.ingest.auth import authorized
from pgferry.target import Target, connect

log = logging.getLogger("pgferry.watch")


class _LedgerCollector(Collector):
    def __init__(self, target: Target, pipelines: list[str]) -> None:
        self.target = target
        self.pipelines = pipelines

    def collect(self) -> Iterator[GaugeMetricFamily]:
        by_status = GaugeMetricFamily(
            "pgferry_watch_ledger_objects",
            "Object versions in the ledger, by status",
            labels=["pipeline", "status"],
        )
        backlog = GaugeMetricFamily(
            "pgferry_watch_backlog_objects",
            "Object versions waiting to be loaded (pending, not being loaded)",
            labels=["pipeline"],
        )
        oldest = GaugeMetricFamily(
            "pgferry_watch_oldest_pending_seconds",
            "Age of the oldest pending object version (0 when none)",
            labels=["pipeline"],
        )
        try:
            conn = connect(self.target, autocommit=True)
        except PgferryError as e:
            log.warning("metrics: cannot read the ledger: %s", e.message)
            return
        try:
            rows = ledger.status(conn) if ledger.exists(conn) else []
        finally:
            conn.close()
        for r in rows:
            name = r["pipeline"]
            if name not in self.pipelines:
                continue
            for status in ("pending", "loading", "loaded", "failed", "skipped", "superseded"):
                by_status.add_metric([name, status], float(r[status]))
            backlog.add_metric([name], float(r["pending"]))
            oldest.add_metric([name], float(r["oldest_pending_seconds"] or 0))
        yield from (by_status, backlog, oldest)


class Metrics:
    """One registry for the pipelines of this process."""

    def __init__(self, pipelines: list[str]) -> None:
        self.pipelines = pipelines
        self.registry = CollectorRegistry()
        self.objects = Counter(
            "pgferry_watch_objects",
            "Object versions this process finished, by outcome",
            ["pipeline", "outcome"],
            registry=self.registry,
        )
        self.rows = Counter(
            "pgferry_watch_rows", "Rows loaded", ["pipeline"], registry=self.registry
        )
        self.bytes = Counter(
            "pgferry_watch_bytes", "Object bytes loaded", ["pipeline"], registry=self.registry
        )
        self.seconds = Histogram(
            "pgferry_watch_load_seconds",
            "Time to load one object version (read, COPY, commit)",
            ["pipeline"],
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
            registry=self.registry,
        )

    def loaded(self, pipeline: str, rows: int, size: int, seconds: float) -> None:
        self.objects.labels(pipeline, "loaded").inc()
        self.rows.labels(pipeline).inc(rows)
        self.bytes.labels(pipeline).inc(size)
        self.seconds.labels(pipeline).observe(seconds)

    def outcome(self, pipeline: str, outcome: str) -> None:
        self.objects.labels(pipeline, outcome).inc()

    def serve(self, listen: tuple[str, int], target: Target, token: str) -> Any:
        """Serve GET /metrics to scrapers that present `token` (auth.py);
        prometheus_client's own server has no authentication."""
        self.registry.register(_LedgerCollector(target, self.pipelines))
        registry = self.registry

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if not authorized(self.headers.get("Authorization"), token):
                    self._reply(401, b"", {"WWW-Authenticate": 'Basic realm="pgferry"'})
                elif self.path.split("?", 1)[0] != "/metrics":
                    self._reply(404, b"", {})
                else:
                    body = generate_latest(registry)
                    self._reply(200, body, {"Content-Type": CONTENT_TYPE_LATEST})

            def _reply(self, code: int, body: bytes, headers: dict[str, str]) -> None:
                self.send_response(code)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # a line per scrape would drown the watcher's own

        try:
            server = ThreadingHTTPServer(listen, Handler)
        except OSError as e:
            raise UsageError(
                f"cannot serve metrics on {listen[0]}:{listen[1]}: {e.strerror}",
                hint="choose another --metrics address",
            ) from None
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server
