"""Where a replica set-up is recorded, so that status, promote, drop and
`create --resume` find it by name.

One JSON file per set-up in the state directory (PGFERRY_STATE_DIR, else
$XDG_STATE_HOME/pgferry/replicas, else ~/.local/state/pgferry/replicas),
written atomically before each step that leaves something on a server:
a crash at any point leaves a record naming what may exist.  Connection
strings are stored without their password (pass --source/--target again,
or use PGPASSWORD / ~/.pgpass); the file is private to its owner.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from psycopg.conninfo import conninfo_to_dict, make_conninfo

from pgferry.errors import ReplicaNotFound, UsageError

NAME = re.compile(r"[a-z][a-z0-9_]{0,39}")
#: the schema of the heartbeat table, on both sides
HEARTBEAT_SCHEMA = "pgferry_replica"
HEARTBEAT_TABLE = "heartbeat"


class Stage:
    """How far `create` or `promote` got (each recorded before the step)."""

    PREFLIGHT = "preflight"
    SLOT = "slot"  # heartbeat, publication and slot may exist on the source
    COPY = "copy"  # the slot exists; the initial copy is running
    SUBSCRIBE = "subscribe"  # copy done; the subscription may exist
    STREAMING = "streaming"  # set up: the target follows the source
    PROMOTING = "promoting"  # writes may be blocked on the source
    PROMOTED = "promoted"


@dataclass
class Setup:
    name: str
    source: str
    target: str
    #: the source as the target server reaches it (CREATE SUBSCRIPTION)
    source_for_target: str
    tables: list[str] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)
    #: 'schema.table' of every published table (the heartbeat included)
    published: list[str] = field(default_factory=list)
    stage: str = Stage.PREFLIGHT
    consistent_lsn: str | None = None
    #: writes blocked on the source by promote (ALTER DATABASE ... SET
    #: default_transaction_read_only); `previous_read_only` is what to restore
    writes_blocked: bool = False
    previous_read_only: str | None = None
    created_at: str | None = None
    promoted_at: str | None = None
    #: promote --reverse: the old source subscribes to the new primary
    reverse: bool = False
    #: the target as the source server reaches it (the reverse subscription)
    target_for_source: str | None = None

    @property
    def object_name(self) -> str:
        """The slot's, the publication's and the subscription's name."""
        return object_name(self.name)

    @property
    def reverse_name(self) -> str:
        """The same for the way back (promote --reverse)."""
        return reverse_name(self.name)


def object_name(name: str) -> str:
    return f"pgferry_{name}"


def reverse_name(name: str) -> str:
    return f"pgferry_{name}_back"


def check_name(name: str) -> str:
    if not NAME.fullmatch(name):
        raise UsageError(
            f"--name {name!r} is not a valid replica name",
            hint="use 1-40 lower-case letters, digits and _, starting with a letter",
        )
    return name


def state_dir() -> Path:
    if d := os.environ.get("PGFERRY_STATE_DIR"):
        return Path(d)
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "pgferry" / "replicas"


def path_of(name: str) -> Path:
    return state_dir() / f"{check_name(name)}.json"


def without_password(conninfo: str) -> str:
    if "://" in conninfo:
        parts = urlsplit(conninfo)
        if parts.password is None:
            return conninfo
        host = parts.hostname or ""
        if parts.port:
            host = f"{host}:{parts.port}"
        user = f"{parts.username}@" if parts.username else ""
        return urlunsplit((parts.scheme, user + host, parts.path, parts.query, parts.fragment))
    params = {k: v for k, v in conninfo_to_dict(conninfo).items() if k != "password"}
    return make_conninfo("", **{k: v for k, v in params.items() if v is not None})


def exists(name: str) -> bool:
    return path_of(name).exists()


def save(setup: Setup) -> None:
    d = state_dir()
    d.mkdir(parents=True, exist_ok=True, mode=0o700)
    data: dict[str, Any] = asdict(setup)
    for key in ("source", "target", "source_for_target", "target_for_source"):
        if data[key] is not None:
            data[key] = without_password(data[key])
    tmp = d / f".{setup.name}.json.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=2)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path_of(setup.name))


def load(name: str) -> Setup:
    p = path_of(name)
    try:
        data = json.loads(p.read_text())
    except FileNotFoundError:
        raise ReplicaNotFound(
            f"no replica set-up named {name!r} is recorded (looked in {state_dir()})",
            hint="run 'pgferry replica create' first, or pass the --name it was created with",
        ) from None
    known = set(Setup.__dataclass_fields__)
    return Setup(**{k: v for k, v in data.items() if k in known})


def forget(name: str) -> None:
    path_of(name).unlink(missing_ok=True)
