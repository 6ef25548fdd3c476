from __future__ import annotations

import itertools
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from pgferry.embedded import LocalServer
from tests.services import SeaweedS3, postgres

PG_VERSIONS = os.environ.get("PGFERRY_TEST_PG", "15,18").split(",")
_counter = itertools.count()


@pytest.fixture(scope="session")
def s3() -> Iterator[SeaweedS3]:
    server = SeaweedS3().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def s3client(s3: SeaweedS3) -> Any:
    return s3.client()


@pytest.fixture()
def bucket(s3client: Any) -> str:
    name = f"b{next(_counter)}-{os.getpid()}"
    s3client.create_bucket(Bucket=name)
    return name


@pytest.fixture()
def s3env(s3: SeaweedS3, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Point the AWS default chain at the local S3 for the test process."""
    for k in list(os.environ):
        if k.startswith("AWS_"):
            monkeypatch.delenv(k)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    env = s3.env()
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return env


_servers: dict[str, LocalServer] = {}


@pytest.fixture(scope="session", params=PG_VERSIONS, ids=lambda v: f"pg{v}")
def pgserver(request: pytest.FixtureRequest) -> Iterator[LocalServer]:
    version = request.param
    if version not in _servers:
        if version == "15" and not Path("/usr/lib/postgresql/15/bin/postgres").exists():
            pytest.fail("PostgreSQL 15 is missing: run scripts/test (it installs postgresql-15)")
        _servers[version] = postgres(version)
    yield _servers[version]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    for server in _servers.values():
        server.destroy()
        shutil.rmtree(server.datadir.parent, ignore_errors=True)


@pytest.fixture()
def db(pgserver: LocalServer) -> Iterator[str]:
    """A fresh database on each server version; yields its URL."""
    name = f"t{next(_counter)}"
    with psycopg.connect(pgserver.conninfo(), autocommit=True) as conn:
        conn.execute(psycopg.sql.SQL("CREATE DATABASE {}").format(psycopg.sql.Identifier(name)))
    yield pgserver.conninfo(name)
    with psycopg.connect(pgserver.conninfo(), autocommit=True) as conn:
        conn.execute(
            psycopg.sql.SQL("DROP DATABASE {} WITH (FORCE)").format(psycopg.sql.Identifier(name))
        )


@pytest.fixture()
def conn(db: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(db, autocommit=True) as c:
        yield c


@pytest.fixture()
def server_home() -> Iterator[Path]:
    """A directory for a server that runs as another OS user. Not under
    pytest's tmp_path: every pytest session resets /tmp/pytest-of-<user> to
    0700, which would lock that user out of a server already running."""
    import tempfile

    root = Path(tempfile.mkdtemp(prefix="pgferry-test-home-"))
    root.chmod(0o755)
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)
