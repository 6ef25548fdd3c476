"""--source URLs of other engines: mysql://, mariadb:// and sqlite:///path.

    mysql://user[:password]@host[:port]/database[?ssl-mode=...&ssl-ca=...]
    sqlite:///relative/or/absolute/path.db   (sqlite:////abs/path.db also works)

The password may also come from MYSQL_PWD, so that it stays out of argv.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote, urlsplit

from pgferry.conninfo import remember_secret
from pgferry.errors import BadConnectionString

MYSQL_SCHEMES = ("mysql", "mariadb")
SSL_MODES = ("disabled", "preferred", "required", "verify-ca", "verify-identity")


@dataclass(frozen=True)
class MySQLURL:
    host: str
    port: int
    user: str
    password: str = field(repr=False)
    database: str
    ssl_mode: str = "preferred"
    ssl_ca: str | None = None
    ssl_cert: str | None = None
    ssl_key: str | None = None

    @property
    def where(self) -> str:
        """host:port/database, never the password: for messages."""
        return f"{self.host}:{self.port}/{self.database}"


@dataclass(frozen=True)
class SQLiteURL:
    path: str

    @property
    def where(self) -> str:
        return self.path


def is_foreign(url: str) -> bool:
    """True when `url` names a MariaDB/MySQL or SQLite source."""
    scheme = url.partition("://")[0].lower() if "://" in url else ""
    return scheme in (*MYSQL_SCHEMES, "sqlite")


def _bad(what: str, example: str) -> BadConnectionString:
    return BadConnectionString(
        f"--source: bad connection string: {what}", hint=f"write it as {example}", option="--source"
    )


def parse(url: str) -> MySQLURL | SQLiteURL:
    scheme, _, rest = url.partition("://")
    if scheme.lower() == "sqlite":
        path = rest[1:] if rest.startswith("/") else ""
        if not path:
            raise _bad("no file path after sqlite:///", "sqlite:///path/to/file.db")
        # sqlite:////abs -> /abs ; sqlite:///rel -> rel (SQLAlchemy's convention)
        return SQLiteURL(unquote(path.partition("?")[0]))
    example = "mysql://user@host:3306/database (password in MYSQL_PWD)"
    parts = urlsplit(url)
    if parts.password:
        remember_secret(parts.password)
    try:
        port = parts.port or 3306
    except ValueError:
        raise _bad("the port is not a number from 1 to 65535", example) from None
    if not parts.hostname:
        raise _bad("the host is empty", example)
    database = unquote(parts.path.lstrip("/"))
    if not database or "/" in database:
        raise _bad("no database name after the host", example)
    opts = {k.lower().replace("_", "-"): v for k, v in parse_qsl(parts.query)}
    unknown = sorted(set(opts) - {"ssl-mode", "ssl-ca", "ssl-cert", "ssl-key"})
    if unknown:
        raise _bad(f"unknown option {unknown[0]!r}", example + "?ssl-mode=required&ssl-ca=FILE")
    mode = opts.get("ssl-mode", "preferred").lower()
    if mode not in SSL_MODES:
        raise _bad(f"ssl-mode must be one of {', '.join(SSL_MODES)}", example)
    password = unquote(parts.password) if parts.password else os.environ.get("MYSQL_PWD", "")
    remember_secret(password)
    return MySQLURL(
        host=parts.hostname,
        port=port,
        user=unquote(parts.username or "root"),
        password=password,
        database=database,
        ssl_mode=mode,
        ssl_ca=opts.get("ssl-ca"),
        ssl_cert=opts.get("ssl-cert"),
        ssl_key=opts.get("ssl-key"),
    )
