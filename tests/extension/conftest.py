"""Servers for the aws_s3 extension tests.

The extension fetches from inside the database server, with the server's
ambient AWS configuration (like an IAM role on RDS). The shared `pgserver`
servers know nothing of the test S3, so these tests start their own, one per
PostgreSQL version, with AWS_ENDPOINT_URL and keys in the server process's
environment: what an administrator puts in /etc/postgresql/N/main/environment
or a systemd drop-in. Everything goes through psql, as in the AWS guide.

`pgferry extension install` writes into the server's extension directory.
Debian's PostgreSQL 15 has one per machine (/usr/share/postgresql/15), which
test runs from other checkouts would overwrite mid-run; so PostgreSQL 15
runs from a private copy of its install tree per test session (PostgreSQL
finds its share and lib directories relative to its own binary).
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from pgferry.embedded import LocalServer
from tests.conftest import PG_VERSIONS
from tests.services import DEBIAN_PG15, FAST, SeaweedS3, binaries, postgres

PGFERRY = Path(sys.executable).parent / "pgferry"
APP = "app"  # the ordinary role granted EXECUTE, as rds_superuser would
GUIDE_BUCKETS = ("sample-s3-bucket", "samplebucket", "mys3bucket")
_counter = itertools.count()


def server_env(s3: SeaweedS3) -> dict[str, str]:
    """The server's ambient AWS configuration: the test S3, and nothing from
    this machine's own AWS setup (no config files, no instance metadata)."""
    return {
        **s3.env(),
        "AWS_CONFIG_FILE": "/nonexistent",
        "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
        "AWS_EC2_METADATA_DISABLED": "true",
    }


@contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    """pg_ctl hands its environment to the postmaster and so to every
    program COPY runs; set ours only while starting the server."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@dataclass
class ExtServer:
    version: str
    server: LocalServer
    install_output: str

    @property
    def psql_bin(self) -> Path:
        return self.server.bindir / "psql"

    def conninfo(self, db: str = "postgres", user: str | None = None) -> str:
        return self.server.conninfo(db, user=user)

    def psql(
        self, script: str, db: str, *, user: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run `script` through psql (stdin), stopping at the first error."""
        proc = subprocess.run(
            [str(self.psql_bin), "-X", "-v", "ON_ERROR_STOP=1", "-d", self.conninfo(db, user)],
            input=script,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"psql failed ({proc.returncode}):\n{proc.stderr}\n{proc.stdout}")
        return proc

    def execute(self, statement: str, db: str = "postgres") -> list[tuple[Any, ...]]:
        with psycopg.connect(self.conninfo(db), autocommit=True) as conn:
            cur = conn.execute(statement)
            return cur.fetchall() if cur.description else []

    def admin_setting(self, line: str) -> None:
        """Write the aws_s3 settings file (as an administrator edits postgresql.conf)."""
        (self.server.datadir / "aws_s3.conf").write_text(line + "\n")
        self.execute("SELECT pg_reload_conf()")

    def log(self) -> str:
        return self.server.logfile.read_text(errors="replace")


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)  # same file system: no 44 MB copy
    except OSError:
        shutil.copy2(src, dst)


def private_pg15(root: Path) -> Path:
    """A copy of Debian's PostgreSQL 15 under `root`, laid out as in /usr so
    that its relocatable binaries use the copy's share and lib directories.
    Binaries and libraries are hard links (read-only here); the share tree,
    where the extension files go, is a real copy. Returns the bindir."""
    lib, share = root / "usr/lib/postgresql/15", root / "usr/share/postgresql/15"
    shutil.copytree(DEBIAN_PG15.parent, lib, symlinks=True, copy_function=_link_or_copy)
    shutil.copytree(Path("/usr/share/postgresql/15"), share, symlinks=True)
    for stale in (share / "extension").glob("aws_*"):
        stale.unlink()  # left by a run against the system tree
    root.chmod(0o755)
    return lib / "bin"


def _start(version: str, s3: SeaweedS3, private: Path) -> ExtServer:
    if version == "15":
        bindir = private_pg15(private)
        server = LocalServer(
            bindir=bindir, datadir=private / "data", os_user=binaries("15")[1], auth="trust"
        )
    else:
        # the wheel's tree lives in this checkout's own virtualenv
        server = postgres(version, start=False)
    bindir = server.bindir
    server.init()
    # the administrator's aws_s3 settings live in a file (ALTER SYSTEM refuses
    # unknown settings before PostgreSQL 17)
    with (server.datadir / "postgresql.conf").open("a") as f:
        f.write("\ninclude_if_exists = 'aws_s3.conf'\n")
    with environment(server_env(s3)):
        server.start(FAST)
    proc = subprocess.run(
        [
            str(PGFERRY),
            "extension",
            "install",
            "--pg-config",
            str(bindir / "pg_config"),
            "--target",
            server.conninfo(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    if version == "15":
        assert f"installed into {private}/usr/share/postgresql/15/extension:" in proc.stdout
    ext = ExtServer(version, server, proc.stdout)
    ext.execute(f"CREATE ROLE {APP} LOGIN")
    return ext


@pytest.fixture(scope="session", params=PG_VERSIONS, ids=lambda v: f"pg{v}")
def ext(request: pytest.FixtureRequest, s3: SeaweedS3) -> Iterator[ExtServer]:
    if request.param == "15" and not (DEBIAN_PG15 / "postgres").exists():
        pytest.fail("PostgreSQL 15 is missing: run scripts/test (it installs postgresql-15)")
    private = Path(tempfile.mkdtemp(prefix=f"pgferry-ext-pg{request.param}-"))
    server = _start(request.param, s3, private)
    yield server
    server.server.destroy()
    shutil.rmtree(server.server.datadir.parent, ignore_errors=True)
    shutil.rmtree(private, ignore_errors=True)


@pytest.fixture(scope="session")
def guide_buckets(s3client: Any) -> tuple[str, ...]:
    """The guide's buckets, lower-cased and hyphenated: S3 (and SeaweedFS)
    refuse new bucket names like 'sampleBucket' or 'sample_s3_bucket'."""
    for name in GUIDE_BUCKETS:
        with suppress(s3client.exceptions.BucketAlreadyOwnedByYou):
            s3client.create_bucket(Bucket=name)
    return GUIDE_BUCKETS


@pytest.fixture()
def bare_db(ext: ExtServer) -> Iterator[str]:
    """A fresh database without the extension."""
    name = f"x{next(_counter)}"
    ext.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)).as_string())
    yield name
    ext.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)).as_string())


@pytest.fixture()
def edb(ext: ExtServer, bare_db: str) -> str:
    """A fresh database with the extension, and APP granted what RDS's
    rds_superuser would grant an ordinary user."""
    ext.psql(
        f"""
        CREATE EXTENSION aws_s3 CASCADE;
        GRANT USAGE ON SCHEMA aws_s3 TO {APP};
        GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA aws_s3 TO {APP};
        GRANT CREATE ON SCHEMA public TO {APP};
        """,
        bare_db,
    )
    return bare_db
