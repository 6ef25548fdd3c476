"""clone and verify from a real MariaDB server into PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import pytest
from click.testing import Result

from tests.migrate.conftest import rows

MATRIX = """
CREATE TABLE matrix (
  id int AUTO_INCREMENT PRIMARY KEY,
  ti tinyint, tiu tinyint unsigned, b tinyint(1), si smallint, siu smallint unsigned,
  mi mediumint, miu mediumint unsigned, i int, iu int(3) unsigned, bi bigint,
  biu bigint(20) unsigned, bit1 bit(1), bit9 bit(9), dec_ decimal(20,4), f float, dbl double,
  d date, dtm datetime(6), ts timestamp(3) NULL, tm time, tm2 time, y year,
  e enum('a','b c','it''s'), st set('x','y','z'), j json, bl blob, vb varbinary(10),
  c char(5), vc varchar(20), tx text, latin varchar(10) CHARACTER SET latin1, emoji varchar(10)
) COMMENT 'all the types'
"""

MIN_ROW = (
    1, -128, 0, 0, -32768, 0, -8388608, 0, -2147483648, 0, -9223372036854775808,
    0, b"\x00", b"\x00\x00", "-9999999999999999.9999", -3.40282e38, -1.7976931348623157e308,
    "1000-01-01", "1000-01-01 00:00:00.000000", "1970-01-01 00:00:01.000",
    "-838:59:59", "00:00:00", 1901, "a", "", '{"b": [1, 2.5], "a": null}', b"",
    b"\x00", "", "", "", "", "",
)  # fmt: skip
MAX_ROW = (
    2, 127, 255, 1, 32767, 65535, 8388607, 16777215, 2147483647, 4294967295,
    9223372036854775807, 18446744073709551615, b"\x01", b"\x01\xff", "9999999999999999.9999",
    3.40282e38, 1.7976931348623157e308, "9999-12-31", "9999-12-31 23:59:59.999999",
    "2038-01-19 03:14:07.999", "838:59:59", "23:59:59", 2155, "it's", "x,z",
    '{"k": "\\u00e9\\ud83d\\ude00"}', bytes(range(256)), b"\xff" * 10, "abcde",
    "tab\there\nnew\\line", "x" * 1000, "caf\u00e9 \u00fc", "\U0001f600\u4e2d",
)  # fmt: skip


_COLUMNS = [
    "id", "ti", "tiu", "b", "si", "siu", "mi", "miu", "i", "iu", "bi", "biu", "bit1", "bit9",
    "dec_", "f", "dbl", "d", "dtm", "ts", "tm", "tm2", "y", "e", "st", "j", "bl", "vb", "c", "vc",
    "tx", "latin", "emoji",
]  # fmt: skip


def _insert(run: Callable[..., Any], table: str, row: tuple[Any, ...]) -> None:
    marks = ", ".join(["%s"] * len(row))
    run(f"INSERT INTO {table} VALUES ({marks})", *row)


def test_type_matrix_value_by_value(
    mysql_db: tuple[str, Callable[..., Any]], target_db: str, run_cli: Callable[..., Result]
) -> None:
    url, run = mysql_db
    run(MATRIX)
    _insert(run, "matrix", MIN_ROW)
    _insert(run, "matrix", MAX_ROW)
    run("INSERT INTO matrix (id) VALUES (3)")
    r = run_cli("clone", "--source", url, "--target", target_db, "--quiet")
    assert r.exit_code == 0, r.output
    assert "3 rows loaded, 0 rejected" in r.output
    got = rows(target_db, "SELECT * FROM matrix ORDER BY id")
    assert got[0] == (
        1, -128, 0, False, -32768, 0, -8388608, 0, -2147483648, 0, -9223372036854775808,
        Decimal(0), False, "000000000", Decimal("-9999999999999999.9999"), -3.40282e38,
        -1.7976931348623157e308, date(1000, 1, 1), datetime(1000, 1, 1),
        datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC), timedelta(hours=-838, minutes=-59, seconds=-59),
        time(0), 1901, "a", [], {"a": None, "b": [1, 2.5]}, b"", b"\x00", "     ", "", "", "", "",
    )  # fmt: skip
    assert got[1] == (
        2, 127, 255, True, 32767, 65535, 8388607, 16777215, 2147483647, 4294967295,
        9223372036854775807, Decimal(18446744073709551615), True, "111111111",
        Decimal("9999999999999999.9999"), pytest.approx(3.40282e38, rel=1e-6),
        1.7976931348623157e308, date(9999, 12, 31), datetime(9999, 12, 31, 23, 59, 59, 999999),
        datetime(2038, 1, 19, 3, 14, 7, 999000, tzinfo=UTC),
        timedelta(hours=838, minutes=59, seconds=59), time(23, 59, 59), 2155, "it's", ["x", "z"],
        {"k": "\u00e9\U0001f600"}, bytes(range(256)), b"\xff" * 10, "abcde",
        "tab\there\nnew\\line", "x" * 1000, "caf\u00e9 \u00fc", "\U0001f600\u4e2d",
    )  # fmt: skip
    assert got[2] == (3, *([None] * 32))
    types = dict(
        rows(
            target_db,
            "SELECT column_name, format_type(atttypid, atttypmod) FROM information_schema.columns"
            " JOIN pg_attribute ON attrelid = 'matrix'::regclass AND attname = column_name"
            " WHERE table_name = 'matrix'",
        )
    )
    assert types["biu"] == "numeric(20,0)" and types["iu"] == "bigint" and types["b"] == "boolean"
    assert types["tm"] == "interval" and types["tm2"] == "time(0) without time zone"
    assert types["st"] == "text[]" and types["j"] == "jsonb" and types["bl"] == "bytea"
    assert types["ts"] == "timestamp(3) with time zone" and types["bit9"] == "bit(9)"
    # AUTO_INCREMENT: identity restarted after the largest id
    assert rows(target_db, "INSERT INTO matrix (e) VALUES ('a') RETURNING id") == [(4,)]
    assert rows(target_db, "SELECT obj_description('matrix'::regclass)") == [("all the types",)]


def test_enum_check_defaults_indexes_foreign_keys(
    mysql_db: tuple[str, Callable[..., Any]], target_db: str, run_cli: Callable[..., Result]
) -> None:
    url, run = mysql_db
    run("CREATE TABLE Parent (ID int PRIMARY KEY, Code varchar(10) NOT NULL UNIQUE)")
    run(
        "CREATE TABLE child (id bigint unsigned AUTO_INCREMENT PRIMARY KEY,"
        " parent_id int NOT NULL, qty int NOT NULL DEFAULT 7 CHECK (qty >= 0),"
        " label varchar(20) DEFAULT 'it''s', made datetime DEFAULT CURRENT_TIMESTAMP,"
        " flag tinyint(1) NOT NULL DEFAULT 1 COMMENT 'the flag', note text,"
        " KEY by_label (label), KEY by_note (note(10)),"
        " CONSTRAINT fk_parent FOREIGN KEY (parent_id) REFERENCES Parent (ID) ON DELETE CASCADE)"
    )
    run("INSERT INTO Parent VALUES (1, 'one'), (2, 'two')")
    run("CREATE VIEW v AS SELECT ID FROM Parent")
    run("INSERT INTO child (parent_id, qty) VALUES (1, 1), (2, 2), (2, 3)")
    r = run_cli("clone", "--source", url, "--target", target_db, "--quiet", "--schema", "app")
    assert r.exit_code == 0, r.output
    assert "prefix index by_note (note(10)) indexes the whole column" in r.output
    assert rows(target_db, "SELECT * FROM app.v ORDER BY 1") == [(1,), (2,)]  # translated
    assert rows(target_db, "SELECT id, code FROM app.parent ORDER BY id") == [
        (1, "one"),
        (2, "two"),
    ]
    new = rows(
        target_db,
        "INSERT INTO app.child (parent_id) VALUES (1)"
        " RETURNING id, qty, label, flag, made IS NOT NULL",
    )
    assert new == [(4, 7, "it's", True, True)]
    defs = dict(
        rows(
            target_db,
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint"
            " WHERE connamespace = 'app'::regnamespace",
        )
    )
    assert defs["child_fk_parent"] == (
        # MariaDB's default ON UPDATE is RESTRICT, carried as such
        "FOREIGN KEY (parent_id) REFERENCES app.parent(id) ON UPDATE RESTRICT ON DELETE CASCADE"
    )
    assert any("qty >= 0" in d for d in defs.values())
    idx = {
        r[0] for r in rows(target_db, "SELECT indexname FROM pg_indexes WHERE schemaname = 'app'")
    }
    assert {"child_by_label", "child_by_note", "parent_code"} <= idx
    assert rows(target_db, "SELECT col_description('app.child'::regclass, 6)") == [("the flag",)]


def _lax(run: Callable[..., Any]) -> None:
    # MariaDB's non-strict mode stores zero dates and '' for a bad enum value
    run("SET SESSION sql_mode = ''")


def test_server_formatted_rows_match_the_converters(
    mysql_db: tuple[str, Callable[..., Any]], target_db: str, run_cli: Callable[..., Result]
) -> None:
    # without bit and set columns every column has server SQL: the server
    # writes the COPY lines; loading the same rows as `matrix` (converted by
    # pgferry) must give the same values
    url, run = mysql_db
    drop = ("bit1", "bit9", "st")
    keep = [i for i, c in enumerate(_COLUMNS) if c not in drop]
    ddl = MATRIX.replace("bit1 bit(1), bit9 bit(9), ", "").replace(" st set('x','y','z'),", "")
    run(ddl)
    run(ddl.replace("TABLE matrix", "TABLE fast"))
    run("ALTER TABLE matrix ADD COLUMN st set('x') FIRST")  # forces the converters
    for row in (MIN_ROW, MAX_ROW):
        picked = tuple(row[i] for i in keep)
        _insert(run, "fast", picked)
        _insert(run, "matrix", (None, *picked))
    r = run_cli("clone", "--source", url, "--target", target_db, "-q")
    assert r.exit_code == 0, r.output
    fast = rows(target_db, "SELECT * FROM fast ORDER BY id")
    slow = rows(target_db, "SELECT * FROM matrix ORDER BY id")
    assert [s[1:] for s in slow] == fast
    v = run_cli("verify", "--source", url, "--target", target_db)
    assert v.exit_code == 0, v.output


def test_bad_rows_are_isolated_and_recorded(
    mysql_db: tuple[str, Callable[..., Any]], target_db: str, run_cli: Callable[..., Result]
) -> None:
    url, run = mysql_db
    _lax(run)
    run(
        "CREATE TABLE t (id int PRIMARY KEY, born date NOT NULL, seen date NULL,"
        " ok tinyint(1), kind enum('a','b'), body text, doc json)"
    )
    for i in range(1, 51):
        run("INSERT INTO t VALUES (%s, '2020-01-02', '2020-01-03', 1, 'a', 'x', '{}')", i)
    run("UPDATE t SET born = '0000-00-00' WHERE id = 5")  # NOT NULL: rejected
    run("UPDATE t SET seen = '0000-00-00' WHERE id = 6")  # nullable: NULL
    run("UPDATE t SET ok = 2 WHERE id = 7")
    run("UPDATE t SET kind = 'zzz' WHERE id = 37")  # stored as '': the target's CHECK refuses
    run("UPDATE t SET body = CONCAT('a', CHAR(0), 'b') WHERE id = 8")
    run("""UPDATE t SET doc = '{"k": "\\\\u0000"}' WHERE id = 44""")  # jsonb refuses \\u0000
    r = run_cli("clone", "--source", url, "--target", target_db, "--quiet")
    assert r.exit_code == 1, r.output
    assert "public.t" in r.stdout and "45 rows loaded, 5 rejected" in r.stdout
    assert r.stderr.strip().startswith("error: 5 row(s) rejected, recorded in pgferry.rejects")
    assert rows(target_db, "SELECT count(*), count(seen) FROM t") == [(45, 44)]
    assert rows(target_db, "SELECT seen FROM t WHERE id = 6") == [(None,)]
    got = rows(
        target_db,
        "SELECT key->>'id', column_name, value, split_part(error, ':', 1)"
        " FROM pgferry.rejects WHERE table_name = 't' ORDER BY (key->>'id')::int",
    )
    assert got == [
        ("5", "born", "0000-00-00", "zero date in a NOT NULL column"),
        ("7", "ok", "2", "2 is not 0 or 1, so not a boolean (--cast 'column"),
        ("8", "body", "a\\0b", "text contains a NUL byte, which PostgreSQL text cannot hold"
         " (--nul strip removes them)"),
        ("37", None, None, "23514"),
        ("44", None, None, "22P05"),
    ]  # fmt: skip


def test_max_rejects_cast_and_nul_strip(
    mysql_db: tuple[str, Callable[..., Any]], target_db: str, run_cli: Callable[..., Result]
) -> None:
    url, run = mysql_db
    _lax(run)
    run("CREATE TABLE t (id int PRIMARY KEY, ok tinyint(1), body text, born date NOT NULL)")
    run(
        "INSERT INTO t VALUES (1, 2, CONCAT('a', CHAR(0)), '0000-00-00'), (2, 1, 'b', '2001-02-03')"
    )
    args = ["clone", "--source", url, "--target", target_db, "--quiet"]
    r = run_cli(*args, "--cast", "type:tinyint(1)=smallint", "--nul", "strip", "--max-rejects", "1")
    assert r.exit_code == 0, r.output
    assert rows(target_db, "SELECT id, ok, body FROM t") == [(2, 1, "b")]
    assert rows(target_db, "SELECT count(*) FROM pgferry.rejects") == [(1,)]


def test_verify_names_the_changed_column(
    mysql_db: tuple[str, Callable[..., Any]], target_db: str, run_cli: Callable[..., Result]
) -> None:
    url, run = mysql_db
    run(MATRIX)
    _insert(run, "matrix", MIN_ROW)
    _insert(run, "matrix", MAX_ROW)
    run("INSERT INTO matrix (id) VALUES (3)")
    assert run_cli("clone", "--source", url, "--target", target_db, "-q").exit_code == 0
    ok = run_cli("verify", "--source", url, "--target", target_db)
    assert ok.exit_code == 0, ok.output
    assert ok.stdout.strip() == "ok: 34 objects identical"
    rows(target_db, "UPDATE matrix SET dbl = dbl / 2 WHERE id = 2")
    bad = run_cli("verify", "--source", url, "--target", target_db, "--json")
    assert bad.exit_code == 1
    diffs = [c["name"] for c in json.loads(bad.stdout)["checks"] if c["status"] != "ok"]
    assert diffs == ["public.matrix.dbl"]
    rows(target_db, "DELETE FROM matrix WHERE id = 3")
    bad = run_cli("verify", "--source", url, "--target", target_db)
    assert "table public.matrix" in bad.stdout and "row count differs" in bad.stdout


def test_preflight_errors(
    mariadb: Any, mysql_db: tuple[str, Callable[..., Any]], target_db: str,
    run_cli: Callable[..., Result],
) -> None:  # fmt: skip
    url, run = mysql_db
    run("CREATE TABLE t (id int PRIMARY KEY)")
    db = url.rsplit("/", 1)[1]
    where = f"127.0.0.1:{mariadb.port}/{db}"
    r = run_cli(
        "clone", "--source", mariadb.url(db, password="wrong-pw-123"), "--target", target_db
    )
    assert r.exit_code == 1
    assert r.stderr.strip() == (
        f"error: source: the server at {where} rejected user 'pgf' or its password; "
        "check the user in --source and the password (MYSQL_PWD or the URL)"
    )
    assert "wrong-pw-123" not in r.output
    mariadb.admin().cursor().execute("CREATE USER IF NOT EXISTS 'nobody'@'%' IDENTIFIED BY 'nopw1'")
    r = run_cli("clone", "--source", mariadb.url(db, "nobody", "nopw1"), "--target", target_db)
    assert r.exit_code == 1
    assert r.stderr.startswith("error: source: user 'nobody' lacks a privilege on ")
    r = run_cli("clone", "--source", f"mysql://pgf@127.0.0.1:1/{db}", "--target", target_db)
    assert r.exit_code == 1
    assert r.stderr.startswith("error: source: cannot connect to 127.0.0.1:1: ")
    r = run_cli("clone", "--source", f"mysql://pgf@127.0.0.1:99999/{db}", "--target", target_db)
    assert r.exit_code == 2
    assert "--source: bad connection string: the port is not a number" in r.stderr
    assert run_cli("clone", "--source", url, "--target", target_db, "-q").exit_code == 0
    r = run_cli("clone", "--source", url, "--target", target_db, "-q")
    assert r.exit_code == 1
    assert r.stderr.strip() == (
        "error: the target already has table public.t; clone into an empty schema"
        " (--schema NAME), use --data-only, or --resume"
    )


def test_foreign_options_and_urls_are_checked(
    target_db: str, run_cli: Callable[..., Result]
) -> None:
    r = run_cli("clone", "--source", target_db, "--target", target_db, "--cast", "type:int=text")
    assert r.exit_code == 2
    assert "--cast applies to mysql://, mariadb:// and sqlite:/// sources only" in r.stderr
    r = run_cli("clone", "--source", "mysql://u:pw-secret-1@h:3306/", "--target", target_db)
    assert r.exit_code == 2
    assert "--source: bad connection string: no database name after the host" in r.stderr
    assert "pw-secret-1" not in r.output
    r = run_cli(
        "clone", "--source", "mysql://h/db", "--target", target_db, "--cast", "type:int=x;y"
    )
    assert r.exit_code == 2
    assert "--cast 'type:int=x;y': 'x;y' is not a PostgreSQL type name" in r.stderr
    r = run_cli("clone", "--source", "sqlite://", "--target", target_db)
    assert r.exit_code == 2
    assert "no file path after sqlite:///" in r.stderr


def test_keep_case_and_rows_over_max_allowed_packet(
    mysql_db: tuple[str, Callable[..., Any]], target_db: str, run_cli: Callable[..., Result]
) -> None:
    # the server's line for this row (30 MB) exceeds max_allowed_packet
    # (16 MB): CONCAT_WS gives NULL and the row must come by the raw path
    url, run = mysql_db
    run("CREATE TABLE `MixedCase` (`Id` int PRIMARY KEY, `Body` longtext, `Blob` longblob)")
    run("INSERT INTO MixedCase VALUES (1, REPEAT('\\tx\\\\', 3500000), REPEAT(x'00ff', 5000000))")
    run("INSERT INTO MixedCase VALUES (2, 'small', x'01')")
    r = run_cli("clone", "--source", url, "--target", target_db, "-q", "--keep-case")
    assert r.exit_code == 0, r.output
    got = rows(
        target_db,
        'SELECT "Id", length("Body"), md5("Body"), length("Blob"), md5("Blob") FROM "MixedCase"'
        " ORDER BY 1",
    )
    want = run(
        "SELECT Id, CHAR_LENGTH(Body), MD5(Body), LENGTH(`Blob`), MD5(`Blob`) FROM MixedCase"
        " ORDER BY 1"
    )
    assert got == [tuple(w) for w in want]
    assert got[0][1] == 10_500_000 and got[0][3] == 10_000_000
