"""Bad-input corpus: every command, fed malformed flags, URLs, files and
objects, fails with exit 1 or 2 and exactly one line on stderr (never a
traceback), and leaves the table or the target as it was."""

from __future__ import annotations

import gzip
import io
import lzma
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import psycopg
import pytest

from pgferry.embedded import free_port

PGFERRY = str(Path(sys.executable).parent / "pgferry")

# one server version is enough here: the corpus is about pgferry's handling
pytestmark = pytest.mark.parametrize("pgserver", ["18"], indirect=True)


def _zip(data: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("f.csv", data)
    return buf.getvalue()


# local files the cases refer to as {name}
FILES: dict[str, bytes] = {
    "good.csv": b"1,a\n2,b\n",
    "badint.csv": b"1,a\nx,b\n",
    "latin1.csv": b"1,caf\xe9\n",
    "f.zip": _zip(b"id,v\n1,a\n"),
    "f.xz": lzma.compress(b"id,v\n1,a\n"),
    "empty.csv": b"",
    "plain.csv": b"id,v\n1,a\n",
    "cut.csv.gz": gzip.compress(b"".join(b"%d,x\n" % i for i in range(20_000)))[:3000],
}

# (id, argv after "pgferry", extra env, marks); {db} {dir} {bucket} {free} filled in
IMPORT_CASES: list[Any] = [
    ("options unbalanced", ["--options", "(format csv"], {}),
    ("options without parentheses", ["--options", "format csv, header true"], {}),
    ("options injection", ["--options", "(format csv); drop table t"], {}),
    ("unknown option", ["--options", "(format csv, colour blue)"], {}),
    ("bad table name", ["--table", "a.b.c.d"], {}),
    ("empty table name", ["--table", ""], {}),
    ("table name with a blank", ["--table", "My Table"], {"_exit": "2"}),
    ("column list with a blank", ["--columns", "id v"], {"_exit": "2"}),
    ("unknown column", ["--columns", "id,nope"], {}),
    ("bad content encoding", ["--content-encoding", "lz4"], {}),
    ("gzip flag on plain bytes", ["--content-encoding", "gzip"], {}),
    ("keys half given", ["--access-key", "AKIAX"], {}),
    pytest.param(
        "session token without keys",
        ["--session-token", "tok", "--source", "s3://{bucket}/k.csv"],
        {"_exit": "2"},  # a usage mistake
        id="token",
    ),
    pytest.param(
        "endpoint without scheme",
        ["--endpoint-url", "127.0.0.1:9", "--source", "s3://{bucket}/k.csv"],
        {},
        id="endpoint-flag",
    ),
    pytest.param(
        "endpoint variable without scheme",
        ["--source", "s3://{bucket}/k.csv"],
        {"AWS_ENDPOINT_URL": "127.0.0.1:9"},
        id="endpoint-env",
    ),
    ("missing file", ["--source", "{dir}/nope.csv"], {}),
    ("directory as file", ["--source", "{dir}"], {}),
    ("bad row", ["--source", "{dir}/badint.csv"], {}),
    ("not UTF-8", ["--source", "{dir}/latin1.csv"], {}),
    ("truncated gzip", ["--source", "{dir}/cut.csv.gz"], {}),
    ("bucket only", ["--source", "s3://{bucket}"], {}),
    ("missing object", ["--source", "s3://{bucket}/nope.csv"], {}),
    ("missing bucket", ["--source", "s3://no-such-bucket-zz/k.csv"], {}),
    ("bad s3 uri", ["--source", "s3:///k.csv"], {}),
    ("target not a url", ["--target", "not a url"], {}),
    ("target bad port", ["--target", "postgresql://u:pw@127.0.0.1:notaport/db"], {}),
    ("target down", ["--target", "postgresql://127.0.0.1:{free}/db"], {}),
    ("target missing database", ["--target", "{db_missing}"], {}),
]
# --create-table cases: the table t must not exist afterwards
CREATE_CASES: list[Any] = [
    ("zip", "f.zip", "(format csv, header true)"),
    ("xz", "f.xz", "(format csv, header true)"),
    pytest.param("empty file", "empty.csv", "(format csv, header true)"),
    pytest.param("delimiter ',,'", "plain.csv", "(format csv, delimiter ',,')"),
    ("gzip read as plain", "cut.csv.gz", "(format csv)"),
]
OTHER_CASES: list[Any] = [
    ("clone source down", ["clone", "--source", "postgresql://127.0.0.1:{free}/x"]),
    ("clone source missing db", ["clone", "--source", "{db_missing}"]),
    ("clone source bad url", ["clone", "--source", "postgresql://h:99999/x"]),
    ("clone bad split size", ["clone", "--source", "{db}", "--split-tables-larger-than", "lots"]),
    ("clone jobs not a number", ["clone", "--source", "{db}", "--jobs", "many"]),
    ("verify source down", ["verify", "--source", "postgresql://127.0.0.1:{free}/x"]),
    ("verify source unknown scheme", ["verify", "--source", "mssql://h/x"]),
    ("snapshot create bad uri", ["snapshot", "create", "notanuri", "--source", "{db}"]),
    ("snapshot create no name", ["snapshot", "create", "s3://{bucket}", "--source", "{db}"]),
    (
        "snapshot create source down",
        [
            "snapshot",
            "create",
            "s3://{bucket}/s/one",
            "--source",
            "postgresql://127.0.0.1:{free}/x",
        ],
    ),
    ("snapshot restore missing", ["snapshot", "restore", "s3://{bucket}/s/none"]),
    ("snapshot restore bad uri", ["snapshot", "restore", "http://x/y"]),
    ("snapshot list bad uri", ["snapshot", "list", "ftp://x/"]),
    ("unknown command", ["imprt", "x"]),
    ("unknown option", ["--bogus"]),
    ("target not a url", ["target", "--target", "not a url"]),
    ("target empty host", ["target", "--target", "postgresql://u:pw@:5432/db"]),
    ("psql target down", ["psql", "--target", "postgresql://127.0.0.1:{free}/x", "-c", "select 1"]),
    ("extension bad pg_config", ["extension", "install", "--pg-config", "/nonexistent"]),
    (
        "extension target down",
        ["extension", "install", "--target", "postgresql://127.0.0.1:{free}/x"],
    ),
    (
        "export source down",
        [
            "export",
            "s3://{bucket}/e/k",
            "-q",
            "select 1",
            "--source",
            "postgresql://127.0.0.1:{free}/x",
        ],
    ),
    ("export neither query nor table", ["export", "s3://{bucket}/e/k"]),
    (
        "export bad part size",
        ["export", "s3://{bucket}/e/k", "-q", "select 1", "--part-size", "lots"],
    ),
    ("export bad destination", ["export", "notanuri", "-q", "select 1"]),
    ("export bad query", ["export", "s3://{bucket}/e/k", "-q", "selec 1"]),
    ("watch not a prefix", ["watch", "run", "notanuri", "--table", "keep", "--once"]),
    (
        "watch missing bucket",
        ["watch", "run", "s3://no-such-bucket-x/p/", "--table", "keep", "--once"],
    ),
    (
        "watch bad interval",
        ["watch", "run", "s3://{bucket}/p/", "--table", "keep", "--interval", "soon"],
    ),
    ("watch missing table", ["watch", "run", "s3://{bucket}/p/", "--table", "nope", "--once"]),
    ("files retry unknown", ["files", "retry", "s3://{bucket}/p/none.csv"]),
    ("replica status unknown name", ["replica", "status", "--name", "nope"]),
    ("replica drop unknown name", ["replica", "drop", "--name", "nope"]),
    ("replica promote bad max lag", ["replica", "promote", "--max-lag", "huge"]),
    (
        "replica create source down",
        ["replica", "create", "--source", "postgresql://127.0.0.1:{free}/x", "--target", "{db}"],
    ),
    ("clone mysql source down", ["clone", "--source", "mysql://u@127.0.0.1:{free}/x"]),
    ("clone sqlite file missing", ["clone", "--source", "sqlite:///{dir}/none.db"]),
    ("verify sqlite file missing", ["verify", "--source", "sqlite:///{dir}/none.db"]),
]


@pytest.fixture()
def ctx(db: str, bucket: str, s3client: Any, tmp_path: Path, s3: Any) -> dict[str, Any]:
    for name, data in FILES.items():
        (tmp_path / name).write_bytes(data)
    s3client.put_object(Bucket=bucket, Key="k.csv", Body=b"1,a\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "PG", "DATABASE_URL"))}
    env.update(
        s3.env(),
        AWS_CONFIG_FILE="/nonexistent",
        AWS_SHARED_CREDENTIALS_FILE="/nonexistent",
        AWS_EC2_METADATA_DISABLED="true",
        PGFERRY_TARGET=db,
        # never fall back to (and start) the embedded server
        PGFERRY_HOME=str(tmp_path / "no-home"),
    )
    return {
        "db": db,
        "db_missing": db.replace("/t", "/nosuchdb_t", 1),
        "dir": str(tmp_path),
        "bucket": bucket,
        "free": str(free_port()),
        "env": env,
    }


def run(
    args: list[str], ctx: dict[str, Any], env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    argv = [a.format(**ctx) for a in args]
    return subprocess.run(
        [PGFERRY, *argv],
        capture_output=True,
        text=True,
        env={**ctx["env"], **{k: v.format(**ctx) for k, v in env.items()}},
        timeout=120,
    )


def assert_one_line_failure(p: subprocess.CompletedProcess[str]) -> None:
    assert p.returncode in (1, 2), (p.returncode, p.stdout, p.stderr)
    assert "Traceback" not in p.stderr, p.stderr
    lines = p.stderr.splitlines()
    assert len(lines) == 1 and p.stderr.endswith("\n"), p.stderr
    assert lines[0].startswith("error: "), lines


def user_tables(db: str) -> list[tuple[str, str]]:
    with psycopg.connect(db) as c:
        return c.execute(
            "SELECT schemaname, tablename FROM pg_tables "
            "WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2"
        ).fetchall()


def _import_argv(args: list[str]) -> list[str]:
    """`import SOURCE --table t --options (format csv)` with the case's
    overrides (--source replaces SOURCE; a repeated option wins)."""
    source = "{dir}/good.csv"
    rest = list(args)
    if "--source" in rest:
        i = rest.index("--source")
        source = rest[i + 1]
        del rest[i : i + 2]
    base = {"--table": "t", "--options": "(format csv)"}
    for flag in base:
        if flag in rest:
            base.pop(flag)
            break
    argv = ["import", source]
    for flag, value in base.items():
        if flag not in rest:
            argv += [flag, value]
    return argv + rest


@pytest.mark.parametrize(("name", "args", "env"), IMPORT_CASES)
def test_import(name: str, args: list[str], env: dict[str, str], ctx: dict[str, Any]) -> None:
    with psycopg.connect(ctx["db"], autocommit=True) as c:
        c.execute("CREATE TABLE t (id int, v text); INSERT INTO t VALUES (0, 'kept')")
    env = dict(env)
    expected = env.pop("_exit", None)
    p = run(_import_argv(args), ctx, env)
    assert_one_line_failure(p)
    if expected:
        assert p.returncode == int(expected), p.stderr
    with psycopg.connect(ctx["db"]) as c:
        assert c.execute("SELECT id, v FROM t").fetchall() == [(0, "kept")]


@pytest.mark.parametrize(("name", "file", "options"), CREATE_CASES)
def test_import_create_table(name: str, file: str, options: str, ctx: dict[str, Any]) -> None:
    p = run(
        ["import", "{dir}/" + file, "--table", "t", "--create-table", "--options", options], ctx, {}
    )
    assert_one_line_failure(p)
    assert user_tables(ctx["db"]) == []


@pytest.mark.parametrize(("name", "args"), OTHER_CASES)
def test_other_commands(name: str, args: list[str], ctx: dict[str, Any]) -> None:
    with psycopg.connect(ctx["db"], autocommit=True) as c:
        c.execute("CREATE TABLE keep (id int); INSERT INTO keep VALUES (1)")
    target_db = ctx["db"]
    p = run(args, ctx, {})
    assert_one_line_failure(p)
    assert user_tables(target_db) == [("public", "keep")]
    with psycopg.connect(target_db) as c:
        assert c.execute("SELECT id FROM keep").fetchall() == [(1,)]


def test_watch_checks_bucket_and_table_before_creating_its_ledger(ctx: dict[str, Any]) -> None:
    p = run(["watch", "run", "s3://{bucket}/p/", "--table", "nope", "--once"], ctx, {})
    assert (p.returncode, p.stderr) == (
        1,
        'error: table "nope" does not exist; create it first, or pass --create-table\n',
    )
    p = run(["watch", "run", "s3://no-such-bucket-x/p/", "--table", "nope", "--once"], ctx, {})
    assert p.returncode == 1
    assert p.stderr.startswith("error: bucket 'no-such-bucket-x' "), p.stderr
    assert user_tables(ctx["db"]) == []
