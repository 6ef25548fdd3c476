"""Import of many objects: S3 prefixes, globs, local folders; all or nothing,
--commit-each, --jobs over several connections (two-phase commit)."""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from pgferry.embedded import LocalServer
from pgferry.errors import DataError, ObjectNotFound
from pgferry.imports import ImportSpec
from pgferry.many import run_many
from pgferry.stores.listing import expand, glob_regex, is_many
from tests.services import FAST, postgres
from tests.test_import_cli import run

OPTS = "(format csv, header true)"


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


def cli(env: dict[str, str], *args: str) -> Any:
    return run(*args, env=env)


def _put(s3client: Any, bucket: str, objects: dict[str, bytes]) -> None:
    for key, body in objects.items():
        s3client.put_object(Bucket=bucket, Key=key, Body=body)


def _rows(conn: psycopg.Connection[Any], table: str = "t") -> list[tuple[Any, ...]]:
    return conn.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall()


def test_glob_regex_follows_the_shell() -> None:
    assert glob_regex("logs/2024-*.csv").match("logs/2024-01.csv")
    assert not glob_regex("logs/2024-*.csv").match("logs/x/2024-01.csv")
    assert glob_regex("logs/**/*.csv").match("logs/a/b/x.csv")
    assert glob_regex("logs/**/*.csv").match("logs/x.csv")
    assert glob_regex("d/[ab]?.csv").match("d/a1.csv")
    assert not glob_regex("d/[!ab]?.csv").match("d/a1.csv")
    sources = ("s3://b/k.csv", "s3://b/dir/", "s3://b", "s3://b/", "s3://b/*.csv", "d/", "d")
    assert [is_many(s) for s in sources] == [False, True, False, True, True, True, False]


def test_prefix_loads_every_object_in_one_transaction(conn, db, s3client, bucket, cli_env) -> None:
    conn.execute("CREATE TABLE t (id int, name text)")
    _put(
        s3client,
        bucket,
        {
            "in/a.csv": b"id,name\n1,ann\n2,bo\n",
            "in/b.csv.gz": gzip.compress(b"id,name\n3,cy\n"),
            "in/sub/c.csv": b"id,name\n4,di\n",
            "in/_SUCCESS": b"",
            "in/sub/": b"",
            "other/x.csv": b"id,name\n9,no\n",
        },
    )
    p = cli(cli_env, "import", f"s3://{bucket}/in/", "-t", "t", "--options", OPTS, "--target", db)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0].startswith(f"s3://{bucket}/in/a.csv: 2 rows, 19 bytes, ")
    assert lines[1].startswith(f"s3://{bucket}/in/b.csv.gz: 1 rows, ")
    assert lines[2].startswith(f"s3://{bucket}/in/sub/c.csv: 1 rows, 13 bytes")
    assert lines[3].startswith('4 rows imported into relation "t" from 3 of 3 files of ')
    assert _rows(conn) == [(1, "ann"), (2, "bo"), (3, "cy"), (4, "di")]


def test_s3_glob_and_json_summary(conn, db, s3client, bucket, cli_env) -> None:
    conn.execute("CREATE TABLE t (id int, name text)")
    _put(
        s3client,
        bucket,
        {
            "logs/2024-01.csv": b"id,name\n1,a\n",
            "logs/2024-02.csv": b"id,name\n2,b\n",
            "logs/2023-12.csv": b"id,name\n3,c\n",
            "logs/deep/2024-03.csv": b"id,name\n4,d\n",
        },
    )
    p = cli(
        cli_env,
        "import",
        f"s3://{bucket}/logs/2024-*.csv",
        "-t",
        "t",
        "--options",
        OPTS,
        "--target",
        db,
        "--json",
    )
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert [(o["uri"], o["status"], o["rows"]) for o in out["objects"]] == [
        (f"s3://{bucket}/logs/2024-01.csv", "loaded", 1),
        (f"s3://{bucket}/logs/2024-02.csv", "loaded", 1),
    ]
    assert (out["rows"], out["files"], out["failed"], out["committed"]) == (2, 2, 0, "all")
    p = cli(
        cli_env,
        "import",
        f"s3://{bucket}/logs/**/2024-*.csv",
        "-t",
        "t",
        "--options",
        OPTS,
        "--target",
        db,
    )
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines()[-1].startswith('3 rows imported into relation "t" from 3 of 3')


def test_failed_object_leaves_nothing_behind(conn, db, s3client, bucket, cli_env) -> None:
    _put(
        s3client,
        bucket,
        {
            "in/a.csv": b"id,name\n1,ann\n",
            "in/b.csv": b"id,name\nnot-a-number,bo\n",
            "in/c.csv": b"id,name\n3,cy\n",
        },
    )
    args = ["import", f"s3://{bucket}/in/", "-t", "t", "--options", OPTS, "--target", db]
    p = cli(cli_env, *args, "--create-table", "--column-type", "id=int")
    assert p.returncode == 1
    assert p.stderr.splitlines()[-1] == (
        f'error: s3://{bucket}/in/b.csv line 2, column id rejected by table "t": '
        'invalid input syntax for type integer: "not-a-number"; fix the row, or load into a '
        "staging table of text columns; nothing was loaded from the 3 "
        "objects (all or nothing; --commit-each keeps those that load)"
    )
    # the table --create-table made went too
    assert conn.execute("SELECT to_regclass('t')").fetchone() == (None,)
    conn.execute("CREATE TABLE t (id int, name text)")
    conn.execute("INSERT INTO t VALUES (0, 'kept')")
    p = cli(cli_env, *args, "--mode", "truncate")
    assert p.returncode == 1
    assert _rows(conn) == [(0, "kept")]  # the truncate was undone too


def test_commit_each_keeps_the_objects_that_load(conn, db, s3client, bucket, cli_env) -> None:
    conn.execute("CREATE TABLE t (id int, name text)")
    _put(
        s3client,
        bucket,
        {
            "in/a.csv": b"id,name\n1,ann\n",
            "in/b.csv": b"id,name\nx,bo\n",
            "in/c.csv": b"id,name\n3,cy\n",
        },
    )
    p = cli(
        cli_env,
        "import",
        f"s3://{bucket}/in/",
        "-t",
        "t",
        "--options",
        OPTS,
        "--target",
        db,
        "--commit-each",
        "--json",
    )
    assert p.returncode == 1
    out = json.loads(p.stdout)
    assert [o["status"] for o in out["objects"]] == ["loaded", "failed", "loaded"]
    assert out["objects"][1]["error"].startswith(f"s3://{bucket}/in/b.csv line 2, column id")
    assert (out["rows"], out["failed"], out["committed"]) == (2, 1, "each")
    assert _rows(conn) == [(1, "ann"), (3, "cy")]


def test_local_folder_and_glob(conn, db, tmp_path: Path, cli_env) -> None:
    conn.execute("CREATE TABLE t (id int, name text)")
    (tmp_path / "d" / "sub").mkdir(parents=True)
    (tmp_path / "d" / "a.csv").write_bytes(b"id,name\n1,a\n")
    (tmp_path / "d" / "sub" / "b.csv").write_bytes(b"id,name\n2,b\n")
    (tmp_path / "d" / ".hidden.csv").write_bytes(b"junk")
    (tmp_path / "d" / "notes.txt").write_bytes(b"junk")
    assert [x.ref.key for x in expand(f"{tmp_path}/d/*.csv")] == [f"{tmp_path}/d/a.csv"]
    assert [x.ref.key for x in expand(f"{tmp_path}/d/**/*.csv")] == [
        f"{tmp_path}/d/a.csv",
        f"{tmp_path}/d/sub/b.csv",
    ]
    p = cli(
        cli_env, "import", f"{tmp_path}/d/**/*.csv", "-t", "t", "--options", OPTS, "--target", db
    )
    assert p.returncode == 0, p.stderr
    assert _rows(conn) == [(1, "a"), (2, "b")]
    with pytest.raises(ObjectNotFound) as e:
        expand(f"{tmp_path}/d/*.parquet")
    assert e.value.message.startswith(f"no objects match {tmp_path}/d/*.parquet; ")


def test_jobs_without_prepared_transactions_falls_back_to_one_connection(
    conn, db, s3client, bucket, cli_env
) -> None:
    conn.execute("CREATE TABLE t (id int, name text)")
    _put(s3client, bucket, {f"in/{i}.csv": f"id,name\n{i},x\n".encode() for i in range(4)})
    p = cli(
        cli_env,
        "import",
        f"s3://{bucket}/in/",
        "-t",
        "t",
        "--options",
        OPTS,
        "--target",
        db,
        "--jobs",
        "3",
    )
    assert p.returncode == 0, p.stderr
    assert p.stderr == (
        "warning: --jobs 3: all or nothing over 3 connections needs two-phase commit, and the "
        "target's max_prepared_transactions is 0 (set it to at least 3 and restart, or pass "
        "--commit-each); loading over one connection\n"
    )
    assert len(_rows(conn)) == 4
    # --commit-each needs no two-phase commit: the jobs run as asked
    p = cli(
        cli_env,
        "import",
        f"s3://{bucket}/in/",
        "-t",
        "t",
        "--options",
        OPTS,
        "--target",
        db,
        "--jobs",
        "2",
        "--commit-each",
        "--json",
    )
    assert p.returncode == 0, p.stderr
    assert (json.loads(p.stdout)["jobs"], p.stderr) == (2, "")


@pytest.fixture(scope="module")
def twophase() -> Iterator[LocalServer]:
    server = postgres("15", start=False)
    server.start({**FAST, "max_prepared_transactions": "4"})
    yield server
    server.destroy()


def test_jobs_commit_together_by_two_phase_commit(
    twophase: LocalServer, s3client, bucket, s3env
) -> None:
    url = twophase.conninfo()
    with psycopg.connect(url, autocommit=True) as c:
        c.execute("DROP TABLE IF EXISTS t; CREATE TABLE t (id int, name text)")
    good = {f"in/{i:02}.csv": f"id,name\n{i},x\n".encode() for i in range(6)}
    _put(s3client, bucket, good)
    spec = ImportSpec(table="t", source=f"s3://{bucket}/in/", options=OPTS, target=url)
    result = run_many(spec, jobs=3)
    assert (result.jobs, result.rows, [o.status for o in result.objects]) == (3, 6, ["loaded"] * 6)
    # a bad object among them: every connection's work is rolled back
    _put(s3client, bucket, {"in/03.csv": b"id,name\nbad,x\n"})
    with pytest.raises(DataError) as e:
        run_many(spec, jobs=3)
    assert e.value.key == "in/03.csv"
    with psycopg.connect(url, autocommit=True) as c:
        assert c.execute("SELECT count(*) FROM t").fetchone() == (6,)
        assert c.execute("SELECT count(*) FROM pg_prepared_xacts").fetchone() == (0,)


def test_dry_run_prints_the_plan_and_loads_nothing(conn, db, s3client, bucket, cli_env) -> None:
    gz = gzip.compress(b"id,name\n3,cy\n")
    _put(s3client, bucket, {"in/a.csv": b"id,name\n1,ann\n2,bo\n", "in/b.csv.gz": gz})
    p = cli(
        cli_env,
        "import",
        f"s3://{bucket}/in/",
        "-t",
        "t",
        "--create-table",
        "--target",
        db,
        "--dry-run",
    )
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines() == [
        f'plan: 2 objects, {19 + len(gz)} bytes, into table "t" (--mode append), 1 connection, '
        "all or nothing",
        f"  s3://{bucket}/in/a.csv  19 bytes  csv  uncompressed",
        f"  s3://{bucket}/in/b.csv.gz  {len(gz)} bytes  csv  gzip",
        'CREATE TABLE "t" ("id" bigint, "name" text);',
        "nothing was loaded (--dry-run)",
    ]
    assert conn.execute("SELECT to_regclass('t')").fetchone() == (None,)


def _dry(env: dict[str, str], source: str, target: str, *args: str) -> list[str]:
    p = cli(env, "import", source, "-t", "t", "--target", target, "--dry-run", *args)
    assert (p.returncode, p.stderr) == (0, ""), p.stderr
    return p.stdout.splitlines()


def test_dry_run_with_jobs_says_how_the_connections_would_be_used(
    conn, db, s3client, bucket, cli_env
) -> None:
    conn.execute("CREATE TABLE t (id int, name text); INSERT INTO t VALUES (7, 'kept')")
    _put(s3client, bucket, {f"in/{i}.csv": f"id,name\n{i},x\n".encode() for i in range(4)})
    src = f"s3://{bucket}/in/"
    listing = [f"  s3://{bucket}/in/{i}.csv  12 bytes  csv  uncompressed" for i in range(4)]
    # the shared servers allow no prepared transactions
    assert _dry(cli_env, src, db, "--options", OPTS, "--jobs", "3") == [
        'plan: 4 objects, 48 bytes, into table "t" (--mode append), 1 connection, all or nothing',
        *listing,
        "jobs: --jobs 3 would load over one connection: all or nothing over 3 connections needs "
        "two-phase commit, and the target's max_prepared_transactions is 0 (set it to at least "
        "3 and restart, or pass --commit-each)",
        "nothing was loaded (--dry-run)",
    ]
    assert _dry(cli_env, src, db, "--options", OPTS, "--jobs", "3", "--commit-each") == [
        'plan: 4 objects, 48 bytes, into table "t" (--mode append), 3 connections, '
        "committed per object",
        *listing,
        "jobs: 3 connections take the objects in turn, each object committed on its own "
        "(no two-phase commit needed)",
        "nothing was loaded (--dry-run)",
    ]
    p = cli(cli_env, "import", src, "-t", "t", "--target", db, "--dry-run", "--jobs", "3",
            "--create-table", "--options", OPTS, "--mode", "replace", "--json")  # fmt: skip
    assert (p.returncode, p.stderr) == (0, ""), p.stderr
    planned = json.loads(p.stdout)
    assert {k: planned[k] for k in ("jobs", "jobs_asked", "two_phase", "ddl")} == {
        "jobs": 1,
        "jobs_asked": 3,
        "two_phase": False,
        "ddl": 'CREATE TABLE "t" ("id" bigint, "name" text)',
    }
    assert planned["jobs_note"] == (
        "--jobs 3 would load over one connection: --mode replace empties the table in one "
        "transaction"
    )
    assert _rows(conn) == [(7, "kept")]


def test_dry_run_with_jobs_and_two_phase_commit(
    twophase: LocalServer, s3client, bucket, cli_env
) -> None:
    url = twophase.conninfo()
    with psycopg.connect(url, autocommit=True) as c:
        c.execute("DROP TABLE IF EXISTS t, t2")
    _put(s3client, bucket, {f"in/{i}.csv": f"id,name\n{i},x\n".encode() for i in range(6)})
    src = f"s3://{bucket}/in/"
    listing = [f"  s3://{bucket}/in/{i}.csv  12 bytes  csv  uncompressed" for i in range(6)]
    # the table does not exist yet: created in one transaction first
    assert _dry(cli_env, src, url, "--options", OPTS, "--jobs", "8", "--create-table") == [
        'plan: 6 objects, 72 bytes, into table "t" (--mode append), 1 connection, all or nothing',
        *listing,
        'CREATE TABLE "t" ("id" bigint, "name" text);',
        "jobs: --jobs 6 would load over one connection: --create-table creates the table in "
        "one transaction",
        "nothing was loaded (--dry-run)",
    ]
    with psycopg.connect(url, autocommit=True) as c:
        assert c.execute("SELECT to_regclass('t')").fetchone() == (None,)
        c.execute("CREATE TABLE t (id int, name text)")
    assert _dry(cli_env, src, url, "--options", OPTS, "--jobs", "4") == [
        'plan: 6 objects, 72 bytes, into table "t" (--mode append), 4 connections, all or nothing',
        *listing,
        "jobs: 4 connections take the objects in turn; their transactions end together by "
        "two-phase commit (max_prepared_transactions is 4, at least 4)",
        "nothing was loaded (--dry-run)",
    ]
    assert _dry(cli_env, src, url, "--options", OPTS, "--jobs", "6")[-2] == (
        "jobs: --jobs 6 would load over one connection: all or nothing over 6 connections "
        "needs two-phase commit, and the target's max_prepared_transactions is 4 (set it to "
        "at least 6 and restart, or pass --commit-each)"
    )
    with psycopg.connect(url, autocommit=True) as c:
        assert c.execute("SELECT count(*) FROM t").fetchone() == (0,)
        assert c.execute("SELECT count(*) FROM pg_prepared_xacts").fetchone() == (0,)


def test_progress_bars_on_a_terminal_only(conn, db, s3client, bucket, cli_env) -> None:
    import pty
    import subprocess

    from tests.test_import_cli import PGFERRY

    conn.execute("CREATE TABLE t (id int, name text)")
    _put(s3client, bucket, {f"in/{i}.csv": b"id,name\n" + b"1,x\n" * 50_000 for i in range(3)})
    args = [PGFERRY, "import", f"s3://{bucket}/in/", "-t", "t", "--options", OPTS, "--target", db]
    master, slave = pty.openpty()
    env = {**cli_env, "COLUMNS": "200", "TERM": "xterm"}
    p = subprocess.run(args, stderr=slave, stdout=subprocess.PIPE, env=env, timeout=120)
    os.close(slave)
    seen = b""
    while True:
        try:
            piece = os.read(master, 65536)
        except OSError:
            break
        if not piece:
            break
        seen += piece
    os.close(master)
    assert p.returncode == 0
    drawn = seen.decode(errors="replace")
    assert f"import s3://{bucket}/in/" in drawn  # the overall bar
    assert f"s3://{bucket}/in/0.csv" in drawn  # a bar per object
    # not a terminal: no bars, only the summary
    q = cli(cli_env, *args[1:])
    assert (q.returncode, q.stderr) == (0, "")
    assert q.stdout.splitlines()[-1].startswith('150000 rows imported into relation "t" from 3')
