"""`pgferry psql`: the server's own psql, every URL setting, psql's flags."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pgferry.embedded import LocalServer

PGFERRY = str(Path(sys.executable).parent / "pgferry")


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "DATABASE_URL"))}
    return subprocess.run(
        [PGFERRY, "psql", *args], capture_output=True, text=True, env=env or base, timeout=60
    )


def test_psql_of_the_server_version(db: str, pgserver: LocalServer) -> None:
    major = (pgserver.datadir / "PG_VERSION").read_text().strip()
    p = run("--target", db, "-X", "-At", "-c", r"\echo :VERSION_NUM")
    assert p.returncode == 0, p.stderr
    assert p.stdout[:2] == major


def test_every_url_parameter_reaches_psql(db: str) -> None:
    show = "select current_setting('application_name'), current_setting('work_mem')"
    url = db + "&application_name=ferryapp&target_session_attrs=any&options=-cwork_mem%3D7MB"
    p = run("--target", url, "-X", "-At", "-c", show)
    assert (p.returncode, p.stdout, p.stderr) == (0, "ferryapp|7MB\n", "")
    # a setting without a PG* variable goes in -d (no password there)
    # (replication=database lets psql run a replication command)
    p = run("--target", db + "&replication=database", "-X", "-At", "-c", "IDENTIFY_SYSTEM")
    assert p.returncode == 0 and p.stdout.count("|") == 3, p.stderr


def test_password_travels_in_the_environment(db: str, pgserver: LocalServer) -> None:
    # the test servers trust every login: the password is unused but must not
    # reach psql's argv, which `ps` shows to everyone
    url = db.replace("postgresql://postgres@", "postgresql://postgres:Sup3rSecretPw@")
    p = run(
        "--target",
        url,
        "-X",
        "-At",
        "-c",
        r"\! cat /proc/$PPID/cmdline | tr '\0' ' '; echo; printenv PGPASSWORD",
    )
    assert p.returncode == 0, p.stderr
    argv, env_password = p.stdout.splitlines()
    assert "Sup3rSecretPw" not in argv and argv.split()[0].endswith("psql")
    assert env_password == "Sup3rSecretPw"


def test_psql_flags_pass_through(db: str, pgserver: LocalServer) -> None:
    port = str(pgserver.port)
    # -h is psql's --host, not pgferry's --help
    p = run("--target", db, "-h", "127.0.0.1", "-X", "-At", "-c", "select 7")
    assert (p.returncode, p.stdout) == (0, "7\n"), p.stderr
    # psql's own connection flags win, even over a target that is down
    p = run(
        "--target",
        "postgresql://127.0.0.1:1/x",
        "-h",
        "127.0.0.1",
        "-p",
        port,
        "-U",
        "postgres",
        "-d",
        "postgres",
        "-X",
        "-At",
        "-c",
        "select 8",
    )
    assert (p.returncode, p.stdout) == (0, "8\n"), p.stderr


@pytest.mark.parametrize("pgserver", ["15"], indirect=True)
def test_unreachable_target_is_one_line(pgserver: LocalServer) -> None:
    p = run("--target", "postgresql://127.0.0.1:1/x", "-c", "select 1")
    assert p.returncode == 1 and p.stdout == ""
    assert p.stderr.startswith("error: cannot connect to postgresql://127.0.0.1:1/x: ")
    assert p.stderr.count("\n") == 1
