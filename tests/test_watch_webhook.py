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
