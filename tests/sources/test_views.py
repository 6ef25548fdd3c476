"""MariaDB views: simple ones translated to PostgreSQL views in the target
schema, the others listed by name, with the reason, in a note."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

from click.testing import Result

from tests.migrate.conftest import rows
from tests.sources.test_sample_schema import build


def test_views_translated_or_named_as_skipped(
    mysql_db: tuple[str, Callable[..., Any]], target_db: str, run_cli: Callable[..., Result]
) -> None:
    url, run = mysql_db
    build(run)  # has actor_names (simple) and film_list (GROUP_CONCAT)
    for ddl in (
        # a join, aliases, an aggregate, a constant; reads another view
        "CREATE VIEW `Actor Films` AS SELECT a.actor_id AS `Actor ID`, a.last_name,"
        " COUNT(*) AS films, 'x' AS kind FROM actor_names a"
        " JOIN film_actor fa ON fa.actor_id = a.actor_id"
        " WHERE a.actor_id BETWEEN 1 AND 100 GROUP BY a.actor_id, a.last_name",
        "CREATE VIEW chase AS SELECT actor_id FROM actor WHERE last_name = 'chase'",
        "CREATE VIEW ratio AS SELECT film_id / 2 AS half FROM film",
        "CREATE VIEW loose AS SELECT title, release_year, COUNT(*) AS n FROM film GROUP BY title",
        "CREATE VIEW checked AS SELECT actor_id, first_name FROM actor WHERE actor_id > 1"
        " WITH CASCADED CHECK OPTION",
    ):
        run(ddl)
    r = run_cli("clone", "--source", url, "--target", target_db, "--schema", "app", "--json")
    assert r.exit_code == 0, r.output
    notes = [n for n in json.loads(r.stdout)["notes"] if n.startswith("view ")]
    assert sorted(notes) == [
        "view chase skipped: it compares text ('chase'): MariaDB/MySQL collations usually"
        " ignore case, PostgreSQL's do not (recreate it by hand)",
        "view film_list skipped: group_concat() has no checked PostgreSQL equivalent"
        " (recreate it by hand)",
        'view loose skipped: PostgreSQL refused its translation: column "film.release_year" must'
        " appear in the GROUP BY clause or be used in an aggregate function"
        " (recreate it by hand)",
        "view ratio skipped: '/' has no checked PostgreSQL equivalent (recreate it by hand)",
    ]
    made = rows(
        target_db,
        "SELECT table_name, check_option FROM information_schema.views"
        " WHERE table_schema = 'app' ORDER BY 1",
    )
    assert made == [("actor films", "NONE"), ("actor_names", "NONE"), ("checked", "CASCADED")]
    assert rows(target_db, 'SELECT * FROM app."actor films" ORDER BY 1') == [
        (1, "GUINESS", 2, "x"),
        (2, "WAHLBERG", 1, "x"),
        (3, "CHASE", 1, "x"),
    ]
    assert rows(target_db, "SELECT * FROM app.actor_names ORDER BY 1") == list(
        run("SELECT * FROM actor_names ORDER BY 1")
    )
    # --exclude takes views too; the text output prints the notes
    r = run_cli(
        "clone", "--source", url, "--target", target_db, "--schema", "b", "-q",
        "--exclude", "actor_names",
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    assert (
        "note: view film_list skipped: group_concat() has no checked PostgreSQL equivalent"
        " (recreate it by hand)\n"
    ) in r.stderr
    assert (
        "note: view Actor Films skipped: PostgreSQL refused its translation:"
        ' relation "b.actor_names" does not exist (recreate it by hand)\n'
    ) in r.stderr
    assert rows(target_db, "SELECT count(*) FROM pg_views WHERE schemaname = 'b'") == [(1,)]


def _sqlite(path: Path, *ddl: str) -> None:
    with sqlite3.connect(path) as c:
        for stmt in ddl:
            c.execute(stmt)


def test_sqlite_views_translated_or_named_as_skipped(
    tmp_path: Path, target_db: str, run_cli: Callable[..., Result]
) -> None:
    db = tmp_path / "v.db"
    _sqlite(
        db,
        "CREATE TABLE Customer (Id INTEGER PRIMARY KEY, Name TEXT, City TEXT)",
        'CREATE TABLE "Order Items" (id INTEGER PRIMARY KEY, CustomerId INTEGER,'
        " Qty INTEGER, Price REAL, first TEXT)",
        "INSERT INTO Customer VALUES (1, 'Ann', 'Oslo'), (2, 'bob', 'Rome'), (3, 'Cy', NULL)",
        "INSERT INTO \"Order Items\" VALUES (1, 1, 2, 2.5, 'a'), (2, 1, 1, 10, 'b'),"
        " (3, 2, 5, 1, 'c')",
        # bare, "quoted", `quoted` and [bracketed] names in any case; a join, an
        # aggregate, HAVING, ||, ==, a string compared, a column named "first"
        "CREATE VIEW \"Big Spenders\" AS SELECT c.name || '!' AS who, count(*) AS n,"
        ' sum(oi.[Qty] * OI.price) AS spent FROM customer c JOIN "order items" oi'
        " ON oi.customerid == C.ID WHERE c.`City` <> 'Rome' GROUP BY c.name"
        " HAVING count(*) >= 1",
        "CREATE VIEW named (a, b) AS SELECT id, coalesce(city, '?') FROM main.customer",
        'CREATE VIEW everything AS SELECT o.*, first AS again FROM "Order Items" o',
        'CREATE VIEW of_view AS SELECT who FROM "Big Spenders" WHERE n > 1',
        "CREATE VIEW likes AS SELECT id FROM customer WHERE name LIKE 'a%'",
        "CREATE VIEW lowered AS SELECT lower(name) AS l FROM customer",
        'CREATE VIEW halves AS SELECT qty / 2 AS h FROM "Order Items"',
        "CREATE VIEW loose AS SELECT name, city, count(*) AS n FROM customer GROUP BY name",
    )
    r = run_cli("clone", "--source", f"sqlite:///{db}", "--target", target_db, "--json")
    assert r.exit_code == 0, r.output
    notes = sorted(n for n in json.loads(r.stdout)["notes"] if n.startswith("view "))
    assert notes == [
        "view halves skipped: '/' has no checked PostgreSQL equivalent (recreate it by hand)",
        "view likes skipped: LIKE has no checked PostgreSQL equivalent (recreate it by hand)",
        'view loose skipped: PostgreSQL refused its translation: column "customer.city" must'
        " appear in the GROUP BY clause or be used in an aggregate function"
        " (recreate it by hand)",
        "view lowered skipped: lower() has no checked PostgreSQL equivalent (recreate it by hand)",
    ]
    assert rows(target_db, 'SELECT * FROM "big spenders"') == [("Ann!", 2, 15.0)]
    assert rows(target_db, "SELECT * FROM named ORDER BY a") == [
        (1, "Oslo"), (2, "Rome"), (3, "?"),
    ]  # fmt: skip
    assert rows(target_db, "SELECT * FROM everything ORDER BY id") == [
        (1, 1, 2, 2.5, "a", "a"), (2, 1, 1, 10.0, "b", "b"), (3, 2, 5, 1.0, "c", "c"),
    ]  # fmt: skip
    assert rows(target_db, "SELECT * FROM of_view") == [("Ann!",)]


def test_sqlite_views_keep_case_and_collations(
    tmp_path: Path, target_db: str, run_cli: Callable[..., Result]
) -> None:
    """--keep-case: the view names tables and columns as the clone spelled them.
    A column with a collation (NOCASE) compares otherwise than PostgreSQL: a
    view comparing a string constant is left out; one only showing it is made."""
    db = tmp_path / "c.db"
    _sqlite(
        db,
        "CREATE TABLE Users (Id INTEGER PRIMARY KEY, Name TEXT COLLATE NOCASE)",
        "INSERT INTO Users VALUES (1, 'Bob'), (2, 'ann')",
        "CREATE VIEW bobs AS SELECT id FROM users WHERE name = 'bob'",
        "CREATE VIEW Tagged AS SELECT 'x' AS tag, USERS.name FROM users",
    )
    url = f"sqlite:///{db}"
    r = run_cli("clone", "--source", url, "--target", target_db, "--keep-case", "--json")
    assert r.exit_code == 0, r.output
    notes = [n for n in json.loads(r.stdout)["notes"] if n.startswith("view ")]
    assert notes == [
        "view bobs skipped: it compares text ('bob') in a database whose columns declare"
        " collations (NOCASE, RTRIM), which PostgreSQL does not follow (recreate it by hand)"
    ]
    assert rows(target_db, 'SELECT * FROM "Tagged" ORDER BY 2') == [("x", "Bob"), ("x", "ann")]
