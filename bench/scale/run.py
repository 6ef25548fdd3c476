"""Benchmark for import at scale (issue 12), side by side in one run:

1. one object over 2 connections (`pgferry import --jobs 2`) vs one stream
   (`pgferry import`) vs two parallel `psql \\copy` of the file's halves;
2. a Parquet import (`pgferry import x.parquet`) vs converting it to CSV with
   pyarrow and then `psql \\copy` (DuckDB's PostgreSQL route and pg_parquet
   need downloads this machine cannot make);
3. `pgferry export` vs `psql -c "\\copy (query) to stdout" | aws s3 cp - s3://...`.

Run from the repository root:  .venv/bin/python bench/scale/run.py [--size-mb 256]
It reuses bench/import/run.py's data generator (cached under bench/data/).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
MB = 1 << 20


def _import_bench() -> Any:
    spec = importlib.util.spec_from_file_location("bench_import", ROOT / "bench/import/run.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def split_halves(src: Path, a: Path, b: Path) -> None:
    """The file cut in two at the line end nearest its middle (the generated
    CSV has no quoted line breaks)."""
    data = src.read_bytes()
    mid = data.index(b"\n", len(data) // 2) + 1
    a.write_bytes(data[:mid])
    b.write_bytes(data[mid:])


def median_run(
    sides: dict[str, Callable[[], None]], reps: int, before: Callable[[], None]
) -> dict[str, list[float]]:
    """Each side `reps` times, alternating, `before` each run (a fresh table)."""
    times: dict[str, list[float]] = {k: [] for k in sides}
    for _ in range(reps):
        for name, run in sides.items():
            before()
            started = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - started)
            log(f"  {name}: {times[name][-1]:.2f}s")
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--size-mb", type=int, default=256, help="CSV size in MiB (default 256)")
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    from bench.installed import compile_pgferry
    from tests.services import FAST, SeaweedS3, postgres

    compile_pgferry()

    bi = _import_bench()
    tmp = Path(tempfile.mkdtemp(prefix="pgferry-bench-scale-"))
    tmp.chmod(0o755)
    pg = s3 = None
    pgferry = str(Path(sys.executable).parent / "pgferry")
    try:
        log("starting PostgreSQL 15 (max_prepared_transactions 4) and SeaweedFS S3")
        pg = postgres("15", start=False)
        pg.start({**FAST, "max_prepared_transactions": "4"})
        s3 = SeaweedS3().start()
        env = {**os.environ, **s3.env()}
        bench = bi.Bench(pg, s3.env())
        csv = bi.generate_csv(bench, args.size_mb)
        rows = bi.count_lines(csv)
        client = s3.client()
        client.create_bucket(Bucket="bench")
        client.upload_file(str(csv), "bench", "data.csv")
        s3.put_as_stored(csv, "bench", "stored.csv")
        a, b = tmp / "a.csv", tmp / "b.csv"
        split_halves(csv, a, b)

        def cli(*argv: str) -> Callable[[], None]:
            def run() -> None:
                subprocess.run(
                    [pgferry, *argv, "--target", bench.url],
                    check=True,
                    env=env,
                    stdout=subprocess.DEVNULL,
                )

            return run

        def two_copies() -> None:
            procs = [
                subprocess.Popen(
                    [
                        bench.psql,
                        "-X",
                        "-q",
                        "-v",
                        "ON_ERROR_STOP=1",
                        "-d",
                        bench.url,
                        "-c",
                        f"\\copy t FROM '{half}' (format csv)",
                    ]
                )
                for half in (a, b)
            ]
            if any(p.wait() for p in procs):
                raise RuntimeError("\\copy failed")

        def fresh() -> None:
            bench.fresh_table()

        results: dict[str, dict[str, list[float]]] = {}
        log(f"1. one object, {csv.stat().st_size / MB:.0f} MiB, {rows} rows")
        opts = ("--options", "(format csv)")
        results["parallel"] = median_run(
            {
                "pgferry --jobs 2": cli(
                    "import", "s3://bench/data.csv", "-t", "t", *opts, "--jobs", "2"
                ),
                "pgferry (one stream)": cli("import", "s3://bench/data.csv", "-t", "t", *opts),
                # SeaweedFS without its gzip at rest (services.put_as_stored)
                "pgferry --jobs 2 (S3, stored as sent)": cli(
                    "import", "s3://bench/stored.csv", "-t", "t", *opts, "--jobs", "2"
                ),
                "pgferry (S3, stored as sent)": cli(
                    "import", "s3://bench/stored.csv", "-t", "t", *opts
                ),
                "two parallel \\copy": two_copies,
                "one \\copy": lambda: bench.psql_cmd(f"\\copy t FROM '{csv}' (format csv)"),
                # the same without the S3 server's CPU on the two cores
                "pgferry --jobs 2 (local file)": cli(
                    "import", str(csv), "-t", "t", *opts, "--jobs", "2"
                ),
                "pgferry (local file)": cli("import", str(csv), "-t", "t", *opts),
            },
            args.reps,
            fresh,
        )
        assert bench.sql("SELECT count(*) FROM t") == rows

        log("2. Parquet")
        table = pacsv.read_csv(
            csv,
            read_options=pacsv.ReadOptions(
                column_names=["id", "name", "amount", "d", "ts", "note"]
            ),
        )
        parquet = tmp / "data.parquet"
        pq.write_table(table, parquet, row_group_size=256_000)
        del table
        client.upload_file(str(parquet), "bench", "data.parquet")
        back = tmp / "back.csv"

        def convert_then_copy() -> None:
            with (
                pq.ParquetFile(parquet) as f,
                pacsv.CSVWriter(
                    back, f.schema_arrow, write_options=pacsv.WriteOptions(include_header=False)
                ) as w,
            ):
                for batch in f.iter_batches(batch_size=65536):
                    w.write_batch(batch)
            bench.psql_cmd(f"\\copy t FROM '{back}' (format csv)")

        results["parquet"] = median_run(
            {
                "pgferry import x.parquet (S3)": cli(
                    "import", "s3://bench/data.parquet", "-t", "t"
                ),
                "pyarrow to CSV, then \\copy": convert_then_copy,
            },
            args.reps,
            fresh,
        )
        assert bench.sql("SELECT count(*) FROM t") == rows

        log("3. export")
        query = "SELECT * FROM t"

        def psql_aws() -> None:
            psql = subprocess.Popen(
                [
                    bench.psql,
                    "-X",
                    "-q",
                    "-d",
                    bench.url,
                    "-c",
                    f"\\copy ({query}) to stdout (format csv)",
                ],
                stdout=subprocess.PIPE,
            )
            subprocess.run(
                ["aws", "s3", "cp", "-", "s3://bench/ref.csv", "--endpoint-url", s3.endpoint],
                stdin=psql.stdout,
                check=True,
                env=env,
                stdout=subprocess.DEVNULL,
            )
            if psql.wait():
                raise RuntimeError("psql failed")

        def ours_export() -> None:
            subprocess.run(
                [
                    pgferry,
                    "export",
                    "s3://bench/ours.csv",
                    "--query",
                    query,
                    "--format",
                    "csv",
                    "--source",
                    bench.url,
                ],
                check=True,
                env=env,
                stdout=subprocess.DEVNULL,
            )

        results["export"] = median_run(
            {"pgferry export": ours_export, "psql \\copy | aws s3 cp -": psql_aws},
            args.reps,
            lambda: None,
        )
        ours = client.head_object(Bucket="bench", Key="ours.csv")["ContentLength"]
        ref = client.head_object(Bucket="bench", Key="ref.csv")["ContentLength"]
        assert ours == ref, (ours, ref)

        print()
        print(f"size {csv.stat().st_size / MB:.0f} MiB, {rows} rows, load {os.getloadavg()[0]:.2f}")
        for case, sides in results.items():
            names = list(sides)
            base = statistics.median(sides[names[0]])
            for name in names:
                med = statistics.median(sides[name])
                runs = " ".join(f"{t:.2f}" for t in sides[name])
                print(f"{case:9} {name:32} {runs:24} median {med:6.2f}s  ratio {med / base:.2f}")
    finally:
        if s3 is not None:
            s3.stop()
        if pg is not None:
            pg.destroy()
            shutil.rmtree(pg.datadir.parent, ignore_errors=True)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
