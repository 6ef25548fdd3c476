"""snapshot create / list / restore against the real local S3 (SeaweedFS)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from click.testing import Result

from tests.migrate.conftest import BIG_ROWS, rows

Run = Callable[..., Result]


@pytest.mark.slow
def test_snapshot_round_trip(
    source_db: str,
    target_db: str,
    run_cli: Run,
    bucket: str,
    s3env: dict[str, str],
    s3client: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pgferry.stores import multipart

    monkeypatch.setattr(multipart, "PART", 5 << 20)  # the S3 minimum: more parts
    uri = f"s3://{bucket}/nightly/prod-1"
    res = run_cli(
        "snapshot",
        "create",
        "--source",
        source_db,
        uri,
        "--jobs",
        "3",
        "--split-tables-larger-than",
        "40MB",
        "--json",
    )
    assert res.exit_code == 0, res.output
    made = json.loads(res.stdout)
    assert made["uri"] == f"{uri}/"
    assert made["rows"] > BIG_ROWS
    manifest = json.loads(
        s3client.get_object(Bucket=bucket, Key="nightly/prod-1/manifest.json")["Body"].read()
    )
    events = [s for s in manifest["streams"] if s["table"] == "app.events"]
    assert len(events) == 2 and sum(s["rows"] for s in events) == BIG_ROWS
    # each range of app.events went up in several parts
    head = s3client.head_object(Bucket=bucket, Key=events[0]["key"])
    assert head["ETag"].strip('"').endswith(tuple(f"-{n}" for n in range(2, 10)))

    res = run_cli("snapshot", "create", "--source", source_db, uri)
    assert res.exit_code == 1
    assert res.stderr.strip() == (
        f"error: snapshot {uri}/ already exists; pick another NAME, or delete the old one first"
        f" (pgferry snapshot delete {uri}/)"
    )

    res = run_cli("snapshot", "list", f"s3://{bucket}/nightly/", "--json")
    assert res.exit_code == 0, res.output
    listed = json.loads(res.stdout)
    assert [(i["name"], i["complete"], i["rows"]) for i in listed] == [
        ("prod-1", True, made["rows"])
    ]

    res = run_cli("snapshot", "restore", uri, "--target", target_db, "--jobs", "3", "-q")
    assert res.exit_code == 0, res.output
    res = run_cli("verify", "--source", source_db, "--target", target_db)
    assert res.exit_code == 0, res.output
    assert rows(target_db, "SELECT last_value FROM app.invoice_no") == [(4242,)]


def test_restore_refuses_a_tampered_stream(
    source_db: str,
    target_db: str,
    run_cli: Run,
    bucket: str,
    s3env: dict[str, str],
    s3client: Any,
) -> None:
    uri = f"s3://{bucket}/snap-small"
    res = run_cli(
        "snapshot",
        "create",
        "--source",
        source_db,
        uri,
        "--table",
        "app.users",
        "--table",
        "app.orders",
        "-q",
    )
    assert res.exit_code == 0, res.output
    manifest = json.loads(
        s3client.get_object(Bucket=bucket, Key="snap-small/manifest.json")["Body"].read()
    )
    users = next(s for s in manifest["streams"] if s["table"] == "app.users")
    orders = next(s for s in manifest["streams"] if s["table"] == "app.orders")
    # a valid zstd stream, but of other rows: only the checksum can tell
    good = s3client.get_object(Bucket=bucket, Key=users["key"])["Body"].read()
    other = s3client.get_object(Bucket=bucket, Key=orders["key"])["Body"].read()
    s3client.put_object(Bucket=bucket, Key=users["key"], Body=other)

    res = run_cli("snapshot", "restore", uri, "--target", target_db, "--jobs", "1", "-q")
    assert res.exit_code == 1
    assert res.stderr.strip() == (
        f"error: app.users (s3://{bucket}/{users['key']}) does not match its checksum in the "
        "manifest; nothing of it was loaded; the snapshot is damaged, take a new one"
    )
    assert rows(target_db, "SELECT count(*) FROM app.users") == [(0,)]
    # largest first: app.orders was loaded and recorded before app.users failed
    orders_xmin = rows(target_db, "SELECT xmin::text, count(*) FROM app.orders GROUP BY 1")
    assert orders_xmin[0][1] == orders["rows"]

    # put the right bytes back: --resume finishes without reloading app.orders
    s3client.put_object(Bucket=bucket, Key=users["key"], Body=good)
    res = run_cli("snapshot", "restore", uri, "--target", target_db, "--resume", "--json")
    assert res.exit_code == 0, res.output
    assert "app.orders" in json.loads(res.stdout)["skipped"]
    assert rows(target_db, "SELECT xmin::text, count(*) FROM app.orders GROUP BY 1") == orders_xmin
    res = run_cli(
        "verify",
        "--source",
        source_db,
        "--target",
        target_db,
        "--table",
        "app.users",
        "--table",
        "app.orders",
    )
    assert res.exit_code == 0, res.output


@pytest.mark.parametrize(
    "name",
    ["1abc", "abc-", "a--b", "a_b", "x" * 64, "ünï"],
)
def test_bad_snapshot_names(name: str, run_cli: Run) -> None:
    res = run_cli(
        "snapshot", "create", "--source", "postgresql://x@127.0.0.1:1/x", f"s3://bucket/p/{name}"
    )
    assert res.exit_code == 2
    assert res.stderr.strip() == (
        f"error: invalid snapshot name {name!r}; use 1-63 letters, digits or hyphens, "
        "starting with a letter, with no trailing or doubled hyphen"
    )


def test_snapshot_of_one_table_skips_its_dangling_foreign_key(
    source_db: str,
    target_db: str,
    run_cli: Run,
    bucket: str,
    s3env: dict[str, str],
) -> None:
    uri = f"s3://{bucket}/orders-only"
    res = run_cli("snapshot", "create", "--source", source_db, uri, "--table", "app.orders", "-q")
    assert res.exit_code == 0, res.output
    res = run_cli("snapshot", "restore", uri, "--target", target_db, "--json")
    assert res.exit_code == 0, res.output
    res = run_cli("verify", "--source", source_db, "--target", target_db, "--table", "app.orders")
    assert res.exit_code == 0, res.output
    keys = (
        "SELECT conname FROM pg_constraint WHERE conrelid = 'app.orders'::regclass"
        " AND contype IN ('f', 'p')"
    )
    assert rows(target_db, keys) == [("orders_pkey",)]
    assert rows(target_db, "SELECT to_regclass('app.users')") == [(None,)]


def test_snapshot_encrypted_at_rest(
    source_db: str,
    run_cli: Run,
    bucket: str,
    s3env: dict[str, str],
    s3client: Any,
) -> None:
    uri = f"s3://{bucket}/enc"
    res = run_cli(
        "snapshot",
        "create",
        "--source",
        source_db,
        uri,
        "--table",
        "app.users",
        "--sse",
        "AES256",
        "-q",
    )
    assert res.exit_code == 0, res.output
    listing = s3client.list_objects_v2(Bucket=bucket, Prefix="enc/")["Contents"]
    keys = sorted(o["Key"] for o in listing)
    # the create marker and progress records are gone once the manifest is in
    users_oid = rows(source_db, "SELECT 'app.users'::regclass::oid")[0][0]
    assert keys == [f"enc/data/t{users_oid}-1.copy.zst", "enc/manifest.json", "enc/schema.dump"]
    for key in keys:
        assert s3client.head_object(Bucket=bucket, Key=key)["ServerSideEncryption"] == "AES256"
