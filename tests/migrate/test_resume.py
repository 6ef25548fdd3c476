"""Kill a clone halfway (SIGKILL, no cleanup), then finish it with --resume."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable

import pytest
from click.testing import Result

from tests.migrate.conftest import BIG_ROWS, rows

Run = Callable[..., Result]


def _count(url: str, query: str) -> int:
    try:
        return int(rows(url, query)[0][0])
    except Exception:  # table or ledger not created yet
        return -1


@pytest.mark.slow
def test_resume_after_kill(source_db: str, target_db: str, run_cli: Run) -> None:
    # one job, largest first: sales.wide (~29 MB, one piece), then app.events
    # in three ranges; we kill once the first range of app.events is in
    args = [
        "clone",
        "--source",
        source_db,
        "--target",
        target_db,
        "--jobs",
        "1",
        "--split-tables-larger-than",
        "30MB",
    ]
    proc = subprocess.Popen(
        [sys.executable, "-c", "from pgferry.cli import main; main()", *args, "-q"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 120
    try:
        while _count(target_db, "SELECT count(*) FROM app.events") <= 0:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    partial = _count(target_db, "SELECT count(*) FROM app.events")
    assert 0 < partial < BIG_ROWS
    done = {r[0] for r in rows(target_db, "SELECT item FROM pgferry.clone_progress")}
    assert {"phase:pre-data", "table:sales.wide"} <= done
    assert "table:app.events" not in done
    wide_xmin = rows(target_db, "SELECT xmin::text, count(*) FROM sales.wide GROUP BY 1")

    res = run_cli(*args, "-q")
    assert res.exit_code == 1
    assert "holds an interrupted clone (schema pgferry)" in res.stderr
    assert res.stderr.strip().endswith(
        "rerun with --resume to finish it, or DROP SCHEMA pgferry CASCADE to start over"
    )

    res = run_cli(*args, "--resume", "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert "pre-data" in out["skipped"] and "sales.wide" in out["skipped"]
    copied = {t["table"]: t["rows"] for t in out["tables"]}
    assert "sales.wide" not in copied
    assert copied["app.events"] == BIG_ROWS
    # not recopied: the same transaction wrote every row, before the kill
    assert rows(target_db, "SELECT xmin::text, count(*) FROM sales.wide GROUP BY 1") == wide_xmin
    res = run_cli("verify", "--source", source_db, "--target", target_db)
    assert res.exit_code == 0, res.output
    assert rows(target_db, "SELECT to_regnamespace('pgferry')") == [(None,)]
