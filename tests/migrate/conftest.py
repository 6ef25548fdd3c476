"""Fixtures for clone/snapshot/verify: a realistic source database per server
version (generated once per session), empty targets, and a PostgreSQL
15 -> 18 pair of servers for the cross-version test."""

from __future__ import annotations

import itertools
import os
import shutil
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner, Result
from psycopg import sql

from pgferry.cli import cli
from pgferry.embedded import LocalServer
from tests.migrate.dbgen import generate
from tests.services import postgres

BIG_ROWS = 1_000_000
READER = "pgferry_reader"
_n = itertools.count()
_sources: dict[str, str] = {}


def version_of(server: LocalServer) -> str:
    with psycopg.connect(server.conninfo()) as c:
        return str(c.info.server_version // 10000)


def new_database(server: LocalServer, prefix: str = "m") -> str:
    name = f"{prefix}{next(_n)}_{os.getpid()}"
    with psycopg.connect(server.conninfo(), autocommit=True) as c:
        c.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return server.conninfo(name)


def drop_database(server: LocalServer, url: str) -> None:
    name = psycopg.conninfo.conninfo_to_dict(url)["dbname"]
    with psycopg.connect(server.conninfo(), autocommit=True) as c:
        c.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(scope="session")
def source_db(pgserver: LocalServer) -> str:
    """The realistic database (1M-row app.events) on this server version."""
    key = str(pgserver.datadir)
    if key not in _sources:
        url = new_database(pgserver, "src")
        generate(url, BIG_ROWS, reader_role=READER)
        _sources[key] = url
    return _sources[key]


@pytest.fixture()
def target_db(pgserver: LocalServer) -> Iterator[str]:
    url = new_database(pgserver, "dst")
    yield url
    drop_database(pgserver, url)


@pytest.fixture(scope="session")
def cross_servers() -> Iterator[tuple[LocalServer, LocalServer]]:
    """Our own PostgreSQL 15 and 18 servers (source, target)."""
    old, new = postgres("15"), postgres("18")
    yield old, new
    for server in (old, new):
        server.destroy()
        shutil.rmtree(server.datadir.parent, ignore_errors=True)


@pytest.fixture(scope="session")
def run_cli() -> Callable[..., Result]:
    runner = CliRunner()

    def run(*args: str) -> Result:
        return runner.invoke(cli, list(args), catch_exceptions=False)

    return run


def rows(url: str, query: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as c:
        cur = c.execute(query, params or None)
        return cur.fetchall() if cur.description else []
