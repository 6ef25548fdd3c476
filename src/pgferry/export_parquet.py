"""`pgferry export --format parquet`: a query's rows as Parquet files.

Rows come through a server-side cursor in batches of `BATCH_ROWS`; each
batch is one row group written through the multipart writer, so memory
stays near one batch. A file is closed (footer written) once it passes the
part size and the next batch opens KEY_part2, ... : every file is a
complete Parquet file. Column types come from the result's description:
integers, floats, booleans, dates, timestamps (with a zone: UTC), bytea,
numeric with a declared precision up to 38 keep their types; json/jsonb,
uuid and everything else are written as text.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
from psycopg import sql

from pgferry.stores.multipart import Written
from pgferry.stores.parts import Part

BATCH_ROWS = 50_000

_BY_OID: dict[int, Any] = {
    16: pa.bool_(),
    20: pa.int64(),
    21: pa.int16(),
    23: pa.int32(),
    26: pa.int64(),
    700: pa.float32(),
    701: pa.float64(),
    1082: pa.date32(),
    1083: pa.time64("us"),
    1114: pa.timestamp("us"),
    1184: pa.timestamp("us", tz="UTC"),
    17: pa.binary(),
}
_JSON = (114, 3802)


def _arrow_type(col: Any) -> Any:
    if col.type_code in _BY_OID:
        return _BY_OID[col.type_code]
    if col.type_code == 1700 and col.precision and col.precision <= 38:
        return pa.decimal128(col.precision, col.scale or 0)
    return pa.string()


def _converter(col: Any, t: Any) -> Callable[[Any], Any]:
    if col.type_code in _JSON:
        return lambda v: None if v is None else json.dumps(v, ensure_ascii=False)
    if t == pa.string():
        return lambda v: None if v is None else (v if isinstance(v, str) else str(v))
    if pa.types.is_decimal(t):
        return lambda v: None if v is None or (isinstance(v, Decimal) and not v.is_finite()) else v
    return lambda v: v


class _Sink(io.RawIOBase):
    """A write-only file over the current part, counting its bytes."""

    def __init__(self, part: Part) -> None:
        super().__init__()
        self.part = part
        self.pos = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        b = bytes(data)
        self.part.write(b)
        self.pos += len(b)
        return len(b)

    def tell(self) -> int:
        return self.pos


class ParquetParts:
    """Parquet files KEY, KEY_part2, ... of about `limit` bytes each."""

    def __init__(self, open_part: Callable[[str], Part], key: str, limit: int) -> None:
        self._open = open_part
        self.key = key
        self.limit = limit
        self.written: list[Written] = []
        self.total = 0
        self._part: Part | None = None
        self._sink: _Sink | None = None
        self._writer: pq.ParquetWriter | None = None

    def _name(self) -> str:
        n = len(self.written) + 1
        return self.key if n == 1 else f"{self.key}_part{n}"

    def _end_file(self) -> None:
        if self._writer is not None and self._part is not None and self._sink is not None:
            self._writer.close()
            self.total += self._sink.pos
            self.written.append(self._part.close())
        self._writer = self._part = self._sink = None

    def write_query(
        self,
        conn: psycopg.Connection[Any],
        stmt: sql.Composed,
        on_bytes: Callable[[int, int], None] | None,
    ) -> int:
        rows = 0
        with conn.cursor(name="pgferry_export") as cur:
            cur.itersize = BATCH_ROWS
            cur.execute(stmt)
            desc = cur.description or []
            schema = pa.schema([pa.field(c.name, _arrow_type(c)) for c in desc])
            convert = [_converter(c, f.type) for c, f in zip(desc, schema, strict=True)]
            while batch := cur.fetchmany(BATCH_ROWS):
                arrays = [
                    pa.array([conv(r[i]) for r in batch], type=f.type)
                    for i, (conv, f) in enumerate(zip(convert, schema, strict=True))
                ]
                if self._writer is None:
                    self._part = self._open(self._name())
                    self._sink = _Sink(self._part)
                    self._writer = pq.ParquetWriter(self._sink, schema)
                self._writer.write_batch(pa.RecordBatch.from_arrays(arrays, schema=schema))
                rows += len(batch)
                assert self._sink is not None
                if on_bytes is not None:
                    on_bytes(self.total + self._sink.pos, 0)
                if self._sink.pos >= self.limit:
                    self._end_file()
            if not self.written and self._writer is None:  # no rows: one empty file
                self._part = self._open(self._name())
                self._sink = _Sink(self._part)
                self._writer = pq.ParquetWriter(self._sink, schema)
        return rows

    def close(self) -> list[Written]:
        self._end_file()
        return self.written

    def abort(self) -> None:
        if self._part is not None:
            self._part.abort()
        self._writer = self._part = self._sink = None
