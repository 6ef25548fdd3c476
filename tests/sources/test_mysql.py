"""clone and verify from a real MariaDB server into PostgreSQL."""

from __future__ import annotations

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
    run("INSERT INTO child (parent_id, qty) VALUES (1, 1), (2, 2), (2, 3)")
    r = run_cli("clone", "--source", url, "--target", target_db, "--quiet", "--schema", "app")
    assert r.exit_code == 0, r.output
    assert "prefix index by_note (note(10)) indexes the whole column" in r.output
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
