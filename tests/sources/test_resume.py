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
@pytest.mark.parametrize("split", [False, True], ids=["whole", "split"])
def test_resume_after_kill(
    mysql_db: tuple[str, Callable[..., Any]],
    target_db: str,
    run_cli: Callable[..., Result],
    split: bool,
) -> None:
    url, run = mysql_db
    for name in ("big", "small"):
        run(f"CREATE TABLE {name} (id int AUTO_INCREMENT PRIMARY KEY, body varchar(60))")
    run(f"INSERT INTO big (body) SELECT REPEAT('b', 60) FROM seq_1_to_{ROWS}")
    run("INSERT INTO small (body) SELECT 'small' FROM seq_1_to_1000")
    run("ANALYZE TABLE big, small")
    # one job, largest first: big is copying when we kill, small not started;
    # split: big in 8 ranges over 2 jobs, killed once a range has committed
    args = ["clone", "--source", url, "--target", target_db, "--jobs", "1", "-q"]
    if split:
        run("UPDATE big SET body = CONCAT('a', CHAR(0)) WHERE id = 5")  # a rejected row
        args = [*args[:-3], "--jobs", "2", "--split-tables-larger-than", "1MB",
                "--max-rejects", "1", "-q"]  # fmt: skip
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
            started = "phase:pre-data" in _done(target_db) and copying[0][0]
            if started and (not split or rows(target_db, "SELECT count(*) FROM big")[0][0]):
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
    if split:
        # the killed run's committed ranges and their reject are gone: once each
        assert {t["table"]: (t["rows"], t["rejected"], t["parts"]) for t in out["tables"]} == {
            "public.big": (ROWS - 1, 1, 8),
            "public.small": (1000, 0, 1),
        }
        assert rows(target_db, "SELECT count(*), count(DISTINCT id) FROM big") == [
            (ROWS - 1, ROWS - 1)
        ]
        assert rows(target_db, "SELECT key->>'id' FROM pgferry.rejects") == [("5",)]
        return
    assert {t["table"]: t["rows"] for t in out["tables"]} == {
        "public.big": ROWS,
        "public.small": 1000,
    }
    assert rows(target_db, "SELECT count(*), count(DISTINCT id) FROM big") == [(ROWS, ROWS)]
    res = run_cli("verify", "--source", url, "--target", target_db)
    assert res.exit_code == 0, res.output
    assert rows(target_db, "SELECT to_regnamespace('pgferry')") == [(None,)]
