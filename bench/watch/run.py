"""Benchmark: `pgferry watch` throughput and arrival-to-commit latency.

1. backlog: N small objects (1-100 KiB) already there, `watch --once --workers 4`:
   objects/s and MB/s; the same for a few large objects.
2. latency: objects arrive at a steady rate while a watcher runs, found by
   listing (`--interval 1s`) or by notifications (a POST per object, as an SNS
   subscription or SeaweedFS webhook would send): p50/p95 from the end of the
   PUT to the ledger's commit time, and the watcher's peak RSS.

Run from the repository root:  .venv/bin/python bench/watch/run.py [--small 10000]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench.installed import compile_pgferry  # noqa: E402
from pgferry.embedded import free_port  # noqa: E402
from tests.services import FAST, SeaweedS3, postgres  # noqa: E402

PGFERRY = str(Path(sys.executable).parent / "pgferry")
MB = 1 << 20


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def body(key: str, size: int, rng: random.Random) -> bytes:
    """CSV rows (key, n, filler) adding up to about `size` bytes."""
    out, n, total = [], 0, 0
    while total < size:
        line = f"{key},{n},{rng.getrandbits(64):016x}{'x' * rng.randint(10, 80)}\n"
        out.append(line)
        total += len(line)
        n += 1
    return "".join(out).encode()


def put_many(client: Any, bucket: str, prefix: str, sizes: list[int], seed: int) -> int:
    rng = random.Random(seed)
    total = 0
    for i, size in enumerate(sizes):
        data = body(f"{prefix}{i}", size, rng)
        client.put_object(Bucket=bucket, Key=f"{prefix}{i:06}.csv", Body=data)
        total += len(data)
    return total


def backlog(
    env: dict[str, str],
    url: str,
    client: Any,
    bucket: str,
    sizes: list[int],
    workers: int,
    label: str,
    batch: int = 1,
) -> dict[str, Any]:
    prefix = f"{label}/"
    size = put_many(client, bucket, prefix, sizes, seed=len(sizes))
    table = label.replace("-", "_")
    with psycopg.connect(url, autocommit=True) as c:
        c.execute(f"CREATE TABLE {table} (k text, n int, filler text)")
    started = time.monotonic()
    p = subprocess.run(
        [
            "/usr/bin/time",
            "-f",
            "%M",
            PGFERRY,
            "watch",
            f"s3://{bucket}/{prefix}",
            "-t",
            table,
            "--options",
            "(format csv)",
            "--once",
            "--workers",
            str(workers),
            "--batch",
            str(batch),
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    seconds = time.monotonic() - started
    rss_kib = int(p.stderr.strip().splitlines()[-1])
    result = {
        "case": label,
        "objects": len(sizes),
        "mib": round(size / MB, 1),
        "workers": workers,
        "batch": batch,
        "seconds": round(seconds, 2),
        "objects_per_s": round(len(sizes) / seconds, 1),
        "mib_per_s": round(size / MB / seconds, 1),
        "peak_rss_mib": round(rss_kib / 1024, 1),
    }
    log(json.dumps(result))
    return result


def latency(
    env: dict[str, str],
    url: str,
    client: Any,
    bucket: str,
    *,
    count: int,
    rate: float,
    notify: bool,
    workers: int,
) -> dict[str, Any]:
    label = "notify" if notify else "listing"
    prefix = f"lat-{label}/"
    table = f"lat_{label}"
    with psycopg.connect(url, autocommit=True) as c:
        c.execute(f"CREATE TABLE {table} (k text, n int, filler text)")
    port = free_port()
    args = [
        PGFERRY,
        "watch",
        f"s3://{bucket}/{prefix}",
        "-t",
        table,
        "--options",
        "(format csv)",
        "--workers",
        str(workers),
        "--interval",
        "30s" if notify else "1s",
        "--full-sweep",
        "1h" if notify else "1m",
    ]
    token = "bench-notify-token-0123456789"
    if notify:
        args += ["--notify-listen", f"127.0.0.1:{port}"]
        env = dict(env, PGFERRY_NOTIFY_TOKEN=token)
    w = subprocess.Popen(args, env=env, stderr=subprocess.PIPE, text=True)
    rng = random.Random(7)
    arrived: dict[str, float] = {}
    try:
        time.sleep(3)  # started, first listing done
        for i in range(count):
            key = f"{prefix}{i:06}.csv"
            client.put_object(
                Bucket=bucket, Key=key, Body=body(key, rng.randint(1024, 100 * 1024), rng)
            )
            arrived[key] = time.time()
            if notify:
                event = {"event_type": "create", "key": f"/buckets/{bucket}/{key}"}
                req = urllib.request.Request(
                    f"http://127.0.0.1:{port}/",
                    data=json.dumps(event).encode(),
                    headers={"Authorization": f"Bearer {token}"},
                )
                urllib.request.urlopen(req, timeout=10).close()  # noqa: S310 (loopback)
            time.sleep(max(0.0, 1 / rate - 0.002))
        deadline = time.monotonic() + 120
        with psycopg.connect(url, autocommit=True) as c:
            while time.monotonic() < deadline:
                got = c.execute(
                    "SELECT count(*) FROM pgferry.watch_files WHERE pipeline = %s "
                    "AND status = 'loaded'",
                    [table],
                ).fetchone()
                if got and got[0] >= count:
                    break
                time.sleep(0.2)
            done = dict(
                c.execute(
                    "SELECT key, extract(epoch FROM finished_at) FROM pgferry.watch_files "
                    "WHERE pipeline = %s AND status = 'loaded'",
                    [table],
                ).fetchall()
            )
        rss_kib = int(Path(f"/proc/{w.pid}/status").read_text().split("VmHWM:")[1].split()[0])
    finally:
        w.send_signal(signal.SIGTERM)
        w.communicate(timeout=60)
    lat = sorted(float(done[k]) - t for k, t in arrived.items() if k in done)
    result = {
        "case": f"latency, {label}",
        "objects": count,
        "loaded": len(lat),
        "rate_per_s": rate,
        "workers": workers,
        "p50_s": round(statistics.median(lat), 3),
        "p95_s": round(lat[int(0.95 * (len(lat) - 1))], 3),
        "max_s": round(lat[-1], 3),
        "peak_rss_mib": round(rss_kib / 1024, 1),
    }
    log(json.dumps(result))
    return result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--small", type=int, default=2000, help="small objects (1-100 KiB)")
    ap.add_argument("--large", type=int, default=5, help="large objects")
    ap.add_argument("--large-mib", type=int, default=20)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--batch", default="1,20", help="--batch values for the small backlog")
    ap.add_argument("--latency-objects", type=int, default=200)
    ap.add_argument("--rate", type=float, default=10.0, help="arrivals per second")
    a = ap.parse_args()
    compile_pgferry()
    s3 = SeaweedS3().start()
    pg = postgres("15", start=False)
    pg.start(FAST)
    try:
        url = pg.conninfo("postgres")
        client = s3.client()
        client.create_bucket(Bucket="bench-watch")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "PG"))}
        env.update(
            s3.env(),
            PGFERRY_TARGET=url,
            AWS_CONFIG_FILE="/nonexistent",
            AWS_SHARED_CREDENTIALS_FILE="/nonexistent",
            AWS_EC2_METADATA_DISABLED="true",
        )
        log(f"load average at start: {os.getloadavg()}")
        rng = random.Random(1)
        sizes = [rng.randint(1024, 100 * 1024) for _ in range(a.small)]
        results = [
            backlog(
                env,
                url,
                client,
                "bench-watch",
                sizes,
                a.workers,
                f"small-b{batch}",
                batch,
            )
            for batch in map(int, a.batch.split(","))
        ]
        if a.large:
            large = [a.large_mib * MB] * a.large
            results.append(backlog(env, url, client, "bench-watch", large, a.workers, "large"))
        for notify in (False, True) if a.latency_objects else ():
            results.append(
                latency(
                    env,
                    url,
                    client,
                    "bench-watch",
                    count=a.latency_objects,
                    rate=a.rate,
                    notify=notify,
                    workers=a.workers,
                )
            )
        print(
            json.dumps(
                {
                    "date": datetime.now().isoformat(timespec="seconds"),
                    "machine": f"{platform.machine()}, {os.cpu_count()} cpus",
                    "python": platform.python_version(),
                    "results": results,
                },
                indent=1,
            )
        )
    finally:
        s3.stop()
        pg.destroy()


if __name__ == "__main__":
    main()
