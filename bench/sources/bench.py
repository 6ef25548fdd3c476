"""pgferry clone vs pgloader 3.6.9, MariaDB -> PostgreSQL 15, side by side.

Starts its own MariaDB (tests/sources/mariadb.py) and PostgreSQL 15, fills a
database of about --mb MB over --tables tables (ints, a decimal, a double,
a datetime, a varchar, a text), then loads it into two fresh databases:
`pgferry clone --jobs N` and `pgloader` with `workers = N`.  Prints seconds,
MB/s and peak RSS (GNU time's %M) of each, and the ratio.

    .venv/bin/python bench/sources/bench.py --mb 1024 --tables 4 --jobs 2
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.installed import compile_pgferry
from tests.services import postgres
from tests.sources.mariadb import MariaDB

ROW_BYTES = 200  # about: 8 + 4 + 8 + 8 + 8 + 60 + 100


def fill(m: MariaDB, mb: int, tables: int) -> int:
    rows = mb * 1024 * 1024 // ROW_BYTES // tables
    with m.admin() as c, c.cursor() as cur:
        cur.execute("CREATE DATABASE bench")
        for i in range(tables):
            cur.execute(
                f"CREATE TABLE bench.t{i} (id bigint PRIMARY KEY, n int NOT NULL,"
                " amount decimal(12,2), ratio double, at datetime, name varchar(80), body text,"
                " KEY by_n (n))"
            )
            done = 0
            while done < rows:
                step = min(1_000_000, rows - done)
                cur.execute(
                    f"INSERT INTO bench.t{i} SELECT seq + {done}, seq % 1000, (seq % 100000) / 7,"
                    " seq * 1.25, '2020-01-01' + INTERVAL seq SECOND, CONCAT('name-', seq),"
                    f" REPEAT(CHAR(97 + seq % 26), 100) FROM bench.seq_1_to_{step}"
                )
                done += step
    return rows * tables


def timed(args: list[str], env: dict[str, str]) -> tuple[float, int, str]:
    with tempfile.NamedTemporaryFile("r", suffix=".rss") as f:
        t0 = time.monotonic()
        r = subprocess.run(
            ["/usr/bin/time", "-f", "%M", "-o", f.name, *args],
            capture_output=True, text=True, env=env, check=False,
        )  # fmt: skip
        secs = time.monotonic() - t0
        rss_kb = int(Path(f.name).read_text().strip().splitlines()[-1] or 0)
    if r.returncode != 0:
        print(r.stdout[-2000:], r.stderr[-2000:], file=sys.stderr)
    return secs, rss_kb, r.stdout


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--mb", type=int, default=256)
    p.add_argument("--tables", type=int, default=4)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--split", default="1GB", help="pgferry's --split-tables-larger-than")
    a = p.parse_args()
    compile_pgferry()
    m = MariaDB().start()
    pg = postgres("15")
    try:
        t0 = time.monotonic()
        n = fill(m, a.mb, a.tables)
        print(f"filled {n} rows (~{a.mb} MB) in {time.monotonic() - t0:.0f}s")
        with psycopg.connect(pg.conninfo(), autocommit=True) as c:
            c.execute("CREATE DATABASE via_pgferry")
            c.execute("CREATE DATABASE via_pgloader")
        env = dict(os.environ)
        bindir = Path(sys.executable).parent
        secs_f, rss_f, out = timed(
            [str(bindir / "pgferry"), "clone", "--source", m.url("bench"),
             "--target", pg.conninfo("via_pgferry"), "--jobs", str(a.jobs), "-q",
             "--split-tables-larger-than", a.split],
            env,
        )  # fmt: skip
        print(out)
        load = Path(tempfile.mkdtemp()) / "bench.load"
        port = pg.conninfo().split("port=")[1].split()[0] if "port=" in pg.conninfo() else ""
        target = pg.conninfo("via_pgloader")
        load.write_text(
            f"LOAD DATABASE FROM {m.url('bench')}\n INTO {_pg_url(target, port)}\n"
            f" WITH workers = {a.jobs}, concurrency = 1\n;\n"
        )
        secs_l, rss_l, _ = timed(["pgloader", "--no-ssl-cert-verification", str(load)], env)
        counts = []
        for db in ("via_pgferry", "via_pgloader"):
            with psycopg.connect(pg.conninfo(db)) as c:
                total = 0
                for i in range(a.tables):
                    schema = "public" if db == "via_pgferry" else "bench"
                    row = c.execute(f"SELECT count(*) FROM {schema}.t{i}").fetchone()
                    total += row[0] if row else 0
                counts.append(total)
        mb = a.mb
        print(f"{'tool':<10}{'seconds':>9}{'MB/s':>8}{'peak RSS MB':>13}{'rows':>12}")
        print(
            f"{'pgferry':<10}{secs_f:>9.1f}{mb / secs_f:>8.1f}{rss_f / 1024:>13.0f}{counts[0]:>12}"
        )
        print(
            f"{'pgloader':<10}{secs_l:>9.1f}{mb / secs_l:>8.1f}{rss_l / 1024:>13.0f}{counts[1]:>12}"
        )
        print(f"pgferry throughput / pgloader's: {secs_l / secs_f:.2f}x")
    finally:
        m.stop()
        pg.destroy()


def _pg_url(conninfo: str, port: str) -> str:
    if conninfo.startswith("postgres"):
        return conninfo.split("?")[0] + "?sslmode=disable"
    kv = dict(part.split("=", 1) for part in conninfo.split())
    host = kv.get("host", "127.0.0.1")
    return f"postgresql://{kv.get('user', 'postgres')}@{host}:{kv.get('port', port)}/{kv['dbname']}"


if __name__ == "__main__":
    main()
