"""`verify --source mysql://...|sqlite:///...`: row counts, and per-column
checksums computed on each side over canonicalised values.

The source's values go through the same converters as `clone` (so they
are PostgreSQL input text); the target's are read as PostgreSQL's output
text.  `canonical` brings both spellings of one value to one form per
type (1.50 and 1.5; '...00.000000' and '...00'; {"a"} and {a}; JSON key
order), then each column's checksum is the sum of 64-bit hashes of its
values: order-free, so neither side is sorted, and memory stays flat.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
import struct
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

import psycopg
from psycopg import sql

from pgferry.migrate.verify import Check, VerifyResult
from pgferry.sources.clone import select
from pgferry.sources.engine import source_for
from pgferry.sources.model import RowRejected, TableDef
from pgferry.target import connect

_FRACTION_ZEROS = re.compile(r"(\.\d*?)0+(?=$|[+-])")
_MASK = (1 << 64) - 1


def _trim_fraction(s: str) -> str:
    return _FRACTION_ZEROS.sub(r"\1", s).replace(".+", "+").replace(".-", "-").removesuffix(".")


def _array(s: str) -> str:
    # a one-dimensional text[] literal: {a,"b c"} -> ["a", "b c"]
    items, cur, quoted, esc, inq = [], "", False, False, False
    for ch in s.strip()[1:-1]:
        if esc:
            cur, esc = cur + ch, False
        elif ch == "\\":
            esc = True
        elif ch == '"':
            inq, quoted = not inq, True
        elif ch == "," and not inq:
            items.append(cur)
            cur, quoted = "", False
        else:
            cur += ch
    if cur or quoted:
        items.append(cur)
    return json.dumps(items)


def canonicaliser(pg_type: str) -> Callable[[str], str]:
    base = pg_type.split("(")[0].strip().lower()
    if base in ("smallint", "integer", "bigint"):
        return lambda s: str(int(s))
    if base == "numeric":

        def num(s: str) -> str:
            try:
                d = Decimal(s)
            except InvalidOperation:
                return s
            return "0" if d == 0 else str(d.normalize())

        return num
    if base == "real":
        return lambda s: repr(struct.unpack("f", struct.pack("f", float(s)))[0])
    if base in ("double precision", "float"):
        return lambda s: repr(float(s))
    if base == "boolean":
        return lambda s: "t" if s[:1].lower() in ("t", "1", "y") else "f"
    if base == "bytea":
        return str.lower
    if base in ("date", "timestamp", "time", "interval"):
        return _trim_fraction
    if base == "inet":
        # inet::text always shows the netmask ('2001:db8::1/128'), MariaDB never
        def inet(s: str) -> str:
            i = ipaddress.ip_interface(s)
            return str(i.ip) if i.network.prefixlen == i.max_prefixlen else str(i)

        return inet
    if base == "jsonb":
        return lambda s: json.dumps(json.loads(s), sort_keys=True, separators=(",", ":"))
    if pg_type.endswith("[]"):
        return _array
    return lambda s: s


def _h(s: str | None) -> int:
    data = b"\x00null" if s is None else s.encode("utf-8", "surrogatepass")
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big")


def verify_foreign(
    source: str,
    target: str,
    schema: str,
    tables: tuple[str, ...],
    exclude: tuple[str, ...],
    *,
    keep_case: bool,
    casts: tuple[str, ...],
    nul: str,
) -> VerifyResult:
    src = source_for(source, keep_case=keep_case, casts=list(casts), nul=nul)
    result = VerifyResult()
    try:
        src.open(1)
        notes: list[str] = []
        defs = select(src.catalog(notes), tables, exclude)
        with connect(target, autocommit=False) as tgt:
            tgt.execute("SET TimeZone = 'UTC'")
            tgt.execute("SET IntervalStyle = 'postgres'")
            tgt.execute("SET DateStyle = 'ISO, YMD'")
            tgt.execute("SET extra_float_digits = 1")
            for t in defs:
                result.checks += _table(src.rows(0, t, fast=False), tgt, schema, t)
    finally:
        src.close()
    return result


def _table(rows: Any, tgt: psycopg.Connection[Any], schema: str, t: TableDef) -> list[Check]:
    canon = [canonicaliser(c.pg_type) for c in t.columns]
    n = len(t.columns)
    src_sums, src_rows = [0] * n, 0
    for row in rows:
        src_rows += 1
        for i, (c, v) in enumerate(zip(t.columns, row, strict=True)):
            try:
                out = c.convert(v)
                value = None if out is None else canon[i](out)
            except (RowRejected, ValueError, UnicodeDecodeError):
                value = "\x00rejected:" + repr(v)  # never equal to a loaded value
            src_sums[i] = (src_sums[i] + _h(value)) & _MASK
    exists = tgt.execute(
        "SELECT EXISTS (SELECT FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = %s AND c.relname = %s)",
        [schema, t.target],
    ).fetchone()
    name = f"{schema}.{t.target}"
    if not exists or not exists[0]:
        return [Check("table", name, src_rows, None)]
    tgt_sums, tgt_rows = [0] * n, 0
    cols = sql.SQL(", ").join(
        sql.SQL("{}::text").format(sql.Identifier(c.target)) for c in t.columns
    )
    with tgt.cursor(name="pgferry_verify") as cur:
        cur.execute(sql.SQL("SELECT {} FROM {}").format(cols, sql.Identifier(schema, t.target)))
        for row in cur:
            tgt_rows += 1
            for i, v in enumerate(row):
                tgt_sums[i] = (tgt_sums[i] + _h(None if v is None else canon[i](v))) & _MASK
    checks = [Check("table", name, src_rows, tgt_rows, str(src_rows), str(tgt_rows))]
    for i, c in enumerate(t.columns):
        checks.append(
            Check(
                "column",
                f"{name}.{c.target}",
                src_rows,
                tgt_rows,
                f"{src_sums[i]:016x}",
                f"{tgt_sums[i]:016x}",
            )
        )
    return checks
