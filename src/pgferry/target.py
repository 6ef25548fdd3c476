"""Which PostgreSQL to talk to, and how to connect to it.

Resolution order: an explicit URL, then PGFERRY_TARGET, then DATABASE_URL,
then the libpq environment (PGHOST, PGSERVICE, ...: libpq reads those
itself), and last the embedded local server pgferry starts on its own.
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import pq
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from pgferry.conninfo import check, classify, option_of, scrub
from pgferry.errors import BadConnectionString, TargetError

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
        try:
            parts = urlsplit(conninfo)
            port = parts.port
        except ValueError:  # a bad port: checked (and reported) elsewhere
            return scrub(conninfo)
        if parts.password is None:
            return scrub(conninfo)
        host = parts.hostname or ""
        if port:
            host = f"{host}:{port}"
        netloc = f"{parts.username or ''}:****@{host}"
        return scrub(urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment)))
    try:
        params = conninfo_to_dict(conninfo)
    except psycopg.ProgrammingError:
        return "(unparsable connection string)"
    if "password" in params:
        params["password"] = "****"  # noqa: S105
    return scrub(make_conninfo("", **{k: v for k, v in params.items() if v is not None}))


def resolve_target(explicit: str | None = None) -> Target:
    """The target to use; a malformed URL raises BadConnectionString naming
    the flag or variable it came from."""
    if explicit:
        return Target(check(explicit, "--target"), "flag")
    for var in ("PGFERRY_TARGET", "DATABASE_URL"):
        if os.environ.get(var):
            return Target(check(os.environ[var], var), var)
    if any(os.environ.get(var) for var in LIBPQ_ENV):
        return Target("", "libpq environment")
    from pgferry.embedded import ensure_embedded

    server = ensure_embedded()
    _announce(server.describe())
    return Target(server.conninfo(), "embedded")


_announced = False


def _announce(text: str) -> None:
    # said once per process: a command may resolve the target more than once
    global _announced
    if not _announced:
        _announced = True
        logging.getLogger("pgferry").warning(
            "using the embedded %s", text, extra={"prefix": "note"}
        )


def connect(
    target: Target | str,
    *,
    autocommit: bool = False,
    side: str = "target",
    **kw: Any,
) -> psycopg.Connection[Any]:
    """Open a connection, turning failures into one-line, password-free
    errors of their own class (see pgferry.conninfo.classify)."""
    tgt = target if isinstance(target, Target) else Target(target, "flag")
    option = "--source" if side == "source" else option_of(tgt.origin)
    if tgt.conninfo:
        check(tgt.conninfo, option)
    try:
        return psycopg.connect(tgt.conninfo, autocommit=autocommit, **kw)
    except psycopg.Error as e:
        raise classify(e, tgt.describe(), option=option, side=side) from None
    except ValueError as e:  # psycopg's own parsing, e.g. PGPORT=abc
        raise BadConnectionString(
            f"{option}: bad connection setting: {scrub(str(e))}",
            hint="check the URL and the PG* environment variables",
            option=option,
        ) from None


# libpq keywords that have no PG* variable and must not go to argv
_SECRET_KEYS = ("password", "sslpassword", "oauth_client_secret", "scram_client_key")


def psql_invocation(
    target: Target, extra: tuple[str, ...] = ()
) -> tuple[list[str], dict[str, str]]:
    """argv and environment to run psql on `target`: the psql of the server's
    major version (the bundled one for the embedded server), every URL
    parameter as its PG* variable (a password in argv would show in `ps`),
    then psql's own arguments, which win over the variables."""
    env = dict(os.environ)
    params = {k: str(v) for k, v in conninfo_to_dict(target.conninfo).items() if v is not None}
    envvars = {
        o.keyword.decode(): o.envvar.decode() for o in pq.Conninfo.get_defaults() if o.envvar
    }
    rest = {}
    for key, value in params.items():
        if key in envvars:
            env[envvars[key]] = value
        elif key not in _SECRET_KEYS:
            rest[key] = value  # keepalives, fallback_application_name, ...
    argv = [_psql_for(target, extra, env)]
    if rest:
        # without a password, a conninfo in argv is harmless; psql merges
        # it with the PG* variables
        argv += ["-d", make_conninfo("", **rest, dbname=params.get("dbname", ""))]
    return [*argv, *extra], env


_CONNECTION_FLAGS = ("--host", "--port", "--username", "--dbname")


def _is_connection_flag(arg: str) -> bool:
    """-h/-p/-U/-d, also as -hHOST, or a long form, also as --host=HOST."""
    return arg[:2] in ("-h", "-p", "-U", "-d") or arg.split("=", 1)[0] in _CONNECTION_FLAGS


def _psql_for(target: Target, extra: tuple[str, ...], env: dict[str, str]) -> str:
    from pgferry.embedded import wheel_bindir
    from pgferry.migrate.tools import find_tool

    bundled = wheel_bindir()
    if target.origin == "embedded" and bundled:
        return str(bundled / "psql")
    try:
        with connect(target, connect_timeout=10) as conn:
            major = conn.info.server_version // 10000
    except TargetError:
        # psql's own -h/-p/-U/-d point elsewhere: let psql connect and report
        if not any(_is_connection_flag(a) for a in extra):
            raise
        found = shutil.which("psql", path=env.get("PATH")) or (
            str(bundled / "psql") if bundled else None
        )
        if not found:
            raise TargetError("psql not found", hint="install postgresql-client") from None
        return found
    return str(find_tool("psql", major).path)
