"""A --table/--exclude selection that could never be restored is refused
at create time, before anything is written."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from click.testing import Result

from pgferry.embedded import LocalServer
from tests.migrate.conftest import drop_database, new_database

Run = Callable[..., Result]

SCHEMA = """
CREATE TABLE customer (id int PRIMARY KEY, name text);
CREATE TABLE film (id int PRIMARY KEY, title text);
CREATE TABLE rental (id int PRIMARY KEY, customer_id int REFERENCES customer, film_id int);
INSERT INTO customer VALUES (1, 'a'); INSERT INTO film VALUES (1, 'f');
INSERT INTO rental VALUES (1, 1, 1);
-- like pagila's rewards_report: a kept function returning a left-out row type
CREATE FUNCTION rewards_report(min_id int) RETURNS SETOF customer
    LANGUAGE sql AS $$ SELECT * FROM customer WHERE id >= min_id $$;
-- a kept table with a column of a left-out table's row type
CREATE TABLE watchlist (id int, fav film);
"""


@pytest.fixture()
def rental_db(pgserver: LocalServer) -> Iterator[str]:
    url = new_database(pgserver, "rent")
    with psycopg.connect(url, autocommit=True) as c:
        c.execute(SCHEMA)
    yield url
    drop_database(pgserver, url)


def test_unrestorable_selection_is_refused(
    rental_db: str, run_cli: Run, bucket: str, s3env: dict[str, str], s3client: Any
) -> None:
    uri = f"s3://{bucket}/films"
    res = run_cli("snapshot", "create", "--source", rental_db, uri, "--table", "film", "-q")
    assert res.exit_code == 2
    assert res.stderr.strip() == (
        "error: this selection could not be restored: function"
        " public.rewards_report(integer) needs public.customer, which the selection leaves"
        " out; add --table public.customer (or stop excluding it), or drop or change function"
        " public.rewards_report(integer)"
    )
    assert s3client.list_objects_v2(Bucket=bucket).get("KeyCount") == 0

    res = run_cli("snapshot", "create", "--source", rental_db, uri, "--exclude", "customer")
    assert res.exit_code == 2
    assert "function public.rewards_report(integer) needs public.customer" in res.stderr

    res = run_cli("snapshot", "create", "--source", rental_db, uri, "--table", "watchlist")
    assert res.exit_code == 2
    assert res.stderr.strip().startswith(
        "error: this selection could not be restored: function public.rewards_report(integer)"
        " needs public.customer, which the selection leaves out (and 1 more);"
    )
    res = run_cli(
        "snapshot", "create", "--source", rental_db, uri,
        "--table", "watchlist", "--table", "customer",
    )  # fmt: skip
    assert res.exit_code == 2
    assert "table column public.watchlist.fav needs public.film," in res.stderr


def test_restorable_selections_pass(
    rental_db: str, target_db: str, run_cli: Run, bucket: str, s3env: dict[str, str]
) -> None:
    # the foreign key to the left-out customer is skipped on purpose: fine
    uri = f"s3://{bucket}/ok"
    res = run_cli(
        "snapshot", "create", "--source", rental_db, uri,
        "--table", "film", "--table", "customer", "--table", "rental", "--exclude", "film", "-q",
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    res = run_cli("snapshot", "restore", uri, "--target", target_db, "-q")
    assert res.exit_code == 0, res.output
