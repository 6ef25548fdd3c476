"""The failures users hit: each a clear one-line error, nothing loaded."""

from __future__ import annotations

import gzip
from typing import Any

import psycopg
import pytest

from pgferry import errors, imports
from pgferry.embedded import free_port
from pgferry.sink import fastcopy
from pgferry.stores import s3 as s3mod
from pgferry.stores.s3 import S3Config

pytestmark = pytest.mark.usefixtures("s3env")

BASE = b"1,a\n2,b\n"


@pytest.fixture()
def table(conn: psycopg.Connection[Any]) -> str:
    conn.execute("CREATE TABLE t (id int NOT NULL, v text); INSERT INTO t VALUES (0, 'kept')")
    return "t"


def unchanged(conn: psycopg.Connection[Any]) -> None:
    assert conn.execute("SELECT id, v FROM t").fetchall() == [(0, "kept")]


def fail(db: str, source: str, **kw: Any) -> errors.PgferryError:
    kw.setdefault("options", "(format csv)")
    with pytest.raises(errors.PgferryError) as err:
        imports.import_from_s3("t", source, target=db, **kw)
    assert "\n" not in str(err.value)
    return err.value


def test_missing_bucket(conn, db, table) -> None:
    e = fail(db, "s3://no-such-bucket-x/k.csv")
    assert isinstance(e, errors.BucketNotFound)
    assert str(e) == (
        "bucket 'no-such-bucket-x' does not exist (s3://no-such-bucket-x/k.csv); "
        "check the bucket name and the endpoint/region"
    )
    assert (e.bucket, e.key) == ("no-such-bucket-x", "k.csv")
    unchanged(conn)


def test_missing_key(conn, db, table, bucket) -> None:
    e = fail(db, f"s3://{bucket}/nope.csv")
    assert isinstance(e, errors.ObjectNotFound) and not e.transient
    assert str(e) == (
        f"object s3://{bucket}/nope.csv does not exist; "
        f"check the key; list the prefix with 'aws s3 ls s3://{bucket}/'"
    )
    unchanged(conn)
    e = fail(db, f"s3://{bucket}/dir/sub/nope.csv")
    assert str(e).endswith(f"list the prefix with 'aws s3 ls s3://{bucket}/dir/sub/'")
    assert (e.bucket, e.key) == (bucket, "dir/sub/nope.csv")


def test_bad_credentials(conn, db, table, bucket, s3client, monkeypatch) -> None:
    s3client.put_object(Bucket=bucket, Key="k.csv", Body=BASE)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret")
    e = fail(db, f"s3://{bucket}/k.csv")
    assert isinstance(e, errors.CredentialsError)
    assert str(e) == (
        f"S3 rejected the credentials for s3://{bucket}/k.csv (SignatureDoesNotMatch); "
        "check the access key, secret key and session token (or the profile)"
    )
    assert "wrong-secret" not in str(e)
    unchanged(conn)


def test_no_credentials(conn, db, table, bucket, monkeypatch) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    e = fail(db, f"s3://{bucket}/k.csv")
    assert isinstance(e, errors.CredentialsError)
    assert str(e).startswith(
        f"no AWS credentials found for s3://{bucket}/k.csv; set AWS_ACCESS_KEY_ID"
    )


def test_wrong_endpoint(conn, db, table, monkeypatch) -> None:
    port = free_port()
    monkeypatch.setattr(s3mod, "ATTEMPTS", 1)
    e = fail(db, "s3://bkt/k.csv", s3=S3Config(endpoint_url=f"http://127.0.0.1:{port}"))
    assert isinstance(e, errors.StoreUnreachable) and e.transient
    assert str(e) == (
        f"cannot reach the S3 endpoint http://127.0.0.1:{port}/bkt for s3://bkt/k.csv; "
        "check --endpoint-url / AWS_ENDPOINT_URL and that the store is running"
    )
    unchanged(conn)


def test_empty_object_loads_zero_rows(conn, db, table, bucket, s3client, caplog) -> None:
    s3client.put_object(Bucket=bucket, Key="empty.csv", Body=b"")
    r = imports.import_from_s3("t", f"s3://{bucket}/empty.csv", options="(format csv)", target=db)
    assert str(r) == '0 rows imported into relation "t" from file empty.csv of 0 bytes'
    assert f"s3://{bucket}/empty.csv is empty (0 bytes): nothing to load" in caplog.text
    unchanged(conn)


@pytest.mark.parametrize("path", ["csv", "binary"])
def test_object_replaced_during_import(
    conn, db, table, bucket, s3client, monkeypatch, path
) -> None:
    if path == "binary":  # the same failure from the COPY BINARY path's reader thread
        monkeypatch.setattr(fastcopy, "MIN_SIZE", 0)
        monkeypatch.setattr(fastcopy, "BLOCK", 8 << 10)
    monkeypatch.setattr(s3mod, "RANGE", 64 << 10)
    monkeypatch.setattr(s3mod, "PIECE", 16 << 10)
    body = b"".join(b"%d,row\n" % i for i in range(1, 100_000))
    s3client.put_object(Bucket=bucket, Key="moving.csv", Body=body)

    def replace_once(done: int, total: int) -> None:
        assert total == len(body)
        if done == 16 << 10:  # first piece arrived: a writer replaces the object
            s3client.put_object(Bucket=bucket, Key="moving.csv", Body=body + b"999999,new\n")

    with pytest.raises(errors.ObjectChanged) as err:
        imports.import_from_s3(
            "t",
            f"s3://{bucket}/moving.csv",
            options="(format csv)",
            target=db,
            on_bytes=replace_once,
        )
    assert str(err.value) == (
        f"object s3://{bucket}/moving.csv was replaced while it was being read; "
        "nothing was loaded; retry once the writer has finished"
    )
    unchanged(conn)
    assert (
        conn.execute("SELECT count(*) FROM pg_stat_activity WHERE query ~* '^COPY'").fetchone()[0]
        == 0
    )


@pytest.mark.parametrize("path", ["csv", "binary"])
def test_truncated_gzip(conn, db, table, bucket, s3client, monkeypatch, path) -> None:
    if path == "binary":
        monkeypatch.setattr(fastcopy, "MIN_SIZE", 0)
        monkeypatch.setattr(fastcopy, "BLOCK", 8 << 10)
    blob = gzip.compress(b"".join(b"%d,x\n" % i for i in range(50_000)))
    s3client.put_object(
        Bucket=bucket, Key="cut.csv.gz", Body=blob[: len(blob) // 2], ContentEncoding="gzip"
    )
    e = fail(db, f"s3://{bucket}/cut.csv.gz")
    assert isinstance(e, errors.DecodeError)
    assert str(e) == (
        f"truncated gzip data in s3://{bucket}/cut.csv.gz: the stream ends before its end marker; "
        "re-upload the complete file; nothing was loaded"
    )
    unchanged(conn)


def test_corrupt_gzip(conn, db, table, bucket, s3client) -> None:
    blob = bytearray(gzip.compress(b"".join(b"%d,x\n" % i for i in range(50_000))))
    blob[100:140] = b"\xff" * 40
    s3client.put_object(Bucket=bucket, Key="bad.gz", Body=bytes(blob))
    e = fail(db, f"s3://{bucket}/bad.gz")
    assert isinstance(e, errors.DecodeError)
    assert str(e).startswith(f"corrupt gzip data in s3://{bucket}/bad.gz: ")
    unchanged(conn)


def test_invalid_byte_sequence_names_the_line(conn, db, table, bucket, s3client) -> None:
    s3client.put_object(Bucket=bucket, Key="w.csv", Body=b"1,ok\n2,ok\n3,caf\xe9\n")
    e = fail(db, f"s3://{bucket}/w.csv")
    assert isinstance(e, errors.DataError)
    assert (e.line, e.table, e.sqlstate) == (3, "t", "22021")
    assert str(e) == (
        f's3://{bucket}/w.csv line 3 rejected by table "t": '
        'invalid byte sequence for encoding "UTF8": 0xe9 0x0a; '
        "the file is not in the encoding COPY expects: set it in the options, "
        "e.g. \"encoding 'WIN1252'\"; nothing was loaded"
    )
    unchanged(conn)


def test_bad_row_names_line_and_column(conn, db, table, bucket, s3client) -> None:
    s3client.put_object(Bucket=bucket, Key="r.csv", Body=b"1,a\n2,b\nthree,c\n")
    e = fail(db, f"s3://{bucket}/r.csv")
    assert isinstance(e, errors.DataError)
    assert (e.line, e.column) == (3, "id")
    assert str(e) == (
        f's3://{bucket}/r.csv line 3, column id rejected by table "t": '
        'invalid input syntax for type integer: "three"; '
        "fix the row, or load into a staging table of text columns; nothing was loaded"
    )
    unchanged(conn)


def test_not_null_violation(conn, db, table, bucket, s3client) -> None:
    s3client.put_object(Bucket=bucket, Key="n.csv", Body=b"1,a\n,b\n")
    e = fail(db, f"s3://{bucket}/n.csv")
    assert isinstance(e, errors.DataError) and e.line == 2
    unchanged(conn)


def test_missing_table_and_column(conn, db, table, bucket, s3client) -> None:
    s3client.put_object(Bucket=bucket, Key="k.csv", Body=BASE)
    with pytest.raises(errors.TableNotFound) as err:
        imports.import_from_s3("nosuch", f"s3://{bucket}/k.csv", target=db)
    assert str(err.value) == (
        'table "nosuch" does not exist; '
        "create it first, or pass --create-table to create it from the file"
    )
    e = fail(db, f"s3://{bucket}/k.csv", columns="id,nope")
    assert isinstance(e, errors.ColumnNotFound)
    assert str(e) == (
        'column "nope" of relation "t" does not exist (table "t"); '
        "fix the column list (--columns) to name columns of the table"
    )
    unchanged(conn)


def test_permission_denied(conn, db, table, bucket, s3client, pgserver) -> None:
    conn.execute(
        "DROP ROLE IF EXISTS reader; CREATE ROLE reader LOGIN; GRANT SELECT ON t TO reader"
    )
    s3client.put_object(Bucket=bucket, Key="k.csv", Body=BASE)
    dbname = conn.info.dbname
    with pytest.raises(errors.PermissionDenied) as err:
        imports.import_from_s3(
            "t",
            f"s3://{bucket}/k.csv",
            options="(format csv)",
            target=pgserver.conninfo(dbname, user="reader"),
        )
    assert str(err.value) == (
        'permission denied for table t (table "t"); '
        "GRANT INSERT on the table (and USAGE on its schema) to this role"
    )
    unchanged(conn)
    conn.execute("DROP OWNED BY reader; DROP ROLE reader")


def test_target_unreachable(bucket, s3client) -> None:
    s3client.put_object(Bucket=bucket, Key="k.csv", Body=BASE)
    port = free_port()
    with pytest.raises(errors.TargetUnreachable) as err:
        imports.import_from_s3(
            "t", f"s3://{bucket}/k.csv", target=f"postgresql://u:topsecret@127.0.0.1:{port}/db"
        )
    msg = str(err.value)
    assert msg.startswith(f"cannot connect to postgresql://u:****@127.0.0.1:{port}/db: ")
    assert msg.endswith("check that the server is running and the URL (--target) is right")
    assert "topsecret" not in msg and err.value.transient


SLOW_ROWS = """
CREATE FUNCTION slow() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN PERFORM pg_sleep(0.05); RETURN NEW; END $$;
CREATE TRIGGER slow BEFORE INSERT ON t FOR EACH ROW EXECUTE FUNCTION slow();
"""


def test_statement_timeout_is_its_own_error(conn, db, table, bucket, s3client) -> None:
    # a trigger makes each row take 50 ms: 100 rows outlast the 300 ms timeout
    conn.execute(SLOW_ROWS)
    s3client.put_object(Bucket=bucket, Key="slow.csv", Body=b"1,a\n" * 100)
    # the timeout set on the role, as an administrator would
    conn.execute("DROP ROLE IF EXISTS loader; CREATE ROLE loader LOGIN")
    conn.execute(
        "GRANT INSERT, SELECT ON t TO loader; ALTER ROLE loader SET statement_timeout = 300"
    )
    target = psycopg.conninfo.make_conninfo(db, user="loader")
    with pytest.raises(errors.StatementCancelled) as err:
        imports.import_from_s3(
            "t", f"s3://{bucket}/slow.csv", options="(format csv)", target=target
        )
    e = err.value
    assert str(e) == (
        f'statement timed out or was cancelled while loading table "t" from s3://{bucket}/slow.csv'
        " (canceling statement due to statement timeout); raise statement_timeout for this "
        "role or database (ALTER ROLE ... SET statement_timeout), or pass a larger one in the "
        "target URL (options=-c statement_timeout=...); nothing was committed"
    )
    # transient (a lock or a busy server passes) but not "lost the target"
    assert (e.sqlstate, e.table, e.key, e.transient) == ("57014", "t", "slow.csv", True)
    assert not isinstance(e, errors.TargetUnreachable)
    unchanged(conn)
    conn.execute("DROP OWNED BY loader; DROP ROLE loader")


def test_terminated_backend_stays_transient(conn, db, table, bucket, s3client) -> None:
    import threading
    import time

    conn.execute(SLOW_ROWS)
    s3client.put_object(Bucket=bucket, Key="slow.csv", Body=b"1,a\n" * 2000)
    app = "pgferry-terminated"
    target = psycopg.conninfo.make_conninfo(db, application_name=app)
    caught: list[BaseException] = []

    def load() -> None:
        try:
            imports.import_from_s3(
                "t", f"s3://{bucket}/slow.csv", options="(format csv)", target=target
            )
        except errors.PgferryError as e:
            caught.append(e)

    worker = threading.Thread(target=load)
    worker.start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        row = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = %s AND query LIKE 'COPY%%'",
            [app],
        ).fetchone()
        if row:
            break
        time.sleep(0.02)
    worker.join(60)
    assert len(caught) == 1
    e = caught[0]
    assert isinstance(e, errors.TargetUnreachable) and e.transient
    assert e.sqlstate == "57P01"
    assert str(e) == (
        f'lost the target while loading table "t" from s3://{bucket}/slow.csv: terminating '
        "connection due to administrator command; nothing was committed; retry when the server "
        "is reachable"
    )
    unchanged(conn)


def test_deadlock_is_busy_not_lost(conn, db, table, bucket, s3client) -> None:
    """A load that loses a deadlock (40P01) is transient but not "lost the
    target": the server is there, and the load passes on a retry."""
    import threading
    import time

    conn.execute(
        "CREATE TABLE x (id int PRIMARY KEY, v int); INSERT INTO x VALUES (1, 0), (2, 0);"
        "CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$"
        " BEGIN UPDATE x SET v = v + 1 WHERE id = 2; RETURN NEW; END $$;"
        "CREATE TRIGGER touch BEFORE INSERT ON t FOR EACH ROW EXECUTE FUNCTION touch()"
    )
    s3client.put_object(Bucket=bucket, Key="d.csv", Body=b"1,a\n")
    other = psycopg.connect(db)  # holds row 2, then wants row 1
    other.execute("UPDATE x SET v = v + 1 WHERE id = 2")
    loader = psycopg.connect(db)  # holds row 1, then its trigger wants row 2
    loader.execute("UPDATE x SET v = v + 1 WHERE id = 1")
    loader.execute("SET LOCAL deadlock_timeout = '50ms'")  # the loader finds it first

    def close_the_cycle() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # once the loader waits for row 2
            if conn.execute(
                "SELECT count(*) FROM pg_locks WHERE NOT granted AND pid = %s",
                [loader.info.backend_pid],
            ).fetchone() == (1,):
                break
            time.sleep(0.01)
        other.execute("UPDATE x SET v = v + 1 WHERE id = 1")  # waits until the loader gives up
        other.commit()

    closer = threading.Thread(target=close_the_cycle)
    closer.start()
    try:
        with pytest.raises(errors.TargetBusy) as err:
            imports.import_from_s3("t", f"s3://{bucket}/d.csv", options="(format csv)", conn=loader)
    finally:
        loader.rollback()  # frees row 1: the other session goes on and commits
        closer.join(60)
        loader.close()
        other.close()
    e = err.value
    assert (e.sqlstate, e.table, e.key, e.transient) == ("40P01", "t", "d.csv", True)
    assert not isinstance(e, errors.TargetUnreachable)
    assert str(e) == (
        f'the target rolled back the load of table "t" from s3://{bucket}/d.csv: deadlock '
        "detected; nothing was committed; a deadlock or serialization failure passes on a "
        "retry; for too many connections, memory or disk, free some first"
    )
    unchanged(conn)
    assert conn.execute("SELECT v FROM x ORDER BY id").fetchall() == [(1,), (1,)]
