"""Clone benchmark on small databases: the fixed cost.

    .venv/bin/python -m bench.migrate.small --rows 2000,20000 --reps 5

For each size, generates the database of tests/migrate/dbgen.py (`--rows`
sets its largest table; 20000 gives about 12 MB in 78 tables and
partitions, the size of pagila) on a PostgreSQL 15 source, then times, as
whole processes and in alternating order, `pgferry clone` and
`pg_dump -Fc | pg_restore` into a fresh target database.  The first pgferry
copy of each size is checked with `pgferry verify` (not timed).  Both
servers run with PostgreSQL's default durability settings, as users run
them (`--durability off` turns fsync, synchronous_commit and
full_page_writes off, which hides the cost of each commit).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psycopg

from bench.installed import compile_pgferry
from bench.migrate.bench import PG15, checkpoint, create_db, drop_db
from pgferry.migrate.verify import VerifyConfig, verify
from tests.migrate.dbgen import generate
from tests.services import FAST, postgres


def pgferry_clone(source: str, target: str, jobs: int) -> list[tuple[str, float]]:
    exe = Path(sys.executable).parent / "pgferry"
    argv = [str(exe), "clone", "--source", source, "--target", target, "--jobs", str(jobs)]
    out = subprocess.run([*argv, "--json"], capture_output=True, check=True).stdout
    return [(str(p[0]), float(p[1])) for p in json.loads(out)["phases"]]


def dump_restore(source: str, target: str) -> None:
    dump = subprocess.Popen([str(PG15 / "pg_dump"), "-Fc", "-d", source], stdout=subprocess.PIPE)
    restore = subprocess.run(
        [str(PG15 / "pg_restore"), "-d", target], stdin=dump.stdout, capture_output=True
    )
    assert dump.stdout is not None
    dump.stdout.close()
    if dump.wait() != 0 or restore.returncode != 0:
        raise RuntimeError(f"pg_dump | pg_restore failed: {restore.stderr.decode()[-500:]}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", default="2000,20000", help="sizes: rows of app.events")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--jobs", type=int, default=4)
    ap.add_argument("--durability", choices=("defaults", "off"), default="defaults")
    args = ap.parse_args()
    compile_pgferry()
    src_server, dst_server = postgres("15", start=False), postgres("15", start=False)
    for server in (src_server, dst_server):
        server.start(FAST if args.durability == "off" else {})
    results = []
    try:
        for rows in (int(r) for r in args.rows.split(",")):
            source = create_db(src_server, f"small_{rows}")
            generate(source, rows)
            with psycopg.connect(source, autocommit=True) as c:
                c.execute("VACUUM (FREEZE, ANALYZE)")
                size = int(c.execute("SELECT pg_database_size(current_database())").fetchone()[0])  # type: ignore[index]
                tables = int(
                    c.execute(
                        "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid ="
                        " c.relnamespace WHERE relkind IN ('r', 'p') AND nspname NOT IN"
                        " ('pg_catalog', 'information_schema')"
                    ).fetchone()[0]  # type: ignore[index]
                )
            times: dict[str, list[float]] = {"pgferry": [], "pg_dump|pg_restore": []}
            phases: list[list[tuple[str, float]]] = []

            def ours(target: str) -> None:
                phases.append(pgferry_clone(source, target, args.jobs))  # noqa: B023

            def ref(target: str) -> None:
                dump_restore(source, target)  # noqa: B023

            sides: dict[str, Callable[[str], None]] = {
                "pgferry": ours,
                "pg_dump|pg_restore": ref,
            }
            checked = ""
            for rep in range(args.reps):
                order = list(sides.items())
                for name, fn in order if rep % 2 == 0 else order[::-1]:
                    target = create_db(dst_server, "t")
                    checkpoint(src_server, dst_server)
                    t0 = time.perf_counter()
                    fn(target)
                    times[name].append(time.perf_counter() - t0)
                    if name == "pgferry" and not checked:
                        r = verify(VerifyConfig(source, target, jobs=args.jobs))
                        checked = "identical" if r.ok else f"{len(r.differences)} differ"
                    drop_db(dst_server, "t")
                    print(f"{rows} rep {rep + 1} {name}: {times[name][-1]:.3f}s", flush=True)
            med = {k: statistics.median(v) for k, v in times.items()}
            phase_med = {
                name: statistics.median(p[i][1] for p in phases)
                for i, (name, _) in enumerate(phases[0])
            }
            results.append(
                {
                    "rows": rows,
                    "bytes": size,
                    "tables": tables,
                    "times": times,
                    "median": med,
                    "ratio": med["pgferry"] / med["pg_dump|pg_restore"],
                    "verify": checked,
                    "phases": phase_med,
                }
            )
    finally:
        for s in (src_server, dst_server):
            s.destroy()
            shutil.rmtree(s.datadir.parent, ignore_errors=True)  # postgres() leaves it
    print(f"\nserver durability: {args.durability}")
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    for r in results:
        print(
            f"\n{r['rows']} rows, {r['bytes'] / 2**20:.1f} MiB, {r['tables']} tables:"
            f" pgferry clone median {r['median']['pgferry']:.2f}s"
            f" ({' '.join(f'{t:.2f}' for t in r['times']['pgferry'])}),"
            f" pg_dump -Fc | pg_restore median {r['median']['pg_dump|pg_restore']:.2f}s"
            f" ({' '.join(f'{t:.2f}' for t in r['times']['pg_dump|pg_restore'])});"
            f" time ratio {r['ratio']:.2f}; verify: {r['verify']}"
        )
        print(
            "  pgferry phases (median s): "
            + ", ".join(f"{k} {v:.2f}" for k, v in r["phases"].items())
        )


if __name__ == "__main__":
    main()
