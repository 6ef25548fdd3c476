"""Inputs new users bring (Excel files, archives, pipes, ragged types) and
the import modes: each loads correctly or fails with one line, table unchanged."""

from __future__ import annotations

import gzip
import io
import lzma
import tarfile
import zipfile
from pathlib import Path
from typing import Any

import psycopg
import pytest

from pgferry import errors, imports

BODY = b"id,name\n1,ann\n2,bo\n"


def rows(conn: psycopg.Connection[Any], query: str) -> list[tuple[Any, ...]]:
    return conn.execute(query).fetchall()


def exists(conn: psycopg.Connection[Any], table: str) -> bool:
    return bool(rows(conn, f"SELECT to_regclass('{table}') IS NOT NULL")[0][0])


def columns(conn: psycopg.Connection[Any], table: str) -> list[tuple[str, str]]:
    return rows(
        conn,
        "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
        f"WHERE attrelid = '{table}'::regclass AND attnum > 0 ORDER BY attnum",
    )


@pytest.mark.parametrize("create", [False, True], ids=["existing", "create-table"])
def test_cr_only_line_endings_load(conn, db, tmp_path: Path, create: bool) -> None:
    """Excel for Mac writes classic-Mac CR line ends."""
    if not create:
        conn.execute("CREATE TABLE mac (id int, name text)")
    f = tmp_path / "mac.csv"
    f.write_bytes(BODY.replace(b"\n", b"\r"))
    r = imports.import_from_s3(
        "mac", str(f), options="(format csv, header true)", create_table=create, target=db
    )
    assert r.rows == 2
    if create:
        assert r.created_table == 'CREATE TABLE "mac" ("id" bigint, "name" text)'
    assert rows(conn, "SELECT id, name FROM mac ORDER BY id") == [(1, "ann"), (2, "bo")]


def _zip(data: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("a.csv", data)
    return buf.getvalue()


def _tar_gz(data: bytes) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        info = tarfile.TarInfo("a.csv")
        info.size = len(data)
        t.addfile(info, io.BytesIO(data))
    return gzip.compress(buf.getvalue())


UNREADABLE = {
    "zip": (_zip(BODY), "a zip archive", "unzip it and import the file inside"),
    "xz": (
        lzma.compress(BODY),
        "xz-compressed",
        "decompress it (xz -d) first, or recompress it with gzip, zstd or bzip2, "
        "which pgferry reads",
    ),
    "7z": (b"7z\xbc\xaf\x27\x1c\x00\x04" + BODY, "a 7z archive", "extract it (7z x) and "),
    "lz4": (b"\x04\x22\x4d\x18\x64\x40\xa7" + BODY, "lz4-compressed", "decompress it (lz4 -d)"),
    "parquet": (b"PAR1\x15\x04" + BODY, "a Parquet file", "load it with --format parquet"),
    "utf16": (
        BODY.decode().encode("utf-16"),
        "UTF-16 text",
        "convert it to UTF-8 first (iconv -f UTF-16 -t UTF-8)",
    ),
    "utf16be": (b"\xfe\xff" + BODY.decode().encode("utf-16-be"), "UTF-16 text", "convert it"),
    "tar.gz": (_tar_gz(BODY), "a tar archive", "extract it (tar -xf)"),
}


@pytest.mark.parametrize("create", [False, True], ids=["existing", "create-table"])
@pytest.mark.parametrize("kind", list(UNREADABLE))
def test_unreadable_formats_are_refused(conn, db, tmp_path: Path, kind: str, create) -> None:
    blob, what, todo = UNREADABLE[kind]
    if not create:
        conn.execute("CREATE TABLE u (id int, name text)")
    f = tmp_path / f"data.{kind}"
    f.write_bytes(blob)
    with pytest.raises(errors.UnsupportedFormat) as err:
        imports.import_from_s3(
            "u", str(f), options="(format csv, header true)", create_table=create, target=db
        )
    msg = str(err.value)
    assert msg.startswith(f"{f} is {what}, which COPY cannot read; {todo}")
    assert "\n" not in msg
    assert (err.value.bucket, err.value.key, err.value.exit_code) == (None, str(f), 1)
    assert exists(conn, "u") is not create


def test_utf8_bom_is_removed(conn, db, tmp_path: Path) -> None:
    f = tmp_path / "excel.csv"
    f.write_bytes(b"\xef\xbb\xbf" + BODY)
    r = imports.import_from_s3(
        "bom", str(f), options="(format csv, header true)", create_table=True, target=db
    )
    assert r.created_table == 'CREATE TABLE "bom" ("id" bigint, "name" text)'
    assert r.bytes == len(BODY) + 3
    # header match compares the first line with the column names: the BOM is gone
    imports.import_from_s3("bom", str(f), options="(format csv, header match)", target=db)
    assert rows(conn, "SELECT id, name FROM bom ORDER BY id, name") == [
        (1, "ann"),
        (1, "ann"),
        (2, "bo"),
        (2, "bo"),
    ]


def test_a_bom_in_another_encoding_is_data(conn, db, tmp_path: Path) -> None:
    """In a LATIN1 file the same bytes are the characters ï»¿, kept as they are."""
    conn.execute("CREATE TABLE l1 (v text)")
    f = tmp_path / "l1.txt"
    f.write_bytes(b"\xef\xbb\xbfx\n")
    imports.import_from_s3("l1", str(f), options="(encoding 'LATIN1')", target=db)
    assert rows(conn, "SELECT v FROM l1") == [("ï»¿x",)]


def test_skipped_rows_are_reported(conn, db, tmp_path: Path) -> None:
    if conn.info.server_version < 170000:
        pytest.skip("ON_ERROR arrived in PostgreSQL 17")
    conn.execute("CREATE TABLE s (id int, name text)")
    f = tmp_path / "s.csv"
    f.write_bytes(b"1,a\nx,b\n3,c\ny,d\n")
    r = imports.import_from_s3("s", str(f), options="(format csv, on_error ignore)", target=db)
    assert (r.rows, r.skipped) == (2, 2)
    assert str(r) == f'2 rows imported into relation "s" from file {f} of 16 bytes (2 rows skipped)'
    assert r.to_dict()["skipped"] == 2
    f.write_bytes(b"1,a\nx,b\n")
    r = imports.import_from_s3("s", str(f), options="(format csv, on_error ignore)", target=db)
    assert str(r).endswith("of 8 bytes (1 row skipped)")
    assert rows(conn, "SELECT count(*) FROM s") == [(3,)]


def test_no_skipped_rows_keeps_aws_s3_wording(conn, db, tmp_path: Path) -> None:
    conn.execute("CREATE TABLE s (id int)")
    f = tmp_path / "s.txt"
    f.write_bytes(b"1\n")
    r = imports.import_from_s3("s", str(f), target=db)
    assert (str(r), r.skipped) == (f'1 rows imported into relation "s" from file {f} of 2 bytes', 0)


# --- --create-table: only what it is sure of ---------------------------------


def test_inference_keeps_codes_and_impossible_dates_text(conn, db, tmp_path: Path) -> None:
    f = tmp_path / "codes.csv"
    f.write_bytes(
        b"zip,agent,n,real_day,bad_day,zero_day,at,bad_at,ratio,lead_ratio\n"
        b"02134,007,10,2024-02-29,2024-02-30,0000-00-00,2024-01-01 10:00,2024-01-01 25:00,"
        b"0.5,00.5\n"
        b"10001,42,-3,2023-12-31,2024-01-01,2024-01-01,2024-01-02 00:00:01,2024-01-02 00:00,"
        b"1e3,1.5\n"
    )
    r = imports.import_from_s3(
        "codes", str(f), options="(format csv, header true)", create_table=True, target=db
    )
    assert r.created_table == (
        'CREATE TABLE "codes" ("zip" text, "agent" text, "n" bigint, "real_day" date, '
        '"bad_day" text, "zero_day" text, "at" timestamp, "bad_at" text, "ratio" numeric, '
        '"lead_ratio" text)'
    )
    assert rows(conn, "SELECT zip, agent FROM codes ORDER BY n") == [
        ("10001", "42"),
        ("02134", "007"),
    ]


def _late_misfit(tmp_path: Path, bad_at: int, total: int = 1500) -> Path:
    lines = [b"id,code"] + [b"%d,%d" % (i, i) for i in range(1, total + 1)]
    lines[bad_at] = b"%d,A12" % bad_at
    f = tmp_path / "late.csv"
    f.write_bytes(b"\n".join(lines) + b"\n")
    return f


def test_sample_is_the_first_1000_rows_and_a_misfit_names_the_column(
    conn, db, tmp_path: Path
) -> None:
    opts = "(format csv, header true)"
    f = _late_misfit(tmp_path, 1001)  # row 1001: just past the sample
    with pytest.raises(errors.DataError) as err:
        imports.import_from_s3("late", str(f), options=opts, create_table=True, target=db)
    assert str(err.value) == (
        f'{f} line 1002, column code rejected by table "late": '
        'invalid input syntax for type bigint: "A12"; column code was created as bigint from '
        "the first 1000 rows: pass --column-type code=text (or a larger --sample-rows); "
        "nothing was loaded"
    )
    assert (err.value.table, err.value.line, err.value.column, err.value.sqlstate) == (
        "late",
        1002,
        "code",
        "22P02",
    )
    assert not exists(conn, "late")
    f = _late_misfit(tmp_path, 1000)  # row 1000: the last one sampled
    r = imports.import_from_s3("late", str(f), options=opts, create_table=True, target=db)
    assert r.created_table == 'CREATE TABLE "late" ("id" bigint, "code" text)'
    conn.execute("DROP TABLE late")
    f = _late_misfit(tmp_path, 1400)
    r = imports.import_from_s3(
        "late", str(f), options=opts, create_table=True, sample_rows=2000, target=db
    )
    assert (r.rows, r.created_table) == (1500, 'CREATE TABLE "late" ("id" bigint, "code" text)')
    conn.execute("DROP TABLE late")
    r = imports.import_from_s3(
        "late",
        str(f),
        options=opts,
        create_table=True,
        column_types={"code": "varchar(10)", "id": "integer"},
        target=db,
    )
    assert r.created_table == 'CREATE TABLE "late" ("id" integer, "code" varchar(10))'
    assert columns(conn, "late") == [("id", "integer"), ("code", "character varying(10)")]


@pytest.mark.parametrize(
    ("types", "message"),
    [
        (
            {"code": "text; DROP TABLE x"},
            "invalid type 'text; DROP TABLE x' for column 'code'; write a type name, "
            "e.g. text, numeric(10,2), varchar(20), date",
        ),
        (
            {"code": "int primary key"},
            "invalid type 'int primary key' for column 'code'; write a type name, "
            "e.g. text, numeric(10,2), varchar(20), date",
        ),
        (
            {"nope": "text"},
            "--column-type names nope, not a column of the file; the columns are id, code",
        ),
        (
            {"code": "nosuchtype"},
            'cannot create table "late": type "nosuchtype" does not exist; '
            "fix --column-type to name a type of the target database",
        ),
    ],
)
def test_bad_column_types_are_usage_errors(conn, db, tmp_path: Path, types, message) -> None:
    f = _late_misfit(tmp_path, 5, total=10)
    with pytest.raises(errors.UsageError) as err:
        imports.import_from_s3(
            "late",
            str(f),
            options="(format csv, header true)",
            create_table=True,
            column_types=types,
            target=db,
        )
    assert str(err.value) == message
    assert not exists(conn, "late")


def test_column_type_needs_a_created_table(conn, db, tmp_path: Path) -> None:
    conn.execute("CREATE TABLE late (id int, code text)")
    with pytest.raises(errors.UsageError) as err:
        imports.import_from_s3(
            "late", str(_late_misfit(tmp_path, 5, 10)), column_types={"code": "text"}, target=db
        )
    assert str(err.value) == (
        "--column-type only applies to a table pgferry creates; "
        "add --create-table (or --mode replace), or ALTER the existing table"
    )


@pytest.mark.parametrize(
    ("name", "body", "header", "kind"),
    [
        ("people.csv", b"id,name\n1,ann\n2,bo\n", True, "CSV"),
        ("people.CSV.gz", gzip.compress(b"id,name\n1,ann\n2,bo\n"), True, "CSV"),
        ("people.tsv", b"id\tname\n1\tann\n2\tbo\n", True, "tab-separated CSV"),
        ("people.csv", b"1,ann\n2,bo\n", False, "CSV"),
    ],
)
def test_csv_and_tsv_names_without_options(
    conn, db, tmp_path: Path, caplog, name, body, header, kind
) -> None:
    f = tmp_path / name
    f.write_bytes(body)
    r = imports.import_from_s3("people", str(f), create_table=True, target=db)
    first = ("id", "name") if header else ("column1", "column2")
    assert r.created_table == f'CREATE TABLE "people" ("{first[0]}" bigint, "{first[1]}" text)'
    assert rows(conn, f'SELECT "{first[1]}" FROM people ORDER BY 1') == [("ann",), ("bo",)]
    opts = "(FORMAT csv" + (", DELIMITER '\t'" if "tsv" in name else "")
    opts += ", HEADER true)" if header else ")"
    assert r.options == opts
    line = "with a header line" if header else "without a header line"
    assert (
        f"no --options given: read {f} as {kind} {line} (from its name); pass --options to choose"
    ) in caplog.text


def test_other_names_keep_copy_text_format(conn, db, tmp_path: Path, caplog) -> None:
    conn.execute("CREATE TABLE p (id int, name text)")
    f = tmp_path / "people.txt"
    f.write_bytes(b"1\tann\n")
    assert imports.import_from_s3("p", str(f), target=db).options == ""
    f = tmp_path / "ids.csv"
    f.write_bytes(b"1\n2\n")  # read the same either way: nothing to say
    assert imports.import_from_s3("p", str(f), columns="id", target=db).rows == 2
    assert "no --options given" not in caplog.text
    f.write_bytes(b"id,name\n1,a\nx,b\n")
    with pytest.raises(errors.DataError) as err:
        imports.import_from_s3("p", str(f), target=db)
    assert err.value.line == 3  # read as CSV with a header: line 3 is "x,b"
    assert "no --options given" not in caplog.text  # a failure is its one line


# --- --mode ----------------------------------------------------------------------


def test_modes(conn, db, tmp_path: Path) -> None:
    conn.execute("CREATE TABLE m (id bigint, name text); INSERT INTO m VALUES (9, 'old')")
    f = tmp_path / "m.csv"
    f.write_bytes(BODY)
    opts = "(format csv, header true)"
    imports.import_from_s3("m", str(f), options=opts, mode="append", target=db)
    assert rows(conn, "SELECT count(*) FROM m") == [(3,)]
    imports.import_from_s3("m", str(f), options=opts, mode="truncate", target=db)
    assert rows(conn, "SELECT id FROM m ORDER BY id") == [(1,), (2,)]
    f.write_bytes(b"id,name,extra\n1,ann,x\n")
    r = imports.import_from_s3("m", str(f), options=opts, mode="replace", target=db)
    assert r.created_table == 'CREATE TABLE "m" ("id" bigint, "name" text, "extra" text)'
    assert rows(conn, "SELECT * FROM m") == [(1, "ann", "x")]
    # a failed load leaves the old table and rows: the drop shares its transaction
    f.write_bytes(b"id,name\n1,ann\n2,bo,extra\n")
    for mode in ("truncate", "replace"):
        with pytest.raises(errors.DataError):
            imports.import_from_s3("m", str(f), options=opts, mode=mode, target=db)
        assert rows(conn, "SELECT * FROM m") == [(1, "ann", "x")]


def test_replace_blocked_by_a_view_changes_nothing(conn, db, tmp_path: Path) -> None:
    conn.execute("CREATE TABLE m (id int); INSERT INTO m VALUES (1); CREATE VIEW v AS TABLE m")
    f = tmp_path / "m.csv"
    f.write_bytes(BODY)
    with pytest.raises(errors.TargetError) as err:
        imports.import_from_s3(
            "m", str(f), options="(format csv, header true)", mode="replace", target=db
        )
    assert str(err.value) == (
        'cannot replace table "m" (--mode replace): cannot drop table m because other objects '
        "depend on it; use --mode truncate, or resolve the dependency first; nothing was changed"
    )
    assert (err.value.table, err.value.sqlstate) == ("m", "2BP01")
    assert rows(conn, "SELECT * FROM v") == [(1,)]


def test_unknown_mode(db, tmp_path: Path) -> None:
    with pytest.raises(errors.UsageError) as err:
        imports.import_from_s3("m", str(tmp_path / "x"), mode="upsert", target=db)  # type: ignore[arg-type]
    assert str(err.value) == "unknown mode 'upsert'; use one of append, truncate, replace"


# --- COPY options the server would refuse ---------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            "(format csv, delimiter ',,')",
            "COPY delimiter must be one single-byte character, not ',,'; e.g. delimiter '|'",
        ),
        (
            "(format csv, force_quote *)",
            "force_quote only applies to exports (COPY TO), not to an import; "
            "drop it; to read quoted empty strings as NULL use force_null",
        ),
        (
            "(format csv, reject_limit 5)",
            "reject_limit needs on_error ignore; add on_error ignore to the options",
        ),
        (
            "format csv, header true",
            "COPY options 'format csv, header true' are a list without its parentheses; "
            "write them as '(format csv, header true)'",
        ),
        (
            "(format binary)",
            "{f} is not in PostgreSQL's binary COPY format (format binary); "
            "drop format binary; a CSV file takes (format csv)",
        ),
        (
            "(format csv, delimiter '|', quote '|')",
            "the server refused the COPY options: COPY delimiter and quote must be different; "
            "fix --options (the server's COPY documentation lists what its version takes)",
        ),
    ],
)
@pytest.mark.parametrize("create", [False, True], ids=["existing", "create-table"])
def test_refused_options_are_usage_errors(conn, db, tmp_path: Path, options, message, create):
    if not create:
        conn.execute("CREATE TABLE o (id int, name text)")
    f = tmp_path / "o.csv"
    f.write_bytes(BODY)
    with pytest.raises(errors.UsageError) as err:
        imports.import_from_s3("o", str(f), options=options, create_table=create, target=db)
    assert str(err.value) == message.format(f=f)
    assert err.value.exit_code == 2
    assert exists(conn, "o") is not create


def test_server_refusal_names_the_option(conn, db, tmp_path: Path) -> None:
    if conn.info.server_version >= 170000:
        pytest.skip("PostgreSQL 17+ knows on_error")
    conn.execute("CREATE TABLE o (id int)")
    f = tmp_path / "o.csv"
    f.write_bytes(b"1\n")
    with pytest.raises(errors.CopyOptionsError) as err:
        imports.import_from_s3("o", str(f), options="(format csv, on_error ignore)", target=db)
    assert str(err.value) == (
        'the server refused the COPY options: option "on_error" not recognized; '
        "fix --options (the server's COPY documentation lists what its version takes)"
    )
    assert (err.value.sqlstate, err.value.table) == ("42601", "o")


def test_inference_reads_fields_longer_than_the_csv_module_default(conn, db, tmp_path) -> None:
    f = tmp_path / "wide.csv"
    f.write_bytes(b"id,doc\n1," + b"x" * 200_000 + b"\n")
    r = imports.import_from_s3(
        "wide", str(f), options="(format csv, header true)", create_table=True, target=db
    )
    assert r.created_table == 'CREATE TABLE "wide" ("id" bigint, "doc" text)'
    assert rows(conn, "SELECT length(doc) FROM wide") == [(200_000,)]


def test_csv_name_into_an_existing_table_never_drops_a_data_row(
    conn, db, tmp_path: Path, caplog
) -> None:
    """For an existing table the first line is a header only when it names
    the table's columns: a line of plain words is data."""
    conn.execute("CREATE TABLE people (name text, city text)")
    f = tmp_path / "people.csv"
    f.write_bytes(b"ann,paris\nbo,lyon\n")
    r = imports.import_from_s3("people", str(f), target=db)
    assert (r.rows, r.options) == (2, "(FORMAT csv)")
    assert f"read {f} as CSV without a header line" in caplog.text
    f.write_bytes(b"Name, City\nann,paris\n")
    r = imports.import_from_s3("people", str(f), target=db)
    assert (r.rows, r.options) == (1, "(FORMAT csv, HEADER true)")
    f.write_bytes(b"city\nrome\n")
    assert imports.import_from_s3("people", str(f), columns="city", target=db).rows == 1
    assert rows(conn, "SELECT name, city FROM people ORDER BY city") == [
        ("bo", "lyon"),
        ("ann", "paris"),
        ("ann", "paris"),
        (None, "rome"),
    ]
