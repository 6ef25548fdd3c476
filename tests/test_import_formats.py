"""--format: Parquet and JSON Lines (pgferry-read), csv/text/binary (COPY's),
detected from the name when not given."""

from __future__ import annotations

import datetime as dt
import gzip
import io
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from pgferry import imports
from pgferry.errors import ColumnNotFound, DataError, UsageError

SAMPLE = pa.table(
    {
        "id": pa.array([1, 2, None], pa.int64()),
        "name": pa.array(["ann", "", None], pa.string()),
        "ok": pa.array([True, False, None]),
        "price": pa.array([Decimal("1.50"), Decimal("-2.25"), None], pa.decimal128(9, 2)),
        "at": pa.array(
            [dt.datetime(2024, 1, 2, 3, 4, 5, 6, tzinfo=dt.UTC), None, None],
            pa.timestamp("us", tz="UTC"),
        ),
        "day": pa.array([dt.date(2024, 2, 29), None, None], pa.date32()),
        "tags": pa.array([["a", "b"], [], None], pa.list_(pa.string())),
        "meta": pa.array([{"k": 1, "s": 'q"x'}, None, {"k": 2, "s": "y\nz"}]),
        "blob": pa.array([b"\x00\xff", None, b""], pa.binary()),
        "kind": pa.array(["x", "y", "x"]).dictionary_encode(),
    }
)


def _parquet(table: pa.Table, **kw: Any) -> bytes:
    out = io.BytesIO()
    pq.write_table(table, out, **kw)
    return out.getvalue()


def rows(conn: Any, query: str) -> list[tuple[Any, ...]]:
    return conn.execute(query).fetchall()


def test_parquet_create_table_from_its_schema(conn, db, s3client, bucket, s3env) -> None:
    s3client.put_object(Bucket=bucket, Key="d/s.parquet", Body=_parquet(SAMPLE))
    r = imports.import_from_s3("p", f"s3://{bucket}/d/s.parquet", create_table=True, target=db)
    assert r.created_table == (
        'CREATE TABLE "p" ("id" bigint, "name" text, "ok" boolean, "price" numeric(9,2), '
        '"at" timestamptz, "day" date, "tags" jsonb, "meta" jsonb, "blob" bytea, "kind" text)'
    )
    assert (r.rows, r.options, r.bytes) == (3, "format parquet", len(_parquet(SAMPLE)))
    conn.execute("SET TIME ZONE 'UTC'")
    assert rows(conn, "SELECT * FROM p ORDER BY id NULLS LAST") == [
        (
            1,
            "ann",
            True,
            Decimal("1.50"),
            dt.datetime(2024, 1, 2, 3, 4, 5, 6, tzinfo=dt.UTC),
            dt.date(2024, 2, 29),
            ["a", "b"],
            {"k": 1, "s": 'q"x'},
            b"\x00\xff",
            "x",
        ),
        (2, "", False, Decimal("-2.25"), None, None, [], None, None, "y"),
        (None, None, None, None, None, None, None, {"k": 2, "s": "y\nz"}, b"", "x"),
    ]


def test_parquet_columns_match_by_name_and_row_groups_stream(conn, db, tmp_path: Path) -> None:
    # the table's columns in another order, one more with a default
    conn.execute("CREATE TABLE q (n text, extra int DEFAULT 7, v bigint)")
    big = pa.table({"v": pa.array(range(200_000), pa.int64()), "n": ["x"] * 200_000})
    f = tmp_path / "big.parquet"
    pq.write_table(big, f, row_group_size=30_000)
    assert pq.ParquetFile(f).num_row_groups == 7
    r = imports.import_from_s3("q", str(f), target=db)
    assert r.rows == 200_000
    assert rows(conn, "SELECT count(*), sum(v), min(extra), max(n) FROM q") == [
        (200_000, sum(range(200_000)), 7, "x")
    ]
    # --columns picks file columns; a file column the table lacks is named
    conn.execute("TRUNCATE q")
    imports.import_from_s3("q", str(f), columns="v", target=db)
    assert rows(conn, "SELECT count(*), count(n) FROM q") == [(200_000, 0)]
    pq.write_table(pa.table({"v": [1], "nope": [2]}), tmp_path / "other.parquet")
    with pytest.raises(ColumnNotFound) as e:
        imports.import_from_s3("q", str(tmp_path / "other.parquet"), target=db)
    assert e.value.message.startswith('column "nope" of relation "q" does not exist')
    with pytest.raises(UsageError) as u:
        imports.import_from_s3("q", str(f), columns="v,zz", target=db)
    assert u.value.message == f"{f} has no column zz; its columns are v, n"


def test_parquet_refuses_options_and_garbage(conn, db, tmp_path: Path) -> None:
    f = tmp_path / "x.parquet"
    f.write_bytes(b"id\n1\n")
    with pytest.raises(UsageError) as e:
        imports.import_from_s3("t", str(f), format="parquet", options="(header true)", target=db)
    assert e.value.message == (
        "--options are COPY's options for csv, text and binary; --format parquet takes none; "
        "drop --options"
    )
    from pgferry.errors import UnsupportedFormat

    with pytest.raises(UnsupportedFormat) as g:
        imports.import_from_s3("t", str(f), create_table=True, target=db)
    assert g.value.message.startswith(f"{f} is not a readable Parquet file: ")


JSONL = (
    b'{"id": 1, "name": "ann", "tags": ["a"], "ok": true, "score": 1.5}\n'
    b"\n"
    b'{"id": 2, "name": "b\\"o", "tags": null, "ok": false, "score": 2}\n'
    b'{"id": 3, "name": null, "extra_free": 1}\n'
)


def test_jsonl_create_table_from_a_sample(conn, db, s3client, bucket, s3env) -> None:
    s3client.put_object(Bucket=bucket, Key="j/a.jsonl.gz", Body=gzip.compress(JSONL))
    r = imports.import_from_s3("j", f"s3://{bucket}/j/a.jsonl.gz", create_table=True, target=db)
    assert r.created_table == (
        'CREATE TABLE "j" ("id" bigint, "name" text, "tags" jsonb, "ok" boolean, '
        '"score" double precision, "extra_free" bigint)'
    )
    assert (r.rows, r.compression) == (3, "gzip")
    assert rows(conn, "SELECT * FROM j ORDER BY id") == [
        (1, "ann", ["a"], True, 1.5, None),
        (2, 'b"o', None, False, 2.0, None),
        (3, None, None, None, None, 1),
    ]


def test_jsonl_fields_by_name_into_an_existing_table(conn, db, tmp_path: Path) -> None:
    conn.execute(
        "CREATE TABLE e (seq serial, id int, name text, tags jsonb, ok boolean, score float8, "
        "extra_free int)"
    )
    f = tmp_path / "a.ndjson.zst"
    f.write_bytes(zstandard.ZstdCompressor().compress(JSONL))
    assert imports.import_from_s3("e", str(f), target=db).rows == 3
    assert rows(conn, "SELECT seq, id, name, tags FROM e ORDER BY seq") == [
        (1, 1, "ann", ["a"]),
        (2, 2, 'b"o', None),
        (3, 3, None, None),
    ]
    # a field no column takes stops the load, naming the line
    conn.execute("CREATE TABLE small (id int, name text)")
    g = tmp_path / "b.jsonl"
    g.write_bytes(b'{"id": 1}\n\n{"id": 2, "surprise": 1}\n')
    with pytest.raises(DataError) as e:
        imports.import_from_s3("small", str(g), target=db)
    assert e.value.message == (
        f"{g} line 3 has field 'surprise', which no column of the table takes; add the column, "
        "or pass --columns to choose the fields to load; nothing was loaded"
    )
    # unless --columns chose the fields
    assert imports.import_from_s3("small", str(g), columns="id", target=db).rows == 2
    # a bad value: COPY's row number, turned back into the file's line (blank lines count)
    h = tmp_path / "c.jsonl"
    h.write_bytes(b'{"id": 1}\n\n\n{"id": "x"}\n')
    with pytest.raises(DataError) as d:
        imports.import_from_s3("small", str(h), target=db)
    assert (d.value.line, d.value.column) == (4, "id")
    assert d.value.message.startswith(f'{h} line 4, column id rejected by table "small": ')


def test_jsonl_whole_lines_into_one_jsonb_column(conn, db, tmp_path: Path) -> None:
    conn.execute("CREATE TABLE docs (id serial, doc jsonb, at timestamptz DEFAULT now())")
    f = tmp_path / "events.json"
    f.write_bytes(b'{"a": 1}\n[1, 2]\n"text \\\\ with a backslash"\n')
    assert imports.import_from_s3("docs", str(f), target=db).rows == 3
    assert rows(conn, "SELECT doc FROM docs ORDER BY id") == [
        ({"a": 1},),
        ([1, 2],),
        ("text \\ with a backslash",),
    ]
    # --create-table with one column named: that column, jsonb
    r = imports.import_from_s3("raw", str(f), columns="doc", create_table=True, target=db)
    assert r.created_table == 'CREATE TABLE "raw" ("doc" jsonb)'
    assert rows(conn, "SELECT count(*) FROM raw") == [(3,)]
    # with --options the name does not decide: COPY reads it as text
    conn.execute("CREATE TABLE lines (v text)")
    imports.import_from_s3("lines", str(f), options="(format text)", target=db)
    assert rows(conn, "SELECT v FROM lines ORDER BY v")[0] == ('"text \\ with a backslash"',)


def test_format_flag_sets_copy_format(conn, db, tmp_path: Path) -> None:
    conn.execute("CREATE TABLE c (id int, name text)")
    f = tmp_path / "data.txt"
    f.write_bytes(b"1,ann\n2,bo\n")
    assert imports.import_from_s3("c", str(f), format="csv", target=db).rows == 2
    with pytest.raises(UsageError) as e:
        imports.import_from_s3("c", str(f), format="csv", options="(format text)", target=db)
    assert e.value.message == "--format csv and --options format text disagree; drop one of them"


def test_cli_format_and_many_parquet_objects(conn, db, s3client, bucket, s3env) -> None:
    """A prefix of Parquet parts (Spark-style, with _SUCCESS) loads as one."""
    from tests.test_import_cli import run

    for i in range(3):
        part = pa.table({"id": [i], "name": [f"n{i}"]})
        s3client.put_object(Bucket=bucket, Key=f"out/part-{i}.parquet", Body=_parquet(part))
    s3client.put_object(Bucket=bucket, Key="out/_SUCCESS", Body=b"")
    import os

    p = run(
        "import",
        f"s3://{bucket}/out/",
        "-t",
        "sp",
        "--create-table",
        "--target",
        db,
        "--json",
        env=dict(os.environ),
    )
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert (out["rows"], out["files"]) == (3, 3)
    assert out["created_table"] == 'CREATE TABLE "sp" ("id" bigint, "name" text)'
    assert rows(conn, "SELECT * FROM sp ORDER BY id") == [(0, "n0"), (1, "n1"), (2, "n2")]


def test_dry_run_shows_parquet_and_jsonl_ddl(conn, db, tmp_path: Path) -> None:
    from pgferry.dryrun import dry_run

    f = tmp_path / "s.parquet"
    f.write_bytes(_parquet(SAMPLE.select(["id", "tags"])))
    plan = dry_run(imports.ImportSpec(table="p", source=str(f), create_table=True, target=db))
    assert plan.ddl == 'CREATE TABLE "p" ("id" bigint, "tags" jsonb)'
    assert [(o.format, o.bytes) for o in plan.objects] == [("parquet", f.stat().st_size)]
    g = tmp_path / "a.jsonl"
    g.write_bytes(JSONL)
    plan = dry_run(imports.ImportSpec(table="j", source=str(g), create_table=True, target=db))
    assert plan.ddl is not None and plan.ddl.startswith(
        'CREATE TABLE "j" ("id" bigint, "name" text'
    )
    assert conn.execute("SELECT to_regclass('p'), to_regclass('j')").fetchone() == (None, None)


def test_dry_run_reads_the_start_as_the_load_does(conn, db, tmp_path: Path) -> None:
    """The CREATE TABLE of a dry run is the load's: a UTF-8 BOM is dropped,
    --encoding auto reads UTF-16, and what the load refuses is refused."""
    import zipfile

    from pgferry.dryrun import dry_run
    from pgferry.errors import UnsupportedFormat

    cases = {
        "bom.csv": (b"\xef\xbb\xbfid,name\n1,a\n", None),
        "u16.csv": ("id,name\n1,a\n".encode("utf-16"), "auto"),
    }
    for name, (data, encoding) in cases.items():
        (tmp_path / name).write_bytes(data)
        spec = imports.ImportSpec(
            table="t", source=str(tmp_path / name), create_table=True, target=db, encoding=encoding
        )
        planned = dry_run(spec).ddl
        assert planned == 'CREATE TABLE "t" ("id" bigint, "name" text)', name
        assert imports.run_import(spec).created_table == planned
        conn.execute("DROP TABLE t")
    with zipfile.ZipFile(tmp_path / "z.csv", "w") as z:
        z.writestr("a.csv", "1,a\n")
    spec = imports.ImportSpec(table="t", source=str(tmp_path / "z.csv"), target=db)
    with pytest.raises(UnsupportedFormat) as err:
        dry_run(spec)
    assert str(err.value) == (
        f"{tmp_path}/z.csv is a zip archive, which COPY cannot read; "
        "unzip it and import the file inside"
    )
    assert conn.execute("SELECT to_regclass('t')").fetchone() == (None,)


TEXT = "id,name\n1,café €5\n2,naïve\n"


@pytest.mark.parametrize(
    "kind, data",
    [
        ("utf8", TEXT.encode()),
        ("utf8-bom", b"\xef\xbb\xbf" + TEXT.encode()),
        ("utf16le-bom", TEXT.encode("utf-16")),  # little-endian with a BOM here
        ("utf16be", TEXT.encode("utf-16-be")),
        ("win1252", TEXT.encode("cp1252")),
    ],
)
def test_encoding_auto(conn, db, tmp_path: Path, kind: str, data: bytes) -> None:
    conn.execute("CREATE TABLE enc (id int, name text)")
    f = tmp_path / f"{kind}.csv"
    f.write_bytes(data)
    r = imports.import_from_s3(
        "enc", str(f), options="(format csv, header true)", encoding="auto", target=db
    )
    assert r.rows == 2
    assert conn.execute("SELECT name FROM enc ORDER BY id").fetchall() == [
        ("café €5",),
        ("naïve",),
    ]


def test_encoding_name_and_conflict(conn, db, tmp_path: Path) -> None:
    conn.execute("CREATE TABLE enc (id int, name text)")
    f = tmp_path / "w.csv"
    f.write_bytes(TEXT.encode("cp1252"))
    opts = "(format csv, header true)"
    assert (
        imports.import_from_s3("enc", str(f), options=opts, encoding="WIN1252", target=db).rows == 2
    )
    with pytest.raises(UsageError) as e:
        imports.import_from_s3(
            "enc", str(f), options="(format csv, encoding 'LATIN1')", encoding="auto", target=db
        )
    assert e.value.message == (
        "--encoding auto and --options encoding 'LATIN1' disagree; drop one of them"
    )
