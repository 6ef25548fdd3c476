"""Connection strings: checked before use, and kept out of every message.

`check` turns a malformed --source/--target/PGFERRY_TARGET/DATABASE_URL into
one usage error naming where it came from, before libpq or psycopg see it:
psycopg raises a bare ValueError on a bad port, and libpq repeats the whole
string, password included, in its parse errors.

`scrub` removes passwords from any text that came back from a driver (libpq,
psycopg, PyMySQL, boto3, pg_dump's stderr) before it is shown or logged.  It
masks the shapes a password takes in such text (URL userinfo, `password=`,
`PGPASSWORD=`), then every password pgferry has seen: those of the strings
passed to `check`, PGPASSWORD, the service files and the AWS secrets of the
environment.

`classify` names a failed connection attempt.  psycopg gives connect-time
errors no SQLSTATE (libpq reports them as text only), so this is the one
place where pgferry reads message text: libpq's own (needs_password comes
from libpq itself) and the server's in English; anything unrecognised (a
server with lc_messages in another language too) falls back to
"unreachable".
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from pgferry.errors import (
    BadConnectionString,
    DatabaseNotFound,
    LoginRejected,
    PasswordRejected,
    PgferryError,
    RoleNotFound,
    SourceUnreachable,
    TargetUnreachable,
)

if TYPE_CHECKING:
    import psycopg

# psycopg is imported where it is used: every PgferryError's message goes
# through scrub(), including in processes that never touch a database

POSTGRES_SCHEMES = ("postgresql", "postgres")
#: other engines `clone`/`verify` read from (pgferry.sources); --source only
FOREIGN_SCHEMES = ("mysql", "mariadb", "sqlite")
MASK = "****"
_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_known: set[str] = set()


# -- scrubbing ------------------------------------------------------------

_PATTERNS = [
    # scheme://user:PASSWORD@host (any scheme: mysql://, s3 endpoints, ...)
    (re.compile(r"(://[^\s/@:\"']*):([^\s@\"']*)@"), rf"\1:{MASK}@"),
    # password=VALUE / sslpassword='VALUE' in a conninfo or a query string
    (
        re.compile(r"(\b(?:ssl)?password\s*=\s*)('(?:\\.|[^'\\])*'?|[^\s&\"',;)]+)", re.I),
        rf"\1{MASK}",
    ),
    (re.compile(r"(\bPGPASSWORD\s*[=:]\s*)(\S+)"), rf"\1{MASK}"),
    # SQL: PASSWORD 'x' (CREATE ROLE), password 'x' in OPTIONS (a user mapping)
    (re.compile(r"(\b(?:ssl)?password\s+)'(?:[^']|'')*'", re.I), rf"\1'{MASK}'"),
    # user:PASSWORD@host with the scheme forgotten
    (re.compile(r"(^|[\s\"'(])([\w.%+-]+):([^\s@/\"':]+)@"), rf"\1\2:{MASK}@"),
]
# shorter "secrets" would garble ordinary words; they protect nothing anyway
_MIN_SECRET = 4


def remember_secret(secret: str | None) -> None:
    """Mask `secret` in every later scrubbed text."""
    if secret and len(secret) >= _MIN_SECRET:
        _known.add(secret)
        decoded = unquote(secret)
        if decoded != secret and len(decoded) >= _MIN_SECRET:
            _known.add(decoded)


def _service_passwords() -> list[str]:
    files = [
        os.environ.get("PGSERVICEFILE") or os.path.expanduser("~/.pg_service.conf"),
        str(Path(os.environ.get("PGSYSCONFDIR", "/etc/postgresql-common")) / "pg_service.conf"),
    ]
    found = []
    for name in files:
        try:
            text = Path(name).read_text(errors="replace")
        except OSError:
            continue
        for line in text.splitlines():
            key, sep, value = line.partition("=")
            if sep and key.strip().lower() == "password":
                found.append(value.strip())
    return found


def _secrets() -> list[str]:
    env = [os.environ.get(v) for v in ("PGPASSWORD", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")]
    found = _known | {s for s in [*env, *_service_passwords()] if s and len(s) >= _MIN_SECRET}
    # longest first: a secret that contains another is masked whole
    return sorted(found, key=len, reverse=True)


def scrub(text: str) -> str:
    """`text` with every password it may carry replaced by ****."""
    for pattern, repl in _PATTERNS:
        text = pattern.sub(repl, text)
    for secret in _secrets():
        text = text.replace(secret, MASK)
    return text


# -- checking -------------------------------------------------------------


def option_of(origin: str) -> str:
    """The name a user knows for where a connection string came from."""
    return "--target" if origin == "flag" else origin


def check(text: str, option: str, *, schemes: tuple[str, ...] = POSTGRES_SCHEMES) -> str:
    """Return `text` when libpq can use it, else raise BadConnectionString
    naming `option`; its password is remembered for `scrub` either way."""
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    m = _URL.match(text)
    if m or "@" in text:
        _remember_url_password(text)
    if m and option == "--source" and m.group(1).lower() in FOREIGN_SCHEMES:
        from pgferry.sources.url import parse

        parse(text)  # raises BadConnectionString naming --source
        return text
    if m:
        _check_url(text, m.group(1), option, schemes)
    try:
        params = conninfo_to_dict(text)
    except psycopg.ProgrammingError as e:
        raise _bad(option, _reason(e), url=bool(m)) from None
    remember_secret(str(params.get("password") or ""))
    for port in str(params.get("port") or "").split(","):
        if port and not (port.isdigit() and 0 < int(port) < 65536):
            raise _bad(option, f"the port {port!r} is not a number from 1 to 65535", url=bool(m))
    if "host" in params and not str(params["host"]).strip():
        raise _bad(option, "the host is empty", url=bool(m))
    return text


def _remember_url_password(text: str) -> None:
    netloc = text.split("://", 1)[-1].split("/", 1)[0].split("?", 1)[0]
    userinfo, at, _ = netloc.rpartition("@")
    if at and ":" in userinfo:
        remember_secret(userinfo.split(":", 1)[1])


def _check_url(text: str, scheme: str, option: str, schemes: tuple[str, ...]) -> None:
    if scheme.lower() not in schemes:
        known = " or ".join(f"{s}://" for s in schemes)
        raise _bad(option, f"unknown scheme '{scheme}://' (expected {known})", url=True)
    if any(c.isspace() for c in text):
        raise _bad(option, "the URL contains spaces", hint="percent-encode them as %20")
    if not text.isascii():
        raise _bad(
            option,
            "the URL contains non-ASCII characters",
            hint="percent-encode them (in Python: urllib.parse.quote(password, safe=''))",
        )
    netloc = urlsplit(text).netloc
    hosts = netloc.rpartition("@")[2]
    query_host = "host=" in text.partition("?")[2]
    for hostport in hosts.split(","):
        host, port = _split_hostport(hostport)
        # `user@/db` is libpq's default socket; `@:5432` or `h1,,h2` a typo
        if (port or "," in hosts) and not host and not query_host:
            raise _bad(option, "the host is empty", url=True)


def _split_hostport(hostport: str) -> tuple[str, str]:
    if hostport.startswith("["):
        host, _, rest = hostport[1:].partition("]")
        return host, rest.removeprefix(":")
    host, _, port = hostport.partition(":")
    return host, port


def _reason(e: psycopg.Error) -> str:
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    return scrub(lines[0] if lines else type(e).__name__)


def _bad(
    option: str, what: str, *, url: bool = True, hint: str | None = None
) -> BadConnectionString:
    example = (
        "write it as postgresql://user@host:5432/dbname (percent-encode special characters)"
        if url
        else "write it as postgresql://user@host:5432/dbname or 'host=... dbname=...'"
    )
    return BadConnectionString(
        f"{option}: bad connection string: {what}", hint=hint or example, option=option
    )


# -- naming a failed connection ---------------------------------------------

_ROLE = re.compile(r'role "(.+?)" does not exist')
_DATABASE = re.compile(r'database "(.+?)" does not exist')
_LOGIN = (
    "no pg_hba.conf entry",
    "pg_hba.conf rejects",
    "is not permitted to log in",
    "Peer authentication failed",
    "Ident authentication failed",
)
_NO_SSL = ("server does not support SSL", "SSL is not enabled", "SSL off")


def classify(e: psycopg.Error, where: str, *, option: str, side: str = "target") -> PgferryError:
    """The pgferry error for a failed connection to `where` (already masked)."""
    reason = _reason(e)
    text = scrub(str(e))
    state = e.sqlstate or ""
    prefix = "source: " if side == "source" else ""
    needs_password = bool(getattr(getattr(e, "pgconn", None), "needs_password", False))
    if state == "28P01" or "password authentication failed" in text:
        return PasswordRejected(
            f"{prefix}the server at {where} rejected the password: {reason}",
            hint="check the password (in the URL, PGPASSWORD or ~/.pgpass) and the user name",
            sqlstate=state or None,
        )
    if needs_password or "no password supplied" in text:
        return PasswordRejected(
            f"{prefix}the server at {where} asks for a password and none was given",
            hint="put it in ~/.pgpass or PGPASSWORD (not on the command line)",
            sqlstate=state or None,
        )
    if m := _ROLE.search(text):
        return RoleNotFound(
            f'{prefix}role "{m.group(1)}" does not exist on the server at {where}',
            hint=f"check the user name in {option}, or create the role (CREATE ROLE ... LOGIN)",
            sqlstate=state or None,
        )
    if state == "3D000" or (m := _DATABASE.search(text)):
        name = m.group(1) if m else "?"
        return DatabaseNotFound(
            f'{prefix}database "{name}" does not exist on the server at {where}',
            hint=f"create it first, or point {option} at an existing database",
            sqlstate=state or None,
        )
    if any(s in text for s in _NO_SSL):
        return LoginRejected(
            f"{prefix}the server at {where} refused the connection: {reason}",
            hint=f"make sslmode in {option} match the server "
            "(require TLS only where the server offers it)",
            sqlstate=state or None,
        )
    if state.startswith("28") or any(s in text for s in _LOGIN):
        return LoginRejected(
            f"{prefix}the server at {where} refused the login: {reason}",
            hint="its pg_hba.conf or the role's LOGIN attribute does not allow this "
            "connection: ask the server's administrator",
            sqlstate=state or None,
        )
    unreachable = SourceUnreachable if side == "source" else TargetUnreachable
    return unreachable(
        f"{prefix}cannot connect to {where}: {reason}",
        hint=f"check that the server is running and the URL ({option}) is right"
        if side == "target"
        else "check --source and that the server is running",
        sqlstate=state or None,
    )
