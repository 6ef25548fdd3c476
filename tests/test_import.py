"""Client-side import against real PostgreSQL (15 and 18) and a real S3."""

from __future__ import annotations

import bz2
import gzip
from pathlib import Path
from typing import Any

import psycopg
import pytest
import zstandard

from pgferry import imports
from pgferry.errors import ObjectNotFound, UsageError
from pgferry.stores.s3 import S3Config
from tests.services import ACCESS_KEY, SECRET_KEY

pytestmark = pytest.mark.usefixtures("s3env")


def rows(conn: psycopg.Connection[Any], query: str) -> list[tuple[Any, ...]]:
    return conn.execute(query).fetchall()


def put(client: Any, bucket: str, key: str, body: bytes, **kw: Any) -> None:
    client.put_object(Bucket=bucket, Key=key, Body=body, **kw)


def test_guide_t1_csv(conn, db, s3client, bucket) -> None:
    conn.execute("CREATE TABLE t1 (col1 int, col2 text, col3 numeric)")
    body = b'1,one,1.5\n2,two,2.5\n3,"th,ree",3\n'
    put(s3client, bucket, "dir/t1.csv", body)
    result = imports.import_from_s3(
        "t1", bucket=bucket, key="dir/t1.csv", region="us-east-1", options="(format csv)", target=db
    )
    assert (
        str(result)
        == f'3 rows imported into relation "t1" from file dir/t1.csv of {len(body)} bytes'
    )
    assert (result.rows, result.bytes, result.bucket, result.key, result.table) == (
        3,
        len(body),
        bucket,
        "dir/t1.csv",
        "t1",
    )
    assert rows(conn, "SELECT col1, col2, col3::text FROM t1 ORDER BY 1") == [
        (1, "one", "1.5"),
        (2, "two", "2.5"),
        (3, "th,ree", "3"),
    ]


def test_guide_pipe_delimited_with_column_list(conn, db, s3client, bucket) -> None:
    conn.execute("CREATE TABLE test (a text, b text, c text, d text, e text)")
    body = b"".join(b"%d|foo%d|bar%d|elephant%d\n" % (i, i, i, i) for i in range(1, 5))
    put(s3client, bucket, "pipeDelimitedSampleFile", body)
    result = imports.import_from_s3(
        "test",
        f"s3://{bucket}/pipeDelimitedSampleFile",
        columns="a,b,d,e",
        options="DELIMITER '|'",
        target=db,
    )
    assert result.rows == 4
    assert rows(conn, "SELECT * FROM test ORDER BY a") == [
        (str(i), f"foo{i}", None, f"bar{i}", f"elephant{i}") for i in range(1, 5)
    ]


@pytest.mark.parametrize(
    ("compress", "meta"),
    [
        (gzip.compress, {"ContentEncoding": "gzip"}),  # the guide's rule
        (gzip.compress, {}),  # no metadata: magic bytes
        (lambda b: zstandard.ZstdCompressor().compress(b), {}),
        (bz2.compress, {}),
    ],
    ids=["gzip-content-encoding", "gzip-sniffed", "zstd", "bzip2"],
)
def test_compressed(conn, db, s3client, bucket, compress, meta) -> None:
    conn.execute("CREATE TABLE test_gzip (id int, a text, b text, c text, d text)")
    plain = b"".join(b"%d,a,b,c,d\n" % i for i in range(1000))
    blob = compress(plain)
    put(s3client, bucket, "test-data.gz", blob, **meta)
    result = imports.import_from_s3(
        "test_gzip", f"s3://{bucket}/test-data.gz", options="(format csv)", target=db
    )
    assert (result.rows, result.bytes) == (1000, len(blob))
    assert rows(conn, "SELECT count(*), sum(id) FROM test_gzip") == [(1000, sum(range(1000)))]


@pytest.mark.parametrize("create", [False, True], ids=["existing", "create-table"])
def test_forcing_no_decompression_refuses_gzip(conn, db, s3client, bucket, create) -> None:
    if not create:
        conn.execute("CREATE TABLE z (id int, a text)")
    put(s3client, bucket, "z.gz", gzip.compress(b"1,a\n"), ContentEncoding="gzip")
    with pytest.raises(UsageError) as err:
        imports.import_from_s3(
            "z",
            f"s3://{bucket}/z.gz",
            options="(format csv)",
            content_encoding="none",
            create_table=create,
            target=db,
        )
    assert str(err.value) == (
        f"s3://{bucket}/z.gz is gzip-compressed but --content-encoding none loads it as it is; "
        "drop --content-encoding none: the default (auto) decompresses it"
    )
    assert (err.value.bucket, err.value.key, err.value.exit_code) == (bucket, "z.gz", 2)
    exists = rows(conn, "SELECT to_regclass('z') IS NOT NULL")[0][0]
    assert exists is not create
    if not create:
        assert rows(conn, "SELECT count(*) FROM z") == [(0,)]


def test_win1252_into_utf8(conn, db, s3client, bucket) -> None:
    conn.execute("CREATE TABLE test_table (id int, name text)")
    body = "1,café\n2,€uro\n3,naïve “quotes”\n".encode("cp1252")
    put(s3client, bucket, "SampleFile", body)
    imports.import_from_s3(
        "test_table",
        f"s3://{bucket}/SampleFile",
        options="(format csv, encoding 'WIN1252')",
        target=db,
    )
    assert rows(conn, "SELECT name FROM test_table ORDER BY id") == [
        ("café",),
        ("€uro",),
        ("naïve “quotes”",),
    ]
    conn.execute("TRUNCATE test_table")
    # the guide's legacy form of the option
    imports.import_from_s3(
        "test_table", f"s3://{bucket}/SampleFile", options="encoding 'WIN1252' CSV", target=db
    )
    assert rows(conn, "SELECT count(*) FROM test_table") == [(3,)]


def test_local_file_and_file_uri(conn, db, tmp_path: Path) -> None:
    conn.execute("CREATE TABLE loc (id int, v text)")
    f = tmp_path / "a b.csv"
    f.write_bytes(b"id,v\n1,x\n2,y\n")
    r1 = imports.import_from_s3("loc", str(f), options="(format csv, header true)", target=db)
    r2 = imports.import_from_s3(
        "loc", f"file://{tmp_path}/a%20b.csv", options="(format csv, header true)", target=db
    )
    assert (r1.rows, r2.rows, r1.bucket) == (2, 2, None)
    assert str(r1) == f'2 rows imported into relation "loc" from file {f} of 13 bytes'
    assert rows(conn, "SELECT count(*) FROM loc") == [(4,)]


def test_schema_qualified_and_quoted_names(conn, db, s3client, bucket) -> None:
    conn.execute(
        'CREATE SCHEMA "Sales"; CREATE TABLE "Sales"."Order Lines" ("Id" int, "Note" text)'
    )
    put(s3client, bucket, "o.csv", b"n1|1\nn2|2\n")
    imports.import_from_s3(
        '"Sales"."Order Lines"',
        f"s3://{bucket}/o.csv",
        columns='"Note","Id"',
        options="DELIMITER '|'",
        target=db,
    )
    assert rows(conn, 'SELECT "Id", "Note" FROM "Sales"."Order Lines" ORDER BY 1') == [
        (1, "n1"),
        (2, "n2"),
    ]


def test_explicit_credentials_and_profile(
    conn, db, s3, s3client, bucket, monkeypatch, tmp_path
) -> None:
    conn.execute("CREATE TABLE c (id int)")
    put(s3client, bucket, "c.csv", b"1\n2\n")
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    explicit = S3Config(access_key=ACCESS_KEY, secret_key=SECRET_KEY, session_token="")
    assert imports.import_from_s3("c", f"s3://{bucket}/c.csv", s3=explicit, target=db).rows == 2
    creds = tmp_path / "credentials"
    creds.write_text(
        f"[loader]\naws_access_key_id = {ACCESS_KEY}\naws_secret_access_key = {SECRET_KEY}\n"
    )
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(creds))
    assert (
        imports.import_from_s3(
            "c", f"s3://{bucket}/c.csv", s3=S3Config(profile="loader"), target=db
        ).rows
        == 2
    )
    assert rows(conn, "SELECT count(*) FROM c") == [(4,)]


def test_create_table_infers_types(conn, db, s3client, bucket) -> None:
    body = (
        b"id,name,price,active,day,at,at_tz,mixed,empty\n"
        b"1,apple,1.50,true,2024-01-02,2024-01-02 03:04:05,2024-01-02T03:04:05Z,7,\n"
        b'2,"pear, green",2,false,2024-02-03,2024-02-03 00:00:00,2024-02-03 00:00:00+02,x,\n'
        b"3,,,,,,,,\n"
    )
    put(s3client, bucket, "new.csv", body)
    result = imports.import_from_s3(
        "fresh",
        f"s3://{bucket}/new.csv",
        options="(format csv, header true)",
        create_table=True,
        target=db,
    )
    assert result.created_table == (
        'CREATE TABLE "fresh" ("id" bigint, "name" text, "price" numeric, "active" boolean, '
        '"day" date, "at" timestamp, "at_tz" timestamptz, "mixed" text, "empty" text)'
    )
    assert result.rows == 3
    assert rows(conn, "SELECT id, name, price::text, active FROM fresh ORDER BY id") == [
        (1, "apple", "1.50", True),
        (2, "pear, green", "2", False),
        (3, None, None, None),
    ]
    # a second run finds the table and leaves it alone
    again = imports.import_from_s3(
        "fresh",
        f"s3://{bucket}/new.csv",
        options="(format csv, header true)",
        create_table=True,
        target=db,
    )
    assert again.created_table is None and again.rows == 3


def test_caller_owned_transaction(conn, db, s3client, bucket) -> None:
    conn.execute("CREATE TABLE t (id int); CREATE TABLE ledger (key text)")
    put(s3client, bucket, "k.csv", b"1\n2\n")
    with psycopg.connect(db) as own:
        r = imports.import_from_s3("t", f"s3://{bucket}/k.csv", conn=own)
        own.execute("INSERT INTO ledger VALUES (%s)", [r.key])
        assert own.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS
        own.rollback()
    assert rows(conn, "SELECT (SELECT count(*) FROM t), (SELECT count(*) FROM ledger)") == [(0, 0)]
    with psycopg.connect(db) as own:
        own.execute("INSERT INTO ledger VALUES ('before')")
        with pytest.raises(ObjectNotFound, match="does not exist"):
            imports.import_from_s3("t", f"s3://{bucket}/missing.csv", conn=own)
        # a failed import leaves the caller's transaction usable
        r = imports.import_from_s3("t", f"s3://{bucket}/k.csv", conn=own)
        own.execute("INSERT INTO ledger VALUES (%s)", [r.key])
        own.commit()
    assert rows(conn, "SELECT (SELECT count(*) FROM t), (SELECT count(*) FROM ledger)") == [(2, 2)]
