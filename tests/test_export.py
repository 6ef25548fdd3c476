"""`pgferry export`: queries and tables to S3 objects, split at row ends,
compressed, as aws_s3.query_export_to_s3 names them; round trips through
`pgferry import` of the parts."""

from __future__ import annotations

import gzip
import json
import os
from typing import Any

import psycopg
import pytest
import zstandard

from pgferry.errors import UsageError
from pgferry.export import ExportSpec, run_export
from pgferry.imports import ImportSpec
from pgferry.many import run_many
from tests.test_import_cli import run

ROWS = 20_000


@pytest.fixture()
def filled(conn: psycopg.Connection[Any]) -> None:
    conn.execute(
        "CREATE TABLE src AS SELECT g AS id, 'line ' || g || E'\\nwith \"quotes\", commas' AS note "
        f"FROM generate_series(1, {ROWS}) g"
    )


def _keys(s3client: Any, bucket: str) -> list[str]:
    resp = s3client.list_objects_v2(Bucket=bucket)
    return sorted(o["Key"] for o in resp.get("Contents", []))


def test_csv_parts_split_at_row_ends_and_load_back(
    conn, db, filled, s3client, bucket, s3env
) -> None:
    spec = ExportSpec(
        dest=f"s3://{bucket}/out/all.csv",
        table="src",
        options="(format csv)",
        part_size="200kB",
        source=db,
    )
    r = run_export(spec)
    assert r.rows_uploaded == ROWS
    assert r.files_uploaded >= 3
    assert r.keys == ["out/all.csv"] + [
        f"out/all.csv_part{i}" for i in range(2, r.files_uploaded + 1)
    ]
    assert _keys(s3client, bucket) == sorted(r.keys)
    bodies = [s3client.get_object(Bucket=bucket, Key=k)["Body"].read() for k in r.keys]
    assert r.bytes_uploaded == sum(map(len, bodies))
    # every file but the last is a bit over the part size and ends a row
    assert all(200 << 10 <= len(b) < (200 << 10) + 200 for b in bodies[:-1])
    conn.execute("CREATE TABLE back (id int, note text)")
    res = run_many(
        ImportSpec(
            table="back", source=f"s3://{bucket}/out/all.csv*", options="(format csv)", target=db
        )
    )
    assert res.rows == ROWS
    assert conn.execute(
        "SELECT count(*) FROM src FULL JOIN back USING (id, note) "
        "WHERE src.id IS NULL OR back.id IS NULL"
    ).fetchone() == (0,)


@pytest.mark.parametrize("codec", ["gzip", "zstd"])
def test_query_export_compressed(conn, db, filled, s3client, bucket, s3env, codec) -> None:
    spec = ExportSpec(
        dest=f"s3://{bucket}/q.txt",
        query="SELECT id, note FROM src WHERE id <= 1000 ORDER BY id;",
        content_encoding=codec,
        source=db,
    )
    r = run_export(spec)
    assert (r.rows_uploaded, r.files_uploaded, r.keys) == (1000, 1, ["q.txt"])
    obj = s3client.get_object(Bucket=bucket, Key="q.txt")
    assert obj["ContentEncoding"] == codec
    raw = obj["Body"].read()
    text = (
        gzip.decompress(raw)
        if codec == "gzip"
        else zstandard.ZstdDecompressor().decompressobj().decompress(raw)
    )
    assert r.bytes_uploaded == len(raw)
    assert text.startswith(b'1\tline 1\\nwith "quotes", commas\n2\t')
    assert text.count(b"\n") == 1000


def test_cli_export_reports_like_aws_s3(conn, db, filled, s3client, bucket, s3) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "PG"))}
    env.update(s3.env(), AWS_CONFIG_FILE="/nonexistent", AWS_SHARED_CREDENTIALS_FILE="/nonexistent")
    p = run(
        "export",
        f"s3://{bucket}/t.csv",
        "--table",
        "src",
        "--format",
        "csv",
        "--options",
        "(header true)",
        "--source",
        db,
        "--json",
        env=env,
    )
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert (out["rows_uploaded"], out["files_uploaded"], out["keys"]) == (ROWS, 1, ["t.csv"])
    body = s3client.get_object(Bucket=bucket, Key="t.csv")["Body"].read()
    assert body.startswith(b"id,note\n1,")
    assert (
        out["message"] == f"{ROWS} rows, 1 files, {len(body)} bytes uploaded to s3://{bucket}/t.csv"
    )
    p = run("export", f"s3://{bucket}/x", "--source", db, env=env)
    assert (p.returncode, p.stderr) == (
        2,
        "error: give either --query or --table; see 'pgferry export --help'\n",
    )


def test_name_that_promises_another_format_is_warned(
    conn, db, filled, s3client, bucket, s3
) -> None:
    """x.csv gets COPY's text format by default (as aws_s3's export), x.csv.gz
    is not compressed unless asked: the export still runs, with a warning that
    says what to pass; a name that matches what is written gets none."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "PG"))}
    env.update(s3.env(), AWS_CONFIG_FILE="/nonexistent", AWS_SHARED_CREDENTIALS_FILE="/nonexistent")
    cases = [
        ([f"s3://{bucket}/a.csv"], [
            f"warning: s3://{bucket}/a.csv is named like CSV but is written as COPY's text format"
            " (tab-separated, \\N for NULL: the default, as aws_s3's); pass --format csv to"
            " write CSV",
        ]),
        ([f"s3://{bucket}/b.csv.gz", "--options", "(FORMAT CSV)"], [
            f"warning: s3://{bucket}/b.csv.gz is named like a gzip file but is written"
            " uncompressed; pass --content-encoding gzip to compress it",
        ]),
        ([f"s3://{bucket}/c.parquet", "--format", "jsonl"], [
            f"warning: s3://{bucket}/c.parquet is named like Parquet but is written as JSON"
            " Lines; pass --format parquet to write Parquet",
        ]),
        ([f"s3://{bucket}/d.csv.zst", "--format", "csv", "--content-encoding", "zstd"], []),
        ([f"s3://{bucket}/e.jsonl", "--format", "jsonl"], []),
    ]  # fmt: skip
    for args, warnings in cases:
        p = run("export", *args, "--query", "SELECT 1 AS one", "--source", db, env=env)
        assert p.returncode == 0, p.stderr
        assert p.stderr.splitlines() == warnings
    assert _keys(s3client, bucket) == ["a.csv", "b.csv.gz", "c.parquet", "d.csv.zst", "e.jsonl"]
    body = s3client.get_object(Bucket=bucket, Key="a.csv")["Body"].read()
    assert body == b"1\n"


def test_failed_export_leaves_nothing_behind(conn, db, filled, s3client, bucket, s3env) -> None:
    # the error comes after several files went up: they are deleted again
    spec = ExportSpec(
        dest=f"s3://{bucket}/bad.csv",
        query="SELECT id, note, 1 / (id - 15000) FROM src ORDER BY id",
        options="(format csv)",
        part_size="100kB",
        source=db,
    )
    from pgferry.errors import TargetError

    with pytest.raises(TargetError) as e:
        run_export(spec)
    assert e.value.message == "exporting the query failed: division by zero; nothing was uploaded"
    assert _keys(s3client, bucket) == []
    assert s3client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    # a second statement cannot ride along inside COPY (...)
    with pytest.raises(UsageError) as u:
        run_export(
            ExportSpec(
                dest=f"s3://{bucket}/x.csv",
                query="SELECT 1) TO STDOUT; DROP TABLE src; --",
                source=db,
            )
        )
    assert u.value.message.startswith('the server refused the query: syntax error at or near ")"')
    assert conn.execute("SELECT count(*) FROM src").fetchone() == (ROWS,)


def test_jsonl_export_round_trip(conn, db, filled, s3client, bucket, s3env) -> None:
    r = run_export(
        ExportSpec(
            dest=f"s3://{bucket}/j/out.jsonl",
            table="src",
            format="jsonl",
            part_size="300kB",
            source=db,
        )
    )
    assert r.rows_uploaded == ROWS and r.files_uploaded >= 2
    first = s3client.get_object(Bucket=bucket, Key="j/out.jsonl")["Body"].read()
    assert first.startswith(b'{"id":1,"note":"line 1\\nwith \\"quotes\\", commas"}\n')
    conn.execute("CREATE TABLE back (id int, note text)")
    res = run_many(
        ImportSpec(table="back", source=f"s3://{bucket}/j/out.jsonl*", format="jsonl", target=db)
    )
    assert res.rows == ROWS
    assert conn.execute(
        "SELECT count(*) FROM src FULL JOIN back USING (id, note) "
        "WHERE src.id IS NULL OR back.id IS NULL"
    ).fetchone() == (0,)


def test_parquet_export_in_parts_and_back(conn, db, s3client, bucket, s3env) -> None:
    import datetime as dt
    import io
    from decimal import Decimal

    import pyarrow.parquet as pq

    conn.execute(
        "CREATE TABLE typed AS SELECT g AS id, (g::numeric / 4)::numeric(12,2) AS price, "
        "'n' || g AS name, g % 2 = 0 AS even, date '2024-01-01' + g AS day, "
        "timestamptz '2024-01-01 00:00:00+00' + g * interval '1 second' AS at, "
        "jsonb_build_object('g', g) AS doc, CASE WHEN g % 3 = 0 THEN NULL ELSE g END AS maybe "
        "FROM generate_series(1, 120000) g"
    )
    r = run_export(
        ExportSpec(
            dest=f"s3://{bucket}/p/t.parquet",
            table="typed",
            format="parquet",
            part_size="1MB",
            source=db,
        )
    )
    assert r.rows_uploaded == 120_000 and r.files_uploaded >= 2
    tables = [
        pq.read_table(io.BytesIO(s3client.get_object(Bucket=bucket, Key=k)["Body"].read()))
        for k in r.keys
    ]
    assert sum(t.num_rows for t in tables) == 120_000
    first = tables[0].slice(0, 1).to_pylist()[0]
    assert first == {
        "id": 1,
        "price": Decimal("0.25"),
        "name": "n1",
        "even": False,
        "day": dt.date(2024, 1, 2),
        "at": dt.datetime(2024, 1, 1, 0, 0, 1, tzinfo=dt.UTC),
        "doc": '{"g": 1}',
        "maybe": 1,
    }
    # the parts load back, as Parquet, with a glob
    conn.execute("CREATE TABLE back (LIKE typed)")
    res = run_many(
        ImportSpec(table="back", source=f"s3://{bucket}/p/t.parquet*", format="parquet", target=db)
    )
    assert res.rows == 120_000
    assert conn.execute("SELECT count(*) FROM (TABLE typed EXCEPT TABLE back) d").fetchone() == (0,)
