"""The one exception tree of pgferry.

Every error carries its context as attributes (bucket, key, table, line, ...)
and renders as one line: what happened, then what to do about it.  `transient`
says whether retrying the same call later may succeed; callers (the watcher,
the clone workers) branch on it, never on message text.
"""

from __future__ import annotations

from typing import Any


class PgferryError(Exception):
    """Root of every error pgferry raises on purpose."""

    transient: bool = False
    #: process exit code the CLI uses for this error
    exit_code: int = 1

    def __init__(self, what: str, *, hint: str | None = None, **context: Any) -> None:
        self.what = what
        self.hint = hint
        self.context = context
        for name, value in context.items():
            setattr(self, name, value)
        super().__init__(self.message)

    @property
    def message(self) -> str:
        text = self.what if not self.hint else f"{self.what}; {self.hint}"
        # one line, always: server messages sometimes carry newlines
        return " ".join(text.split())

    def __str__(self) -> str:
        return self.message


class UsageError(PgferryError):
    """The call itself is wrong (bad option, bad URI): fix the command line."""

    exit_code = 2


class CopyOptionsError(UsageError):
    """The COPY options string could not be parsed or names an unknown option."""


# --- object stores ---------------------------------------------------------


class StoreError(PgferryError):
    """Fetching an object failed. Attributes: bucket, key."""

    bucket: str | None
    key: str | None


class BucketNotFound(StoreError):
    pass


class ObjectNotFound(StoreError):
    pass


class AccessDenied(StoreError):
    pass


class CredentialsError(StoreError):
    pass


class StoreUnreachable(StoreError):
    transient = True


class ObjectChanged(StoreError):
    """The object was replaced while we read it (its ETag changed)."""

    transient = True


class TransientStoreError(StoreError):
    transient = True


# --- decoding --------------------------------------------------------------


class DecodeError(PgferryError):
    """The bytes could not be decoded (corrupt or truncated compression)."""


# --- the target database ---------------------------------------------------


class TargetError(PgferryError):
    """The target database refused or failed. Attributes: table, sqlstate."""


class TargetUnreachable(TargetError):
    transient = True


class TableNotFound(TargetError):
    pass


class ColumnNotFound(TargetError):
    pass


class PermissionDenied(TargetError):
    pass


class DataError(TargetError):
    """A row of the file was rejected. Attributes: table, line, column."""


class EmbeddedError(PgferryError):
    """The embedded local PostgreSQL could not be set up or started."""
