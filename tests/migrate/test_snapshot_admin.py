"""snapshot list / delete / create --resume, manifest formats, and what
restore refuses, against the real local S3 and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from click.testing import Result

from pgferry.migrate.progress import NullReporter
from pgferry.migrate.snapshot import SnapshotConfig, create_snapshot
from tests.migrate.conftest import rows

Run = Callable[..., Result]
PICK = ("--table", "app.users", "--table", "app.orders", "--table", "sales.log")


def _keys(s3client: Any, bucket: str, prefix: str = "") -> list[str]:
    listing = s3client.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
    return sorted(o["Key"] for o in listing)


class Stop(Exception):
    """Stands for a crash or Ctrl-C in the middle of a create."""


class StopAfterFirstTable(NullReporter):
    def __init__(self) -> None:
        self.started: list[str] = []

    def unit_start(self, key: str, est_bytes: int) -> None:
        self.started.append(key)
        if len(self.started) == 2:
            raise Stop(self.started[0])


def test_list_shows_snapshots_only(
    source_db: str, run_cli: Run, bucket: str, s3env: dict[str, str], s3client: Any
) -> None:
    res = run_cli(
        "snapshot", "create", "--source", source_db, f"s3://{bucket}/nightly/prod-1",
        "--table", "app.users", "-q",
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    s3client.put_object(Bucket=bucket, Key="nightly/notes/readme.txt", Body=b"not a snapshot")
    s3client.put_object(Bucket=bucket, Key="nightly/half/creating.json", Body=b"{}")

    # the bucket root holds only folders: no snapshot there
    res = run_cli("snapshot", "list", f"s3://{bucket}/", "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout) == []

    res = run_cli("snapshot", "list", f"s3://{bucket}/nightly/", "--json")
    assert res.exit_code == 0, res.output
    assert [(i["name"], i["complete"]) for i in json.loads(res.stdout)] == [
        ("half", False),
        ("prod-1", True),
    ]
    res = run_cli("snapshot", "list", f"s3://{bucket}/nightly/")
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    assert [line.split()[0] for line in lines] == ["name", "half", "prod-1"]
    assert lines[1].split(None, 1)[1].strip() == "(incomplete: no manifest)"


def test_delete(
    source_db: str, run_cli: Run, bucket: str, s3env: dict[str, str], s3client: Any
) -> None:
    for name in ("prod-1", "prod-10"):
        res = run_cli(
            "snapshot", "create", "--source", source_db, f"s3://{bucket}/n/{name}",
            "--table", "app.users", "-q",
        )  # fmt: skip
        assert res.exit_code == 0, res.output
    kept = _keys(s3client, bucket, "n/prod-10/")
    assert len(_keys(s3client, bucket, "n/prod-1/")) == 3

    res = run_cli("snapshot", "delete", f"s3://{bucket}/n/prod-1")
    assert res.exit_code == 0, res.output
    assert res.stdout.strip() == f"deleted s3://{bucket}/n/prod-1/: 3 objects"
    assert _keys(s3client, bucket, "n/prod-1/") == []
    assert _keys(s3client, bucket, "n/prod-10/") == kept  # a longer name is not a match

    # the "already exists" advice works: the name can be used again
    res = run_cli(
        "snapshot", "create", "--source", source_db, f"s3://{bucket}/n/prod-10",
        "--table", "app.users", "-q",
    )  # fmt: skip
    assert res.exit_code == 1
    assert f"(pgferry snapshot delete s3://{bucket}/n/prod-10/)" in res.stderr

    s3client.put_object(Bucket=bucket, Key="n/folder/file.txt", Body=b"x")
    res = run_cli("snapshot", "delete", f"s3://{bucket}/n/folder")
    assert res.exit_code == 1
    assert res.stderr.strip() == (
        f"error: s3://{bucket}/n/folder/ is not a snapshot (no manifest.json, no creating.json);"
        f" check the URI with pgferry snapshot list s3://{bucket}/n/"
    )
    assert _keys(s3client, bucket, "n/folder/") == ["n/folder/file.txt"]


def test_create_resume_keeps_finished_tables(
    source_db: str,
    target_db: str,
    run_cli: Run,
    bucket: str,
    s3env: dict[str, str],
    s3client: Any,
) -> None:
    uri = f"s3://{bucket}/r/snap"
    cfg = SnapshotConfig(
        source=source_db, uri=uri, jobs=1, tables=("app.users", "app.orders", "sales.log")
    )
    with pytest.raises(Stop) as stopped:
        create_snapshot(cfg, StopAfterFirstTable())
    first = stopped.value.args[0]  # largest first, one job: the only table stored
    assert first == "sales.log"
    keys = _keys(s3client, bucket, "r/snap/")
    assert "r/snap/creating.json" in keys and "r/snap/manifest.json" not in keys
    stored = [k for k in keys if k.startswith("r/snap/data/")]
    assert len(stored) == 1
    before = s3client.head_object(Bucket=bucket, Key=stored[0])["LastModified"]

    res = run_cli("snapshot", "list", f"s3://{bucket}/r/", "--json")
    assert [(i["name"], i["complete"]) for i in json.loads(res.stdout)] == [("snap", False)]

    res = run_cli("snapshot", "create", "--source", source_db, uri, *PICK, "-q")
    assert res.exit_code == 1
    assert res.stderr.strip() == (
        f"error: snapshot {uri}/ was started before and not finished; rerun with --resume"
        f" to finish it, or pgferry snapshot delete {uri}/"
    )
    res = run_cli(
        "snapshot", "create", "--source", source_db, uri, "--table", "app.users", "--resume"
    )
    assert res.exit_code == 1
    assert res.stderr.strip().startswith(
        f"error: --resume: the unfinished snapshot {uri}/ was of another source database"
        " or another --table/--exclude selection"
    )

    res = run_cli("snapshot", "create", "--source", source_db, uri, *PICK, "--resume", "--json")
    assert res.exit_code == 0, res.output
    made = json.loads(res.stdout)
    assert made["reused"] == ["sales.log"]
    assert made["streams"] == 3
    # kept, not written again; the marker and progress records are gone
    assert s3client.head_object(Bucket=bucket, Key=stored[0])["LastModified"] == before
    keys = _keys(s3client, bucket, "r/snap/")
    assert "r/snap/creating.json" not in keys
    assert not [k for k in keys if "/progress/" in k]
    manifest = json.loads(
        s3client.get_object(Bucket=bucket, Key="r/snap/manifest.json")["Body"].read()
    )
    assert manifest["format"] == "pgferry-snapshot/2" and len(manifest["resumed"]) == 1

    res = run_cli("snapshot", "restore", uri, "--target", target_db, "-q")
    assert res.exit_code == 0, res.output
    res = run_cli("verify", "--source", source_db, "--target", target_db, *PICK)
    assert res.exit_code == 0, res.output


def test_create_resume_redoes_a_damaged_stream(
    source_db: str, run_cli: Run, bucket: str, s3env: dict[str, str], s3client: Any
) -> None:
    uri = f"s3://{bucket}/snap2"
    cfg = SnapshotConfig(source=source_db, uri=uri, jobs=1, tables=("app.users", "sales.log"))
    with pytest.raises(Stop):
        create_snapshot(cfg, StopAfterFirstTable())
    stored = [k for k in _keys(s3client, bucket, "snap2/data/")]
    s3client.put_object(Bucket=bucket, Key=stored[0], Body=b"truncated")
    res = run_cli(
        "snapshot", "create", "--source", source_db, uri,
        "--table", "app.users", "--table", "sales.log", "--resume", "--json",
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["reused"] == []
    manifest = json.loads(
        s3client.get_object(Bucket=bucket, Key="snap2/manifest.json")["Body"].read()
    )
    log = next(s for s in manifest["streams"] if s["table"] == "sales.log")
    assert (
        s3client.head_object(Bucket=bucket, Key=log["key"])["ContentLength"] == log["stored_bytes"]
    )


def test_unknown_format_is_refused(
    source_db: str,
    target_db: str,
    run_cli: Run,
    bucket: str,
    s3env: dict[str, str],
    s3client: Any,
) -> None:
    uri = f"s3://{bucket}/old"
    res = run_cli("snapshot", "create", "--source", source_db, uri, "--table", "app.users", "-q")
    assert res.exit_code == 0, res.output
    key = "old/manifest.json"
    manifest = json.loads(s3client.get_object(Bucket=bucket, Key=key)["Body"].read())
    manifest["format"] = "pgferry-snapshot/1"
    s3client.put_object(Bucket=bucket, Key=key, Body=json.dumps(manifest).encode())

    res = run_cli("snapshot", "restore", uri, "--target", target_db, "-q")
    assert res.exit_code == 1
    assert res.stderr.strip() == (
        f"error: s3://{bucket}/{key} has format 'pgferry-snapshot/1'; this pgferry reads only"
        " pgferry-snapshot/2; use the pgferry version that made it, or take a new snapshot"
    )
    assert rows(target_db, "SELECT to_regnamespace('pgferry')") == [(None,)]
    res = run_cli("snapshot", "list", f"s3://{bucket}/")
    assert res.stdout.splitlines()[1].startswith("old")
    assert "(unreadable: " in res.stdout


@pytest.fixture()
def small_snapshot(source_db: str, run_cli: Run, bucket: str, s3env: dict[str, str]) -> str:
    uri = f"s3://{bucket}/small"
    res = run_cli("snapshot", "create", "--source", source_db, uri, "--table", "app.users", "-q")
    assert res.exit_code == 0, res.output
    return uri


def test_restore_refuses_a_target_with_tables(
    small_snapshot: str, target_db: str, run_cli: Run
) -> None:
    rows(target_db, "CREATE TABLE public.keep (x int); INSERT INTO public.keep VALUES (1)")
    res = run_cli("snapshot", "restore", small_snapshot, "--target", target_db, "-q")
    assert res.exit_code == 1
    assert res.stderr.strip() == (
        "error: the target already has table public.keep; restore into an empty database"
    )
    assert rows(target_db, "SELECT to_regnamespace('pgferry'), to_regclass('app.users')") == [
        (None, None)
    ]
    assert rows(target_db, "SELECT x FROM public.keep") == [(1,)]


def test_restore_refuses_a_target_with_large_objects(
    small_snapshot: str, target_db: str, run_cli: Run
) -> None:
    rows(target_db, "SELECT lo_from_bytea(77, 'mine')")
    res = run_cli("snapshot", "restore", small_snapshot, "--target", target_db, "-q")
    assert res.exit_code == 1
    assert res.stderr.strip() == (
        "error: the target already has 1 large object(s); restore into an empty database"
    )


def test_failed_fresh_restore_leaves_no_bookkeeping(
    small_snapshot: str, target_db: str, run_cli: Run
) -> None:
    # no tables, so the restore starts; pre-data then fails on the schema
    rows(target_db, "CREATE SCHEMA app")
    res = run_cli("snapshot", "restore", small_snapshot, "--target", target_db, "-q")
    assert res.exit_code == 1
    assert 'schema "app" already exists' in res.stderr
    assert rows(target_db, "SELECT to_regnamespace('pgferry')") == [(None,)]

    rows(target_db, "DROP SCHEMA app")
    res = run_cli("snapshot", "restore", small_snapshot, "--target", target_db, "-q")
    assert res.exit_code == 0, res.output
    assert rows(target_db, "SELECT count(*) > 0 FROM app.users") == [(True,)]

    # finished: nothing to resume, and nothing is run again
    res = run_cli("snapshot", "restore", small_snapshot, "--target", target_db, "--resume")
    assert res.exit_code == 1
    assert res.stderr.strip() == (
        "error: --resume: the target holds no interrupted restore, and already has table"
        " app.users; there is nothing to resume (a restore that finished leaves no schema"
        " pgferry); restore into an empty database"
    )
