"""Parquet to COPY: read row groups in batches and hand COPY CSV text.

The file is read through a seekable view that fetches only the byte ranges
pyarrow asks for (the footer, then one column chunk at a time, in
`BUFFER`-sized reads), so memory stays near one batch whatever the file
size. S3 ranges carry If-Match with the ETag seen at open, like the
streaming reader. Nested values (lists, structs, maps) become JSON text for
jsonb columns; binary becomes bytea's hex form.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from pgferry import background
from pgferry.errors import DecodeError, UnsupportedFormat, UsageError
from pgferry.infer import Column
from pgferry.stores import ObjectRef
from pgferry.stores.s3 import S3Config, S3Reader, map_error

BATCH_ROWS = 64 << 10
BUFFER = 8 << 20  # bytes pyarrow reads at a time from a column chunk


class RangedFile(io.RawIOBase):
    """A read-only seekable file over `fetch(offset, length)`."""

    def __init__(
        self,
        size: int,
        fetch: Callable[[int, int], bytes],
        on_bytes: Callable[[int, int], None] | None = None,
    ) -> None:
        super().__init__()
        self.size = size
        self._fetch = fetch
        self._pos = 0
        self._read = 0
        self._on_bytes = on_bytes

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._pos, os.SEEK_END: self.size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        n = min(len(view), self.size - self._pos)
        if n <= 0:
            return 0
        data = self._fetch(self._pos, n)
        view[: len(data)] = data
        self._pos += len(data)
        self._read += len(data)
        if self._on_bytes is not None:
            self._on_bytes(min(self._read, self.size), self.size)
        return len(data)


class ParquetSource:
    """One Parquet object opened for batched reading."""

    def __init__(
        self,
        ref: ObjectRef,
        s3: S3Config,
        on_bytes: Callable[[int, int], None] | None = None,
    ) -> None:
        self.ref = ref
        self._close: Callable[[], None]
        if ref.is_local:
            from pgferry.stores.local import LocalReader

            local = LocalReader(ref)  # its errors: missing file, permission, folder
            fd = local._file.fileno()
            self.size = local.size
            fetch: Callable[[int, int], bytes] = lambda off, n: os.pread(fd, n, off)  # noqa: E731
            self._close = local.close
        else:
            reader = S3Reader(ref, s3)
            self.size = reader.size
            fetch = self._s3_fetch(reader)
            self._close = reader.close
        self._file = RangedFile(self.size, fetch, on_bytes)
        try:
            self.file = pq.ParquetFile(self._file, buffer_size=BUFFER, pre_buffer=False)
        except (pa.ArrowInvalid, OSError) as e:
            self.close()
            raise UnsupportedFormat(
                f"{ref.uri} is not a readable Parquet file: {e}",
                hint="check the file, or pass --format to read it as csv, text or jsonl",
                bucket=ref.bucket,
                key=ref.key,
            ) from None

    @staticmethod
    def _s3_fetch(reader: S3Reader) -> Callable[[int, int], bytes]:
        ref = reader.ref

        def fetch(offset: int, n: int) -> bytes:
            try:
                resp = reader.client.get_object(
                    Bucket=ref.bucket,
                    Key=ref.key,
                    Range=f"bytes={offset}-{offset + n - 1}",
                    IfMatch=reader.etag,
                )
                return bytes(resp["Body"].read())
            except Exception as e:  # botocore raises several unrelated classes
                raise map_error(e, ref.bucket, ref.key) from None

        return fetch

    @property
    def names(self) -> list[str]:
        return list(self.file.schema_arrow.names)

    def columns(self, wanted: Sequence[str]) -> list[Column]:
        schema = self.file.schema_arrow
        return [Column(f.name, pg_type(f.type)) for f in schema if not wanted or f.name in wanted]

    def select(self, wanted: Sequence[str]) -> list[str]:
        """The file's columns to load: all, or those named (each must exist)."""
        if not wanted:
            return self.names
        missing = [c for c in wanted if c not in self.names]
        if missing:
            raise UsageError(
                f"{self.ref.uri} has no column {', '.join(missing)}",
                hint=f"its columns are {', '.join(self.names)}",
                bucket=self.ref.bucket,
                key=self.ref.key,
            )
        return list(wanted)

    def csv_chunks(self, columns: Sequence[str]) -> Iterator[bytes]:
        """COPY CSV text (no header) of `columns`, one batch at a time,
        converted one batch ahead in a thread (pyarrow releases the GIL), so
        reading and converting overlap with COPY."""
        return background.ahead(self._csv_chunks(columns), depth=2, name="pgferry-parquet")

    def _csv_chunks(self, columns: Sequence[str]) -> Iterator[bytes]:
        try:
            for batch in self.file.iter_batches(batch_size=BATCH_ROWS, columns=list(columns)):
                yield to_csv(batch)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError) as e:
            if isinstance(e, OSError) and not isinstance(e, pa.ArrowException):
                raise
            raise DecodeError(
                f"cannot read {self.ref.uri} as Parquet: {e}",
                hint="check the file; nothing was loaded",
                bucket=self.ref.bucket,
                key=self.ref.key,
            ) from None

    def close(self) -> None:
        self._close()


def pg_type(t: pa.DataType) -> str:
    """The PostgreSQL type that holds Arrow type `t` without loss."""
    if pa.types.is_dictionary(t):
        return pg_type(t.value_type)
    if pa.types.is_boolean(t):
        return "boolean"
    if pa.types.is_int8(t) or pa.types.is_int16(t) or pa.types.is_uint8(t):
        return "smallint"
    if pa.types.is_int32(t) or pa.types.is_uint16(t):
        return "integer"
    if pa.types.is_int64(t) or pa.types.is_uint32(t):
        return "bigint"
    if pa.types.is_uint64(t):
        return "numeric(20,0)"
    if pa.types.is_float16(t) or pa.types.is_float32(t):
        return "real"
    if pa.types.is_float64(t):
        return "double precision"
    if pa.types.is_decimal(t):
        return f"numeric({t.precision},{t.scale})"
    if pa.types.is_date(t):
        return "date"
    if pa.types.is_time(t):
        return "time"
    if pa.types.is_timestamp(t):
        return "timestamptz" if t.tz else "timestamp"
    if pa.types.is_duration(t):
        return "interval"
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t):
        return "bytea"
    if _nested(t):
        return "jsonb"
    return "text"


def _nested(t: pa.DataType) -> bool:
    return bool(
        pa.types.is_list(t)
        or pa.types.is_large_list(t)
        or pa.types.is_fixed_size_list(t)
        or pa.types.is_struct(t)
        or pa.types.is_map(t)
    )


def _json_default(v: Any) -> Any:
    if isinstance(v, bytes):
        return "\\x" + v.hex()
    return str(v)  # dates, decimals, timestamps: their ISO text


def _plain(v: Any) -> Any:
    """Maps come back as lists of (key, value) pairs: JSON objects instead."""
    if isinstance(v, list):
        if v and all(isinstance(x, tuple) and len(x) == 2 for x in v):
            return {str(k): _plain(x) for k, x in v}
        return [_plain(x) for x in v]
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    return v


def _text_column(col: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """A column the CSV writer cannot write as PostgreSQL reads it, as text."""
    t = col.type
    if pa.types.is_dictionary(t):
        return _text_column(col.cast(t.value_type))
    if _nested(t):
        out = [
            None if v is None else json.dumps(_plain(v), default=_json_default, ensure_ascii=False)
            for v in col.to_pylist()
        ]
        return pa.array(out, pa.string())
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t):
        return pa.array([None if v is None else "\\x" + v.hex() for v in col.to_pylist()])
    if pa.types.is_duration(t):
        unit = {"s": "seconds", "ms": "milliseconds", "us": "microseconds", "ns": "microseconds"}
        scale = 1000 if t.unit == "ns" else 1
        return pa.array(
            [
                None if v is None else f"{v // scale} {unit[t.unit]}"
                for v in col.cast(pa.int64()).to_pylist()
            ],
            pa.string(),
        )
    if pa.types.is_float16(t):
        return col.cast(pa.float32())
    return col


def to_csv(batch: pa.RecordBatch) -> bytes:
    cols = [_text_column(c) for c in batch.columns]
    fixed = pa.RecordBatch.from_arrays(cols, names=batch.schema.names)
    out = io.BytesIO()
    pacsv.write_csv(fixed, out, pacsv.WriteOptions(include_header=False))
    return out.getvalue()
