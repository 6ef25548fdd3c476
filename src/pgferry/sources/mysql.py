"""MariaDB/MySQL as a source: connecting (one-line errors by error code),
the catalog read into TableDefs, and rows streamed with an unbuffered
server-side cursor (SSCursor), so memory stays bounded whatever the table's
size.  Every reader runs inside START TRANSACTION WITH CONSISTENT SNAPSHOT;
the snapshots of parallel readers are opened under a brief FLUSH TABLES
WITH READ LOCK when the user may take it, so they all see the same point.

PyMySQL's decoders are switched off (conv={}): values arrive as the
server's text (bytes for binary columns), and pgferry.sources.types turns
them into PostgreSQL's input text itself, without a detour through Python
date or Decimal objects that cannot hold '0000-00-00' or 24:00:00+.
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Iterator
from typing import Any

import pymysql
import pymysql.cursors

from pgferry.errors import (
    BadConnectionString,
    SourceLoginRejected,
    SourcePermissionDenied,
    SourceUnreachable,
    UsageError,
)
from pgferry.sources import types, wire
from pgferry.sources.model import Column, ForeignKey, Index, Range, TableDef
from pgferry.sources.names import Namer
from pgferry.sources.url import MySQLURL
from pgferry.sources.views import ViewDef

# MySQL/MariaDB client and server error numbers (pymysql.err carries them as args[0])
ACCESS_DENIED = 1045
DB_ACCESS_DENIED = 1044
UNKNOWN_DB = 1049
TABLE_ACCESS_DENIED = 1142
SPECIFIC_ACCESS_DENIED = 1227
CANT_CONNECT = (2002, 2003, 2005, 2006, 2013)
SSL_CONNECTION_ERROR = 2026  # e.g. ssl-mode=required and the server offers no TLS
MIN_VERSION = {"mariadb": (10, 3), "mysql": (5, 7)}


def tls_context(u: MySQLURL) -> ssl.SSLContext | None:
    """The TLS settings of ssl-mode, as the mysql client reads them; None:
    PyMySQL's own choice (preferred: TLS when offered, unverified) or off.

    required: TLS or no connection, the certificate not checked;
    verify-ca (also preferred given ssl-ca): signed by ssl-ca or, without
    it, the system's CAs; verify-identity: that, and the name or IP in
    --source matches the certificate."""
    mode = u.ssl_mode
    if mode == "preferred" and u.ssl_ca:
        mode = "verify-ca"
    if mode == "disabled" or (mode == "preferred" and not u.ssl_cert):
        return None
    try:
        ctx = ssl.create_default_context(cafile=u.ssl_ca)
        if u.ssl_cert:
            ctx.load_cert_chain(u.ssl_cert, u.ssl_key)
    except (OSError, ssl.SSLError) as e:
        raise BadConnectionString(
            f"--source: cannot read the TLS files given by ssl-ca/ssl-cert/ssl-key: {e}",
            hint="give readable PEM files",
            option="--source",
        ) from None
    # certificates MySQL generates itself lack the extensions Python 3.13's
    # strict mode wants (PyMySQL relaxes this too)
    ctx.verify_flags &= ~ssl.VERIFY_X509_STRICT
    ctx.check_hostname = mode == "verify-identity"
    if mode in ("required", "preferred"):
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def connect(u: MySQLURL) -> pymysql.connections.Connection[Any]:
    ctx = tls_context(u)
    try:
        conn = pymysql.connect(
            host=u.host,
            port=u.port,
            user=u.user,
            password=u.password,
            database=u.database,
            charset="utf8mb4",
            conv={},
            autocommit=True,
            connect_timeout=10,
            ssl=ctx,
            ssl_disabled=u.ssl_mode == "disabled" or None,
        )
    except pymysql.err.MySQLError as e:
        raise _classify(e, u) from None
    with conn.cursor() as cur:
        # timestamps arrive in UTC; ANSI_QUOTES keeps SHOW output parseable
        cur.execute("SET SESSION time_zone = '+00:00'")
        cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
    return conn


def _classify(e: pymysql.err.MySQLError, u: MySQLURL) -> Exception:
    code = e.args[0] if e.args and isinstance(e.args[0], int) else 0
    reason = str(e.args[1]) if len(e.args) > 1 else str(e)
    tls = getattr(e, "original_exception", None)
    if isinstance(tls, ssl.SSLError) or code == SSL_CONNECTION_ERROR:
        why = getattr(tls, "reason", None) or reason
        if getattr(tls, "verify_message", None):
            why = f"{why} ({tls.verify_message})"  # type: ignore[union-attr]
        return SourceUnreachable(
            f"source: TLS with {u.host}:{u.port} failed (ssl-mode={u.ssl_mode}): {why}",
            hint="check ssl-mode and ssl-ca in --source against the server's certificate",
        )
    if code == ACCESS_DENIED:
        return SourceLoginRejected(
            f"source: the server at {u.where} rejected user {u.user!r} or its password",
            hint="check the user in --source and the password (MYSQL_PWD or the URL)",
        )
    if code == UNKNOWN_DB:
        return SourceUnreachable(
            f"source: database {u.database!r} does not exist on {u.host}:{u.port}",
            hint="check the database name in --source",
        )
    if code in (DB_ACCESS_DENIED, TABLE_ACCESS_DENIED, SPECIFIC_ACCESS_DENIED):
        return SourcePermissionDenied(
            f"source: user {u.user!r} lacks a privilege on {u.where}: {reason}",
            hint="GRANT SELECT, SHOW VIEW ON the database TO the user",
        )
    return SourceUnreachable(
        f"source: cannot connect to {u.host}:{u.port}: {reason}",
        hint="check --source and that the server is running",
    )


def query(
    conn: pymysql.connections.Connection[Any], sql: str, args: Any = None
) -> list[tuple[Any, ...]]:
    with conn.cursor() as cur:
        try:
            cur.execute(sql, args)
        except pymysql.err.MySQLError as e:
            code = e.args[0] if e.args and isinstance(e.args[0], int) else 0
            if code in (DB_ACCESS_DENIED, TABLE_ACCESS_DENIED, SPECIFIC_ACCESS_DENIED):
                raise SourcePermissionDenied(
                    f"source: missing privilege: {e.args[1]}",
                    hint="GRANT SELECT, SHOW VIEW ON the database TO the user",
                ) from None
            raise
        return list(cur.fetchall())


def _s(v: object) -> str:
    return v.decode("utf-8") if isinstance(v, bytes) else str(v)


def check_version(conn: pymysql.connections.Connection[Any]) -> str:
    text = _s(query(conn, "SELECT VERSION()")[0][0])
    flavour = "mariadb" if "mariadb" in text.lower() else "mysql"
    m = re.match(r"(\d+)\.(\d+)", text)
    found = (int(m.group(1)), int(m.group(2))) if m else (0, 0)
    if found < MIN_VERSION[flavour]:
        need = ".".join(map(str, MIN_VERSION[flavour]))
        raise UsageError(
            f"source: {flavour} {text} is not supported",
            hint=f"pgferry reads {flavour} {need} or later (its information_schema)",
        )
    return flavour


def begin_snapshots(conns: list[pymysql.connections.Connection[Any]]) -> str | None:
    """Open a consistent snapshot on every reader; the same one when FLUSH
    TABLES WITH READ LOCK is allowed (held for milliseconds).  Returns a
    note when the readers' snapshots may differ."""
    locked = False
    try:
        query(conns[0], "FLUSH TABLES WITH READ LOCK")
        locked = True
    except (SourcePermissionDenied, pymysql.err.MySQLError):
        pass
    try:
        for c in conns:
            query(c, "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
    finally:
        if locked:
            query(conns[0], "UNLOCK TABLES")
    if locked or len(conns) == 1:
        return None
    return (
        "source: no RELOAD privilege for FLUSH TABLES WITH READ LOCK, so the parallel"
        " readers' snapshots were opened one after the other (--jobs 1 reads one snapshot)"
    )


# -- catalog ----------------------------------------------------------------

_JSON_CHECK = re.compile(r"^json_valid\(`((?:[^`]|``)+)`\)$", re.I)
_TICKED = re.compile(r"`((?:[^`]|``)+)`")
_NUMBER = re.compile(r"^-?\d+(\.\d+)?([eE][-+]?\d+)?$")
_NOW = re.compile(r"^(current_timestamp|now|localtimestamp)(\(\d*\))?$", re.I)


def read_catalog(
    conn: pymysql.connections.Connection[Any],
    db: str,
    namer: Namer,
    casts: list[types.Cast],
    nul: str,
    flavour: str,
    notes: list[str],
) -> list[TableDef]:
    tables = query(
        conn,
        "SELECT TABLE_NAME, TABLE_ROWS, TABLE_COMMENT, AUTO_INCREMENT, DATA_LENGTH"
        " FROM information_schema.TABLES"
        " WHERE TABLE_SCHEMA = %s AND TABLE_TYPE = 'BASE TABLE'"
        " ORDER BY CAST(TABLE_NAME AS BINARY)",
        [db],
    )
    for trigger, table in query(
        conn,
        "SELECT TRIGGER_NAME, EVENT_OBJECT_TABLE FROM information_schema.TRIGGERS"
        " WHERE TRIGGER_SCHEMA = %s ORDER BY TRIGGER_NAME",
        [db],
    ):
        notes.append(
            f"trigger {_s(trigger)} on {_s(table)} skipped: MySQL trigger bodies are not"
            " translated (recreate it as a PL/pgSQL trigger)"
        )
    checks: dict[str, list[tuple[str, str]]] = {}
    if flavour == "mariadb":
        rows = query(
            conn,
            "SELECT TABLE_NAME, CONSTRAINT_NAME, CHECK_CLAUSE"
            " FROM information_schema.CHECK_CONSTRAINTS"
            " WHERE CONSTRAINT_SCHEMA = %s ORDER BY TABLE_NAME, CONSTRAINT_NAME",
            [db],
        )
    else:
        rows = query(
            conn,
            "SELECT t.TABLE_NAME, t.CONSTRAINT_NAME, c.CHECK_CLAUSE"
            " FROM information_schema.TABLE_CONSTRAINTS t"
            " JOIN information_schema.CHECK_CONSTRAINTS c"
            " ON c.CONSTRAINT_SCHEMA = t.CONSTRAINT_SCHEMA"
            " AND c.CONSTRAINT_NAME = t.CONSTRAINT_NAME"
            " WHERE t.TABLE_SCHEMA = %s AND t.CONSTRAINT_TYPE = 'CHECK'",
            [db],
        )
    for t, name, clause in rows:
        checks.setdefault(_s(t), []).append((_s(name), _s(clause)))
    result = []
    for name_raw, est, comment, next_id, nbytes in tables:
        name = _s(name_raw)
        tchecks = checks.get(name, [])
        json_cols = {
            m.group(1).replace("``", "`") for _, c in tchecks if (m := _JSON_CHECK.match(c))
        }
        t = TableDef(
            name,
            namer.table(name),
            [],
            comment=_s(comment) or None,
            rows_estimate=int(_s(est or 0)),
            next_id=int(_s(next_id)) if next_id is not None else None,
            bytes_estimate=int(_s(nbytes or 0)),
        )
        t.columns = _columns(conn, db, t, json_cols, casts, nul, flavour, notes, namer)
        t.checks = _checks(t, tchecks, json_cols, namer)
        t.indexes = _indexes(conn, db, t, namer, notes)
        t.foreign_keys = _foreign_keys(conn, db, t, namer)
        result.append(t)
    return result


def read_views(conn: pymysql.connections.Connection[Any], db: str, namer: Namer) -> list[ViewDef]:
    return [
        ViewDef(_s(name), namer.table(_s(name)), _s(definition), _s(check))
        for name, definition, check in query(
            conn,
            "SELECT TABLE_NAME, VIEW_DEFINITION, CHECK_OPTION FROM information_schema.VIEWS"
            " WHERE TABLE_SCHEMA = %s ORDER BY CAST(TABLE_NAME AS BINARY)",
            [db],
        )
    ]


def _columns(
    conn: pymysql.connections.Connection[Any],
    db: str,
    t: TableDef,
    json_cols: set[str],
    casts: list[types.Cast],
    nul: str,
    flavour: str,
    notes: list[str],
    namer: Namer,
) -> list[Column]:
    rows = query(
        conn,
        "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, IS_NULLABLE, COLUMN_DEFAULT, EXTRA,"
        " NUMERIC_PRECISION, NUMERIC_SCALE, CHARACTER_MAXIMUM_LENGTH, DATETIME_PRECISION,"
        " CHARACTER_SET_NAME, COLUMN_COMMENT FROM information_schema.COLUMNS"
        " WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s ORDER BY ORDINAL_POSITION",
        [db, t.name],
    )
    cols = []
    for r in rows:
        name, dt, ct, nullable_s, default, extra = (_s(x) if x is not None else None for x in r[:6])
        assert name and dt and ct
        nullable = nullable_s == "YES"
        precision, scale, clen, dtp = (int(_s(x)) if x is not None else None for x in r[6:10])
        charset = _s(r[10]) if r[10] is not None else None
        time_fits = True
        if dt == "time":
            time_fits = _time_fits(conn, t.name, name)
        mapped = types.map_mysql(
            name, dt, ct, nullable,
            precision=precision, scale=scale, char_length=clen, datetime_precision=dtp,
            charset=charset, time_fits=time_fits, json=name in json_cols, nul=nul,
        )  # fmt: skip
        if mapped.note:
            notes.append(f"{t.name}.{name}: {mapped.note}")
        pg_type, convert = mapped.pg_type, mapped.convert
        cast = types.find_cast(casts, db, t.name, name, ct, dt)
        if cast:
            pg_type = cast.pg_type
            convert = types.cast_converter(pg_type, name, nullable, dt, nul)
        col = Column(
            name=name,
            target=namer.column(name),
            source_type=ct,
            pg_type=pg_type,
            nullable=nullable,
            convert=convert,
            identity="auto_increment" in (extra or "").lower(),
            comment=_s(r[11]) or None,
        )
        if dt in types.GEOMETRY:
            col.read = f"ST_AsText({quote(name)})"
        if not cast and nul == "reject":
            col.server = _server_sql(col.read or quote(name), dt, col.pg_type)
        if col.identity and pg_type == "numeric(20)":
            # identity needs an integer type: ids past 2^63-1 are rejected rows
            col.pg_type = "bigint"
            notes.append(
                f"{t.name}.{name}: bigint unsigned AUTO_INCREMENT becomes a bigint identity"
            )
        if mapped.check_values is not None and not cast:
            col.enum_values = mapped.check_values
        col.default = _default(default, col, dt, flavour, notes, t.name)
        if "on update" in (extra or "").lower():
            notes.append(
                f"{t.name}.{name}: ON UPDATE CURRENT_TIMESTAMP not carried over"
                " (PostgreSQL needs a trigger for it)"
            )
        if "generated" in (extra or "").lower():
            notes.append(
                f"{t.name}.{name}: generated column copied as a plain column with its values"
            )
        cols.append(col)
    return cols


def _time_fits(conn: pymysql.connections.Connection[Any], table: str, column: str) -> bool:
    q = "SELECT COUNT(*) FROM {t} WHERE {c} < '00:00:00' OR {c} >= '24:00:00'".format(
        t=quote(table), c=quote(column)
    )
    return int(_s(query(conn, q)[0][0])) == 0


def quote(name: str) -> str:
    """A MySQL identifier, backtick-quoted (doubling backticks inside)."""
    return "`" + name.replace("`", "``") + "`"


def _default(
    text: str | None, col: Column, dt: str, flavour: str, notes: list[str], table: str
) -> tuple[str, str] | None:
    """The column's default as a value for the target (converted like data),
    or a marker for CURRENT_TIMESTAMP/CURRENT_DATE; None when there is none."""
    if text is None or text == "NULL" or col.identity:
        return None
    if _NOW.match(text):
        return ("now", "")
    if text.lower() in ("curdate()", "current_date", "current_date()"):
        return ("today", "")
    if text.startswith("'") and text.endswith("'") and len(text) >= 2:
        literal: str | None = text[1:-1].replace("''", "'").replace("\\\\", "\\")
    elif _NUMBER.match(text) or (flavour == "mysql" and "(" not in text):
        literal = text
    else:
        notes.append(f"{table}.{col.name}: default {text} not translated, left out")
        return None
    return col.default_value(literal, text, table, notes)


def _checks(
    t: TableDef, found: list[tuple[str, str]], json_cols: set[str], namer: Namer
) -> list[tuple[str, str]]:
    out = []
    for name, clause in found:
        m = _JSON_CHECK.match(clause)
        if m and m.group(1).replace("``", "`") in json_cols:
            continue  # MariaDB's json type: jsonb checks it
        # backtick identifiers -> PostgreSQL's; the rest is tried as is, and
        # a clause PostgreSQL does not take is listed as skipped
        pg = _TICKED.sub(
            lambda mm: '"' + namer.column(mm.group(1).replace("``", "`")).replace('"', '""') + '"',
            clause,
        )
        out.append((namer.column(name), pg))
    return out


def _indexes(
    conn: pymysql.connections.Connection[Any], db: str, t: TableDef, namer: Namer, notes: list[str]
) -> list[Index]:
    rows = query(
        conn,
        "SELECT INDEX_NAME, NON_UNIQUE, COLUMN_NAME, SUB_PART, INDEX_TYPE"
        " FROM information_schema.STATISTICS"
        " WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s ORDER BY INDEX_NAME, SEQ_IN_INDEX",
        [db, t.name],
    )
    found: dict[str, Index] = {}
    for name_raw, non_unique, col_raw, sub_part, kind_raw in rows:
        name, col, kind = _s(name_raw), _s(col_raw), _s(kind_raw)
        if kind in ("FULLTEXT", "SPATIAL"):
            note = f"{t.name}: {kind} index {name} has no PostgreSQL equivalent here, skipped"
            if note not in notes:  # one row per column of the index
                notes.append(note)
            continue
        if sub_part is not None:
            notes.append(
                f"{t.name}: prefix index {name} ({col}({_s(sub_part)})) indexes the whole column"
            )
        idx = found.setdefault(
            name, Index(namer.index(t.name, name), [], _s(non_unique) == "0", name == "PRIMARY")
        )
        idx.columns.append(namer.column(col))
    return list(found.values())


def _foreign_keys(
    conn: pymysql.connections.Connection[Any], db: str, t: TableDef, namer: Namer
) -> list[ForeignKey]:
    rows = query(
        conn,
        "SELECT k.CONSTRAINT_NAME, k.COLUMN_NAME, k.REFERENCED_TABLE_NAME,"
        " k.REFERENCED_COLUMN_NAME,"
        " r.DELETE_RULE, r.UPDATE_RULE FROM information_schema.KEY_COLUMN_USAGE k"
        " JOIN information_schema.REFERENTIAL_CONSTRAINTS r"
        " ON r.CONSTRAINT_SCHEMA = k.CONSTRAINT_SCHEMA AND r.CONSTRAINT_NAME = k.CONSTRAINT_NAME"
        " AND r.TABLE_NAME = k.TABLE_NAME"
        " WHERE k.TABLE_SCHEMA = %s AND k.TABLE_NAME = %s AND k.REFERENCED_TABLE_SCHEMA = %s"
        " ORDER BY k.CONSTRAINT_NAME, k.ORDINAL_POSITION",
        [db, t.name, db],
    )
    found: dict[str, ForeignKey] = {}
    for name_raw, col, ref_t, ref_c, on_delete, on_update in rows:
        name = _s(name_raw)
        fk = found.setdefault(
            name,
            ForeignKey(
                namer.index(t.name, name),
                [],
                namer.table(_s(ref_t)),
                [],
                _s(on_delete),
                _s(on_update),
            ),
        )
        fk.columns.append(namer.column(_s(col)))
        fk.ref_columns.append(namer.column(_s(ref_c)))
    return list(found.values())


# -- rows -------------------------------------------------------------------


def _unbuffered(
    conn: pymysql.connections.Connection[Any], statement: str, batch: int = 1000
) -> Iterator[tuple[Any, ...]]:
    cur = conn.cursor(pymysql.cursors.SSCursor)
    try:
        cur.execute(statement)
        while rows := cur.fetchmany(batch):
            yield from rows
    finally:
        cur.close()


def bounds(conn: pymysql.connections.Connection[Any], t: TableDef) -> tuple[int, int] | None:
    """MIN and MAX of the table's integer key in the snapshot; None: empty."""
    key = t.int_key
    assert key is not None
    c = quote(key.name)
    lo, hi = query(conn, f"SELECT MIN({c}), MAX({c}) FROM {quote(t.name)}")[0]
    return None if lo is None else (int(_s(lo)), int(_s(hi)))


def _where(t: TableDef, r: Range | None) -> str:
    """SQL condition for a range of the integer key (ints: nothing to escape)."""
    if r is None:
        return "TRUE"
    key = t.int_key
    assert key is not None
    parts = []
    if r.lo is not None:
        parts.append(f"{quote(key.name)} >= {int(r.lo)}")
    if r.hi is not None:
        parts.append(f"{quote(key.name)} < {int(r.hi)}")
    return " AND ".join(parts) or "TRUE"


def stream(
    conn: pymysql.connections.Connection[Any],
    t: TableDef,
    fast: bool = True,
    part: Range | None = None,
) -> Iterator[tuple[Any, ...] | bytes]:
    """The table's rows, unbuffered: the server sends them as they are read.

    Fast path, when every column has server SQL: the server writes each row
    as one COPY line (PyMySQL's per-field parsing in pure Python is the
    bottleneck otherwise), and the rows that need pgferry's converters (a
    zero date, NUL in text, 2 in a tinyint(1)) come as NULL lines, then
    again as raw rows from a second query in the same snapshot (so do rows
    whose line would exceed the server's max_allowed_packet)."""
    cols = ", ".join(c.read or quote(c.name) for c in t.columns)
    servers = [c.server for c in t.columns]
    rng = _where(t, part)
    if not fast or any(s is None for s in servers):
        yield from _unbuffered(conn, f"SELECT {cols} FROM {quote(t.name)} WHERE {rng}")
        return
    flags = [s[1] for s in servers if s and s[1]]
    slow = " OR ".join(f"({f})" for f in flags) if flags else "FALSE"
    tab = "CHAR(9 USING utf8mb4)"
    line = f"CONCAT_WS({tab}, {', '.join(s[0] for s in servers if s)})"
    skipped = 0
    statement = f"SELECT IF({slow}, NULL, {line}) FROM {quote(t.name)} WHERE {rng}"
    for text in wire.one_column(conn, statement):
        if text is not None:
            yield text + b"\n"
        else:
            skipped += 1
    if skipped:
        # every field is IFNULL()ed, so a NULL line is a flagged row or one
        # longer than max_allowed_packet (CONCAT_WS gives NULL then)
        where = f"(({slow}) OR ({line}) IS NULL) AND {rng}"
        yield from _unbuffered(conn, f"SELECT {cols} FROM {quote(t.name)} WHERE {where}")


_BS = "CHAR(92 USING utf8mb4)"
_LONG_TEXT = 8192
_NULL = f"CONCAT({_BS}, 'N')"


def _escaped(c: str) -> str:
    out = f"REPLACE({c}, {_BS}, CONCAT({_BS}, {_BS}))"
    for code, letter in ((9, "t"), (10, "n"), (13, "r")):
        out = f"REPLACE({out}, CHAR({code} USING utf8mb4), CONCAT({_BS}, '{letter}'))"
    return out


def _server_sql(c: str, dt: str, pg_type: str) -> tuple[str, str | None] | None:
    """SQL for one column's COPY field on the fast path, and the condition
    under which the row takes the converters instead (see `stream`)."""
    zero = f"{c} IS NOT NULL AND (YEAR({c}) = 0 OR MONTH({c}) = 0 OR DAYOFMONTH({c}) = 0)"
    if pg_type == "boolean" and dt == "tinyint":
        return f"IFNULL(IF({c} = 1, 't', 'f'), {_NULL})", f"{c} NOT IN (0, 1)"
    if dt in ("tinyint", "smallint", "mediumint", "int", "integer", "bigint", "decimal"):
        return f"IFNULL({c}, {_NULL})", None
    if dt in ("uuid", "inet4", "inet6"):
        # IFNULL() takes the column's type, which cannot hold the \N marker
        return f"IFNULL(CONVERT({c} USING utf8mb4), {_NULL})", None
    if dt in ("float", "double", "year", "time"):
        return f"IFNULL({c}, {_NULL})", None
    if dt in ("date", "datetime"):
        return f"IFNULL({c}, {_NULL})", zero
    if dt == "timestamp":
        return f"IFNULL(CONCAT({c}, '+00'), {_NULL})", zero
    if pg_type == "bytea":
        return f"IFNULL(CONCAT({_BS}, {_BS}, 'x', HEX({c})), {_NULL})", None
    if dt in ("char", "varchar", "tinytext", "text", "mediumtext", "longtext", "enum", "json",
              *types.GEOMETRY):  # fmt: skip
        # REPLACE() moves the rest of the string at each match: long texts
        # (quadratic there) take the converters.  CONVERT: a latin1 (or other
        # charset) column mixed with the utf8mb4 separators is an error
        u = f"CONVERT({c} USING utf8mb4)"
        slow = f"LENGTH({c}) > {_LONG_TEXT} OR INSTR({u}, CHAR(0 USING utf8mb4)) > 0"
        return f"IFNULL({_escaped(u)}, {_NULL})", slow
    return None


def count(conn: pymysql.connections.Connection[Any], t: TableDef) -> int:
    return int(_s(query(conn, f"SELECT COUNT(*) FROM {quote(t.name)}")[0][0]))
