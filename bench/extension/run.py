"""Import a ~200 MB CSV object: CREATE EXTENSION aws_s3 (server-side fetch)
vs pgferry's client-side import, on PostgreSQL 15 and 18, against a local
SeaweedFS. The extension streams: fetcher -> file_fdw foreign table -> INSERT
as the caller; the temp bytes the database wrote during its import are shown
(0 expected). For reference, COPY of a local file straight into the table, and
the same through a temp table + INSERT ... SELECT (the extension's former
design).

    .venv/bin/python bench/extension/run.py [--mb 200] [--versions 15,18] [--runs 2]

Prints a Markdown table (paste into RESULTS.md).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from pgferry.imports import import_from_s3
from pgferry.stores.s3 import S3Config
from tests.extension.conftest import _start
from tests.services import ACCESS_KEY, REGION, SECRET_KEY, SeaweedS3

TABLE = "CREATE TABLE {t} (id bigint, name text, amount numeric(12,2), seen timestamptz, note text)"


def make_file(path: Path, mb: int) -> int:
    row = "{i},name-{i},{a}.{c:02d},2024-05-{d:02d} 12:34:56+00,some free text for row {i}\n"
    with path.open("w") as f:
        i = 0
        while f.tell() < mb << 20:
            f.write(
                "".join(
                    row.format(i=j, a=j % 99999, c=j % 100, d=j % 28 + 1)
                    for j in range(i, i + 10000)
                )
            )
            i += 10000
    return i


def temp_bytes(conn: psycopg.Connection[Any]) -> int:
    """The database's temp_bytes counter, after this session's own flush."""
    time.sleep(1.2)  # other backends flush their statistics at most once a second
    conn.execute("SELECT pg_stat_force_next_flush(), pg_stat_clear_snapshot()")
    row = conn.execute(
        "SELECT temp_bytes FROM pg_stat_database WHERE datname = current_database()"
    ).fetchone()
    return int(row[0]) if row else 0


def timed(fn: Any) -> float:
    start = time.monotonic()
    fn()
    return time.monotonic() - start


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=int, default=200)
    ap.add_argument("--versions", default="15,18")
    ap.add_argument("--runs", type=int, default=2)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="pgferry-bench-"))
    work.chmod(0o755)
    data = work / "data.csv"
    rows = make_file(data, args.mb)
    data.chmod(0o644)
    size = data.stat().st_size
    s3 = SeaweedS3().start()
    results: list[tuple[str, str, float, int]] = []
    temp_written: list[tuple[str, int]] = []
    try:
        client = s3.client()
        client.create_bucket(Bucket="bench")
        client.upload_file(str(data), "bench", "data.csv")
        cfg = S3Config(
            region=REGION, endpoint_url=s3.endpoint, access_key=ACCESS_KEY, secret_key=SECRET_KEY
        )
        for version in args.versions.split(","):
            ext = _start(version, s3)
            try:
                db = ext.conninfo()
                with psycopg.connect(db, autocommit=True) as conn:
                    conn.execute("CREATE EXTENSION aws_s3 CASCADE")
                    for run in range(args.runs):
                        t = f"e{run}"
                        conn.execute(TABLE.format(t=t))
                        temp_before = temp_bytes(conn)
                        secs = timed(
                            lambda t=t: conn.execute(
                                "SELECT aws_s3.table_import_from_s3(%s, '', '(format csv)', "
                                "'bench', 'data.csv', '')",
                                [t],
                            )
                        )
                        results.append((version, "extension (server-side fetch)", secs, run))
                        temp_written.append((version, temp_bytes(conn) - temp_before))
                        t = f"c{run}"
                        conn.execute(TABLE.format(t=t))
                        secs = timed(
                            lambda t=t, db=db: import_from_s3(
                                t,
                                bucket="bench",
                                key="data.csv",
                                target=db,
                                s3=cfg,
                                options="(format csv)",
                            )
                        )
                        results.append((version, "client-side import (pgferry import)", secs, run))
                        t = f"d{run}"
                        conn.execute(TABLE.format(t=t))
                        secs = timed(
                            lambda t=t: conn.execute(f"COPY {t} FROM '{data}' (FORMAT csv)")
                        )
                        results.append((version, "baseline: COPY local file into table", secs, run))
                        t = f"s{run}"
                        conn.execute(TABLE.format(t=t))

                        def staged(t: str = t) -> None:
                            with conn.transaction():
                                conn.execute(f"CREATE TEMP TABLE st_{t} (LIKE {t})")
                                conn.execute(f"COPY st_{t} FROM '{data}' (FORMAT csv)")
                                conn.execute(f"INSERT INTO {t} SELECT * FROM st_{t}")
                                conn.execute(f"DROP TABLE st_{t}")

                        secs = timed(staged)
                        results.append(
                            (version, "baseline: same via temp staging + INSERT", secs, run)
                        )
            finally:
                ext.server.destroy()
                shutil.rmtree(ext.server.datadir.parent, ignore_errors=True)
    finally:
        s3.stop()
        shutil.rmtree(work, ignore_errors=True)
    mb = size / 1e6
    print(f"file: {mb:.0f} MB, {rows} rows, CSV; runs per cell: {args.runs} (best shown)\n")
    print("| PostgreSQL | path | best seconds | MB/s |")
    print("|---|---|---|---|")
    seen: dict[tuple[str, str], float] = {}
    for version, path, secs, _ in results:
        key = (version, path)
        seen[key] = min(secs, seen.get(key, secs))
    for (version, path), secs in seen.items():
        print(f"| {version} | {path} | {secs:.1f} | {mb / secs:.0f} |")
    for version, written in temp_written:
        print(f"\nPostgreSQL {version}: temp bytes written during an extension import: {written}")
    print(f"\nhost: {os.cpu_count()} CPUs; servers with fsync=off, synchronous_commit=off")


if __name__ == "__main__":
    main()
