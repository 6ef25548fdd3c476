"""aws_s3.query_export_to_s3: the RDS export examples, and parts."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.extension.conftest import APP, ExtServer

SAMPLE = """
CREATE TABLE sample_table (id int, name text, note text);
INSERT INTO sample_table VALUES (1, 'a', 'x'), (2, 'b', NULL), (3, 'c', 'with, comma');
GRANT SELECT ON sample_table TO app;
"""


def body(s3client: Any, bucket: str, key: str) -> bytes:
    return bytes(s3client.get_object(Bucket=bucket, Key=key)["Body"].read())


def test_rds_export_examples(ext: ExtServer, edb: str, s3client: Any, bucket: str) -> None:
    ext.psql(SAMPLE, edb)
    proc = ext.psql(
        f"""
SELECT aws_commons.create_s3_uri('{bucket}', 'sample-filepath', 'us-west-2') AS s3_uri_1 \\gset
SELECT * FROM aws_s3.query_export_to_s3('select * from sample_table', :'s3_uri_1');
SELECT * FROM aws_s3.query_export_to_s3('select * from sample_table', :'s3_uri_1',
   options :='format csv, HEADER true');
SELECT * FROM aws_s3.query_export_to_s3('select * from sample_table order by id',
   '{bucket}', 'colon', 'us-west-2', options :='format csv, delimiter $$:$$');
SELECT * FROM aws_s3.query_export_to_s3('select 1, 2', '{bucket}', 'dup');
""",
        edb,
        user=APP,
    )
    tables = proc.stdout.split(" rows_uploaded | files_uploaded | bytes_uploaded")
    assert len(tables) == 5
    header = "id,name,note\n"
    text = "1\ta\tx\n2\tb\t\\N\n3\tc\twith, comma\n"
    csv = header + '1,a,x\n2,b,\n3,c,"with, comma"\n'
    assert f"             3 |              1 |             {len(text)}\n" in tables[1]
    assert f"             3 |              1 |             {len(csv)}\n" in tables[2]
    assert body(s3client, bucket, "sample-filepath").decode() == csv
    assert body(s3client, bucket, "colon").decode() == "1:a:x\n2:b:\n3:c:with, comma\n"
    assert body(s3client, bucket, "dup") == b"1\t2\n"


@pytest.fixture()
def tiny_parts(ext: ExtServer) -> Iterator[None]:
    """The administrator's part size, set in the configuration files."""
    ext.admin_setting("aws_s3.export_part_size = '10kB'")
    yield
    ext.admin_setting("")


def test_parts_end_at_rows_and_reload(
    ext: ExtServer, edb: str, s3client: Any, bucket: str, tiny_parts: None
) -> None:
    # quoted CSV fields with newlines: a part may only end outside quotes
    ext.psql(
        """CREATE TABLE src AS SELECT i AS id, 'line one' || chr(10) || 'line "two", ' || i AS t
               FROM generate_series(1, 2000) i;
           GRANT SELECT ON src TO app;
           CREATE TABLE back (id int, t text); GRANT INSERT, SELECT ON back TO app;""",
        edb,
    )
    proc = ext.psql(
        "SET aws_s3.export_part_size = '100MB';\n"  # a caller's SET does not count
        f"SELECT * FROM aws_s3.query_export_to_s3('select * from src order by id', "
        f"'{bucket}', 'out/src.csv', NULL, 'format csv');",
        edb,
        user=APP,
    )
    row = proc.stdout.splitlines()[3]
    rows, files, size = (int(x) for x in row.split("|"))
    assert rows == 2000 and files > 5
    keys = ["out/src.csv"] + [f"out/src.csv_part{n}" for n in range(2, files + 1)]
    listed = {o["Key"] for o in s3client.list_objects_v2(Bucket=bucket)["Contents"]}
    assert listed == set(keys)
    parts = [body(s3client, bucket, k) for k in keys]
    assert sum(map(len, parts)) == size
    assert all(10 * 1024 <= len(p) < 11 * 1024 for p in parts[:-1])
    expected = ext.psql("COPY (SELECT * FROM src ORDER BY id) TO STDOUT (FORMAT csv)", edb)
    assert b"".join(parts).decode() == expected.stdout
    # every part loads on its own
    script = "".join(
        f"SELECT aws_s3.table_import_from_s3('back', '', '(format csv)', '{bucket}', '{k}', '');\n"
        for k in keys
    )
    ext.psql(script, edb, user=APP)
    assert ext.execute("SELECT count(*), sum(id) FROM back", edb) == [(2000, 2001000)]


def test_export_counts_are_bigint(ext: ExtServer, edb: str) -> None:
    rows = ext.execute(
        """SELECT t.typname FROM pg_proc p, unnest(p.proallargtypes, p.proargmodes) AS a(t0, m)
           JOIN pg_type t ON t.oid = a.t0
           WHERE p.proname = 'query_export_to_s3' AND a.m = 't'""",
        edb,
    )
    assert rows and {r[0] for r in rows} == {"int8"}


def test_export_error_is_clear(ext: ExtServer, edb: str) -> None:
    ext.psql(SAMPLE, edb)
    proc = ext.psql(
        "SELECT * FROM aws_s3.query_export_to_s3('select * from sample_table', "
        "'no-such-bucket-here', 'k');",
        edb,
        user=APP,
        check=False,
    )
    assert "ERROR:  " in proc.stderr
    line = next(ln for ln in proc.stderr.splitlines() if ln.startswith("ERROR:"))
    assert line == (
        "ERROR:  bucket 'no-such-bucket-here' does not exist (s3://no-such-bucket-here/k); "
        "check the bucket name and the endpoint/region"
    )
