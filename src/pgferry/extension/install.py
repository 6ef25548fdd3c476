"""`pgferry extension install`: put aws_commons and aws_s3 into a server's
extension directory, with the fetcher's absolute path fixed in the SQL.

Run it on the database host, as root or the owner of the share directory.
The server's OS user must be able to run this Python: when a directory
above it (or above pgferry's code) is closed to other users, we add the
search bit (o+x, traverse only, no listing) and say so.
"""

from __future__ import annotations

import re
import shutil
import stat
import subprocess
import sys
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from pgferry.errors import PgferryError, UsageError

EXTENSION_FILES = ("aws_commons.control", "aws_commons--1.0.sql", "aws_s3.control")
_SAFE_PATH = re.compile(r"[A-Za-z0-9/._+-]+")


class InstallError(PgferryError):
    """The extension files could not be installed."""


@dataclass
class InstallReport:
    extension_dir: Path
    program: str
    written: list[Path] = field(default_factory=list)
    opened: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [f"installed into {self.extension_dir}:"]
        out += [f"  wrote {p}" for p in self.written]
        out.append(f"  fetcher program: {self.program}")
        out += [
            f"  chmod o+x {p} (so the server's OS user can reach the fetcher)" for p in self.opened
        ]
        out += [f"  {n}" for n in self.notes]
        out.append("next: CREATE EXTENSION aws_s3 CASCADE;  (as a superuser, in each database)")
        return out


def program_command(python: str | None = None) -> str:
    """The fixed command prefix the SQL runs: absolute, shell-safe, isolated
    (-I: no PYTHON* variables, no user site, no cwd on sys.path)."""
    exe = python or sys.executable
    if not Path(exe).is_absolute() or not _SAFE_PATH.fullmatch(exe):
        raise InstallError(
            f"the Python path {exe!r} is not absolute or has characters unsafe in a shell",
            hint="install pgferry under a path of letters, digits and / . _ + -",
        )
    return f"{exe} -I -m pgferry.extension.fetcher"


def render_aws_s3(program: str) -> str:
    sql = resources.files("pgferry.extension") / "sql"
    parts = ("aws_s3--1.0.sql", "aws_s3_import.sql", "aws_s3_export.sql")
    text = "".join((sql / name).read_text() for name in parts)
    return text.replace("@PROGRAM@", program)


def pg_config_value(pg_config: Path, flag: str) -> str:
    try:
        out = subprocess.run(
            [str(pg_config), flag], check=True, capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.SubprocessError) as e:
        raise InstallError(f"cannot run {pg_config} {flag}: {e}", hint="pass --pg-config") from e
    return out.stdout.strip()


def pg_config_major(pg_config: Path) -> int:
    version = pg_config_value(pg_config, "--version")  # "PostgreSQL 15.8 (Debian ...)"
    m = re.search(r"PostgreSQL (\d+)", version)
    if not m:
        raise InstallError(f"unexpected {pg_config} --version output {version!r}")
    return int(m.group(1))


def candidates() -> list[Path]:
    """pg_config programs on this host: Debian's, the embedded wheel's, PATH's."""
    from pgferry.embedded import wheel_bindir

    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_config"))
    wheel = wheel_bindir()
    if wheel is not None and (wheel / "pg_config").exists():
        found.append(wheel / "pg_config")
    on_path = shutil.which("pg_config")
    if on_path and Path(on_path).resolve() not in {p.resolve() for p in found}:
        found.append(Path(on_path))
    return found


def server_share_dir(target: str) -> tuple[Path | None, int]:
    """The server's own SHAREDIR (superusers may read pg_config) and major version."""
    import psycopg

    from pgferry.target import connect, resolve_target

    conn = connect(resolve_target(target))
    try:
        row = conn.execute("SELECT current_setting('server_version_num')::int / 10000").fetchone()
        major = int(row[0]) if row else 0
        try:
            row = conn.execute("SELECT setting FROM pg_config WHERE name = 'SHAREDIR'").fetchone()
            return (Path(row[0]) if row else None), major
        except psycopg.errors.InsufficientPrivilege:
            return None, major
    finally:
        conn.close()


def find_extension_dir(pg_config: Path | None, target: str | None) -> Path:
    if pg_config is not None:
        return Path(pg_config_value(pg_config, "--sharedir")) / "extension"
    if target is not None:
        share, major = server_share_dir(target)
        if share is not None:
            return share / "extension"
        matching = [p for p in candidates() if pg_config_major(p) == major]
        if not matching:
            raise UsageError(
                f"no pg_config for PostgreSQL {major} on this host",
                hint="run this on the database host, or pass --pg-config",
            )
        return Path(pg_config_value(matching[0], "--sharedir")) / "extension"
    found = candidates()
    dirs = sorted({Path(pg_config_value(p, "--sharedir")) / "extension" for p in found})
    if len(dirs) == 1:
        return dirs[0]
    listed = ", ".join(str(p) for p in found) or "none"
    raise UsageError(
        f"cannot tell which PostgreSQL to install into (pg_config found: {listed})",
        hint="pass --target URL of the server, or --pg-config PATH",
    )


def open_for_others(paths: list[Path]) -> list[Path]:
    """Add o+x to closed directories above `paths`; return what changed."""
    changed: list[Path] = []
    for path in paths:
        for parent in [p for p in [path, *path.parents] if p.is_dir()]:
            mode = parent.stat().st_mode
            if not mode & stat.S_IXOTH:
                try:
                    parent.chmod(mode | stat.S_IXOTH)
                except PermissionError as e:
                    raise InstallError(
                        f"{parent} is closed to other users and we may not open it",
                        hint="run as root, or install pgferry where the server's user can read it",
                    ) from e
                changed.append(parent)
    return changed


def runtime_paths() -> list[Path]:
    import pgferry

    exe = Path(sys.executable)
    return [exe.parent, exe.resolve().parent, Path(sys.base_prefix), Path(pgferry.__file__).parent]


def check_runs(target: str, program: str) -> str:
    """Have the server run the fetcher once (creates its spool directory)."""
    import psycopg
    from psycopg import sql

    from pgferry.target import connect, resolve_target

    conn = connect(resolve_target(target))
    try:
        conn.execute(
            sql.SQL("COPY (SELECT 1) TO PROGRAM {}").format(sql.Literal(f"exec {program} prepare"))
        )
        conn.commit()
    except psycopg.errors.InsufficientPrivilege:
        return "not checked that the server can run the fetcher (connect as a superuser to check)"
    except psycopg.Error as e:
        raise InstallError(
            f"the server could not run the fetcher: {e.diag.message_primary or e}",
            hint="check that its OS user can read and execute " + program.split()[0],
        ) from None
    finally:
        conn.close()
    return "checked: the server ran the fetcher as its OS user"


def install(target: str | None = None, pg_config: Path | None = None) -> InstallReport:
    program = program_command()
    ext_dir = find_extension_dir(pg_config, target)
    if not ext_dir.is_dir():
        raise InstallError(f"{ext_dir} does not exist", hint="is this the server's pg_config?")
    report = InstallReport(ext_dir, program)
    report.opened = open_for_others(runtime_paths())
    sql = resources.files("pgferry.extension") / "sql"
    contents: dict[str, str] = {name: (sql / name).read_text() for name in EXTENSION_FILES}
    contents["aws_s3--1.0.sql"] = render_aws_s3(program)
    for name, text in contents.items():
        dest = ext_dir / name
        try:
            dest.write_text(text)
            dest.chmod(0o644)
        except PermissionError as e:
            raise InstallError(
                f"cannot write {dest}", hint="run as root or as the owner of " + str(ext_dir)
            ) from e
        report.written.append(dest)
    if target is not None:
        report.notes.append(check_runs(target, program))
    return report


def as_dict(report: InstallReport) -> dict[str, Any]:
    return {
        "extension_dir": str(report.extension_dir),
        "program": report.program,
        "written": [str(p) for p in report.written],
        "opened": [str(p) for p in report.opened],
        "notes": report.notes,
    }
