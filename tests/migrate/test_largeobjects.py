"""Large objects through clone and snapshot: in batches, one transaction
each, with owners, grants and comments; a batch recorded done is skipped."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from click.testing import Result

from pgferry.embedded import LocalServer
from pgferry.migrate import largeobjects
from pgferry.migrate.schema import RestoreOptions
from tests.migrate.conftest import drop_database, new_database, rows

Run = Callable[..., Result]
COUNT = 250
# everything verify does not look at (yet): owner, grants, comment, bytes
CATALOG = """
SELECT m.oid::bigint, pg_get_userbyid(m.lomowner), m.lomacl::text,
       obj_description(m.oid, 'pg_largeobject'), md5(lo_get(m.oid))
  FROM pg_largeobject_metadata m ORDER BY 1
"""


@pytest.fixture()
def lo_source(pgserver: LocalServer) -> Iterator[str]:
    url = new_database(pgserver, "lo")
    with psycopg.connect(url, autocommit=True) as c:
        for role in ("lo owner", "lo_reader"):
            exists = c.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role]).fetchone()
            if not exists:
                c.execute(psycopg.sql.SQL("CREATE ROLE {}").format(psycopg.sql.Identifier(role)))
        c.execute(
            "SELECT lo_from_bytea(5000 + g, convert_to(repeat('lo' || g, g * 37), 'UTF8'))"
            " FROM generate_series(1, %s) g",
            [COUNT],
        )
        c.execute("SELECT lo_from_bytea(9999, '')")  # empty
        # read in several pieces (the first 64 KiB with others, then the rest)
        c.execute("SELECT lo_from_bytea(9000, convert_to(repeat('big', 500000), 'UTF8'))")
        c.execute('ALTER LARGE OBJECT 5001 OWNER TO "lo owner"')
        c.execute("GRANT SELECT ON LARGE OBJECT 5001 TO lo_reader WITH GRANT OPTION")
        c.execute('REVOKE UPDATE ON LARGE OBJECT 5001 FROM "lo owner"')
        c.execute("GRANT SELECT, UPDATE ON LARGE OBJECT 5200 TO PUBLIC")
        c.execute("COMMENT ON LARGE OBJECT 5002 IS 'a comment, with ''quotes'''")
        c.execute("CREATE TABLE docs (id int PRIMARY KEY, body oid)")
        c.execute("INSERT INTO docs VALUES (1, 5001)")
    yield url
    drop_database(pgserver, url)


def test_clone_copies_large_objects_in_batches(
    lo_source: str, target_db: str, run_cli: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(largeobjects, "BATCH", 100)
    res = run_cli("clone", "--source", lo_source, "--target", target_db, "-q")
    assert res.exit_code == 0, res.output
    source = rows(lo_source, CATALOG)
    assert len(source) == COUNT + 2
    assert rows(target_db, CATALOG) == source
    # one transaction per batch of 100: 252 objects in 3
    xmins = rows(target_db, "SELECT count(DISTINCT xmin::text) FROM pg_largeobject_metadata")
    assert xmins == [(3,)]
    res = run_cli("verify", "--source", lo_source, "--target", target_db)
    assert res.exit_code == 0, res.output


def test_a_batch_recorded_done_is_skipped(lo_source: str, target_db: str) -> None:
    with psycopg.connect(lo_source) as src:
        batches = largeobjects.batches(src)
        assert [len(b) for b in batches] == [COUNT + 2]
        largeobjects.BATCH, saved = 100, largeobjects.BATCH
        try:
            batches = largeobjects.batches(src)
            done = {largeobjects.item(batches[0])}
            with psycopg.connect(target_db, autocommit=True) as t:
                t.execute("CREATE SCHEMA pgferry")
                t.execute(
                    "CREATE TABLE pgferry.clone_progress (item text PRIMARY KEY, rows bigint,"
                    " bytes bigint, done_at timestamptz NOT NULL DEFAULT now())"
                )
            n = largeobjects.copy(src, target_db, done, RestoreOptions())
        finally:
            largeobjects.BATCH = saved
    assert n == COUNT + 2
    assert rows(target_db, "SELECT min(oid)::bigint, count(*) FROM pg_largeobject_metadata") == [
        (5101, COUNT + 2 - 100)
    ]
    assert rows(target_db, "SELECT item, rows FROM pgferry.clone_progress ORDER BY 1") == [
        ("large-objects:5101-5200", 100),
        ("large-objects:5201-9999", 52),
    ]


def test_snapshot_round_trip_keeps_owners_grants_comments(
    lo_source: str,
    target_db: str,
    run_cli: Run,
    bucket: str,
    s3env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(largeobjects, "BATCH", 100)
    uri = f"s3://{bucket}/lo"
    res = run_cli("snapshot", "create", "--source", lo_source, uri, "-q")
    assert res.exit_code == 0, res.output
    res = run_cli("snapshot", "restore", uri, "--target", target_db, "-q")
    assert res.exit_code == 0, res.output
    assert rows(target_db, CATALOG) == rows(lo_source, CATALOG)


def test_no_owner_no_acl(lo_source: str, target_db: str, run_cli: Run) -> None:
    res = run_cli(
        "clone", "--source", lo_source, "--target", target_db, "--no-owner", "--no-acl", "-q"
    )
    assert res.exit_code == 0, res.output
    me = rows(target_db, "SELECT current_user")[0][0]
    got = rows(
        target_db,
        "SELECT DISTINCT pg_get_userbyid(lomowner), lomacl::text FROM pg_largeobject_metadata",
    )
    assert got == [(me, None)]
    assert rows(target_db, "SELECT obj_description(5002, 'pg_largeobject')") == [
        ("a comment, with 'quotes'",)
    ]


def test_missing_owner_role_is_one_line(
    pgserver: LocalServer, target_db: str, run_cli: Run, bucket: str, s3env: dict[str, str]
) -> None:
    src = new_database(pgserver, "lo")
    try:
        with psycopg.connect(src, autocommit=True) as c:
            c.execute('DROP ROLE IF EXISTS "lo gone"')
            c.execute('CREATE ROLE "lo gone"')
            c.execute("SELECT lo_from_bytea(6001, 'owned by a role the target lacks')")
            c.execute('ALTER LARGE OBJECT 6001 OWNER TO "lo gone"')
        uri = f"s3://{bucket}/gone"
        res = run_cli("snapshot", "create", "--source", src, uri, "-q")
        assert res.exit_code == 0, res.output
        with psycopg.connect(src, autocommit=True) as c:
            c.execute("SELECT lo_unlink(6001)")
            c.execute('DROP ROLE "lo gone"')
        res = run_cli("snapshot", "restore", uri, "--target", target_db, "-q")
        assert res.exit_code == 1
        assert res.stderr.strip() == (
            'error: restoring large objects 6001-6001 failed: role "lo gone" does not exist;'
            " create the role on the target, or pass --no-owner --no-acl"
        )
        assert rows(target_db, "SELECT count(*) FROM pg_largeobject_metadata") == [(0,)]
        res = run_cli("snapshot", "restore", uri, "--target", target_db, "--resume", "--no-owner")
        assert res.exit_code == 0, res.output
        assert rows(target_db, "SELECT lo_get(6001)") == [(b"owned by a role the target lacks",)]
    finally:
        drop_database(pgserver, src)


def test_snapshot_restore_resumes_per_batch(
    lo_source: str,
    target_db: str,
    run_cli: Run,
    bucket: str,
    s3env: dict[str, str],
    s3client: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(largeobjects, "BATCH", 100)
    uri = f"s3://{bucket}/lob"
    res = run_cli("snapshot", "create", "--source", lo_source, uri, "-q")
    assert res.exit_code == 0, res.output
    manifest = json.loads(
        s3client.get_object(Bucket=bucket, Key="lob/manifest.json")["Body"].read()
    )
    second = manifest["large_objects"][1]["key"]
    good = s3client.get_object(Bucket=bucket, Key=second)["Body"].read()
    s3client.put_object(Bucket=bucket, Key=second, Body=good[:-10])

    res = run_cli("snapshot", "restore", uri, "--target", target_db, "-q")
    assert res.exit_code == 1
    assert res.stderr.startswith(f"error: large objects 5101-5200 (s3://{bucket}/{second})")
    first = "SELECT min(xmin::text), count(*) FROM pg_largeobject_metadata"
    kept = rows(target_db, first)
    assert kept[0][1] == 100  # the first batch is in, nothing of the second

    s3client.put_object(Bucket=bucket, Key=second, Body=good)
    res = run_cli("snapshot", "restore", uri, "--target", target_db, "--resume", "-q")
    assert res.exit_code == 0, res.output
    assert rows(target_db, CATALOG) == rows(lo_source, CATALOG)
    again = "SELECT xmin::text, count(*) FROM pg_largeobject_metadata WHERE oid <= 5100 GROUP BY 1"
    assert rows(target_db, again) == [(kept[0][0], 100)]


def test_snapshot_create_resumes_per_batch(
    pgserver: LocalServer,
    lo_source: str,
    target_db: str,
    run_cli: Run,
    bucket: str,
    s3env: dict[str, str],
    s3client: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(largeobjects, "BATCH", 100)
    with psycopg.connect(lo_source, autocommit=True) as c:
        if not c.execute("SELECT 1 FROM pg_roles WHERE rolname = 'lo_snap'").fetchone():
            c.execute("CREATE ROLE lo_snap LOGIN")
        c.execute("GRANT SELECT ON docs TO lo_snap")
        for (oid,) in c.execute("SELECT oid FROM pg_largeobject_metadata WHERE oid <> 5150"):
            c.execute(psycopg.sql.SQL("GRANT SELECT ON LARGE OBJECT {} TO lo_snap").format(oid))
    dbname = psycopg.conninfo.conninfo_to_dict(lo_source)["dbname"]
    reader = pgserver.conninfo(str(dbname), user="lo_snap")
    uri = f"s3://{bucket}/lor"

    # the second batch cannot be read: the first one is stored by then
    res = run_cli("snapshot", "create", "--source", reader, uri, "-q")
    assert res.exit_code == 1
    assert res.stderr.strip() == (
        "error: reading large objects from the source failed: permission denied for large"
        " object 5150; the role reading the source needs SELECT on every large object"
    )
    first = "lor/large-objects/5001-5100.zst"
    before = s3client.head_object(Bucket=bucket, Key=first)["LastModified"]

    with psycopg.connect(lo_source, autocommit=True) as c:
        c.execute("GRANT SELECT ON LARGE OBJECT 5150 TO lo_snap")
    res = run_cli("snapshot", "create", "--source", reader, uri, "--resume", "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["reused"] == ["public.docs", "large-objects:5001-5100"]
    assert s3client.head_object(Bucket=bucket, Key=first)["LastModified"] == before

    res = run_cli("snapshot", "restore", uri, "--target", target_db, "-q")
    assert res.exit_code == 0, res.output
    assert rows(target_db, CATALOG) == rows(lo_source, CATALOG)
