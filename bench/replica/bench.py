"""Online migration benchmark: `pgferry replica create` vs `pgferry clone`
(initial copy), catch-up rate after a write burst, and the write-unavailable
window of `replica promote` under a steady write load.

    .venv/bin/python -m bench.replica.bench --rows 4000000 --jobs 4 --rate 500

Starts two PostgreSQL 15 servers with wal_level = logical (fsync off, both
tools alike), generates the database of tests/migrate/dbgen.py on the
source, then:

1. copy: `pgferry clone` and `pgferry replica create` into fresh target
   databases, alternating which goes first, `--reps` times each;
2. catch-up: the subscription is disabled, a burst of updates is written,
   the subscription enabled again; timed until a heartbeat committed after
   the burst shows on the target (MB of WAL applied per second);
3. promote: a writer thread commits single-row inserts and updates at
   `--rate` per second; `replica promote` runs; the window is both what
   promote reports (block to end) and what the writer saw (its last commit
   before the block to the end of promote).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from psycopg import sql

from bench.installed import compile_pgferry
from pgferry.embedded import LocalServer
from tests.migrate.dbgen import generate
from tests.services import FAST, postgres

LOGICAL = {**FAST, "wal_level": "logical"}
PGFERRY = [sys.executable, "-c", "from pgferry.cli import main; main()"]


def create_db(server: LocalServer, name: str) -> str:
    with psycopg.connect(server.conninfo(), autocommit=True) as c:
        c.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        c.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return server.conninfo(name)


def pgferry(*args: str) -> tuple[float, str]:
    t0 = time.monotonic()
    proc = subprocess.run([*PGFERRY, *args], capture_output=True, text=True, check=False)
    secs = time.monotonic() - t0
    if proc.returncode != 0:
        sys.exit(f"pgferry {args[0]} failed ({proc.returncode}): {proc.stderr[-3000:]}")
    return secs, proc.stdout


def one(url: str, query: str, params: list[object] | None = None) -> object:
    with psycopg.connect(url, autocommit=True) as c:
        row = c.execute(query, params).fetchone()
        return row[0] if row else None


def db_size(url: str) -> int:
    return int(one(url, "SELECT pg_database_size(current_database())"))  # type: ignore[arg-type]


def wait_caught_up(source: str, target: str, timeout: float = 3600) -> float:
    """Until a heartbeat committed now on the source is visible on the
    target: apply is in commit order, so the burst before it is applied.
    (The slot's confirmed_flush_lsn is no such proof: while a streamed
    transaction is still being applied, the subscriber may report as
    flushed what it has only received.)"""
    t0 = time.monotonic()
    q = "SELECT n FROM pgferry_replica.heartbeat WHERE name = 'bench'"
    with psycopg.connect(source, autocommit=True) as c:
        row = c.execute(
            "UPDATE pgferry_replica.heartbeat SET n = n + 1 WHERE name = 'bench' RETURNING n"
        ).fetchone()
        assert row is not None
        marker = int(row[0])
    while int(one(target, q) or 0) < marker:  # type: ignore[call-overload]
        if time.monotonic() - t0 > timeout:
            sys.exit("catch-up timed out")
        time.sleep(0.02)
    return time.monotonic() - t0


class Writer(threading.Thread):
    """Single-row transactions at `rate` per second, until refused."""

    def __init__(self, url: str, rate: int) -> None:
        super().__init__(daemon=True)
        self.url, self.rate = url, rate
        self.commits: list[float] = []
        self.stop = threading.Event()

    def run(self) -> None:
        period = 1.0 / self.rate
        nxt = time.monotonic()
        i = 0
        while not self.stop.is_set():
            try:
                with psycopg.connect(self.url, autocommit=True) as c:
                    while not self.stop.is_set():
                        i += 1
                        if i % 2:
                            c.execute(
                                "INSERT INTO app.orders (user_id, total, placed_at)"
                                " VALUES (1, 1, now())"
                            )
                        else:
                            c.execute("UPDATE app.orders SET note = %s WHERE id = %s", [str(i), i])
                        self.commits.append(time.monotonic())
                        nxt += period
                        delay = nxt - time.monotonic()
                        if delay > 0:
                            time.sleep(delay)
            except psycopg.errors.ReadOnlySqlTransaction:
                return
            except psycopg.OperationalError:
                time.sleep(0.01)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=4_000_000, help="rows of app.events")
    ap.add_argument("--jobs", type=int, default=4)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--rate", type=int, default=500, help="writes per second at promote")
    ap.add_argument("--out", type=Path, default=Path(__file__).with_name("RESULTS.md"))
    args = ap.parse_args()
    compile_pgferry()
    state = Path(
        os.environ.setdefault("PGFERRY_STATE_DIR", f"/tmp/pgferry-bench-state-{os.getpid()}")
    )
    servers = []
    for _ in range(2):
        s = postgres("15", start=False)
        s.start(LOGICAL)
        servers.append(s)
    src_server, dst_server = servers
    try:
        source = create_db(src_server, "bench")
        t0 = time.monotonic()
        generate(source, args.rows)
        gen = time.monotonic() - t0
        size = db_size(source)
        print(f"source: {size / 2**20:.0f} MiB generated in {gen:.0f}s", flush=True)
        copy: dict[str, list[float]] = {"clone": [], "replica create": []}
        order = ["clone", "replica create"]
        steps: list[list[list[object]]] = []
        for rep in range(args.reps):
            for tool in order if rep % 2 == 0 else order[::-1]:
                target = create_db(dst_server, "copy")
                with psycopg.connect(src_server.conninfo(), autocommit=True) as c:
                    c.execute("CHECKPOINT")
                if tool == "clone":
                    secs, out = pgferry(
                        "clone",
                        "--source",
                        source,
                        "--target",
                        target,
                        "--jobs",
                        str(args.jobs),
                        "-q",
                    )
                else:
                    secs, out = pgferry(
                        "replica",
                        "create",
                        "--source",
                        source,
                        "--target",
                        target,
                        "--name",
                        "bench",
                        "--jobs",
                        str(args.jobs),
                        "--replica-identity-full",
                        "--json",
                    )
                    steps.append(json.loads(out)["steps"])
                    pgferry("replica", "drop", "--name", "bench")
                copy[tool].append(secs)
                print(f"{tool}: {secs:.1f}s", flush=True)

        # catch-up and promote on one more replica
        target = create_db(dst_server, "live")
        pgferry(
            "replica",
            "create",
            "--source",
            source,
            "--target",
            target,
            "--name",
            "bench",
            "--jobs",
            str(args.jobs),
            "--replica-identity-full",
            "-q",
        )
        with psycopg.connect(target, autocommit=True) as c:
            c.execute("ALTER SUBSCRIPTION pgferry_bench DISABLE")
        with psycopg.connect(source, autocommit=True) as c:
            start_lsn = c.execute("SELECT pg_current_wal_lsn()").fetchone()[0]  # type: ignore[index]
            c.execute("UPDATE app.events SET amount = amount + 1 WHERE id % 4 = 0")
            end_lsn = str(c.execute("SELECT pg_current_wal_lsn()").fetchone()[0])  # type: ignore[index]
            burst = int(
                c.execute("SELECT pg_wal_lsn_diff(%s, %s)", [end_lsn, start_lsn]).fetchone()[0]
            )  # type: ignore[index]
        with psycopg.connect(target, autocommit=True) as c:
            c.execute("ALTER SUBSCRIPTION pgferry_bench ENABLE")
        t_enable = time.monotonic()
        wait_caught_up(source, target)
        catch = time.monotonic() - t_enable
        rate_mb = burst / 2**20 / catch
        print(
            f"catch-up: {burst / 2**20:.0f} MiB of WAL in {catch:.1f}s = {rate_mb:.1f} MiB/s",
            flush=True,
        )

        writer = Writer(source, args.rate)
        writer.start()
        time.sleep(10)  # steady state
        _, st = pgferry("replica", "status", "--name", "bench", "--json")
        lag = json.loads(st)
        print(f"before promote: lag {lag['lag_bytes']} bytes, {lag['lag_seconds']} s", flush=True)
        before = len(writer.commits)
        t_start = time.monotonic()
        _, out = pgferry("replica", "promote", "--name", "bench", "--json", "--timeout", "120s")
        t_end = time.monotonic()
        writer.stop.set()
        writer.join(30)
        result = json.loads(out)
        achieved = (before - len([t for t in writer.commits if t < t_start - 10])) / 10
        last = max((t for t in writer.commits if t <= t_end), default=t_start)
        seen = t_end - last
        print(
            f"promote: window {result['write_unavailable_seconds']}s (promote's own),"
            f" {seen:.2f}s seen by the writer at {achieved:.0f} writes/s",
            flush=True,
        )
        pgferry("replica", "drop", "--name", "bench")
        report(args, size, copy, steps, burst, catch, lag, result, seen, achieved)
    finally:
        for s in servers:
            s.destroy()
        for p in state.glob("*.json"):
            p.unlink()


def report(
    args: argparse.Namespace,
    size: int,
    copy: dict[str, list[float]],
    steps: list[list[list[object]]],
    burst: int,
    catch: float,
    lag: dict[str, object],
    promote: dict[str, object],
    seen: float,
    achieved: float,
) -> None:
    med = {k: sorted(v)[len(v) // 2] for k, v in copy.items()}
    ratio = med["clone"] / med["replica create"]
    load = os.getloadavg()[0]
    lines = [
        "# Online migration benchmark",
        "",
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.node()}, load {load:.1f} at the end;"
        f" PostgreSQL 15 -> 15, wal_level = logical, fsync off; database {size / 2**20:.0f} MiB"
        f" (tests/migrate/dbgen.py, {args.rows} rows in app.events); --jobs {args.jobs}.",
        "",
        "| measure | value |",
        "|---|---|",
        f"| pgferry clone (s) | {' '.join(f'{x:.1f}' for x in copy['clone'])} |",
        f"| pgferry replica create (s) | {' '.join(f'{x:.1f}' for x in copy['replica create'])} |",
        f"| initial copy, throughput create/clone (median) | **{ratio:.3f}** (target >= 0.9) |",
        f"| replica create steps (s), per run | {' / '.join(', '.join(f'{n} {x}' for n, x in r) for r in steps)} |",  # noqa: E501
        f"| lag before promote (status) | {lag['lag_bytes']} bytes, {lag['lag_seconds']} s |",
        f"| catch-up after a burst | {burst / 2**20:.0f} MiB of WAL in {catch:.1f} s ="
        f" **{burst / 2**20 / catch:.1f} MiB/s** |",
        f"| write load at promote | {achieved:.0f} commits/s (asked {args.rate}) |",
        f"| write-unavailable window, promote's report |"
        f" **{promote['write_unavailable_seconds']} s** |",
        f"| the same seen by the writer (last commit to promote's end) | {seen:.2f} s |",
        f"| promote steps (s) | {', '.join(f'{n} {s}' for n, s in promote['steps'])} |",  # type: ignore[attr-defined]
        "",
    ]
    text = "\n".join(lines)
    print(text)
    args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
