"""The `pgferry` command as users run it: exact output and exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

PGFERRY = str(Path(sys.executable).parent / "pgferry")


def run(
    *args: str, env: dict[str, str] | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PGFERRY, *args], capture_output=True, text=True, env=env, input=stdin, timeout=120
    )


@pytest.fixture()
def cli_env(s3: Any) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "PG", "DATABASE_URL"))}
    env.update(
        s3.env(),
        AWS_CONFIG_FILE="/nonexistent",
        AWS_SHARED_CREDENTIALS_FILE="/nonexistent",
        AWS_EC2_METADATA_DISABLED="true",
    )
    return env


def test_import_prints_aws_s3_message(conn, db, s3client, bucket, cli_env) -> None:
    conn.execute("CREATE TABLE t1 (a int, b text)")
    s3client.put_object(Bucket=bucket, Key="f.csv", Body=b"1,x\n2,y\n")
    p = run(
        "import",
        f"s3://{bucket}/f.csv",
        "--table",
        "t1",
        "--options",
        "(format csv)",
        "--target",
        db,
        env=cli_env,
    )
    assert (p.returncode, p.stdout, p.stderr) == (
        0,
        '2 rows imported into relation "t1" from file f.csv of 8 bytes\n',
        "",
    )
    p = run(
        "import",
        f"s3://{bucket}/f.csv",
        "--table",
        "t1",
        "--options",
        "(format csv)",
        "--json",
        env=dict(cli_env, PGFERRY_TARGET=db),
    )
    out = json.loads(p.stdout)
    assert p.returncode == 0
    assert {k: out[k] for k in ("rows", "bytes", "bucket", "key", "table", "message")} == {
        "rows": 2,
        "bytes": 8,
        "bucket": bucket,
        "key": "f.csv",
        "table": "t1",
        "message": 'rows imported into relation "t1" from file f.csv of 8 bytes'.join(["2 ", ""]),
    }
    assert conn.execute("SELECT count(*) FROM t1").fetchone() == (4,)


def test_columns_and_create_table(conn, db, s3client, bucket, cli_env) -> None:
    s3client.put_object(Bucket=bucket, Key="h.csv", Body=b"id,name\n1,ann\n2,bo\n")
    p = run(
        "import",
        f"s3://{bucket}/h.csv",
        "--table",
        "people",
        "--create-table",
        "--options",
        "(format csv, header true)",
        "--target",
        db,
        env=cli_env,
    )
    assert p.returncode == 0, p.stderr
    assert p.stdout == (
        'CREATE TABLE "people" ("id" bigint, "name" text);\n'
        '2 rows imported into relation "people" from file h.csv of 19 bytes\n'
    )
    assert conn.execute("SELECT * FROM people ORDER BY id").fetchall() == [(1, "ann"), (2, "bo")]


def test_explicit_keys_warn_and_stdin_secret(conn, db, s3client, bucket, cli_env) -> None:
    conn.execute("CREATE TABLE k (a int)")
    s3client.put_object(Bucket=bucket, Key="k.csv", Body=b"1\n")
    env = {
        k: v for k, v in cli_env.items() if k not in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
    }
    p = run(
        "import",
        f"s3://{bucket}/k.csv",
        "--table",
        "k",
        "--target",
        db,
        "--access-key",
        "testaccesskey",
        "--secret-key",
        "-",
        env=env,
        stdin="testsecretkey123\n",
    )
    assert (p.returncode, p.stderr) == (0, "")
    p = run(
        "import",
        f"s3://{bucket}/k.csv",
        "--table",
        "k",
        "--target",
        db,
        "--access-key",
        "testaccesskey",
        "--secret-key",
        "testsecretkey123",
        env=env,
    )
    assert p.returncode == 0
    assert "--secret-key on the command line is visible in the process list" in p.stderr
    assert conn.execute("SELECT count(*) FROM k").fetchone() == (2,)


@pytest.mark.parametrize(
    ("args", "stderr"),
    [
        (
            ["s3://{bucket}/missing.csv", "--table", "t"],
            "error: object s3://{bucket}/missing.csv does not exist; check the key; "
            "list the prefix with 'aws s3 ls s3://{bucket}/'\n",
        ),
        (
            ["s3://{bucket}/f.csv", "--table", "nosuch"],
            'error: table "nosuch" does not exist; create it first, or pass --create-table '
            "to create it from the file\n",
        ),
    ],
)
def test_failures_exit_1_with_one_line(conn, db, s3client, bucket, cli_env, args, stderr) -> None:
    s3client.put_object(Bucket=bucket, Key="f.csv", Body=b"1\n")
    p = run("import", *[a.format(bucket=bucket) for a in args], "--target", db, env=cli_env)
    assert (p.returncode, p.stdout, p.stderr) == (1, "", stderr.format(bucket=bucket))


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["s3://b/k"], "Missing option '--table'"),
        (
            ["s3://b/k", "--table", "t", "--options", "(format csv); drop table t"],
            "error: cannot parse COPY options near '; drop table t'",
        ),
        (["s3://b", "--table", "t"], "error: 's3://b' is not a full S3 object URI"),
        (
            ["s3://b/k", "--table", "t", "--content-encoding", "lz4"],
            "Invalid value for '--content-encoding'",
        ),
        (
            ["s3://b/k", "--table", "t", "--access-key", "x"],
            "--access-key and --secret-key go together",
        ),
    ],
)
def test_usage_errors_exit_2(args, needle, cli_env) -> None:
    p = run("import", *args, "--target", "postgresql://127.0.0.1:1/x", env=cli_env)
    assert p.returncode == 2
    assert needle in p.stderr


def test_target_is_masked(cli_env) -> None:
    p = run("target", "--target", "postgresql://app:hunter2@db.example:5432/prod", env=cli_env)
    assert (p.returncode, p.stdout) == (0, "postgresql://app:****@db.example:5432/prod\n")
    p = run("target", "--json", env=dict(cli_env, DATABASE_URL="postgresql://u:pw@h/d"))
    assert json.loads(p.stdout) == {"target": "postgresql://u:****@h/d", "origin": "DATABASE_URL"}


def test_psql_opens_on_target(db, cli_env) -> None:
    p = run("psql", "--target", db, "-At", "-c", "select current_database()", env=cli_env)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == db.rsplit("/", 1)[1].split("?")[0]


def test_embedded_default(tmp_path, cli_env, server_home) -> None:
    """No target configured: pgferry starts its own PostgreSQL 18 and reuses it."""
    env = dict(cli_env, PGFERRY_HOME=str(server_home / "home"))
    csv = tmp_path / "cities.csv"
    csv.write_text("city,pop\nLyon,522000\nNantes,320000\n")
    try:
        p = run(
            "import",
            str(csv),
            "--table",
            "cities",
            "--create-table",
            "--options",
            "(format csv, header true)",
            env=env,
        )
        assert p.returncode == 0, p.stderr
        assert p.stdout == (
            'CREATE TABLE "cities" ("city" text, "pop" bigint);\n'
            f'2 rows imported into relation "cities" from file {csv} '
            f"of {csv.stat().st_size} bytes\n"
        )
        p = run(
            "import",
            str(csv),
            "--table",
            "cities",
            "--options",
            "(format csv, header true)",
            env=env,
        )
        assert p.returncode == 0, p.stderr
        p = run("target", "--json", env=env)
        assert json.loads(p.stdout)["origin"] == "embedded"
        p = run("psql", "-At", "-c", "select count(*), version() from cities", env=env)
        assert p.stdout.startswith("4|PostgreSQL 18"), p.stderr
    finally:
        p = run("embedded", "stop", env=env)
    assert p.returncode == 0 and p.stdout.startswith("stopped")
