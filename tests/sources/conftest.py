"""Fixtures for MariaDB/MySQL and SQLite sources: one MariaDB server per
session, a fresh database per test."""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.migrate.conftest import run_cli, target_db  # noqa: F401 - fixtures reused here
from tests.sources.mariadb import MariaDB

_n = itertools.count()


@pytest.fixture(scope="session")
def mariadb() -> Iterator[MariaDB]:
    server = MariaDB().start()
    yield server
    server.stop()


@pytest.fixture()
def mysql_db(mariadb: MariaDB) -> Iterator[tuple[str, Callable[..., Any]]]:
    """(URL of a fresh database, run(sql, *params) on it as root)."""
    name = f"src{next(_n)}_{os.getpid()}"
    with mariadb.admin() as c, c.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    conn = mariadb.admin(name)

    def run(statement: str, *params: Any) -> Any:
        with conn.cursor() as cur:
            cur.execute(statement, params or None)
            return cur.fetchall()

    yield mariadb.url(name), run
    conn.close()
    with mariadb.admin() as c, c.cursor() as cur:
        cur.execute(f"DROP DATABASE `{name}`")
