"""`pgferry import` as users run it: stdin, usage mistakes, refused inputs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
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
    """The test S3 and nothing else from the AWS or libpq environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "PG", "DATABASE_URL"))}
    env.update(
        s3.env(),
        AWS_CONFIG_FILE="/nonexistent",
        AWS_SHARED_CREDENTIALS_FILE="/nonexistent",
        AWS_EC2_METADATA_DISABLED="true",
    )
    return env


BODY = b"id,name\n1,ann\n2,bo\n"


def test_stdin_dash_and_pipes_report_bytes_read(conn, db, tmp_path: Path, cli_env) -> None:
    conn.execute("CREATE TABLE s (id int, name text)")
    opts = ["--options", "(format csv, header true)", "--target", db]
    p = subprocess.run(
        [PGFERRY, "import", "-", "--table", "s", *opts],
        input=BODY,
        capture_output=True,
        env=cli_env,
        timeout=120,
    )
    assert (p.returncode, p.stdout.decode(), p.stderr.decode()) == (
        0,
        f'2 rows imported into relation "s" from file - of {len(BODY)} bytes\n',
        "",
    )
    # /dev/stdin on a pipe has no size up front: the count is what was read
    producer = subprocess.Popen(["cat", "--", str(_write(tmp_path, BODY))], stdout=subprocess.PIPE)
    p = subprocess.run(
        [PGFERRY, "import", "/dev/stdin", "--table", "s", *opts],
        stdin=producer.stdout,
        capture_output=True,
        env=cli_env,
        timeout=120,
    )
    producer.wait()
    assert (p.returncode, p.stdout.decode()) == (
        0,
        f'2 rows imported into relation "s" from file /dev/stdin of {len(BODY)} bytes\n',
    )
    assert "empty" not in p.stderr.decode()
    assert conn.execute("SELECT count(*) FROM s").fetchone() == (4,)


def _write(tmp_path: Path, data: bytes, name: str = "f.csv") -> Path:
    f = tmp_path / name
    f.write_bytes(data)
    return f


def test_secret_and_data_cannot_both_come_from_stdin(cli_env) -> None:
    p = run(
        "import",
        "-",
        "--table",
        "t",
        "--access-key",
        "a",
        "--secret-key",
        "-",
        "--target",
        "postgresql://127.0.0.1:1/x",
        env=cli_env,
        stdin="x\n",
    )
    assert p.returncode == 2
    assert "SOURCE - reads the data from stdin, so a secret cannot come from stdin too" in p.stderr


@pytest.mark.parametrize(
    ("args", "env", "stderr"),
    [
        (
            ["--endpoint-url", "127.0.0.1:9"],
            {},
            "error: --endpoint-url '127.0.0.1:9' is not an http:// or https:// URL; "
            "write it with its scheme, e.g. http://127.0.0.1:9\n",
        ),
        (
            [],
            {"AWS_ENDPOINT_URL": "127.0.0.1:9"},
            "error: AWS_ENDPOINT_URL '127.0.0.1:9' is not an http:// or https:// URL; "
            "write it with its scheme, e.g. http://127.0.0.1:9\n",
        ),
        (
            ["--options", "format csv, header true"],
            {},
            "error: COPY options 'format csv, header true' are a list without its parentheses; "
            "write them as '(format csv, header true)'\n",
        ),
        (
            ["--options", "(format csv, force_quote *)"],
            {},
            "error: force_quote only applies to exports (COPY TO), not to an import; "
            "drop it; to read quoted empty strings as NULL use force_null\n",
        ),
        (
            ["--options", "(format csv, reject_limit 1)"],
            {},
            "error: reject_limit needs on_error ignore; add on_error ignore to the options\n",
        ),
        (
            ["--options", "(format csv, delimiter ',,')", "--create-table"],
            {},
            "error: COPY delimiter must be one single-byte character, not ',,'; "
            "e.g. delimiter '|'\n",
        ),
    ],
)
def test_usage_mistakes_exit_2_naming_the_option(cli_env, args, env, stderr) -> None:
    # found before connecting: the target is never reached
    p = run(
        "import", "s3://bkt/f.csv", "--table", "t", "--target", "postgresql://127.0.0.1:1/x", *args,
        env={**cli_env, **env},
    )  # fmt: skip
    assert (p.returncode, p.stdout, p.stderr) == (2, "", stderr)


def test_session_token_without_keys(cli_env) -> None:
    p = run(
        "import", "s3://b/k.csv", "--table", "t", "--session-token", "s3cr3t-t0ken", env=cli_env
    )
    assert p.returncode == 2
    assert "Traceback" not in p.stderr
    assert p.stderr.splitlines()[-1] == (
        "error: --session-token goes with --access-key and --secret-key (temporary credentials "
        "are all three); pass them too, or set all three in the AWS environment variables; "
        "see 'pgferry import --help'"
    )
    assert "s3cr3t-t0ken" not in p.stderr


def test_refused_file_is_one_line(conn, db, tmp_path: Path, cli_env) -> None:
    f = tmp_path / "data.zip"
    with zipfile.ZipFile(f, "w") as z:
        z.writestr("data.csv", BODY)
    p = run("import", str(f), "--table", "z", "--create-table", "--target", db, env=cli_env)
    assert (p.returncode, p.stdout, p.stderr) == (
        1,
        "",
        f"error: {f} is a zip archive, which COPY cannot read; unzip it and import the file "
        "inside\n",
    )


def test_mode_sample_rows_and_column_type_flags(conn, db, tmp_path: Path, cli_env) -> None:
    lines = [b"id,code"] + [b"%d,%d" % (i, i) for i in range(1, 21)]
    lines[15] = b"15,A15"
    f = _write(tmp_path, b"\n".join(lines) + b"\n", "codes.csv")
    base = ["import", str(f), "--table", "c", "--target", db, "--create-table"]
    p = run(*base, "--sample-rows", "10", env=cli_env)
    assert p.returncode == 1
    assert p.stderr.endswith(
        "column code was created as bigint from the first 10 rows: pass --column-type "
        "code=text (or a larger --sample-rows); nothing was loaded\n"
    )
    p = run(*base, "--sample-rows", "10", "--column-type", "code=text", "--json", env=cli_env)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert (out["rows"], out["skipped"], out["created_table"]) == (
        20,
        0,
        'CREATE TABLE "c" ("id" bigint, "code" text)',
    )
    p = run(*base, "--mode", "truncate", env=cli_env)
    assert p.returncode == 0, p.stderr
    assert conn.execute("SELECT count(*) FROM c").fetchone() == (20,)
    p = run(*base, "--column-type", "code", env=cli_env)
    assert (p.returncode, p.stderr) == (
        2,
        "error: --column-type 'code' is not NAME=TYPE; e.g. --column-type zip=text\n",
    )


def test_stdin_dash_on_a_terminal_is_refused(cli_env) -> None:
    import pty

    leader, follower = pty.openpty()
    try:
        p = subprocess.run(
            [PGFERRY, "import", "-", "--table", "t", "--target", "postgresql://127.0.0.1:1/x"],
            stdin=follower,
            capture_output=True,
            text=True,
            env=cli_env,
            timeout=120,
        )
    finally:
        os.close(follower)
        os.close(leader)
    assert p.returncode == 2
    assert p.stderr.splitlines() == [
        "error: SOURCE - reads the data from stdin, which is a terminal here; "
        "pipe the data in (... | pgferry import - --table T) or name a file; "
        "see 'pgferry import --help'"
    ]
