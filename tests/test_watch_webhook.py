"""`pgferry watch --notify-listen` fed by a real SeaweedFS filer webhook
(`[notification.webhook]` in notification.toml), not by hand-made payloads."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from pgferry.embedded import free_port
from tests.services import SeaweedS3
from tests.test_watch import (
    CSV,
    TOKEN,
    _ledger_exists,
    _listening,
    _post,
    ledger,
    put,
    rows_for,
    start,
    wait_for,
)

_buckets = itertools.count()


@pytest.fixture(scope="module")
def hooked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SeaweedS3, int]]:
    """A private SeaweedFS whose filer POSTs every change to a port the
    watchers will listen on (the session's server stays untouched)."""
    port = free_port()
    conf = tmp_path_factory.mktemp("weed-conf")
    # one sender, so events arrive in the order they happened; no retries, so
    # events posted while no watcher listens are dropped at once instead of
    # holding up the queue
    (conf / "notification.toml").write_text(
        "[notification.webhook]\n"
        "enabled = true\n"
        f'endpoint = "http://127.0.0.1:{port}/"\n'
        f'bearer_token = "{TOKEN}"\n'
        "max_retries = 0\n"
        "workers = 1\n"
    )
    server = SeaweedS3(config_dir=conf).start()
    try:
        yield server, port
    finally:
        server.stop()


def _bucket(server: SeaweedS3) -> str:
    bucket = f"hooked{next(_buckets)}"
    server.client().create_bucket(Bucket=bucket)
    return bucket


def _watch(server: SeaweedS3, port: int, db: str, bucket: str, *args: str) -> subprocess.Popen[str]:
    """A watcher on the whole bucket that lists only every 5 minutes."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "PG", "DATABASE_URL"))}
    env.update(
        server.env(),
        AWS_CONFIG_FILE="/nonexistent",
        AWS_SHARED_CREDENTIALS_FILE="/nonexistent",
        AWS_EC2_METADATA_DISABLED="true",
        PGFERRY_TARGET=db,
        PGFERRY_NOTIFY_TOKEN=TOKEN,
    )
    w = start(env, "watch", f"s3://{bucket}/", "-t", "t", *CSV, "--interval", "300s",
              "--notify-listen", f"127.0.0.1:{port}", *args)  # fmt: skip
    return w


def _loaded(conn: psycopg.Connection[Any], key: str) -> bool:
    got = conn.execute(
        "SELECT count(*) FROM pgferry.watch_files WHERE key = %s AND status = 'loaded'", [key]
    ).fetchone()
    return got == (1,)


def _stop(w: subprocess.Popen[str]) -> None:
    w.send_signal(signal.SIGTERM)
    _, err = w.communicate(timeout=30)
    assert w.returncode == 0, err


def _filer(server: SeaweedS3, method: str, path: str, body: bytes | None = None) -> int:
    req = urllib.request.Request(
        f"http://127.0.0.1:{server.filer_port}{path}",
        data=body,
        method=method,
        headers={"Content-Type": "text/csv"},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 (loopback test)
        return int(resp.status)


@pytest.mark.slow
def test_filer_webhook_loads_each_object_once_and_no_upload_part(
    conn: psycopg.Connection[Any], db: str, hooked: tuple[SeaweedS3, int]
) -> None:
    """Only the filer's webhook can bring objects in within seconds. Each
    loads once; the part of a multipart upload in progress (a filer file under
    `.uploads/` that HEAD and GET do serve) is never loaded; tagging, delete,
    folder and duplicated events change nothing."""
    server, port = hooked
    s3client = server.client()
    conn.execute("CREATE TABLE t (obj text, tag text, n int)")
    # the whole bucket, no --pattern: whatever a hint names and HEAD finds is taken
    bucket = _bucket(server)
    put(s3client, bucket, "gone.csv", rows_for("gone", 1))
    w = _watch(server, port, db, bucket)
    try:
        wait_for(lambda: _listening(port) and _loaded(conn, "gone.csv"), what="the first listing")
        started = time.monotonic()
        first = put(s3client, bucket, "in/a.csv", rows_for("a", 2))
        wait_for(lambda: _loaded(conn, "in/a.csv"), timeout=5, what="the notified object")
        assert time.monotonic() - started < 5

        # irrelevant or repeated: a tag (an `update`, same content), a delete,
        # a duplicate of the create, a folder marker
        s3client.put_object_tagging(
            Bucket=bucket, Key="in/a.csv", Tagging={"TagSet": [{"Key": "k", "Value": "v"}]}
        )
        s3client.delete_object(Bucket=bucket, Key="gone.csv")
        assert _post(port, {"event_type": "create", "key": f"/buckets/{bucket}/in/a.csv"}) == 200
        put(s3client, bucket, "in/sub/", [])
        # an overwrite arrives as `update`: the new version loads (--on-change reload)
        second = put(s3client, bucket, "in/b.csv", rows_for("b", 1, "v1"))
        wait_for(lambda: _loaded(conn, "in/b.csv"), timeout=5, what="the second object")
        third = put(s3client, bucket, "in/b.csv", rows_for("b", 2, "v2"))
        wait_for(lambda: ledger(conn).get(("in/b.csv", third), ("",))[0] == "loaded",
                 timeout=5, what="the overwrite")  # fmt: skip

        # a multipart upload in progress: its part is posted as a filer create
        mp = s3client.create_multipart_upload(Bucket=bucket, Key="in/big.csv")
        part = s3client.upload_part(
            Bucket=bucket, Key="in/big.csv", UploadId=mp["UploadId"], PartNumber=1,
            Body="".join(x + "\n" for x in rows_for("big", 3)).encode(),
        )  # fmt: skip
        # events arrive in order and hints are acted on in order: once this
        # later object is loaded, the part's hint has been HEADed (and would be
        # recorded) while the upload is still in progress
        put(s3client, bucket, "in/after.csv", rows_for("after", 1))
        wait_for(lambda: _loaded(conn, "in/after.csv"), timeout=5, what="the later object")
        # the upload completes: one object, loaded once
        s3client.complete_multipart_upload(
            Bucket=bucket, Key="in/big.csv", UploadId=mp["UploadId"],
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
        )  # fmt: skip
        wait_for(lambda: _loaded(conn, "in/big.csv"), timeout=5, what="the completed upload")
        time.sleep(0.5)  # time for a wrongly recorded key to show up
    finally:
        _stop(w)
    got = ledger(conn)
    assert got.pop(("in/b.csv", second)) == ("loaded", 1)
    assert got.pop(("in/b.csv", third)) == ("loaded", 2)
    assert {k: v for (k, _), v in got.items()} == {
        "gone.csv": ("loaded", 1),
        "in/a.csv": ("loaded", 2),
        "in/after.csv": ("loaded", 1),
        "in/big.csv": ("loaded", 3),
    }
    assert ("in/a.csv", first) in got
    assert conn.execute("SELECT obj, count(*) FROM t GROUP BY obj ORDER BY obj").fetchall() == [
        ("a", 2),
        ("after", 1),
        ("b", 3),
        ("big", 3),
        ("gone", 1),
    ]


@pytest.mark.slow
def test_filer_webhook_rename_into_place_loads_the_new_name(
    conn: psycopg.Connection[Any], db: str, hooked: tuple[SeaweedS3, int]
) -> None:
    """Publishing by rename through the filer (write `x.csv.tmp`, move it to
    `x.csv`) posts a `rename` whose `key` is the OLD path: the new name is
    loaded within seconds, not at the next listing."""
    server, port = hooked
    conn.execute("CREATE TABLE t (obj text, tag text, n int)")
    bucket = _bucket(server)
    w = _watch(server, port, db, bucket, "--pattern", "*.csv")
    try:
        wait_for(lambda: _listening(port) and _ledger_exists(conn), what="the first listing")
        started = time.monotonic()
        body = "".join(x + "\n" for x in rows_for("r", 4)).encode()
        assert _filer(server, "PUT", f"/buckets/{bucket}/in/r.csv.tmp", body) == 201
        moved = f"/buckets/{bucket}/in/r.csv?mv.from=/buckets/{bucket}/in/r.csv.tmp"
        assert _filer(server, "POST", moved) == 204
        wait_for(lambda: _loaded(conn, "in/r.csv"), timeout=5, what="the renamed object")
        assert time.monotonic() - started < 6
    finally:
        _stop(w)
    assert [(k, v) for (k, _), v in ledger(conn).items()] == [("in/r.csv", ("loaded", 4))]
    assert conn.execute("SELECT count(*) FROM t WHERE obj = 'r'").fetchone() == (4,)


@pytest.mark.slow
def test_filer_webhook_versioned_bucket_loads_each_version_once(
    conn: psycopg.Connection[Any], db: str, hooked: tuple[SeaweedS3, int]
) -> None:
    """With versioning on, the filer names only `<key>.versions/v_<id>` files
    (which HEAD and GET serve): each PUT still loads once, as `<key>`."""
    server, port = hooked
    s3client = server.client()
    conn.execute("CREATE TABLE t (obj text, tag text, n int)")
    bucket = _bucket(server)
    s3client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    w = _watch(server, port, db, bucket)  # no --pattern
    try:
        wait_for(lambda: _listening(port) and _ledger_exists(conn), what="the first listing")
        first = put(s3client, bucket, "in/v.csv", rows_for("v", 2, "v1"))
        wait_for(lambda: _loaded(conn, "in/v.csv"), timeout=5, what="the first version")
        second = put(s3client, bucket, "in/v.csv", rows_for("v", 3, "v2"))
        wait_for(lambda: ledger(conn).get(("in/v.csv", second), ("",))[0] == "loaded",
                 timeout=5, what="the second version")  # fmt: skip
        time.sleep(0.5)  # time for a wrongly recorded key to show up
    finally:
        _stop(w)
    assert ledger(conn) == {
        ("in/v.csv", first): ("loaded", 2),
        ("in/v.csv", second): ("loaded", 3),
    }
    assert conn.execute("SELECT tag, count(*) FROM t GROUP BY tag ORDER BY tag").fetchall() == [
        ("v1", 2),
        ("v2", 3),
    ]


def _hook(event: str, key: str, **message: Any) -> dict[str, Any]:
    """A filer webhook body as SeaweedFS 4.48 posts it (entries trimmed)."""
    return {"event_type": event, "key": key, "message": message}


_UPLOAD = "/buckets/bkt1/.uploads/095ee9ba_11d9"
_FILE = {"name": "a b+c.csv", "attributes": {"file_size": 4, "md5": "AJUgBTsAOG0Rc/OYjFXRkg=="}}


@pytest.mark.parametrize(
    ("doc", "hints"),
    [
        (_hook("create", "/buckets/bkt1/in/a b+c.csv", new_entry=_FILE,
               new_parent_path="/buckets/bkt1/in"), [("bkt1", "in/a b+c.csv")]),
        (_hook("update", "/buckets/bkt1/in/a b+c.csv", old_entry=_FILE, new_entry=_FILE,
               new_parent_path="/buckets/bkt1/in"), [("bkt1", "in/a b+c.csv")]),
        # the key is the old path; the entry is now under new_parent_path
        (_hook("rename", "/buckets/bkt1/tmp/r.csv", old_entry={"name": "r.csv"},
               new_entry={"name": "r.csv"}, new_parent_path="/buckets/bkt1/in"),
         [("bkt1", "in/r.csv")]),
        (_hook("rename", "/buckets/bkt1/tmp/r.csv", old_entry={"name": "r.csv"}), []),
        (_hook("delete", "/buckets/bkt1/in/copy.csv", old_entry={"name": "copy.csv"}), []),
        (_hook("create", "/buckets/bkt1/in", new_entry={"name": "in", "is_directory": True},
               new_parent_path="/buckets/bkt1"), []),
        (_hook("create", "/buckets/bkt1", new_entry={"name": "bkt1", "is_directory": True},
               new_parent_path="/buckets"), []),
        (_hook("create", f"{_UPLOAD}/0001_a783a683.part", new_entry={"name": "0001_a783a683.part"},
               new_parent_path=_UPLOAD), []),
        (_hook("create", "/buckets/.system/owners/admin/bkt1", new_entry={"name": "bkt1"},
               new_parent_path="/buckets/.system/owners/admin"), []),
        (_hook("create", "/staging/r.csv", new_entry={"name": "r.csv"},
               new_parent_path="/staging"), []),
        # a versioned bucket: a version file stands for its object
        (_hook("create", "/buckets/bkt1/in/v.csv.versions/v_671241b66ce47d88",
               new_entry={"name": "v_671241b66ce47d88"},
               new_parent_path="/buckets/bkt1/in/v.csv.versions"), [("bkt1", "in/v.csv")]),
        (_hook("update", "/buckets/bkt1/in/v.csv.versions",
               new_entry={"name": "v.csv.versions", "is_directory": True},
               new_parent_path="/buckets/bkt1/in"), []),
        (_hook("create", "/buckets/bkt1/x.versions/v_1/y.csv", new_entry={"name": "y.csv"},
               new_parent_path="/buckets/bkt1/x.versions/v_1"),
         [("bkt1", "x.versions/v_1/y.csv")]),
        # the shape assumed before 4.48 was checked: still taken
        ({"event_type": "create", "key": "/buckets/bkt1/x.csv"}, [("bkt1", "x.csv")]),
        ({"event_type": "create", "key": "/buckets/bkt1/x.csv", "message": "junk"},
         [("bkt1", "x.csv")]),
    ],
)  # fmt: skip
def test_filer_webhook_payloads(doc: dict[str, Any], hints: list[tuple[str, str]]) -> None:
    from pgferry.ingest.notify import hints_from

    assert hints_from(doc) == hints
