"""A real MariaDB server for the suite: Debian's mariadb-server (scripts/test
installs it), run as the unprivileged `mysql` user from a fresh data
directory on a free port, stopped by the session fixture."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pymysql

from pgferry.embedded import free_port

USER = "pgf"
PASSWORD = "mariadb-secret-pw"


def _binary(name: str) -> str:
    for d in ("/usr/sbin", "/usr/bin"):
        if Path(d, name).exists():
            return str(Path(d, name))
    found = shutil.which(name)
    if not found:
        raise RuntimeError(f"{name} not found: run scripts/test (it installs mariadb-server)")
    return found


@dataclass
class MariaDB:
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="pgferry-mariadb-")))
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    #: more server options, e.g. --ssl-cert=... (files under `root`, which
    #: the server's user can read)
    args: list[str] = field(default_factory=list)

    def start(self) -> MariaDB:
        data = self.root / "data"
        data.mkdir(parents=True)
        run_as: list[str] = []
        if os.geteuid() == 0:
            for path in [self.root, *self.root.rglob("*")]:
                shutil.chown(path, "mysql", "mysql")
            run_as = ["--user=mysql"]
        subprocess.run(
            [_binary("mariadb-install-db"), "--no-defaults", f"--datadir={data}", *run_as,
             "--auth-root-authentication-method=normal", "--skip-test-db"],
            check=True, capture_output=True,
        )  # fmt: skip
        self.port = free_port()
        self.proc = subprocess.Popen(
            [_binary("mariadbd"), "--no-defaults", f"--datadir={data}", *run_as,
             f"--port={self.port}", "--bind-address=127.0.0.1", f"--socket={self.root}/sock",
             f"--pid-file={self.root}/pid", f"--log-error={self.root}/error.log",
             "--skip-name-resolve", "--innodb-buffer-pool-size=64M", "--innodb-log-file-size=16M",
             "--skip-log-bin", "--character-set-server=utf8mb4", *self.args],
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while True:
            try:
                with self.admin() as c, c.cursor() as cur:
                    cur.execute(
                        f"CREATE USER IF NOT EXISTS '{USER}'@'%' IDENTIFIED BY '{PASSWORD}'"
                    )
                    cur.execute(f"GRANT ALL ON *.* TO '{USER}'@'%'")
                return self
            except pymysql.err.OperationalError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    log = (self.root / "error.log").read_text(errors="replace")[-2000:]
                    raise RuntimeError(f"mariadbd did not start: {log}") from None
                time.sleep(0.1)

    def admin(self, database: str | None = None) -> Any:
        return pymysql.connect(host="127.0.0.1", port=self.port, user="root", password="",
                               database=database, autocommit=True)  # fmt: skip

    def url(self, database: str, user: str = USER, password: str | None = PASSWORD) -> str:
        auth = f"{user}:{password}" if password is not None else user
        return f"mysql://{auth}@127.0.0.1:{self.port}/{database}"

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.root, ignore_errors=True)
