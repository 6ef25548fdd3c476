"""Errors of the migrate feature: subclasses of the one pgferry tree."""

from __future__ import annotations

from pgferry.errors import PgferryError, StoreError, TargetError, UsageError


class MigrateError(PgferryError):
    """A clone, snapshot or verify step failed."""


class ToolNotFound(MigrateError):
    """No pg_dump/pg_restore/psql usable for the source's major version."""


class ToolFailed(MigrateError):
    """pg_dump, pg_restore or psql exited non-zero. Attributes: tool, sqlstate."""


class SourceError(MigrateError):
    """The source database refused or failed. Attributes: table, sqlstate."""


class SourceUnreachable(SourceError):
    transient = True


class SnapshotLost(SourceError):
    """The exported snapshot is gone (its coordinator ended): restart or --resume."""


class TargetNotEmpty(TargetError):
    """The target already holds tables, or an interrupted clone."""


class ExtensionMissing(TargetError):
    """An extension the source uses is not installable on the target."""


class BadSnapshotName(UsageError):
    pass


class SnapshotExists(StoreError):
    pass


class SnapshotCorrupt(StoreError):
    """A stored stream does not match its manifest (checksum or row count)."""
