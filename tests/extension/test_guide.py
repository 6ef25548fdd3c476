"""The AWS guide's psql sessions, as written (bucket names lower-cased: S3
and SeaweedFS refuse 'sampleBucket' for new buckets), on both versions."""

from __future__ import annotations

import gzip
from typing import Any

from tests.extension.conftest import ExtServer

PIPE_ROWS = "".join(f"{i}|foo{i}|bar{i}|elephant{i}\n" for i in range(1, 5))


def test_install_reports_what_it_did(ext: ExtServer) -> None:
    out = ext.install_output
    assert "wrote " in out and "aws_s3--1.0.sql" in out and "aws_commons.control" in out
    assert "-I -m pgferry.extension.fetcher" in out
    assert "checked: the server ran the fetcher as its OS user" in out


def test_create_extension_cascade(ext: ExtServer, bare_db: str) -> None:
    proc = ext.psql("CREATE EXTENSION aws_s3 CASCADE;\n\\dx\n", bare_db)
    # nothing else: the private foreign-data wrapper needs no file_fdw extension
    assert proc.stderr.strip() == 'NOTICE:  installing required extension "aws_commons"'
    names = [line.split("|")[0].strip() for line in proc.stdout.splitlines() if "|" in line]
    assert "aws_s3" in names and "aws_commons" in names


def test_guide_t1_with_s3_uri(ext: ExtServer, edb: str, s3client: Any, guide_buckets: Any) -> None:
    s3client.put_object(Bucket="sample-s3-bucket", Key="sample.csv", Body=b"a,b,c\nd,e,f\n")
    proc = ext.psql(
        """
CREATE TABLE t1 (col1 varchar(80), col2 varchar(80), col3 varchar(80));
SELECT aws_commons.create_s3_uri(
   'sample-s3-bucket',
   'sample.csv',
   'us-east-1'
) AS s3_uri \\gset
SELECT aws_s3.table_import_from_s3(
   't1',
   '',
   '(format csv)',
   :'s3_uri'
);
SELECT * FROM t1 ORDER BY col1;
""",
        edb,
    )
    assert '2 rows imported into relation "t1" from file sample.csv of 12 bytes' in proc.stdout
    assert " a    | b    | c" in proc.stdout and " d    | e    | f" in proc.stdout


def test_guide_custom_delimiter(
    ext: ExtServer, edb: str, s3client: Any, guide_buckets: Any
) -> None:
    s3client.put_object(
        Bucket="samplebucket", Key="pipeDelimitedSampleFile", Body=PIPE_ROWS.encode()
    )
    proc = ext.psql(
        """
CREATE TABLE test (a text, b text, c text, d text, e text);
SELECT aws_s3.table_import_from_s3(
   'test',
   'a,b,d,e',
   'DELIMITER ''|''',
   aws_commons.create_s3_uri('samplebucket', 'pipeDelimitedSampleFile', 'us-east-2')
);
SELECT * FROM test ORDER BY a;
""",
        edb,
    )
    size = len(PIPE_ROWS)
    assert (
        f'4 rows imported into relation "test" from file pipeDelimitedSampleFile of {size} bytes'
        in proc.stdout
    )
    assert " 1 | foo1 |   | bar1 | elephant1" in proc.stdout
    assert " 4 | foo4 |   | bar4 | elephant4" in proc.stdout


def test_guide_gzip(ext: ExtServer, edb: str, s3client: Any, guide_buckets: Any) -> None:
    body = gzip.compress(b"1,a,b,c,d\n2,e,f,g,h\n")
    s3client.put_object(Bucket="mys3bucket", Key="test-data.gz", Body=body, ContentEncoding="gzip")
    proc = ext.psql(
        """
CREATE TABLE test_gzip(id int, a text, b text, c text, d text);
SELECT aws_s3.table_import_from_s3(
 'test_gzip', '', '(format csv)',
 'mys3bucket', 'test-data.gz', 'us-east-2'
);
SELECT id, d FROM test_gzip ORDER BY id;
""",
        edb,
    )
    assert (
        f'2 rows imported into relation "test_gzip" from file test-data.gz of {len(body)} bytes'
        in proc.stdout
    )
    assert "  1 | d\n" in proc.stdout and "  2 | h\n" in proc.stdout


def test_guide_win1252(ext: ExtServer, edb: str, s3client: Any, guide_buckets: Any) -> None:
    body = "caf\u00e9\t\u20ac5\n".encode("cp1252")
    s3client.put_object(Bucket="samplebucket", Key="SampleFile", Body=body)
    proc = ext.psql(
        """
CREATE TABLE test_table (name text, price text);
SELECT aws_s3.table_import_from_s3(
 'test_table', '', 'encoding ''WIN1252''',
 aws_commons.create_s3_uri('samplebucket', 'SampleFile', 'us-east-2')
);
SELECT name, price FROM test_table;
""",
        edb,
    )
    assert (
        f'1 rows imported into relation "test_table" from file SampleFile of {len(body)} bytes'
        in proc.stdout
    )
    assert "caf\u00e9 | \u20ac5" in proc.stdout


def test_guide_credentials(ext: ExtServer, edb: str, s3client: Any, guide_buckets: Any) -> None:
    from tests.services import ACCESS_KEY, SECRET_KEY

    s3client.put_object(Bucket="sample-s3-bucket", Key="sample.csv", Body=b"a,b,c\n")
    proc = ext.psql(
        f"""
CREATE TABLE t (col1 text, col2 text, col3 text);
SELECT aws_commons.create_s3_uri('sample-s3-bucket', 'sample.csv', 'us-east-1') AS s3_uri \\gset
SELECT aws_commons.create_aws_credentials(
   '{ACCESS_KEY}', '{SECRET_KEY}', '')
AS creds \\gset
SELECT aws_s3.table_import_from_s3(
   't', '', '(format csv)',
   :'s3_uri',
   :'creds'
);
SELECT aws_s3.table_import_from_s3(
   't', '', '(format csv)',
   :'s3_uri',
   aws_commons.create_aws_credentials('{ACCESS_KEY}', '{SECRET_KEY}', '')
);
SELECT aws_s3.table_import_from_s3(
   't', '', '(format csv)', 'sample-s3-bucket', 'sample.csv', 'us-east-1',
   '{ACCESS_KEY}', '{SECRET_KEY}', NULL
);
SELECT count(*) AS n FROM t;
""",
        edb,
    )
    assert (
        proc.stdout.count('1 rows imported into relation "t" from file sample.csv of 6 bytes') == 3
    )
    assert " n \n---\n 3\n" in proc.stdout
    # wrong keys: S3's refusal, as the client import words it
    bad = ext.psql(
        f"""SELECT aws_s3.table_import_from_s3('t', '', '(format csv)',
   aws_commons.create_s3_uri('sample-s3-bucket', 'sample.csv', 'us-east-1'),
   aws_commons.create_aws_credentials('{ACCESS_KEY}', 'wrong-secret', ''));""",
        edb,
        check=False,
    )
    assert (
        "ERROR:  S3 rejected the credentials for s3://sample-s3-bucket/sample.csv "
        "(SignatureDoesNotMatch); check the access key, secret key and session token "
        "(or the profile)" in bad.stderr
    )
