"""A MariaDB clone killed with SIGKILL in the middle of the data, then
finished with --resume: every row exactly once."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from click.testing import Result

from tests.migrate.conftest import rows

ROWS = 300_000


def _done(url: str) -> set[str]:
    try:
        with psycopg.connect(url) as c:
            return {r[0] for r in c.execute("SELECT item FROM pgferry.clone_progress")}
    except psycopg.errors.UndefinedTable:
        return set()


@pytest.mark.slow
def test_resume_after_kill(
    mysql_db: tuple[str, Callable[..., Any]], target_db: str, run_cli: Callable[..., Result]
) -> None:
    url, run = mysql_db
    for name in ("big", "small"):
        run(f"CREATE TABLE {name} (id int AUTO_INCREMENT PRIMARY KEY, body varchar(60))")
    run(f"INSERT INTO big (body) SELECT REPEAT('b', 60) FROM seq_1_to_{ROWS}")
    run("INSERT INTO small (body) SELECT 'small' FROM seq_1_to_1000")
    run("ANALYZE TABLE big, small")
    # one job, largest first: big is copying when we kill, small not started
    args = ["clone", "--source", url, "--target", target_db, "--jobs", "1", "-q"]
    proc = subprocess.Popen(
        [sys.executable, "-c", "from pgferry.cli import main; main()", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 120
    try:
        while True:
            copying = rows(
                target_db,
                "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'COPY%%big%%'"
                " AND datname = current_database()",
            )
            if "phase:pre-data" in _done(target_db) and copying[0][0]:
                break
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline
            time.sleep(0.01)
        proc.kill()
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "table:public.big" not in _done(target_db)
    res = run_cli(*args, "--resume", "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert "pre-data" in out["skipped"]
    assert {t["table"]: t["rows"] for t in out["tables"]} == {
        "public.big": ROWS,
        "public.small": 1000,
    }
    assert rows(target_db, "SELECT count(*), count(DISTINCT id) FROM big") == [(ROWS, ROWS)]
    res = run_cli("verify", "--source", url, "--target", target_db)
    assert res.exit_code == 0, res.output
    assert rows(target_db, "SELECT to_regnamespace('pgferry')") == [(None,)]
