"""The ledger: one row per object version in the target's `pgferry` schema.

Exactly once rests on two facts. A worker claims a `pending` row with
`FOR UPDATE SKIP LOCKED` and keeps that row lock while it loads, so other
watchers (here or on other machines) skip it, and a dead worker's claim ends
with its session. The object's rows and the row's new status are written in
that same transaction, so they commit together or not at all.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

SCHEMA = "pgferry"
TABLE = "watch_files"
#: every status a version can have; only `pending` is ever claimed
STATUSES = ("pending", "loaded", "failed", "skipped", "superseded", "gone")
ON_CHANGE = ("reload", "skip", "error")

_LEDGER = sql.Identifier(SCHEMA, TABLE)
# one lock id for the DDL, so watchers starting together do not race CREATE
_DDL_LOCK = 0x70676672_7977  # "pgfryw"

_DDL = """
CREATE SCHEMA IF NOT EXISTS pgferry;
CREATE TABLE IF NOT EXISTS pgferry.watch_files (
    pipeline text NOT NULL,
    bucket text NOT NULL,
    key text NOT NULL,
    etag text NOT NULL,
    size bigint NOT NULL,
    last_modified timestamptz,
    status text NOT NULL DEFAULT 'pending' CHECK (status IN
        ('pending', 'loaded', 'failed', 'skipped', 'superseded', 'gone')),
    attempts integer NOT NULL DEFAULT 0,
    row_count bigint,
    rejected_rows bigint,
    discovered_at timestamptz NOT NULL DEFAULT now(),
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    started_at timestamptz,
    finished_at timestamptz,
    load_seconds double precision,
    last_error text,
    PRIMARY KEY (pipeline, bucket, key, etag)
);
CREATE INDEX IF NOT EXISTS watch_files_pending
    ON pgferry.watch_files (pipeline, bucket, next_attempt_at, key) WHERE status = 'pending';
CREATE TABLE IF NOT EXISTS pgferry.watch_rejects (
    pipeline text NOT NULL,
    bucket text NOT NULL,
    key text NOT NULL,
    etag text NOT NULL,
    line bigint NOT NULL,
    raw text NOT NULL,
    error text NOT NULL,
    rejected_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (pipeline, bucket, key, etag, line)
);
"""


@dataclass(frozen=True, slots=True)  # slots: a full listing holds one per key
class Listed:
    """One object version as a listing showed it."""

    key: str
    etag: str
    size: int
    last_modified: datetime | None = None


@dataclass(frozen=True)
class Claim:
    pipeline: str
    bucket: str
    key: str
    etag: str
    size: int
    attempts: int


def ensure(conn: psycopg.Connection[Any]) -> None:
    """Create the schema and ledger table when missing (idempotent, race-free)."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", [_DDL_LOCK])
        for stmt in filter(None, (s.strip() for s in _DDL.split(";"))):
            conn.execute(sql.SQL(stmt))  # constant text, no user input


def record(
    conn: psycopg.Connection[Any],
    pipeline: str,
    bucket: str,
    listed: Iterable[Listed],
    on_change: str,
) -> list[tuple[str, str]]:
    """Add the versions not in the ledger yet; returns (key, status) of each.

    A new version of a key that already has a loaded version is pending
    (`reload`), skipped (`skip`) or failed (`error`). Older unloaded versions
    are left alone: reading one fails its If-Match and marks it superseded.
    """
    with conn.transaction():
        conn.execute(
            "CREATE TEMP TABLE IF NOT EXISTS pgferry_listing "
            "(key text, etag text, size bigint, last_modified timestamptz) ON COMMIT DELETE ROWS"
        )
        with conn.cursor().copy(
            "COPY pgferry_listing (key, etag, size, last_modified) FROM STDIN"
        ) as copy:
            for obj in listed:
                copy.write_row((obj.key, obj.etag, obj.size, obj.last_modified))
        cur = conn.execute(
            """
            INSERT INTO pgferry.watch_files
                (pipeline, bucket, key, etag, size, last_modified, status, last_error)
            SELECT %(p)s, %(b)s, l.key, l.etag, l.size, l.last_modified,
                   CASE WHEN prev.done IS NULL OR %(c)s = 'reload' THEN 'pending'
                        WHEN %(c)s = 'skip' THEN 'skipped' ELSE 'failed' END,
                   CASE WHEN prev.done IS NULL OR %(c)s = 'reload' THEN NULL
                        ELSE 'the object changed after it was loaded (--on-change '
                             || %(c)s || '); pgferry files retry KEY loads it' END
            FROM pgferry_listing l
            LEFT JOIN LATERAL (
                SELECT true AS done FROM pgferry.watch_files f
                WHERE f.pipeline = %(p)s AND f.bucket = %(b)s AND f.key = l.key
                  AND f.status = 'loaded' LIMIT 1
            ) prev ON true
            ORDER BY l.key
            ON CONFLICT DO NOTHING
            RETURNING key, status
            """,
            {"p": pipeline, "b": bucket, "c": on_change},
        )
        return [(str(k), str(s)) for k, s in cur.fetchall()]


def claim(conn: psycopg.Connection[Any], pipeline: str, bucket: str) -> Claim | None:
    """Lock the next due pending version (in the caller's transaction), or None."""
    row = conn.execute(
        """
        SELECT key, etag, size, attempts FROM pgferry.watch_files
        WHERE pipeline = %s AND bucket = %s AND status = 'pending' AND next_attempt_at <= now()
        ORDER BY next_attempt_at, key
        LIMIT 1 FOR UPDATE SKIP LOCKED
        """,
        [pipeline, bucket],
    ).fetchone()
    if row is None:
        return None
    return Claim(pipeline, bucket, str(row[0]), str(row[1]), int(row[2]), int(row[3]))


def claim_small(
    conn: psycopg.Connection[Any], first: Claim, limit: int, max_size: int
) -> list[Claim]:
    """Up to `limit` more due pending versions of at most `max_size` bytes,
    locked. SKIP LOCKED does not skip our own locks: `first` is left out here."""
    rows = conn.execute(
        """
        SELECT key, etag, size, attempts FROM pgferry.watch_files
        WHERE pipeline = %s AND bucket = %s AND status = 'pending' AND next_attempt_at <= now()
          AND size <= %s AND (key, etag) <> (%s, %s)
        ORDER BY next_attempt_at, key
        LIMIT %s FOR UPDATE SKIP LOCKED
        """,
        [first.pipeline, first.bucket, max_size, first.key, first.etag, limit],
    ).fetchall()
    pipeline, bucket = first.pipeline, first.bucket
    return [Claim(pipeline, bucket, str(k), str(e), int(s), int(a)) for k, e, s, a in rows]


def next_due(conn: psycopg.Connection[Any], pipeline: str, bucket: str) -> float | None:
    """Seconds until the next pending version is due (0 when one is due now),
    None when nothing is pending."""
    row = conn.execute(
        "SELECT greatest(0, extract(epoch FROM min(next_attempt_at) - now())) "
        "FROM pgferry.watch_files WHERE pipeline = %s AND bucket = %s AND status = 'pending'",
        [pipeline, bucket],
    ).fetchone()
    return None if row is None or row[0] is None else float(row[0])


def finish(
    conn: psycopg.Connection[Any],
    c: Claim,
    status: str,
    *,
    rows: int | None = None,
    seconds: float | None = None,
    error: str | None = None,
    retry_in: float | None = None,
    rejected: int | None = None,
) -> None:
    """Record the outcome of one attempt on a claimed version (clock time:
    now() would be the start of the claim's transaction)."""
    conn.execute(
        """
        UPDATE pgferry.watch_files SET
            status = %(s)s, attempts = attempts + 1, row_count = %(r)s, rejected_rows = %(x)s,
            started_at = clock_timestamp() - make_interval(secs => coalesce(%(t)s, 0)),
            finished_at = clock_timestamp(), load_seconds = %(t)s, last_error = %(e)s,
            next_attempt_at = clock_timestamp() + make_interval(secs => coalesce(%(d)s, 0))
        WHERE pipeline = %(p)s AND bucket = %(b)s AND key = %(k)s AND etag = %(g)s
        """,
        {
            "s": status,
            "r": rows,
            "t": seconds,
            "e": error,
            "d": retry_in,
            "x": rejected,
            "p": c.pipeline,
            "b": c.bucket,
            "k": c.key,
            "g": c.etag,
        },
    )


def finish_loaded(conn: psycopg.Connection[Any], done: Sequence[tuple[Claim, int, float]]) -> None:
    """`finish(c, "loaded", rows=, seconds=)` for each (claim, rows, seconds),
    in one round trip, in the batch's transaction: the ledger rows commit
    with the rows loaded, or not at all."""
    if not done:
        return
    with conn.cursor() as cur:
        cur.executemany(
            """
            UPDATE pgferry.watch_files SET
                status = 'loaded', attempts = attempts + 1, row_count = %(r)s,
                rejected_rows = NULL,
                started_at = clock_timestamp() - make_interval(secs => %(t)s),
                finished_at = clock_timestamp(), load_seconds = %(t)s, last_error = NULL,
                next_attempt_at = clock_timestamp()
            WHERE pipeline = %(p)s AND bucket = %(b)s AND key = %(k)s AND etag = %(g)s
            """,
            [
                {"r": rows, "t": seconds, "p": c.pipeline, "b": c.bucket, "k": c.key, "g": c.etag}
                for c, rows, seconds in done
            ],
        )


# --- operator commands: files list / retry / skip, watch status ------------


def exists(conn: psycopg.Connection[Any]) -> bool:
    row = conn.execute("SELECT to_regclass('pgferry.watch_files') IS NOT NULL").fetchone()
    return bool(row and row[0])


def files(
    conn: psycopg.Connection[Any],
    *,
    pipeline: str | None = None,
    statuses: Sequence[str] = (),
    limit: int | None = None,
) -> list[dict[str, Any]]:
    where = [sql.SQL("true")]
    args: list[Any] = []
    if pipeline:
        where.append(sql.SQL("pipeline = %s"))
        args.append(pipeline)
    if statuses:
        where.append(sql.SQL("status = ANY(%s)"))
        args.append(list(statuses))
    query = sql.SQL(
        "SELECT pipeline, bucket, key, etag, size, status, attempts, row_count, "
        "discovered_at, finished_at, load_seconds, last_error FROM {} WHERE {} "
        "ORDER BY pipeline, bucket, key, discovered_at {}"
    ).format(
        _LEDGER,
        sql.SQL(" AND ").join(where),
        sql.SQL("LIMIT {}").format(sql.Literal(limit)) if limit else sql.SQL(""),
    )
    with conn.cursor(row_factory=dict_row) as cur:
        return list(cur.execute(query, args).fetchall())


def set_status(
    conn: psycopg.Connection[Any],
    *,
    to: str,
    from_statuses: Sequence[str],
    pipeline: str | None = None,
    key: str | None = None,
) -> list[tuple[str, str, str]]:
    """Move versions in `from_statuses` to `to` (pending: due now, attempts
    reset); with `key`, only that key's newest such version. Returns
    (pipeline, bucket, key) of each row changed."""
    where = [sql.SQL("status = ANY(%(from)s)")]
    if pipeline:
        where.append(sql.SQL("pipeline = %(p)s"))
    if key is not None:
        where.append(sql.SQL("key = %(k)s"))
    newest = (
        sql.SQL(
            "AND (pipeline, bucket, key, discovered_at) IN (SELECT pipeline, bucket, key, "
            "max(discovered_at) FROM {} WHERE {} GROUP BY 1, 2, 3)"
        ).format(_LEDGER, sql.SQL(" AND ").join(where))
        if key is not None
        else sql.SQL("")
    )
    stmt = sql.SQL(
        "UPDATE {} SET status = %(to)s, next_attempt_at = now(), "
        "attempts = CASE WHEN %(to)s = 'pending' THEN 0 ELSE attempts END, "
        "last_error = CASE WHEN %(to)s = 'skipped' THEN 'skipped by pgferry files skip' "
        "ELSE last_error END "
        "WHERE {} {} RETURNING pipeline, bucket, key"
    ).format(_LEDGER, sql.SQL(" AND ").join(where), newest)
    with conn.transaction():
        rows = conn.execute(
            stmt, {"to": to, "from": list(from_statuses), "p": pipeline, "k": key}
        ).fetchall()
    return [(str(r[0]), str(r[1]), str(r[2])) for r in rows]


def status(conn: psycopg.Connection[Any], pipeline: str | None = None) -> list[dict[str, Any]]:
    """Per pipeline: versions by status, how many are being loaded right now
    (pending rows another session holds locked), the oldest pending age, the
    last error, and files/s and rows/s over the last minute."""
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            """
            SELECT pipeline,
                count(*) FILTER (WHERE status = 'pending') AS pending,
                count(*) FILTER (WHERE status = 'loaded') AS loaded,
                count(*) FILTER (WHERE status = 'failed') AS failed,
                count(*) FILTER (WHERE status = 'skipped') AS skipped,
                count(*) FILTER (WHERE status IN ('superseded', 'gone')) AS superseded,
                extract(epoch FROM now() - min(discovered_at) FILTER (WHERE status = 'pending'))
                    AS oldest_pending_seconds,
                (array_agg(last_error ORDER BY finished_at DESC)
                    FILTER (WHERE status IN ('failed', 'pending') AND last_error IS NOT NULL))[1]
                    AS last_error,
                round(count(*) FILTER (WHERE status = 'loaded'
                    AND finished_at > now() - interval '60 seconds') / 60.0, 2) AS files_per_s,
                round(coalesce(sum(row_count) FILTER (WHERE status = 'loaded'
                    AND finished_at > now() - interval '60 seconds'), 0) / 60.0, 1) AS rows_per_s
            FROM pgferry.watch_files
            WHERE %(p)s::text IS NULL OR pipeline = %(p)s
            GROUP BY pipeline ORDER BY pipeline
            """,
            {"p": pipeline},
        )
        result = list(cur.fetchall())
        # a claim is a row lock, not a committed state: the pending rows we
        # cannot lock are the ones being loaded (locks end with this transaction)
        cur.execute(
            """
            SELECT pipeline, count(*) AS free FROM (
                SELECT pipeline FROM pgferry.watch_files
                WHERE status = 'pending' AND (%(p)s::text IS NULL OR pipeline = %(p)s)
                FOR UPDATE SKIP LOCKED) f
            GROUP BY pipeline
            """,
            {"p": pipeline},
        )
        free = {r["pipeline"]: int(r["free"]) for r in cur.fetchall()}
    for r in result:
        r["loading"] = int(r["pending"]) - free.get(r["pipeline"], 0)
        r["pending"] = int(r["pending"]) - r["loading"]
        for k in ("oldest_pending_seconds", "files_per_s", "rows_per_s"):
            if r[k] is not None:
                r[k] = float(r[k])
    return result
