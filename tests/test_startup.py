"""Start-up cost: help loads no command's heavy libraries (checked by module
lists, not by timing, so it holds on a loaded machine)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import click
import pytest

from pgferry.cli import _COMMANDS, SHORT_HELP, cli

PGFERRY = str(Path(sys.executable).parent / "pgferry")
HEAVY = ("psycopg", "boto3", "botocore", "rich", "zstandard", "isal")

# runs the CLI like the console script does, then prints the heavy modules loaded
_PROBE = """
import json, sys
from pgferry.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
heavy = {m.split(".")[0] for m in sys.modules} & set(json.loads(sys.stdin.read()))
print("LOADED=" + json.dumps(sorted(heavy)), file=sys.stderr)
"""


def loaded_by(*args: str) -> tuple[str, list[str]]:
    p = subprocess.run(
        [sys.executable, "-c", _PROBE, *args],
        input=json.dumps(HEAVY),
        capture_output=True,
        text=True,
        timeout=60,
    )
    line = next(x for x in p.stderr.splitlines() if x.startswith("LOADED="))
    return p.stdout, json.loads(line.removeprefix("LOADED="))


def test_top_level_help_loads_no_command_module() -> None:
    p = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys\nfrom pgferry.cli import main\ntry: main(['--help'])\n"
            "except SystemExit: pass\n"
            "print(sorted(m for m in sys.modules if m.startswith('pgferry.cli.')), "
            "file=sys.stderr)",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.stderr.strip() == "[]"
    assert "import     Import SOURCE (s3://bucket/key" in p.stdout


@pytest.mark.parametrize("args", [["--help"], *([c, "--help"] for c in sorted(set(_COMMANDS)))])
def test_help_loads_no_heavy_library(args: list[str]) -> None:
    out, heavy = loaded_by(*args)
    assert "Usage: pgferry" in out
    assert heavy == []


def test_short_help_table_matches_the_commands() -> None:
    """The static table `pgferry --help` prints must say what each command's
    own docstring says (a new command needs its line in SHORT_HELP)."""
    ctx = click.Context(cli)
    assert set(SHORT_HELP) == set(_COMMANDS)
    for name in _COMMANDS:
        command = cli.get_command(ctx, name)
        assert command is not None
        table = click.Command(name, help=SHORT_HELP[name])
        assert table.get_short_help_str(1000) == command.get_short_help_str(1000), name


def test_local_file_import_loads_no_s3_library(conn, db, tmp_path) -> None:
    """A local file imports without botocore (S3 code loads only for s3://)."""
    conn.execute("CREATE TABLE t (a int, b text)")
    path = tmp_path / "one.csv"
    path.write_text("1,x\n")
    out, heavy = loaded_by(
        "import", str(path), "--table", "t", "--options", "(format csv)", "--target", db
    )
    assert out.startswith('1 rows imported into relation "t" from file')
    assert conn.execute("SELECT a, b FROM t").fetchall() == [(1, "x")]
    assert [m for m in heavy if m in ("boto3", "botocore")] == []


def test_failed_connect_exits_at_once_while_the_store_hangs(tmp_path) -> None:
    """The object opens on another thread while the target connects: when
    the connect fails, the error comes out and the process ends without
    waiting for the store (here one that accepts and never answers)."""
    import os
    import socket
    import time

    hang = socket.socket()
    hang.bind(("127.0.0.1", 0))
    hang.listen(8)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "PG"))}
    env.update(
        AWS_ACCESS_KEY_ID="k",
        AWS_SECRET_ACCESS_KEY="s",
        AWS_CONFIG_FILE="/nonexistent",
        AWS_SHARED_CREDENTIALS_FILE="/nonexistent",
        AWS_ENDPOINT_URL=f"http://127.0.0.1:{hang.getsockname()[1]}",
    )
    started = time.monotonic()
    try:
        p = subprocess.run(
            [
                PGFERRY,
                "import",
                "s3://b/k.csv",
                "-t",
                "t",
                "--target",
                "postgresql://127.0.0.1:1/x",
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
    finally:
        hang.close()
    assert p.returncode == 1
    assert p.stderr.startswith("error: cannot connect to postgresql://127.0.0.1:1/x")
    assert time.monotonic() - started < 20  # the store's read timeout is 60 s
