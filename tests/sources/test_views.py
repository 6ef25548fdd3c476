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


def test_sqlite_views_are_named_in_a_note(
    tmp_path: Path, target_db: str, run_cli: Callable[..., Result]
) -> None:
    db = tmp_path / "v.db"
    with sqlite3.connect(db) as c:
        c.execute("CREATE TABLE t (id INTEGER PRIMARY KEY)")
        c.execute("CREATE VIEW v AS SELECT id FROM t")
    r = run_cli("clone", "--source", f"sqlite:///{db}", "--target", target_db)
    assert r.exit_code == 0, r.output
    assert "note: view v skipped: SQLite views are not translated (recreate it by hand)" in (
        r.stderr
    )
