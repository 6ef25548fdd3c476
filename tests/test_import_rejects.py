"""--on-error skip-rows: rows that load are loaded, each rejected row is kept
(object, line, raw text, column, error); --max-errors N or N%. Runs on
PostgreSQL 15 (pgferry-side path) and 18 (COPY ON_ERROR ignore too)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pgferry import imports, rejects
from pgferry.errors import DataError, UsageError

CSV = (
    b"id,name,n\n"
    b'1,"multi\nline",10\n'
    b"two,bo,20\n"
    b"3,cy,30\n"
    b"4,dup,40\n"
    b"5,ok,not-a-number\n"
    b"6,short\n"
    b"7,gi,70\n"
)


def _rejects(conn: Any, table: str = "pgferry_rejects") -> list[tuple[Any, ...]]:
    return conn.execute(
        f"SELECT object, line, raw, column_name, error, target FROM {table} ORDER BY line"
    ).fetchall()


def test_skip_rows_keeps_every_rejected_row(conn, db, tmp_path: Path) -> None:
    conn.execute("CREATE TABLE t (id int, name text, n int, CHECK (name <> 'dup'))")
    f = tmp_path / "r.csv"
    f.write_bytes(CSV)
    r = imports.import_from_s3(
        "t", str(f), options="(format csv, header true)", on_error="skip-rows", target=db
    )
    assert (r.rows, r.skipped) == (3, 4)
    assert r.message.endswith("(4 rows skipped)")
    assert conn.execute("SELECT id, name, n FROM t ORDER BY id").fetchall() == [
        (1, "multi\nline", 10),
        (3, "cy", 30),
        (7, "gi", 70),
    ]
    got = _rejects(conn)
    # lines are the file's, as COPY counts them (a quoted newline starts one)
    assert [(o, line, raw, col, tgt) for o, line, raw, col, _, tgt in got] == [
        (str(f), 4, "two,bo,20", "id", "t"),
        (str(f), 6, "4,dup,40", None, "t"),
        (str(f), 7, "5,ok,not-a-number", "n", "t"),
        (str(f), 8, "6,short", None, "t"),
    ]
    errors = [e for *_, e, _ in got]
    if conn.info.server_version >= 170000:  # COPY ON_ERROR ignore skipped it, and said so
        assert errors[0] == (
            'skipping row due to data type incompatibility at line 4 for column "id": "two"'
        )
    else:  # the pgferry-side path: the error COPY stopped with
        assert errors[0] == 'invalid input syntax for type integer: "two"'

    assert errors[1].startswith('new row for relation "t" violates check constraint')
    assert errors[3] == 'missing data for column "n"'


def test_max_errors_count_and_share(conn, db, tmp_path: Path) -> None:
    conn.execute("CREATE TABLE t (id int, name text, n int, CHECK (name <> 'dup'))")
    f = tmp_path / "r.csv"
    f.write_bytes(CSV)
    opts = "(format csv, header true)"
    with pytest.raises(DataError) as e:
        imports.import_from_s3(
            "t", str(f), options=opts, on_error="skip-rows", max_errors="3", target=db
        )
    assert e.value.message.startswith(
        f'{f}: too many rejected rows (more than 3) for table "t"; the first: line 4, column id: '
    )
    assert e.value.message.endswith("; fix the file or raise --max-errors; nothing was loaded")
    with pytest.raises(DataError) as p:
        imports.import_from_s3(
            "t", str(f), options=opts, on_error="skip-rows", max_errors="50%", target=db
        )
    assert "too many rejected rows (4 of 7 rows (50% allowed))" in p.value.message
    # nothing loaded, no rejects kept: all or nothing
    assert conn.execute("SELECT count(*) FROM t").fetchone() == (0,)
    assert conn.execute("SELECT to_regclass('pgferry_rejects')").fetchone() == (None,)
    r = imports.import_from_s3(
        "t",
        str(f),
        options=opts,
        on_error="skip-rows",
        max_errors="60%",
        rejects_table="bad_rows",
        target=db,
    )
    assert (r.rows, r.skipped) == (3, 4)
    assert len(_rejects(conn, "bad_rows")) == 4


def test_many_batches_and_usage(conn, db, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(rejects, "BATCH_ROWS", 7)
    conn.execute("CREATE TABLE big (id int PRIMARY KEY)")
    lines = [str(i) if i % 10 else f"x{i}" for i in range(1, 101)]
    lines[41] = "5"  # a duplicate key, in another batch than the first 5
    f = tmp_path / "big.txt"
    f.write_text("\n".join(lines) + "\n")
    r = imports.import_from_s3("big", str(f), on_error="skip-rows", target=db)
    assert (r.rows, r.skipped) == (89, 11)
    got = conn.execute("SELECT line, raw, sqlstate FROM pgferry_rejects ORDER BY line").fetchall()
    assert [g[0] for g in got] == [10, 20, 30, 40, 42, 50, 60, 70, 80, 90, 100]
    assert got[4] == (42, "5", "23505")
    with pytest.raises(UsageError) as u:
        rejects.policy("abort", "5", None)
    assert u.value.message == "--max-errors goes with --on-error skip-rows; add it"
    with pytest.raises(UsageError) as v:
        rejects.policy("skip-rows", "lots", None)
    assert v.value.message.startswith("cannot read --max-errors 'lots'")
