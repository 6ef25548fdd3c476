"""Clone benchmark: pgferry clone vs pg_dump -Fd -j N + pg_restore -j N vs
pgcopydb clone, side by side on the same generated database.

    .venv/bin/python -m bench.migrate.bench --rows 13000000 --jobs 4

Starts two PostgreSQL 15 servers (source, target: Debian's binaries, the
version the Debian pgcopydb package is built for), generates the database
of tests/migrate/dbgen.py on the source, runs each tool into a fresh target
database, checks each copy with `pgferry verify` (not timed), and prints
wall times and ratios.  Servers run with PostgreSQL's default durability
settings, as users run them (`--durability off`: fsync, synchronous_commit
and full_page_writes off; all tools alike).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from psycopg import sql

from bench.installed import compile_pgferry
from pgferry.embedded import LocalServer
from pgferry.migrate.verify import VerifyConfig, verify
from tests.migrate.dbgen import generate
from tests.services import FAST, postgres

PG15 = Path("/usr/lib/postgresql/15/bin")


def create_db(server: LocalServer, name: str) -> str:
    with psycopg.connect(server.conninfo(), autocommit=True) as c:
        c.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        c.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return server.conninfo(name)


def drop_db(server: LocalServer, name: str) -> None:
    with psycopg.connect(server.conninfo(), autocommit=True) as c:
        c.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def checkpoint(*servers: LocalServer) -> None:
    for s in servers:
        with psycopg.connect(s.conninfo(), autocommit=True) as c:
            c.execute("CHECKPOINT")


def run(argv: list[str], **kw: object) -> str:
    proc = subprocess.run(argv, capture_output=True, check=False, **kw)  # type: ignore[call-overload]
    if proc.returncode != 0:
        err = proc.stderr.decode(errors="replace")
        sys.exit(f"{argv[0]} failed ({proc.returncode}): {err[-3000:]}")
    return str(proc.stdout.decode(errors="replace"))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=13_000_000, help="rows of app.events")
    ap.add_argument("--jobs", type=int, default=4)
    ap.add_argument("--out", type=Path, default=Path(__file__).with_name("RESULTS.md"))
    ap.add_argument("--only", default="pgferry,pg_dump,pgcopydb")
    ap.add_argument("--durability", choices=("defaults", "off"), default="defaults")
    args = ap.parse_args()
    compile_pgferry()
    n = args.jobs
    src_server, dst_server = postgres("15", start=False), postgres("15", start=False)
    for server in (src_server, dst_server):
        server.start(FAST if args.durability == "off" else {})
    work = Path(tempfile.mkdtemp(prefix="pgferry-bench-"))
    try:
        source = create_db(src_server, "bench")
        t0 = time.monotonic()
        generate(source, args.rows)
        with psycopg.connect(source, autocommit=True) as c:
            # pgcopydb 0.10 fails on this table's quoted name ("Odd ""Table"""):
            # leave it out so that all three tools copy the same database
            c.execute('DROP SCHEMA "Mixed Case" CASCADE')
            # the first full read of fresh rows sets their hint bits and writes
            # every page again: do it now, or whichever tool runs first pays
            c.execute("VACUUM (FREEZE, ANALYZE)")
            size = int(c.execute("SELECT pg_database_size(current_database())").fetchone()[0])  # type: ignore[index]
        print(f"generated {size / 2**30:.2f} GiB in {time.monotonic() - t0:.0f}s", flush=True)

        def pgferry_clone(target: str) -> None:
            out = run(
                [
                    sys.executable,
                    "-c",
                    "from pgferry.cli import main; main()",
                    "clone",
                    "--source",
                    source,
                    "--target",
                    target,
                    "--jobs",
                    str(n),
                    "--json",
                ]
            )
            phases.extend(json.loads(out)["phases"])

        def dump_restore(target: str) -> None:
            out = work / "dump"
            shutil.rmtree(out, ignore_errors=True)
            run([str(PG15 / "pg_dump"), "-Fd", "-j", str(n), "-f", str(out), "-d", source])
            run([str(PG15 / "pg_restore"), "-j", str(n), "-d", target, str(out)])
            shutil.rmtree(out, ignore_errors=True)

        def pgcopydb(target: str) -> None:
            d = work / "pgcopydb"
            shutil.rmtree(d, ignore_errors=True)
            env = dict(os.environ, PATH=f"{PG15}:{os.environ['PATH']}")
            run(
                [
                    "pgcopydb",
                    "clone",
                    "--source",
                    source,
                    "--target",
                    target,
                    "--table-jobs",
                    str(n),
                    "--index-jobs",
                    str(n),
                    "--dir",
                    str(d),
                ],
                env=env,
                start_new_session=True,
            )  # it signals its whole process group
            shutil.rmtree(d, ignore_errors=True)

        tools: dict[str, Callable[[str], None]] = {
            "pgferry": pgferry_clone,
            "pg_dump": dump_restore,
            "pgcopydb": pgcopydb,
        }
        phases: list[tuple[str, float]] = []
        times: dict[str, float] = {}
        checks: dict[str, str] = {}
        for name in args.only.split(","):
            target = create_db(dst_server, f"t_{name}")
            checkpoint(src_server, dst_server)
            t0 = time.monotonic()
            tools[name](target)
            times[name] = time.monotonic() - t0
            result = verify(VerifyConfig(source, target, jobs=n))
            checks[name] = (
                "identical"
                if result.ok
                else (
                    f"{len(result.differences)} differ: "
                    + ", ".join(f"{c.kind} {c.name} ({c.status})" for c in result.differences[:4])
                )
            )
            print(f"{name:<10}{times[name]:>8.1f}s  verify: {checks[name]}", flush=True)
            drop_db(dst_server, f"t_{name}")
        report(args, size, times, checks, phases)
    finally:
        for s in (src_server, dst_server):
            s.destroy()
            shutil.rmtree(s.datadir.parent, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)


def report(
    args: argparse.Namespace,
    size: int,
    times: dict[str, float],
    checks: dict[str, str],
    phases: list[tuple[str, float]],
) -> None:
    ours = times.get("pgferry")
    lines = [
        f"## pgferry clone benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        "",
        f"- machine: {platform.machine()}, {os.cpu_count()} CPUs, "
        f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB RAM, "
        f"{platform.system()} {platform.release()}; source and target servers on the same host",
        "- servers: two PostgreSQL 15 (Debian) with "
        + (
            "fsync=off, synchronous_commit=off, full_page_writes=off, otherwise defaults"
            if args.durability == "off"
            else "default settings (durability on)"
        ),
        f"- database: tests/migrate/dbgen.py with {args.rows:,} rows in app.events, "
        f'{size / 2**30:.2f} GiB on disk (pg_database_size); without its "Mixed Case" '
        "schema, whose quoted table name pgcopydb 0.10 fails on (TRUNCATE syntax error)",
        f"- jobs: {args.jobs} for every tool (pgcopydb: --table-jobs and --index-jobs)",
        "",
        "| tool | wall time (s) | pgferry / tool | verify |",
        "|---|---:|---:|---|",
    ]
    labels = {
        "pgferry": "pgferry clone",
        "pg_dump": "pg_dump -Fd -j N + pg_restore -j N",
        "pgcopydb": "pgcopydb clone (0.10, Debian)",
    }
    for name, secs in times.items():
        ratio = f"{ours / secs:.2f}" if ours else "-"
        lines.append(f"| {labels[name]} | {secs:.1f} | {ratio} | {checks[name]} |")
    if phases:
        lines += ["", "pgferry phases (s): " + ", ".join(f"{p} {t:.1f}" for p, t in phases)]
    text = "\n".join(lines) + "\n"
    print(text)
    with args.out.open("a") as f:
        f.write("\n" + text)


if __name__ == "__main__":
    main()
