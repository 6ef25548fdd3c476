"""A large CSV load sent as COPY BINARY where that stores exactly the same
rows (see binary.py), and as CSV from the first block where it would not.

The switch keeps the load one transaction and each row read once: the
rows encoded so far are one COPY (FORMAT binary), the rest a second COPY
in CSV, in the caller's transaction. Line numbers in errors are the
object's own. The second COPY starts with a header line of the first's line
end, so COPY holds the rest to the same line ends it would have.

Not used (plain CSV COPY, as before): objects under MIN_SIZE or of unknown
size (importing pyarrow and numpy costs more than binary saves), a process
that may use fewer than two CPUs (encoding costs the client more CPU than
it saves the server: on one core shared with a local server, 265 MiB took
7.8 s in binary against 5.6 s as CSV), options other than format,
delimiter, header true and freeze, a client encoding other than UTF-8, a
column type binary.py does not encode, and tables with statement-level
insert triggers (two statements would fire them twice).
"""

from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from itertools import chain
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql

from pgferry import background
from pgferry.fetch import is_utf8
from pgferry.sink.copyin import copy_in, copy_statement, run_copy
from pgferry.sink.names import table_ident
from pgferry.sink.options import CopyOptions
from pgferry.stores import ObjectRef

if TYPE_CHECKING:
    from pgferry.sink.binary import Encoded, Encoder

log = logging.getLogger("pgferry.import")

MIN_SIZE = 64 << 20
BLOCK = 2 << 20
MAX_LINE = 64 << 20
WORKERS = 2
_KINDS = {  # type OID -> binary.py's kind (binary.py's receive checks apply the typmod)
    20: "int8",
    21: "int2",
    23: "int4",
    1700: "numeric",
    1082: "date",
    1114: "timestamp",
    25: "text",
    1043: "text",
    1042: "text",
}


def copy_csv(
    conn: psycopg.Connection[Any],
    table: tuple[str, ...],
    columns: Sequence[str],
    options: CopyOptions,
    chunks: Iterator[bytes],
    *,
    ref: ObjectRef,
    size: int,
) -> tuple[int, int, int]:
    """`copy_in`, in binary where exact (see the module doc); also returns
    how many of the rows went in binary."""
    kinds = _plan(conn, table, columns, options, size)
    if kinds is None:
        return (*copy_in(conn, table, columns, options, chunks, ref=ref), 0)
    from pgferry.sink import binary  # here: pyarrow and numpy load only for a large load

    names = [name for name, _ in kinds]
    encoder = binary.Encoder([binary.Column(n, k) for n, k in kinds], options.delimiter)
    header = bool(options.values.get("header"))
    items = background.ahead(_encoded(encoder, chunks, header), depth=2, name="pgferry-encode")
    try:
        return _load(conn, table, names, options, items, ref=ref)
    finally:
        items.close()


# (block, its rows in binary or None from the first block that must go as
# CSV on, and the line end (CRLF?) of the blocks sent in binary)
_Item = tuple[bytes, "Encoded | None", bool]


def _encoded(encoder: Encoder, chunks: Iterable[bytes], header: bool) -> Iterator[_Item]:
    """The blocks of `chunks`, encoded WORKERS at a time (pyarrow and numpy
    release the GIL), in order; after the first that cannot be, none is."""
    failed = False
    crlf: bool | None = None
    window: deque[tuple[bytes, Future[Encoded | None] | None]] = deque()

    def settle() -> _Item:
        nonlocal failed, crlf
        block, job = window.popleft()
        result = job.result() if job is not None and not failed else None
        if result is not None and result.crlf is not None:
            if crlf is None:
                crlf = result.crlf
            elif crlf != result.crlf:
                result = None  # COPY refuses a file whose line ends change
        failed = result is None
        return block, result, bool(crlf)

    with ThreadPoolExecutor(WORKERS, thread_name_prefix="pgferry-encode") as pool:
        for n, (block, whole) in enumerate(_blocks(chunks)):
            job = None
            if whole and not failed:
                job = pool.submit(encoder.encode, block, header=header and n == 0)
            window.append((block, job))
            if len(window) > WORKERS:
                yield settle()
        while window:
            yield settle()


def _load(
    conn: psycopg.Connection[Any],
    table: tuple[str, ...],
    names: list[str],
    options: CopyOptions,
    items: Iterator[_Item],
    *,
    ref: ObjectRef,
) -> tuple[int, int, int]:
    from pgferry.sink import binary

    header = bool(options.values.get("header"))
    first = next(items, None)
    if first is None:
        return (*copy_in(conn, table, names, options, iter(()), ref=ref), 0)
    if first[1] is None:
        log.debug("%s: loading as CSV (its first lines do not read exactly in binary)", ref.uri)
        rest = chain([first[0]], (block for block, _, _ in items))
        return (*copy_in(conn, table, names, options, rest, ref=ref), 0)
    sent = 0
    crlf = False
    pending: list[bytes] = []

    def rows() -> Iterator[bytes | memoryview]:
        nonlocal sent, crlf
        yield binary.SIGNATURE
        for block, result, ends in chain([first], items):
            if result is None:
                pending.append(block)
                break
            yield result.data
            sent += result.rows
            crlf = ends
        yield binary.TRAILER

    stmt = _binary_statement(table, names, options)
    done, _ = run_copy(conn, stmt, rows(), table=table, ref=ref, line_offset=int(header))
    if not pending:
        log.debug("%s: %d rows loaded as COPY BINARY", ref.uri, done)
        return done, 0, done
    log.debug(
        "%s: %d rows loaded as COPY BINARY, the rest as CSV from line %d",
        ref.uri,
        done,
        sent + int(header) + 1,
    )
    # the rest as CSV: a header line of the line end COPY has seen so far
    again = CopyOptions({**options.values, "header": True})
    start = b"-\r\n" if crlf else b"-\n"
    rest = chain([start, pending[0]], (block for block, _, _ in items))
    more, _ = copy_in(conn, table, names, again, rest, ref=ref, line_offset=sent + int(header) - 1)
    return done + more, 0, done


def _binary_statement(
    table: tuple[str, ...], columns: list[str], options: CopyOptions
) -> sql.Composed:
    values: dict[str, Any] = {"format": "binary"}
    if options.values.get("freeze"):
        values["freeze"] = True
    return copy_statement(table, columns, CopyOptions(values))


def _plan(
    conn: psycopg.Connection[Any],
    table: tuple[str, ...],
    columns: Sequence[str],
    options: CopyOptions,
    size: int,
) -> list[tuple[str, str]] | None:
    """The columns COPY fills, with binary.py's kind for each, or None when
    the load goes as plain CSV."""
    if size < MIN_SIZE or options.format != "csv" or conn.info.encoding != "utf-8":
        return None
    if cpus() < WORKERS:
        log.debug("fewer than %d CPUs to use: loading as CSV", WORKERS)
        return None
    if not all(_plain(name, value) for name, value in options.values.items()):
        return None
    if len(options.delimiter) != 1 or options.delimiter in '"\r\n\\.':
        return None
    found = conn.execute(
        "SELECT a.attname, a.atttypid::int, c.relkind::text, EXISTS ("
        " SELECT 1 FROM pg_trigger t WHERE t.tgrelid = c.oid AND NOT t.tgisinternal"
        " AND t.tgtype & 1 = 0 AND t.tgtype & 4 <> 0)"
        " FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid"
        " WHERE c.oid = to_regclass(%s) AND a.attnum > 0 AND NOT a.attisdropped"
        " AND a.attgenerated = '' ORDER BY a.attnum",
        [table_ident(table).as_string(conn)],
    ).fetchall()
    if not found or found[0][2] not in ("r", "p") or found[0][3]:
        return None
    kinds = {str(name): _KINDS.get(int(oid)) for name, oid, _, _ in found}
    wanted = list(columns) or list(kinds)
    if len(set(wanted)) != len(wanted) or any(kinds.get(c) is None for c in wanted):
        return None
    return [(c, str(kinds[c])) for c in wanted]


def _plain(name: str, value: object) -> bool:
    """Whether COPY option `name` leaves CSV as binary.py reads it."""
    if name in ("format", "delimiter"):
        return True  # csv (checked), any one byte but the ones CSV gives a meaning
    if name in ("header", "freeze"):
        return isinstance(value, bool)  # not HEADER MATCH: COPY compares the names
    if name == "encoding":
        return is_utf8(str(value))
    return (name, value) in (("null", ""), ("quote", '"'), ("escape", '"'))


def cpus(cgroup: Path = Path("/sys/fs/cgroup"), own: Path = Path("/proc/self/cgroup")) -> float:
    """The CPUs this process may use: its affinity, capped by the CPU quota
    of its cgroup or a parent's (a container's --cpus, a pod's limit)."""
    try:
        count = float(len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        count = float(os.cpu_count() or 1)
    try:
        lines = own.read_text().splitlines()
    except OSError:
        return count
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        files: tuple[str, ...]
        if controllers == "":  # cgroup v2: "max 100000" or "<quota> <period>"
            base, files = cgroup, ("cpu.max",)
        elif "cpu" in controllers.split(","):  # v1: a quota of -1 is none
            base = cgroup / controllers
            base = base if base.is_dir() else cgroup / "cpu"
            files = ("cpu.cfs_quota_us", "cpu.cfs_period_us")
        else:
            continue
        where = base / path.lstrip("/")
        for directory in (where, *where.parents):
            count = min(count, _quota(directory, files))
            if directory == base:
                break
    return count


def _quota(directory: Path, files: tuple[str, ...]) -> float:
    """The CPU quota in `directory`'s `files`, or infinity (none, unreadable)."""
    try:
        words = [w for name in files for w in (directory / name).read_text().split()]
        if len(words) == 2 and words[0] not in ("max", "-1") and int(words[1]) > 0:
            return int(words[0]) / int(words[1])
    except (OSError, ValueError):
        pass
    return float("inf")


def _blocks(chunks: Iterable[bytes]) -> Iterator[tuple[bytes, bool]]:
    """`chunks` regrouped in blocks of whole lines of about BLOCK bytes (the
    last may end without a line end), each with True; a line longer than
    MAX_LINE goes on in pieces, with False (memory stays bounded)."""
    parts: list[bytes | memoryview] = []
    size = 0
    for chunk in chunks:
        parts.append(chunk)
        size += len(chunk)
        if size < BLOCK:
            continue
        cut = chunk.rfind(b"\n") + 1
        # joined only when a cut is possible: a long line is not copied again
        # for each piece of it that arrives
        if not cut and size <= MAX_LINE:
            continue
        if cut:  # cut in the newest piece: the block is copied once, not twice
            tail = memoryview(chunk)[cut:]
            parts[-1] = memoryview(chunk)[:cut]
            yield b"".join(parts), True
            parts = [tail] if len(tail) else []
            size = len(tail)
            continue
        block = b"".join(parts)
        cut = block.rfind(b"\n") + 1
        if cut == 0:  # a line longer than MAX_LINE
            yield block, False
            parts, size = [], 0
            continue
        yield block[:cut], True
        parts = [block[cut:]] if cut < len(block) else []
        size = len(block) - cut
    if size:
        yield b"".join(parts), True
