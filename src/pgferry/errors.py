"""The one exception tree of pgferry.

Every error carries its context as attributes (bucket, key, table, line, ...)
and renders as one line: what happened, then what to do about it.  `transient`
says whether retrying the same call later may succeed; callers (the watcher,
the clone workers) branch on it, never on message text.
"""

from __future__ import annotations


class PgferryError(Exception):
    """Root of every error pgferry raises on purpose.

    Context attributes are declared here, typed, on every error: ``None`` when
    they do not apply, so callers can read ``e.table`` without ``getattr``.
    Subclasses with more context (``tool``, ``datadir``) add keyword-only
    parameters of their own.
    """

    transient: bool = False
    #: process exit code the CLI uses for this error
    exit_code: int = 1

    def __init__(
        self,
        what: str,
        *,
        hint: str | None = None,
        bucket: str | None = None,
        key: str | None = None,
        table: str | None = None,
        line: int | None = None,
        column: str | None = None,
        sqlstate: str | None = None,
    ) -> None:
        self.what = what
        self.hint = hint
        self.bucket = bucket
        self.key = key
        self.table = table
        self.line = line
        self.column = column
        self.sqlstate = sqlstate
        super().__init__(self.message)

    @property
    def message(self) -> str:
        text = self.what if not self.hint else f"{self.what}; {self.hint}"
        # one line, always: server messages sometimes carry newlines
        from pgferry.conninfo import scrub  # a driver's text may repeat a password

        return scrub(" ".join(text.split()))

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


class TargetBusy(TargetError):
    """The server rolled the load back for a reason that may pass: a deadlock
    or serialization failure (SQLSTATE class 40), or resources running short
    (class 53: too many connections, out of memory, disk full)."""

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

    def __init__(self, what: str, *, hint: str | None = None, datadir: str | None = None) -> None:
        self.datadir = datadir
        super().__init__(what, hint=hint)


# --- migrate ---------------------------------------------------------------


class MigrateError(PgferryError):
    """A clone, snapshot or verify step failed."""


class ToolNotFound(MigrateError):
    """No pg_dump/pg_restore/psql usable for the source's major version."""

    def __init__(self, what: str, *, hint: str | None = None, tool: str | None = None) -> None:
        self.tool = tool
        super().__init__(what, hint=hint)


class ToolFailed(MigrateError):
    """pg_dump, pg_restore or psql exited non-zero. Attributes: tool, sqlstate."""

    def __init__(
        self,
        what: str,
        *,
        hint: str | None = None,
        tool: str | None = None,
        sqlstate: str | None = None,
    ) -> None:
        self.tool = tool
        super().__init__(what, hint=hint, sqlstate=sqlstate)


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


class TargetTooOld(TargetError):
    """The target's major version is older than the source's: pg_restore
    cannot take a schema back to an older server."""


class BadSnapshotName(UsageError):
    pass


class SnapshotExists(StoreError):
    pass


class SnapshotCorrupt(StoreError):
    """A stored stream does not match its manifest (checksum or row count)."""


# --- added by later work (keep new classes below, grouped by feature) -------


# --- client import: inputs it cannot read ---


class UnsupportedFormat(DecodeError):
    """The object is in a format pgferry does not read (an archive, xz, lz4,
    Parquet, UTF-16 text). Attributes: bucket, key."""


# --- connections ---------------------------------------------------------------


class BadConnectionString(UsageError):
    """A connection string (URL or key=value conninfo) is malformed.
    Attribute: option (--source, --target, PGFERRY_TARGET, DATABASE_URL)."""

    def __init__(self, what: str, *, hint: str | None = None, option: str | None = None) -> None:
        self.option = option
        super().__init__(what, hint=hint)


class PasswordRejected(PermissionDenied):
    """The server refused the password, or none was given where one is needed."""


class RoleNotFound(PermissionDenied):
    """The user named in the connection string does not exist on the server."""


class LoginRejected(PermissionDenied):
    """The server refused the login itself (pg_hba.conf, NOLOGIN role, peer auth)."""


class DatabaseNotFound(TargetError):
    """The database named in the connection string does not exist."""


# --- clone fidelity ---


class DumpUnreadable(MigrateError):
    """pg_dump's archive could not be read (damaged, or an unknown version)."""


class PostDataIncomplete(MigrateError):
    """Some post-data items (triggers, policies, comments, ...) failed; the
    rest is restored.  `missing` lists the failed items, one line each."""

    def __init__(
        self, what: str, *, hint: str | None = None, missing: list[str] | None = None
    ) -> None:
        self.missing = list(missing or [])
        super().__init__(what, hint=hint)


class IndexesInvalid(MigrateError):
    """Indexes left invalid on the target (pg_index.indisvalid false)."""

    def __init__(
        self, what: str, *, hint: str | None = None, indexes: list[str] | None = None
    ) -> None:
        self.indexes = list(indexes or [])
        super().__init__(what, hint=hint)


# --- snapshots: formats, listing, selections that cannot be restored ---


class UnsupportedSnapshot(StoreError):
    """The manifest names a snapshot format this pgferry does not read."""


class NotASnapshot(StoreError):
    """The URI names no snapshot (no manifest and no create marker)."""


class SelectionNotRestorable(UsageError):
    """A --table/--exclude selection keeps objects that need ones left out."""


# --- verify ---


class VerifyIncomplete(MigrateError):
    """verify could not finish (a server went away, a query failed): nothing
    was decided, which exit code 2 keeps apart from 1, "differences found"."""

    exit_code = 2


# --- watch (continuous loading of a prefix) ---


class LedgerEntryNotFound(PgferryError):
    """`pgferry files retry|skip KEY` named no object the ledger can change.
    Attributes: bucket, key."""


# --- sources: MariaDB/MySQL and SQLite into PostgreSQL ---


class SourcePermissionDenied(SourceError):
    """The source login works but lacks a privilege the copy needs."""


class SourceLoginRejected(PermissionDenied):
    """The MariaDB/MySQL server refused the user name or password."""


class RowsRejected(MigrateError):
    """Rows were rejected (recorded in the rejects table) beyond --max-rejects."""


# --- replica (online migration) ---


class ReplicaError(MigrateError):
    """A replica set-up (slot, publication, subscription) step failed."""


class ReplicaPreflightFailed(ReplicaError):
    """The preflight found blockers: logical replication cannot start."""


class ReplicaNotFound(ReplicaError):
    """No replica set-up of that name is recorded."""


class ReplicaExists(ReplicaError):
    """A replica set-up of that name is already recorded."""


class ReplicaLagging(ReplicaError):
    """The target is too far behind to promote now."""


class ReplicaTimeout(ReplicaError):
    """The target did not apply up to the cutover point in time."""


class SlotLost(ReplicaError):
    """The source invalidated the replication slot (wal_status = lost)."""


# --- replica apply conflicts ---


class ApplyConflict(ReplicaError):
    """The target's apply worker is stuck on a row (a duplicate key, ...)."""

    def __init__(
        self,
        what: str,
        *,
        hint: str | None = None,
        table: str | None = None,
        row_key: str | None = None,
        lsn: str | None = None,
    ) -> None:
        #: '(id)=(20001)': the key the target already holds (None: not found)
        self.row_key = row_key
        #: the stuck source transaction's finish LSN (ALTER SUBSCRIPTION SKIP)
        self.lsn = lsn
        super().__init__(what, hint=hint, table=table)


# --- target: statement timeout or cancel ---


class StatementCancelled(TargetError):
    """The server cancelled the load's statement (SQLSTATE 57014: its
    statement_timeout, or pg_cancel_backend). The target is reachable, so it
    is not TargetUnreachable; transient all the same: a timeout often comes
    from a lock or a busy server, which pass (the watcher retries it with
    backoff, up to --max-attempts)."""

    transient = True
