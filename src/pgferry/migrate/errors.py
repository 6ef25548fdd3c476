"""Errors of the migrate feature, re-exported: they all live in pgferry.errors."""

from pgferry.errors import (
    BadSnapshotName,
    ExtensionMissing,
    MigrateError,
    SnapshotCorrupt,
    SnapshotExists,
    SnapshotLost,
    SourceError,
    SourceUnreachable,
    TargetNotEmpty,
    ToolFailed,
    ToolNotFound,
)

__all__ = [
    "BadSnapshotName",
    "ExtensionMissing",
    "MigrateError",
    "SnapshotCorrupt",
    "SnapshotExists",
    "SnapshotLost",
    "SourceError",
    "SourceUnreachable",
    "TargetNotEmpty",
    "ToolFailed",
    "ToolNotFound",
]
