"""Migrate a whole database: parallel clone, snapshots to and from S3, verify.

Public entry points (one per CLI command): `clone`, `verify`,
`create_snapshot`, `restore_snapshot`, `list_snapshots`, `delete_snapshot`.
"""

from __future__ import annotations

from pgferry.migrate.clone import CloneConfig, CloneResult, clone
from pgferry.migrate.progress import NullReporter, Reporter

__all__ = ["CloneConfig", "CloneResult", "NullReporter", "Reporter", "clone"]
