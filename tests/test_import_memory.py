"""Memory stays flat: a large Parquet file and a large gzip CSV load with the
same peak RSS as small ones. PGFERRY_MEMTEST_MB sets the size: 256 by
default to keep the suite fast; with 1024 (the issue's 1 GB) the peaks were
152 -> 197 MiB (Parquet) and 64 -> 96 MiB (gzip CSV), 4 minutes in all.
The peak is the import process's own, measured by a fresh parent that runs
only it."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.test_import_cli import PGFERRY

MB = int(os.environ.get("PGFERRY_MEMTEST_MB", "256"))
_PEAK = (
    "import resource, subprocess, sys\n"
    "p = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
    "sys.stderr.write(p.stderr)\n"
    "print(p.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024)\n"
)


def peak_mb(*args: str) -> int:
    """Peak RSS (MiB) of `pgferry args`; fails on a non-zero exit."""
    p = subprocess.run(
        [sys.executable, "-c", _PEAK, PGFERRY, *args],
        capture_output=True,
        text=True,
        timeout=1800,
        env=os.environ.copy(),
    )
    code, peak = p.stdout.split()
    assert code == "0", p.stderr
    return int(peak)


def _parquet(path: Path, mb: int) -> None:
    rows = 100_000  # per row group: about 6.5 MB of Parquet
    batch = pa.table(
        {
            "id": pa.array(range(rows), pa.int64()),
            "name": pa.array([f"name-{i:08d}-{(i * 7919) % 100003:06d}" for i in range(rows)]),
            "v": pa.array([i * 0.5 for i in range(rows)], pa.float64()),
        }
    )
    with pq.ParquetWriter(path, batch.schema, compression="none") as w:
        while path.stat().st_size < mb << 20:
            w.write_table(batch)


def _gzip_csv(path: Path, mb: int) -> None:
    block = b"".join(b"%d,name-%08d,%d.5\n" % (i, i, i) for i in range(50_000))
    with gzip.open(path, "wb", compresslevel=1) as f:
        for _ in range(max(1, (mb << 20) // len(block))):
            f.write(block)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["parquet", "csv.gz"])
def test_memory_stays_flat(
    kind: str, conn: Any, db: str, s3client: Any, bucket: str, s3env: Any, tmp_path: Path
) -> None:
    if conn.info.server_version >= 180000:
        pytest.skip("the client's memory does not depend on the server version")
    conn.execute("CREATE UNLOGGED TABLE m (id bigint, name text, v float8)")
    small, big = tmp_path / f"small.{kind}", tmp_path / f"big.{kind}"
    make = _parquet if kind == "parquet" else _gzip_csv
    make(small, 1)
    make(big, MB)
    for f in (small, big):
        s3client.upload_file(str(f), bucket, f.name)
    opts = [] if kind == "parquet" else ["--options", "(format csv)"]
    base = peak_mb("import", f"s3://{bucket}/{small.name}", "-t", "m", "--target", db, *opts)
    conn.execute("TRUNCATE m")
    peak = peak_mb("import", f"s3://{bucket}/{big.name}", "-t", "m", "--target", db, *opts)
    print(f"{kind}: peak RSS {base} MiB for 1 MB, {peak} MiB for {MB} MB")
    rows = conn.execute("SELECT count(*) FROM m").fetchone()[0]
    assert rows > MB * 10_000  # the big file did load
    # flat: the big file needs at most a little more than the small one
    assert peak < base + 120, (base, peak)


@pytest.mark.slow
def test_binary_path_memory_stays_flat(conn: Any, db: str, tmp_path: Path) -> None:
    """Large CSV loads go as COPY BINARY in blocks: the peak does not grow
    with the object (both sizes here take that path)."""
    if conn.info.server_version >= 180000:
        pytest.skip("the client's memory does not depend on the server version")
    conn.execute("CREATE UNLOGGED TABLE m (id bigint, name text, v numeric, d date)")
    peaks = []
    for mb in (70, max(MB, 140)):
        path = tmp_path / f"{mb}.csv"
        block = b"".join(
            b"%d,name-%08d,%d.5,2020-01-%02d\n" % (i, i, i, i % 28 + 1) for i in range(50_000)
        )
        with path.open("wb") as f:
            for _ in range((mb << 20) // len(block) + 1):
                f.write(block)
        out = subprocess.run(
            [
                sys.executable,
                "-c",
                _PEAK_JSON,
                PGFERRY,
                "import",
                str(path),
                "-t",
                "m",
                "--target",
                db,
                "--options",
                "(format csv)",
                "--json",
            ],
            capture_output=True,
            text=True,
            timeout=1800,
            env=os.environ.copy(),
        )
        code, peak, result = out.stdout.split(maxsplit=2)
        assert code == "0", out.stderr
        loaded = json.loads(result)
        assert loaded["binary_rows"] == loaded["rows"] > mb * 10_000
        peaks.append(int(peak))
        path.unlink()
        conn.execute("TRUNCATE m")
    print(f"binary path: peak RSS {peaks[0]} MiB for 70 MB, {peaks[1]} MiB for {max(MB, 140)} MB")
    assert peaks[1] < peaks[0] + 40, peaks


_PEAK_JSON = (
    "import resource, subprocess, sys\n"
    "p = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
    "sys.stderr.write(p.stderr)\n"
    "peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024\n"
    "print(p.returncode, peak, p.stdout)\n"
)
