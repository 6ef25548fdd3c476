"""Which PostgreSQL to talk to, and how to connect to it.

Resolution order: an explicit URL, then PGFERRY_TARGET, then DATABASE_URL,
then the libpq environment (PGHOST, PGSERVICE, ...: libpq reads those
itself), and last the embedded local server pgferry starts on its own.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from pgferry.errors import PermissionDenied, TargetError, TargetUnreachable

LIBPQ_ENV = ("PGHOST", "PGHOSTADDR", "PGPORT", "PGDATABASE", "PGUSER", "PGSERVICE")


@dataclass(frozen=True)
class Target:
    conninfo: str
    #: where it came from: flag, PGFERRY_TARGET, DATABASE_URL, libpq environment, embedded
    origin: str

    @property
    def masked(self) -> str:
        return mask_password(self.conninfo)

    def describe(self) -> str:
        return self.masked or "(libpq defaults)"


def mask_password(conninfo: str) -> str:
    """The connection string with any password replaced by ****."""
    if "://" in conninfo:
        parts = urlsplit(conninfo)
        if parts.password is None:
            return conninfo
        host = parts.hostname or ""
        if parts.port:
            host = f"{host}:{parts.port}"
        netloc = f"{parts.username or ''}:****@{host}"
        return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    try:
        params = conninfo_to_dict(conninfo)
    except psycopg.ProgrammingError:
        return "(unparsable connection string)"
    if "password" in params:
        params["password"] = "****"  # noqa: S105
    return make_conninfo("", **{k: v for k, v in params.items() if v is not None})


def resolve_target(explicit: str | None = None) -> Target:
    if explicit:
        return Target(explicit, "flag")
    for var in ("PGFERRY_TARGET", "DATABASE_URL"):
        if os.environ.get(var):
            return Target(os.environ[var], var)
    if any(os.environ.get(var) for var in LIBPQ_ENV):
        return Target("", "libpq environment")
    from pgferry.embedded import ensure_embedded

    return Target(ensure_embedded().conninfo(), "embedded")


def connect(
    target: Target | str, *, autocommit: bool = False, **kw: Any
) -> psycopg.Connection[Any]:
    """Open a connection, turning failures into one-line, password-free errors."""
    tgt = target if isinstance(target, Target) else Target(target, "flag")
    try:
        return psycopg.connect(tgt.conninfo, autocommit=autocommit, **kw)
    except psycopg.Error as e:
        state = e.sqlstate or ""
        reason = _first_line(e)
        if state.startswith("28"):
            raise PermissionDenied(
                f"cannot log in to {tgt.describe()}: {reason}",
                hint="check the user and password (or PGPASSWORD / ~/.pgpass)",
                sqlstate=state,
            ) from None
        if state == "3D000":
            raise TargetUnreachable(
                f"database in {tgt.describe()} does not exist: {reason}",
                hint="create it first, or point --target at an existing database",
                sqlstate=state,
            ) from None
        raise TargetUnreachable(
            f"cannot connect to {tgt.describe()}: {reason}",
            hint="check that the server is running and the URL (--target, PGFERRY_TARGET) is right",
            sqlstate=state or None,
        ) from None


def _first_line(e: BaseException) -> str:
    lines = [line.strip() for line in str(e).strip().splitlines() if line.strip()]
    return lines[0] if lines else type(e).__name__


_PSQL_ENV = {
    "host": "PGHOST",
    "hostaddr": "PGHOSTADDR",
    "port": "PGPORT",
    "user": "PGUSER",
    "password": "PGPASSWORD",
    "dbname": "PGDATABASE",
    "sslmode": "PGSSLMODE",
    "connect_timeout": "PGCONNECT_TIMEOUT",
    "service": "PGSERVICE",
    "options": "PGOPTIONS",
    "sslrootcert": "PGSSLROOTCERT",
    "sslcert": "PGSSLCERT",
    "sslkey": "PGSSLKEY",
}


def psql_invocation(
    target: Target, extra: tuple[str, ...] = ()
) -> tuple[list[str], dict[str, str]]:
    """argv and environment to run psql on `target`. The connection settings
    travel as PG* variables: a password in argv would show in `ps`."""
    import shutil

    from pgferry.embedded import wheel_bindir

    bundled = wheel_bindir()
    psql = shutil.which("psql") or (str(bundled / "psql") if bundled else None)
    if not psql:
        raise TargetError("psql not found", hint="install postgresql-client")
    env = dict(os.environ)
    if target.conninfo:
        for key, value in conninfo_to_dict(target.conninfo).items():
            if key in _PSQL_ENV and value is not None:
                env[_PSQL_ENV[key]] = str(value)
    return [psql, *extra], env
