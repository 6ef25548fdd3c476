"""Benchmark: `pgferry import` as users time it (whole process, wall clock).

For each server configuration (PostgreSQL defaults, then durability off):
- fixed cost: a one-row object, `pgferry import` vs `psql \\copy` of a one-row
  file, and `pgferry --help`;
- throughput: the CLI importing a ~270 MB CSV from S3 and from the local file
  vs `psql \\copy` of the same file, and the gzip object vs
  COPY FROM PROGRAM 'zcat';
then pgferry's peak RSS at two object sizes.

Run from the repository root:  .venv/bin/python bench/import/run.py [--size-mb 257]
MB here means MiB (2**20 bytes). See bench/import/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "bench" / "data"
RESULTS = ROOT / "bench" / "results"
MB = 1 << 20
GEN_VERSION = "v1"  # bump when the generator query changes (invalidates the cache)
TABLE_DDL = (
    "CREATE TABLE t (id bigint, name text, amount numeric(12,2), d date, ts timestamp, note text)"
)
# One line: psql's \copy takes the rest of its line as the command.
ROWS_SQL = (
    "SELECT i, 'customer ' || md5(i::text), round(((i * 7919) % 100000000) / 100.0, 2), "
    "date '2000-01-01' + (i % 9000)::int, "
    "timestamp '2000-01-01' + make_interval(secs => (i * 17)::double precision), "
    "CASE WHEN i % 10 = 0 THEN 'note, with \"quotes\" ' || i "
    "ELSE repeat(substr(md5(i::text || 'x'), 1, 8), (i % 5)::int + 1) END "
    "FROM generate_series(1::bigint, {n}) AS i"
)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


class Bench:
    def __init__(self, pg: Any, env: dict[str, str]) -> None:
        self.pg = pg
        self.url: str = pg.conninfo("postgres")
        self.psql = str(pg.bindir / "psql")
        self.env = env

    def sql(self, stmt: str) -> Any:
        """Run one statement in autocommit; return the first column of its first row."""
        with psycopg.connect(self.url, autocommit=True) as conn:
            cur = conn.execute(stmt)
            row = cur.fetchone() if cur.description else None
            return row[0] if row else None

    def psql_cmd(self, command: str) -> None:
        subprocess.run(
            [self.psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", self.url, "-c", command],
            check=True,
            stdout=subprocess.DEVNULL,
        )

    def fresh_table(self) -> None:
        self.sql("DROP TABLE IF EXISTS t")
        self.sql(TABLE_DDL)
        self.sql("CHECKPOINT")

    def timed(self, load: Callable[[], None], rows: int) -> float:
        self.fresh_table()
        started = time.perf_counter()
        load()
        seconds = time.perf_counter() - started
        got = self.sql("SELECT count(*) FROM t")
        if got != rows:
            raise RuntimeError(f"loaded {got} rows, expected {rows}")
        return seconds

    def pgferry(self, *args: str) -> None:
        """Run the `pgferry` CLI as a user would (a new process, its start-up included)."""
        exe = Path(sys.executable).parent / "pgferry"
        subprocess.run(
            [str(exe), *args],
            env={**os.environ, **self.env},
            check=True,
            stdout=subprocess.DEVNULL,
        )

    def import_cli(self, source: str) -> Callable[[], None]:
        return lambda: self.pgferry(
            "import", source, "--table", "t", "--options", "(format csv)", "--target", self.url
        )

    def settings(self, durability: bool) -> dict[str, str]:
        """Switch the server between its defaults and durability off (all three
        settings reload without a restart); return what is in force."""
        names = ("fsync", "synchronous_commit", "full_page_writes")
        for name in names:
            if durability:
                self.sql(f"ALTER SYSTEM RESET {name}")
            else:
                self.sql(f"ALTER SYSTEM SET {name} = off")
        self.sql("SELECT pg_reload_conf()")
        time.sleep(0.5)  # the postmaster signals the backends asynchronously
        return {name: str(self.sql(f"SHOW {name}")) for name in names}

    def cli_import(self, uri: str, scratch: Path) -> tuple[float, int]:
        """Run `pgferry import` as a child; return (seconds, peak RSS in KiB).

        /usr/bin/time measures it: os.wait4's ru_maxrss for a child of this
        (large) process would include our own RSS, inherited at fork and kept
        across exec as the high-water mark."""
        exe = Path(sys.executable).parent / "pgferry"
        out = scratch / "maxrss"
        args = [
            "/usr/bin/time",
            "-f",
            "%M",
            "-o",
            str(out),
            str(exe),
            "import",
            uri,
            "--table",
            "t",
            "--options",
            "(format csv)",
            "--target",
            self.url,
            "--json",
        ]
        self.fresh_table()
        started = time.perf_counter()
        subprocess.run(args, env={**os.environ, **self.env}, check=True, stdout=subprocess.DEVNULL)
        seconds = time.perf_counter() - started
        return seconds, int(out.read_text().split()[-1])


def generate_csv(bench: Bench, size_mb: int) -> Path:
    """A deterministic CSV of at least size_mb MiB, cached under bench/data/."""
    DATA.mkdir(parents=True, exist_ok=True)
    path = DATA / f"import-{GEN_VERSION}-{size_mb}mb.csv"
    if path.exists() and path.stat().st_size >= size_mb * MB:
        log(f"using cached {path} ({path.stat().st_size / MB:.0f} MiB)")
        return path
    tmp = path.with_suffix(".tmp")
    sample = 20000
    bench.psql_cmd(f"\\copy ({ROWS_SQL.format(n=sample)}) TO '{tmp}' (format csv)")
    rows = int(size_mb * MB / (tmp.stat().st_size / sample) * 1.01) + 1
    log(f"generating {path.name}: {rows} rows")
    started = time.perf_counter()
    bench.psql_cmd(f"\\copy ({ROWS_SQL.format(n=rows)}) TO '{tmp}' (format csv)")
    tmp.rename(path)
    log(f"generated {path.stat().st_size / MB:.0f} MiB in {time.perf_counter() - started:.1f}s")
    return path


def gzip_file(src: Path, dst: Path) -> str:
    pigz = shutil.which("pigz")
    cmd = (
        [pigz, "-6", "-c", str(src)]
        if pigz
        else [sys.executable, "-m", "isal.igzip", "-c", str(src)]
    )
    with dst.open("wb") as out:
        subprocess.run(cmd, check=True, stdout=out)
    return "pigz -6" if pigz else "isal.igzip"


def make_object(src: Path, dst: Path, size: int) -> None:
    """Write `size` bytes (cut back to a line end) of `src`, repeated as needed."""
    left = size
    with dst.open("wb") as out:
        while left > 0:
            with src.open("rb") as f:
                while left > 0 and (block := f.read(min(64 * MB, left))):
                    out.write(block)
                    left -= len(block)
    with dst.open("r+b") as out:  # drop a partial last line
        out.seek(max(0, size - MB))
        tail = out.read()
        out.truncate(max(0, size - MB) + tail.rfind(b"\n") + 1)


def count_lines(path: Path) -> int:
    n = 0
    with path.open("rb") as f:
        while block := f.read(64 * MB):
            n += block.count(b"\n")
    return n


def machine(bench: Bench) -> dict[str, str]:
    cpu = next(
        (
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/cpuinfo").read_text().splitlines()
            if ln.startswith("model name")
        ),
        platform.processor(),
    )
    mem = Path("/proc/meminfo").read_text().splitlines()[0].split()[1]
    return {
        "nproc": str(os.cpu_count()),
        "memory": f"{int(mem) / MB:.1f} GiB",
        "cpu": cpu,
        "postgres": str(bench.sql("SELECT version()")),
        "python": platform.python_version(),
        "loadavg": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system, own and reaped children) of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def compare(
    bench: Bench,
    name: str,
    sides: dict[str, Callable[[], None]],
    rows: int,
    reps: int,
    s3_pid: int,
) -> dict[str, Any]:
    """Run the sides in turn, reversing the order every other repetition;
    record each run's wall time, the CPU time of the child processes it ran
    (pgferry or psql) and of the local S3 server."""
    times: dict[str, list[float]] = {k: [] for k in sides}
    client: dict[str, list[float]] = {k: [] for k in sides}
    s3cpu: dict[str, list[float]] = {k: [] for k in sides}
    for rep in range(reps):
        order = list(sides.items())
        for side, fn in order if rep % 2 == 0 else order[::-1]:
            cpu0, child0 = cpu_seconds(s3_pid), children_cpu()
            sec = bench.timed(fn, rows)
            times[side].append(sec)
            client[side].append(children_cpu() - child0)
            s3cpu[side].append(cpu_seconds(s3_pid) - cpu0)
            log(f"{name} rep {rep + 1} {side}: {sec:.3f}s")
    med = {k: statistics.median(v) for k, v in times.items()}
    others = [k for k in sides if k != "ref"]
    return {
        "case": name,
        "times": times,
        "median": med,
        "client_cpu_s": {k: statistics.median(v) for k, v in client.items()},
        "s3_cpu_s": {k: statistics.median(v) for k, v in s3cpu.items()},
        "ratio_median": {k: med["ref"] / med[k] for k in others},
        "ratio_pairs": {
            k: [r / o for r, o in zip(times["ref"], times[k], strict=True)] for k in others
        },
    }


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def help_time(reps: int) -> dict[str, float]:
    """Median wall time of `pgferry --help` and `pgferry import --help`."""
    exe = str(Path(sys.executable).parent / "pgferry")
    out = {}
    for args in (["--help"], ["import", "--help"], ["clone", "--help"]):
        runs = []
        for _ in range(reps):
            started = time.perf_counter()
            subprocess.run([exe, *args], check=True, stdout=subprocess.DEVNULL)
            runs.append(time.perf_counter() - started)
        out[" ".join(args)] = statistics.median(runs)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--size-mb", type=int, default=257, help="CSV size in MiB (default 257)")
    ap.add_argument("--reps", type=int, default=3, help="throughput repetitions per side")
    ap.add_argument("--fixed-reps", type=int, default=15, help="one-row repetitions per side")
    ap.add_argument("--rss-mb", default="100,1024", help="object sizes for the RSS runs, MiB")
    ap.add_argument("--no-gzip", action="store_true", help="skip the gzip case")
    ap.add_argument(
        "--configs",
        default="defaults,durability-off",
        help="server configurations, in order (default: defaults,durability-off)",
    )
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    from bench.installed import compile_pgferry
    from tests.services import SeaweedS3, postgres

    compile_pgferry()

    tmp = Path(tempfile.mkdtemp(prefix="pgferry-bench-import-"))
    tmp.chmod(0o755)  # the server's OS user runs zcat on a file in here
    s3 = pg = None
    try:
        log("starting PostgreSQL 15 (default settings) and SeaweedFS S3")
        pg, s3 = postgres("15", start=False), SeaweedS3().start()
        pg.start({})
        env = s3.env()
        bench = Bench(pg, env)
        info = machine(bench)
        csv = generate_csv(bench, args.size_mb)
        nbytes, rows = csv.stat().st_size, count_lines(csv)
        one = tmp / "one.csv"
        with csv.open("rb") as f:
            one.write_bytes(f.readline())
        one.chmod(0o644)
        client = s3.client()
        client.create_bucket(Bucket="bench")
        client.upload_file(str(csv), "bench", "data.csv", ExtraArgs={"ContentType": "text/csv"})
        client.upload_file(str(one), "bench", "one.csv", ExtraArgs={"ContentType": "text/csv"})
        s3.put_as_stored(csv, "bench", "stored.csv")
        gz = tmp / "data.csv.gz"
        gzip_tool = ""
        if not args.no_gzip:
            started = time.perf_counter()
            gzip_tool = gzip_file(csv, gz)
            gz.chmod(0o644)
            took = time.perf_counter() - started
            log(f"{gzip_tool}: {gz.stat().st_size / MB:.0f} MiB in {took:.1f}s")
            client.upload_file(
                str(gz),
                "bench",
                "data.csv.gz",
                ExtraArgs={"ContentType": "text/csv", "ContentEncoding": "gzip"},
            )
        log(f"uploaded; {rows} rows, {nbytes / MB:.0f} MiB plain")
        info["help_s"] = json.dumps({k: round(v, 3) for k, v in help_time(args.fixed_reps).items()})
        assert s3.proc is not None
        configs: list[dict[str, Any]] = []
        for config in args.configs.split(","):
            settings = bench.settings(durability=config == "defaults")
            log(f"server configuration {config}: {settings}")
            fixed = compare(
                bench,
                "one row",
                {
                    "ours": bench.import_cli("s3://bench/one.csv"),
                    "ref": lambda: bench.psql_cmd(f"\\copy t FROM '{one}' (format csv)"),
                },
                1,
                args.fixed_reps,
                s3.proc.pid,
            )
            cases = [
                compare(
                    bench,
                    "plain CSV",
                    {
                        "ours": bench.import_cli("s3://bench/data.csv"),
                        "ref": lambda: bench.psql_cmd(f"\\copy t FROM '{csv}' (format csv)"),
                        "ours-local": bench.import_cli(str(csv)),
                        # SeaweedFS without its gzip at rest (services.put_as_stored)
                        "ours-stored": bench.import_cli("s3://bench/stored.csv"),
                    },
                    rows,
                    args.reps,
                    s3.proc.pid,
                )
            ]
            if not args.no_gzip:
                cases.append(
                    compare(
                        bench,
                        "gzip",
                        {
                            "ours": bench.import_cli("s3://bench/data.csv.gz"),
                            "ref": lambda: bench.sql(
                                f"COPY t FROM PROGRAM 'zcat {gz}' (format csv)"
                            ),
                        },
                        rows,
                        args.reps,
                        s3.proc.pid,
                    )
                )
            configs.append({"config": config, "settings": settings, "fixed": fixed, "cases": cases})
        gz.unlink(missing_ok=True)
        rss: list[dict[str, Any]] = []
        for size_mb in (int(s) for s in args.rss_mb.split(",") if s):
            obj = tmp / f"rss-{size_mb}.csv"
            make_object(csv, obj, size_mb * MB)
            size, expect = obj.stat().st_size, count_lines(obj)
            client.upload_file(str(obj), "bench", obj.name)
            obj.unlink()
            sec, kib = bench.cli_import(f"s3://bench/{obj.name}", tmp)
            if bench.sql("SELECT count(*) FROM t") != expect:
                raise RuntimeError(f"RSS run of {obj.name} loaded the wrong row count")
            rss.append({"object_mib": size / MB, "seconds": sec, "peak_rss_mib": kib / 1024})
            log(f"RSS {size / MB:.0f} MiB object: peak {kib / 1024:.1f} MiB, {sec:.1f}s")
            client.delete_object(Bucket="bench", Key=obj.name)
        info["loadavg_end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
        report(info, args, nbytes, rows, gzip_tool, configs, rss)
    finally:
        if s3 is not None:
            s3.stop()
        if pg is not None:
            pg.destroy()
            shutil.rmtree(pg.datadir.parent, ignore_errors=True)  # postgres() leaves it
        shutil.rmtree(tmp, ignore_errors=True)


def report(
    info: dict[str, str],
    args: argparse.Namespace,
    nbytes: int,
    rows: int,
    gzip_tool: str,
    configs: list[dict[str, Any]],
    rss: list[dict[str, Any]],
) -> None:
    print("\n== machine ==")
    for k, v in info.items():
        print(f"{k:11} {v}")
    for c in configs:
        print(f"\n== server: {c['config']} {c['settings']} ==")
        f = c["fixed"]
        print(
            f"one-row object, {args.fixed_reps} reps/side, whole-process wall: "
            f"pgferry import from S3 median {f['median']['ours']:.3f}s "
            f"(client CPU {f['client_cpu_s']['ours']:.3f}s), "
            f"psql \\copy median {f['median']['ref']:.3f}s"
        )
        print(
            f"throughput: {nbytes / MB:.0f} MiB, {rows} rows, {args.reps} reps/side "
            f"(MiB/s of plain CSV; gzip by {gzip_tool or '-'})"
        )
        print(
            f"{'case':10} {'side':10} {'runs (s)':26} {'median MiB/s':>12}"
            f" {'client CPU s':>12} {'S3 server CPU s':>15}"
        )
        for case in c["cases"]:
            for side, runs in case["times"].items():
                print(
                    f"{case['case']:10} {side:10} {' '.join(f'{t:.2f}' for t in runs):26}"
                    f" {nbytes / MB / case['median'][side]:12.1f}"
                    f" {case['client_cpu_s'][side]:12.2f} {case['s3_cpu_s'][side]:15.1f}"
                )
            for side, ratio in case["ratio_median"].items():
                pairs = " ".join(f"{r:.2f}" for r in case["ratio_pairs"][side])
                print(f"{'':10} ratio {side}/ref throughput: median {ratio:.3f}; pairs {pairs}")
    print("\n== pgferry import CLI peak RSS ==")
    for r in rss:
        print(
            f"object {r['object_mib']:7.1f} MiB  peak RSS {r['peak_rss_mib']:6.1f} MiB"
            f"  wall {r['seconds']:.1f}s"
        )
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"import-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(
        json.dumps(
            {
                "machine": info,
                "bytes": nbytes,
                "rows": rows,
                "reps": args.reps,
                "gzip_tool": gzip_tool,
                "configs": configs,
                "rss": rss,
            },
            indent=2,
        )
    )
    print(f"\nsaved {out}")


if __name__ == "__main__":
    main()
