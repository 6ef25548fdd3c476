"""clone and verify from a real SQLite file."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from pathlib import Path

from click.testing import Result

from tests.migrate.conftest import rows


def _file(tmp_path: Path) -> Path:
    path = tmp_path / "app.db"
    c = sqlite3.connect(path)
    c.executescript(
        """
        CREATE TABLE Users (id INTEGER PRIMARY KEY, name TEXT NOT NULL, score REAL,
          active BOOLEAN DEFAULT 1, born DATE, photo BLOB, price DECIMAL(10,2), misc,
          big INT);
        CREATE TABLE orders (id INTEGER PRIMARY KEY AUTOINCREMENT,
          user_id INTEGER NOT NULL REFERENCES Users(id), note VARCHAR(20) DEFAULT 'none');
        CREATE INDEX orders_note ON orders (note);
        CREATE UNIQUE INDEX users_name ON Users (name);
        """
    )
    c.executemany(
        "INSERT INTO Users VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (1, "ann", 1.5, 1, "2001-02-03", b"\x00\xff", "12.30", 7, 9223372036854775807),
            (2, "bob", 2, 0, None, None, 5, "x\ty", -9223372036854775808),
            (3, "cy", "not a number", 1, None, None, None, None, None),  # REAL column, text value
            (4, "di", None, 1, None, None, None, b"\xff\xfe", None),  # untyped, not UTF-8
        ],
    )
    c.executemany("INSERT INTO orders (user_id, note) VALUES (?, ?)", [(1, "a"), (2, "b")])
    c.commit()
    c.close()
    return path


def test_sqlite_file(tmp_path: Path, target_db: str, run_cli: Callable[..., Result]) -> None:
    src = f"sqlite:///{_file(tmp_path)}"
    r = run_cli("clone", "--source", src, "--target", target_db, "-q", "--max-rejects", "2")
    assert r.exit_code == 0, r.output
    assert "4 rows loaded, 2 rejected" in r.stdout
    assert rows(target_db, "SELECT * FROM users ORDER BY id") == [
        (1, "ann", 1.5, True, date(2001, 2, 3), b"\x00\xff", Decimal("12.30"), "7",
         9223372036854775807),
        (2, "bob", 2.0, False, None, None, Decimal("5.00"), "x\ty", -9223372036854775808),
    ]  # fmt: skip
    got = rows(target_db, "SELECT key->>'id', column_name, value, error FROM pgferry.rejects")
    assert sorted(got) == [
        ("3", "score", "not a number",
         "a text value does not fit double precision (SQLite stores any value in any column)"),
        ("4", "misc", "fffe",
         "a blob value does not fit text (SQLite stores any value in any column)"),
    ]  # fmt: skip
    # INTEGER PRIMARY KEY -> identity after the max; defaults; indexes; foreign key
    assert rows(target_db, "INSERT INTO orders (user_id) VALUES (1) RETURNING id, note") == [
        (3, "none")
    ]
    assert rows(target_db, "INSERT INTO users (name) VALUES ('eve') RETURNING id, active") == [
        (3, True)  # max + 1 of the rows loaded (3 and 4 were rejected)
    ]
    fks = rows(target_db, "SELECT count(*) FROM pg_constraint WHERE contype = 'f'")
    assert fks == [(1,)]
    idx = {
        r[0]
        for r in rows(target_db, "SELECT indexname FROM pg_indexes WHERE schemaname = 'public'")
    }
    assert {"orders_orders_note", "users_users_name", "users_pkey", "orders_pkey"} <= idx
    rows(target_db, "DELETE FROM users WHERE id = 3")
    rows(target_db, "DELETE FROM orders WHERE id = 3")
    v = run_cli("verify", "--source", src, "--target", target_db, "--json")
    diffs = {c["name"]: c["status"] for c in json.loads(v.stdout)["checks"] if c["status"] != "ok"}
    # the two rejected rows are missing on the target: verify says so
    assert diffs["public.users"] == "row count differs"
    assert "public.orders" not in diffs


def test_sqlite_missing_file(
    tmp_path: Path, target_db: str, run_cli: Callable[..., Result]
) -> None:
    r = run_cli("clone", "--source", f"sqlite:///{tmp_path}/nope.db", "--target", target_db)
    assert r.exit_code == 1
    assert r.stderr.strip() == (
        f"error: source: no SQLite file at {tmp_path}/nope.db; check the path in --source"
        " sqlite:///PATH"
    )
