"""The extension reads objects through the client import's own fetch and
decode path: what `pgferry import` refuses (archives, xz) it refuses with
the same one-line error, and a UTF-8 byte-order mark is dropped as there."""

from __future__ import annotations

import io
import lzma
import zipfile
from typing import Any

import psycopg
import pytest

from tests.extension.conftest import APP, ExtServer


def _zip(data: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("rows.csv", data)
    return buf.getvalue()


def errors_of(proc: Any) -> list[str]:
    return [ln for ln in proc.stderr.splitlines() if ln.startswith("ERROR:")]


def test_archive_and_xz_refused_with_the_client_error(
    ext: ExtServer, edb: str, s3client: Any, bucket: str
) -> None:
    rows = b"1,a\n2,b\n"
    s3client.put_object(Bucket=bucket, Key="rows.zip", Body=_zip(rows))
    s3client.put_object(Bucket=bucket, Key="rows.csv.xz", Body=lzma.compress(rows))
    ext.psql(f"CREATE TABLE t (id int, v text); GRANT INSERT, SELECT ON t TO {APP};", edb)
    expected = {
        "rows.zip": f"s3://{bucket}/rows.zip is a zip archive, which COPY cannot read; "
        "unzip it and import the file inside",
        "rows.csv.xz": f"s3://{bucket}/rows.csv.xz is xz-compressed, which COPY cannot read; "
        "decompress it (xz -d) first, or recompress it with gzip, zstd or bzip2, "
        "which pgferry reads",
    }
    for key, message in expected.items():
        proc = ext.psql(
            f"SELECT aws_s3.table_import_from_s3('t', '', '(format csv)', '{bucket}', '{key}', '')",
            edb,
            user=APP,
            check=False,
        )
        assert proc.returncode == 3, proc.stderr
        assert errors_of(proc) == [f"ERROR:  {message}"]
    # the same SQLSTATE as any undecodable input (bad_copy_file_format)
    with (
        psycopg.connect(ext.conninfo(edb, user=APP), autocommit=True) as conn,
        pytest.raises(psycopg.errors.BadCopyFileFormat) as err,
    ):
        conn.execute(
            "SELECT aws_s3.table_import_from_s3('t', '', '(format csv)', %s, 'rows.zip', '')",
            [bucket],
        )
    assert err.value.diag.message_primary == expected["rows.zip"]
    assert ext.execute("SELECT count(*) FROM t", edb) == [(0,)]


def test_utf8_bom_dropped(ext: ExtServer, edb: str, s3client: Any, bucket: str) -> None:
    # Excel's "CSV UTF-8": kept, the BOM would fail `header match` (its
    # first name would not be "name") and, without a header, end up in the
    # first value
    s3client.put_object(Bucket=bucket, Key="bom.csv", Body=b"\xef\xbb\xbfname,n\nalpha,1\nbeta,2\n")
    s3client.put_object(Bucket=bucket, Key="bom-noheader.csv", Body=b"\xef\xbb\xbfgamma,3\n")
    ext.psql(f"CREATE TABLE b (name text, n int); GRANT INSERT, SELECT ON b TO {APP};", edb)
    cases = (("bom.csv", "(format csv, header match)"), ("bom-noheader.csv", "(format csv)"))
    for key, opts in cases:
        ext.psql(
            f"SELECT aws_s3.table_import_from_s3('b', '', '{opts}', '{bucket}', '{key}', '');",
            edb,
            user=APP,
        )
    rows = ext.execute("SELECT name, n, octet_length(name) FROM b ORDER BY n", edb)
    assert rows == [("alpha", 1, 5), ("beta", 2, 4), ("gamma", 3, 5)]


def test_bom_kept_for_a_non_utf8_encoding(
    ext: ExtServer, edb: str, s3client: Any, bucket: str
) -> None:
    # the same bytes in a LATIN1 file are three characters of text, as the
    # client import keeps them
    s3client.put_object(Bucket=bucket, Key="latin1.csv", Body=b"\xef\xbb\xbfx,1\n")
    ext.psql(f"CREATE TABLE l (name text, n int); GRANT INSERT, SELECT ON l TO {APP};", edb)
    ext.psql(
        "SELECT aws_s3.table_import_from_s3('l', '', '(format csv, encoding ''LATIN1'')', "
        f"'{bucket}', 'latin1.csv', '');",
        edb,
        user=APP,
    )
    assert ext.execute("SELECT name FROM l", edb) == [("\u00ef\u00bb\u00bfx",)]
