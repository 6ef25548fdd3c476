"""Connection strings: malformed ones are one usage line naming their option,
passwords never show, and each way a connection fails has its own error."""

from __future__ import annotations

import logging
import os
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner

from pgferry import conninfo, errors
from pgferry.cli import cli
from pgferry.cli.output import setup_logging
from pgferry.conninfo import check, scrub
from pgferry.embedded import LocalServer, free_port
from pgferry.target import connect

MARKER = "Mk7xQz9pW"
GOOD = "postgresql://127.0.0.1:1/x"

# (connection string, what the one line must say after "bad connection string: ")
MALFORMED = {
    "bad port": (
        f"postgresql://u:{MARKER}@127.0.0.1:notaport/db",
        "the port 'notaport' is not a number from 1 to 65535",
    ),
    "unknown scheme": (
        f"postgress://u:{MARKER}@h/db",
        "unknown scheme 'postgress://' (expected postgresql:// or postgres://)",
    ),
    "unbalanced quotes": (
        f"host=127.0.0.1 password='{MARKER} dbname=x",
        "unterminated quoted string in connection info string",
    ),
    "empty host": (f"postgresql://u:{MARKER}@:5432/db", "the host is empty"),
    "spaces": (f"postgresql://u:{MARKER}@127.0.0.1/my db", "the URL contains spaces"),
    "non-ascii password": (
        f"postgresql://u:{MARKER}\u00e9@127.0.0.1/db",
        "the URL contains non-ASCII characters",
    ),
    "no scheme": (
        f"u:{MARKER}@127.0.0.1/db",
        'missing "=" after "u:****@127.0.0.1/db" in connection info string',
    ),
    "unknown keyword": (
        f"host=h password={MARKER} colour=blue",
        'invalid connection option "colour"',
    ),
}

# every command that takes a connection string, with the bad one in {}
FLAG_COMMANDS = {
    "import": (["import", "/etc/hostname", "--table", "t", "--target", "{}"], "--target"),
    "target": (["target", "--target", "{}"], "--target"),
    "target --json": (["target", "--json", "--target", "{}"], "--target"),
    "psql": (["psql", "--target", "{}", "-c", "select 1"], "--target"),
    "clone source": (["clone", "--source", "{}", "--target", GOOD], "--source"),
    "clone target": (["clone", "--source", GOOD, "--target", "{}"], "--target"),
    "verify source": (["verify", "--source", "{}", "--target", GOOD], "--source"),
    "verify target": (["verify", "--source", GOOD, "--target", "{}"], "--target"),
    "snapshot create": (["snapshot", "create", "s3://b/p/n", "--source", "{}"], "--source"),
    "snapshot restore": (["snapshot", "restore", "s3://b/p/n", "--target", "{}"], "--target"),
    "extension install": (["extension", "install", "--target", "{}"], "--target"),
    "export": (["export", "s3://b/k", "--table", "t", "--source", "{}"], "--source"),
    "watch": (["watch", "s3://b/p/", "--table", "t", "--once", "--target", "{}"], "--target"),
    "watch status": (["watch", "status", "--target", "{}"], "--target"),
    "files list": (["files", "list", "--target", "{}"], "--target"),
    "replica create source": (
        ["replica", "create", "--source", "{}", "--target", GOOD],
        "--source",
    ),
    "replica create target": (
        ["replica", "create", "--source", GOOD, "--target", "{}"],
        "--target",
    ),
    "replica status": (["replica", "status", "--target", "{}"], "--target"),
    "replica promote": (["replica", "promote", "--source", "{}"], "--source"),
    "replica drop": (["replica", "drop", "--target", "{}"], "--target"),
}
# commands that fall back to PGFERRY_TARGET / DATABASE_URL
ENV_COMMANDS = {
    "import": ["import", "/etc/hostname", "--table", "t"],
    "target": ["target"],
    "psql": ["psql", "-c", "select 1"],
    "clone": ["clone", "--source", GOOD],
    "verify": ["verify", "--source", GOOD],
    "snapshot restore": ["snapshot", "restore", "s3://b/p/n"],
    "export": ["export", "s3://b/k", "--table", "t"],
    "watch": ["watch", "s3://b/p/", "--table", "t", "--once"],
    "files list": ["files", "list"],
}


@pytest.fixture(autouse=True)
def _forget_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    # each case must mask its password on its own, not thanks to an earlier one
    monkeypatch.setattr(conninfo, "_known", set())


def _clean_env(**extra: str) -> dict[str, str | None]:
    # CliRunner overlays this on os.environ: None removes a variable
    env: dict[str, str | None] = {
        k: None for k in os.environ if k.startswith(("PG", "AWS_")) or k == "DATABASE_URL"
    }
    env.update(extra)
    return env


def _assert_one_usage_line(result: Any, option: str, reason: str) -> None:
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert result.stderr.startswith(f"error: {option}: bad connection string: {reason}; ")
    assert result.stderr.count("\n") == 1 and result.stderr.endswith("\n")
    assert "Traceback" not in result.stderr
    assert MARKER not in result.stdout + result.stderr


@pytest.mark.parametrize("bad", MALFORMED, ids=str)
@pytest.mark.parametrize("command", FLAG_COMMANDS, ids=str)
def test_malformed_flag_is_one_usage_line(command: str, bad: str) -> None:
    args, option = FLAG_COMMANDS[command]
    text, reason = MALFORMED[bad]
    result = CliRunner().invoke(cli, [a.format(text) for a in args], env=_clean_env())
    _assert_one_usage_line(result, option, reason)


@pytest.mark.parametrize("bad", ["bad port", "unknown scheme", "unbalanced quotes", "spaces"])
@pytest.mark.parametrize("var", ["PGFERRY_TARGET", "DATABASE_URL"])
@pytest.mark.parametrize("command", ENV_COMMANDS, ids=str)
def test_malformed_variable_is_one_usage_line(command: str, var: str, bad: str) -> None:
    text, reason = MALFORMED[bad]
    result = CliRunner().invoke(cli, ENV_COMMANDS[command], env=_clean_env(**{var: text}))
    _assert_one_usage_line(result, var, reason)


def test_malformed_in_a_real_process() -> None:
    """The installed command, as users run it (the matrix above runs in-process)."""
    import subprocess
    import sys
    from pathlib import Path

    pgferry = str(Path(sys.executable).parent / "pgferry")
    text = MALFORMED["bad port"][0]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "DATABASE_URL"))}
    p = subprocess.run(
        [pgferry, "clone", "--source", text, "--target", GOOD],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert (p.returncode, p.stdout) == (2, "")
    assert p.stderr == (
        "error: --source: bad connection string: the port 'notaport' is not a number from 1 "
        "to 65535; write it as postgresql://user@host:5432/dbname (percent-encode special "
        "characters)\n"
    )


@pytest.mark.parametrize(
    "good",
    [
        "postgresql:///db",
        "postgresql://user@/db",
        "postgresql:///db?host=/var/run/postgresql",
        "postgresql://h1:5432,h2:5433/db?target_session_attrs=read-write",
        "postgresql://[::1]:5432/db",
        "postgres://u:p%C3%A4%20ss@h/db",
        "host=h port=5432,5433 dbname=d",
        "",
    ],
)
def test_wellformed_strings_pass(good: str) -> None:
    assert check(good, "--target") == good


def test_library_raises_bad_connection_string() -> None:
    with pytest.raises(errors.BadConnectionString) as err:
        connect(MALFORMED["bad port"][0])
    assert err.value.option == "--target" and err.value.exit_code == 2
    assert MARKER not in str(err.value)
    with pytest.raises(errors.BadConnectionString) as err:
        check(f"oracle://u:{MARKER}@h/db", "--source")
    assert str(err.value).startswith(
        "--source: bad connection string: unknown scheme 'oracle://' (expected postgresql://"
    )
    # MariaDB/MySQL and SQLite are sources (pgferry.sources), never targets
    assert check(f"mysql://u:{MARKER}@h/db", "--source") == f"mysql://u:{MARKER}@h/db"
    with pytest.raises(errors.BadConnectionString) as err:
        check(f"mysql://u:{MARKER}@h/db", "--target")
    assert "unknown scheme 'mysql://'" in str(err.value) and MARKER not in str(err.value)


# -- scrubbing --------------------------------------------------------------


def test_scrub_masks_every_shape_of_password(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert scrub(f'missing "=" after "mysql://u:{MARKER}@h/db" in x') == (
        'missing "=" after "mysql://u:****@h/db" in x'
    )
    assert scrub(f"host=h password='{MARKER} x' dbname=d") == "host=h password=**** dbname=d"
    assert scrub(f"host=h password={MARKER}") == "host=h password=****"
    assert scrub(f"CREATE ROLE r PASSWORD '{MARKER} it''s'") == "CREATE ROLE r PASSWORD '****'"
    assert scrub(f"OPTIONS (\"user\" 'u', password '{MARKER}')") == (
        "OPTIONS (\"user\" 'u', password '****')"
    )
    assert scrub(f"...?sslmode=disable&password={MARKER}&x=1") == (
        "...?sslmode=disable&password=****&x=1"
    )
    monkeypatch.setenv("PGPASSWORD", "envsecret42")
    assert scrub("login with envsecret42 failed") == "login with **** failed"
    service = tmp_path / "services.conf"
    service.write_text("[prod]\nhost=h\npassword=servicesecret7\n")
    monkeypatch.setenv("PGSERVICEFILE", str(service))
    assert scrub("oops servicesecret7") == "oops ****"
    # a password seen in a checked string is masked alone too, and decoded
    check("postgresql://u:p%40ssword9@h/db", "--target")
    assert scrub("FATAL: bad p@ssword9") == "FATAL: bad ****"


def test_library_error_str_is_scrubbed() -> None:
    e = errors.TargetError(f"driver said: postgresql://u:{MARKER}@h/db")
    assert str(e) == "driver said: postgresql://u:****@h/db"


def test_log_handler_scrubs(capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging()
    logging.getLogger("pgferry.test").warning("retrying host=h password=%s", MARKER)
    assert capsys.readouterr().err == "warning: retrying host=h password=****\n"


# -- connection failures told apart ------------------------------------------


def test_server_down_is_transient() -> None:
    port = free_port()
    with pytest.raises(errors.TargetUnreachable) as err:
        connect(f"postgresql://u:{MARKER}@127.0.0.1:{port}/db")
    assert err.value.transient
    assert str(err.value).startswith(
        f"cannot connect to postgresql://u:****@127.0.0.1:{port}/db: connection failed: "
    )
    assert MARKER not in str(err.value)
    with pytest.raises(errors.SourceUnreachable) as serr:
        connect(f"postgresql://127.0.0.1:{port}/db", side="source")
    assert serr.value.transient
    assert str(serr.value).endswith("; check --source and that the server is running")


def test_unknown_role(pgserver: LocalServer) -> None:
    url = pgserver.conninfo(user="nosuchrole")
    with pytest.raises(errors.RoleNotFound) as err:
        connect(url)
    assert not err.value.transient
    assert str(err.value) == (
        f'role "nosuchrole" does not exist on the server at {url}; check the user name '
        "in --target, or create the role (CREATE ROLE ... LOGIN)"
    )
    with pytest.raises(errors.RoleNotFound) as err:
        connect(url, side="source")
    assert str(err.value).startswith('source: role "nosuchrole" does not exist')
    assert "in --source" in str(err.value)


def test_missing_database(pgserver: LocalServer) -> None:
    url = pgserver.conninfo("nosuchdb")
    with pytest.raises(errors.DatabaseNotFound) as err:
        connect(url)
    assert not err.value.transient
    assert str(err.value) == (
        f'database "nosuchdb" does not exist on the server at {url}; '
        "create it first, or point --target at an existing database"
    )


def test_login_refused(pgserver: LocalServer) -> None:
    with psycopg.connect(pgserver.conninfo(), autocommit=True) as c:
        c.execute("DROP ROLE IF EXISTS nologin; CREATE ROLE nologin NOLOGIN")
    url = pgserver.conninfo(user="nologin")
    with pytest.raises(errors.LoginRejected) as err:
        connect(url)
    assert not err.value.transient
    assert str(err.value).startswith(f"the server at {url} refused the login: ")
    assert 'role "nologin" is not permitted to log in' in str(err.value)


def test_tls_required_by_client_only(pgserver: LocalServer) -> None:
    url = pgserver.conninfo().replace("sslmode=disable", "sslmode=require")
    with pytest.raises(errors.LoginRejected) as err:
        connect(url)
    assert not err.value.transient
    assert str(err.value).endswith(
        "server does not support SSL, but SSL was required; make sslmode in --target match "
        "the server (require TLS only where the server offers it)"
    )
