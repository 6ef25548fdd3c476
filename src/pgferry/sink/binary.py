"""CSV rows as COPY BINARY rows, when the result is exactly what COPY would
store reading the CSV.

Why: PostgreSQL spends most of a CSV load in its input functions
(numeric_in, date_in, timestamp_in); the same rows sent in binary load in
about half the server time. pyarrow splits the CSV and numpy lays out the
binary rows, on a client core that otherwise waits for the server.

Exactness is the rule. `Encoder.encode` takes a block of whole lines and
returns None, and the caller loads from that block on as CSV, unless every
value reads the same as COPY's CSV reading would read it:
- quotes: every quote belongs to a quoted field that starts at a field
  start and ends at a field end, within one line (COPY enters quote mode
  mid-field, Arrow keeps such a quote; a quoted line break would let a
  block end inside a field);
- line ends: all LF, or all CRLF, throughout (COPY refuses a mix); no NUL
  byte, no `\\.` line (COPY's end-of-data marker), no empty line when the
  table takes more than one column (Arrow reads it as a row of NULLs);
- values: integers in decimal digits, numeric as -digits.digits (`5.` and
  `.5` too, up to 18 digits), dates as YYYY-MM-DD and timestamps as
  YYYY-MM-DD HH:MM:SS with up to 6 fractional digits, years 1 to 9999.
  Another spelling (a sign +, spaces, exponents, NaN, a time zone,
  `infinity`, `0x1F`, `1_000`) is left to COPY.
Server-side checks (length limits, numeric precision, constraints) apply
to binary rows as to text: the receive functions take the column's typmod.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv


def _lean_pool() -> None:
    """pyarrow's default pool (mimalloc) hands freed blocks back to the OS
    and faults them in again: with two encoding threads that cost 1.3 s of
    system time per 265 MiB against 0.3 s with jemalloc (the system
    allocator, where pyarrow has no jemalloc, 0.4 s)."""
    try:
        pa.set_memory_pool(pa.jemalloc_memory_pool())
    except NotImplementedError:
        pa.set_memory_pool(pa.system_memory_pool())


_lean_pool()

SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
TRAILER = struct.pack(">h", -1)
_NULL = pa.scalar(b"\xff\xff\xff\xff", pa.binary())
_EMPTY = pa.scalar(b"", pa.binary())
_PG_EPOCH_DAYS = 10957  # 2000-01-01 in days since 1970-01-01
_PG_EPOCH_US = _PG_EPOCH_DAYS * 86_400_000_000
_YEAR_1_DAYS = -719162  # 0001-01-01; Arrow reads year 0000, PostgreSQL refuses it
_NUMERIC = r"^(?P<sign>-?)(?P<int>[0-9]+)(?:\.(?P<frac>[0-9]+))?$"
_TIMESTAMP = r"^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?$"
_MAX_NUMERIC_DIGITS = 64  # per side: wider values pad every row of a block
_END_MARKER = re.compile(rb"(?:^|\n)\\\.\r?(?:\n|$)")

_INT_TYPES = {"int2": pa.int16(), "int4": pa.int32(), "int8": pa.int64()}


@dataclass(frozen=True)
class Column:
    name: str
    kind: str


class _Inexact(Exception):
    """This block would not read exactly as COPY reads it."""


@dataclass(frozen=True)
class Encoded:
    data: memoryview  # the rows in COPY BINARY (without the file header)
    rows: int
    crlf: bool | None  # the block's line ends: CRLF, LF, or None (no line end)


class Encoder:
    """Encode CSV blocks (whole lines, COPY's default quoting, NULL as an
    unquoted empty field) for `columns`, in the order the COPY names them.
    Holds no state between blocks: blocks may be encoded on several threads
    at once; the caller checks that line ends agree from block to block."""

    def __init__(self, columns: Sequence[Column], delimiter: str) -> None:
        self.columns = list(columns)
        names = [f"c{i}" for i in range(len(columns))]
        d = re.escape(delimiter)
        field = f'(?:"(?:[^"]|"")*"|[^"{d}\\r\\n]*)'
        self._line = f"^{field}(?:{d}{field})*\\r?\\n?$"
        self._read = pacsv.ReadOptions(column_names=names, use_threads=False)
        self._parse = pacsv.ParseOptions(
            delimiter=delimiter,
            quote_char='"',
            double_quote=True,
            escape_char=False,
            newlines_in_values=False,
            ignore_empty_lines=False,
        )
        self._convert = pacsv.ConvertOptions(
            column_types={n: pa.string() for n in names},
            null_values=[""],
            strings_can_be_null=True,
            quoted_strings_can_be_null=False,
            check_utf8=True,
        )

    def encode(self, block: bytes, *, header: bool = False) -> Encoded | None:
        """`block`'s rows in binary, or None when the block (and so the rest
        of the load) must go as CSV. `header`: skip the block's first line."""
        try:
            return self._encode(block, header)
        except (_Inexact, pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return None

    def _encode(self, block: bytes, header: bool) -> Encoded:
        if len(block) >= 1 << 31:
            raise _Inexact  # Arrow's string offsets are 32-bit
        # one-byte searches first: a two-byte one costs ten times as much
        if b"\0" in block or (b"\\" in block and _END_MARKER.search(block)):
            raise _Inexact
        view = np.frombuffer(block, np.uint8)
        ends = np.flatnonzero(view == 10)
        open_end = not block.endswith(b"\n")
        crlf = _line_ends(block, view, ends, open_end)
        offsets = np.concatenate(([0], ends + 1))  # line starts, then where the last ends
        if open_end:
            offsets = np.append(offsets, len(block))
        if b'"' in block:
            self._quotes(block, view, offsets)
        first = 0
        if header and len(offsets) > 1:
            first = int(offsets[1])
            offsets = offsets[1:]
        rows = len(offsets) - 1
        if rows == 0:
            return Encoded(memoryview(b""), 0, crlf)
        if len(self.columns) > 1:
            ending = np.full(rows, 2 if crlf else 1)
            if open_end:
                ending[-1] = 0
            if not (np.diff(offsets) - ending).all():
                raise _Inexact  # an empty line: Arrow reads NULLs, COPY refuses it
        table = pacsv.read_csv(
            pa.py_buffer(block[first:]),
            read_options=self._read,
            parse_options=self._parse,
            convert_options=self._convert,
        )
        if table.num_rows != rows:
            raise _Inexact
        # Arrow reads 0x1F as an integer (PostgreSQL before 16 refuses it):
        # number columns are searched for an x only when the block has one
        hex_ = b"x" in block or b"X" in block
        return Encoded(_rows(self._fields(table, hex_), rows), rows, crlf)

    def _quotes(self, block: bytes, view: Bytes, offsets: npt.NDArray[np.intp]) -> None:
        """Every line holding a quote is whole quoted fields and plain ones."""
        at = np.flatnonzero(view == 34)
        line = np.searchsorted(offsets, at, side="right") - 1
        which = line[np.diff(line, prepend=-1) != 0]  # sorted already: no np.unique sort
        lines = pa.Array.from_buffers(
            pa.binary(),
            len(offsets) - 1,
            [None, pa.py_buffer(offsets.astype(np.int32)), pa.py_buffer(block)],
        ).take(pa.array(which))
        if not pc.all(pc.match_substring_regex(lines, self._line)).as_py():
            raise _Inexact

    def _fields(self, table: pa.Table, hex_: bool) -> list[pa.Array]:
        """The rows' pieces to join: runs of fixed-width fields laid out in
        one numpy block (with the length word of a text field that follows),
        and the text values and nullable fields apart."""
        n = table.num_rows
        pieces: list[pa.Array] = []
        run: list[Bytes] = [np.frombuffer(struct.pack(">h", len(self.columns)) * n, np.uint8)]

        def flush() -> None:
            if run:
                pieces.append(_as_binary(np.concatenate([r.reshape(n, -1) for r in run], axis=1)))
                run.clear()

        for i, col in enumerate(self.columns):
            values = table.column(i).combine_chunks()
            if col.kind == "text":
                data = values.cast(pa.binary())
                lengths = pc.binary_length(data).fill_null(-1).to_numpy()
                run.append(lengths.astype(">i4").view(np.uint8))
                flush()
                pieces.append(data.fill_null(b"") if data.null_count else data)
                continue
            if hex_ and pc.any(pc.match_substring(values, "x", ignore_case=True)).as_py():
                raise _Inexact
            field = _ENCODE[col.kind](values)
            if values.null_count:
                flush()
                pieces.append(pc.if_else(values.is_valid(), _as_binary(field), _NULL))
            else:
                run.append(field)
        flush()
        return pieces


Bytes = npt.NDArray[np.uint8]


def _line_ends(
    block: bytes, view: Bytes, ends: npt.NDArray[np.intp], open_end: bool
) -> bool | None:
    """True: every line ends in CRLF; False: in LF, with no CR anywhere;
    None: no line end in the block. A mix (or a lone CR) is _Inexact."""
    crs = block.count(b"\r") if b"\r" in block else 0  # `in` is a memchr, count is not
    if crs == 0:
        return False if len(ends) else None
    if crs == len(ends) and not open_end and bool((view[ends - 1] == 13).all()):
        return True
    raise _Inexact


def _rows(pieces: list[pa.Array], rows: int) -> memoryview:
    """The joined rows as one buffer (a view: no copy)."""
    joined = pieces[0] if len(pieces) == 1 else pc.binary_join_element_wise(*pieces, _EMPTY)
    offsets = np.frombuffer(joined.buffers()[1], np.int32)
    start, stop = int(offsets[joined.offset]), int(offsets[joined.offset + rows])
    return memoryview(joined.buffers()[2])[start:stop]


def _as_binary(fields: Bytes) -> pa.Array:
    """An (n, width) byte block as a binary array of n values (no copy)."""
    n, width = fields.shape
    offsets = np.arange(0, (n + 1) * width, width, dtype=np.int32)
    data = np.ascontiguousarray(fields)
    return pa.Array.from_buffers(pa.binary(), n, [None, pa.py_buffer(offsets), pa.py_buffer(data)])


def _prefixed(values: npt.NDArray[Any]) -> Bytes:
    """Length word and big-endian `values`, one row each."""
    n, width = len(values), values.dtype.itemsize
    out = np.empty((n, 4 + width), np.uint8)
    out[:, :4] = np.frombuffer(struct.pack(">i", width), np.uint8)
    big = values.astype(values.dtype.newbyteorder(">"), copy=False)
    out[:, 4:] = big.view(np.uint8).reshape(n, width)
    return out


def _integer(arrow_type: pa.DataType) -> Callable[[pa.Array], Bytes]:
    def encode(col: pa.Array) -> Bytes:
        return _prefixed(pc.cast(col, arrow_type).fill_null(0).to_numpy())

    return encode


def _date(col: pa.Array) -> Bytes:
    days = pc.cast(pc.cast(col, pa.date32()), pa.int32())
    low = pc.min(days).as_py()
    if low is not None and low < _YEAR_1_DAYS:
        raise _Inexact
    return _prefixed(days.fill_null(0).to_numpy() - np.int32(_PG_EPOCH_DAYS))


def _timestamp(col: pa.Array) -> Bytes:
    """YYYY-MM-DD HH:MM:SS[.f{1,6}] only: Arrow checks the field ranges."""
    if not pc.all(pc.match_substring_regex(col, _TIMESTAMP)).as_py():
        raise _Inexact
    micros = pc.cast(pc.cast(col, pa.timestamp("us")), pa.int64())
    low = pc.min(micros).as_py()
    if low is not None and low < _YEAR_1_DAYS * 86_400_000_000:
        raise _Inexact
    return _prefixed(micros.fill_null(0).to_numpy() - np.int64(_PG_EPOCH_US))


def _numeric(col: pa.Array) -> Bytes:
    """numeric's binary form: ndigits, weight, sign, dscale, base-10000
    digits. Every row of a block gets the same digit groups (padded with
    zeros, which numeric_recv strips as numeric_in does); dscale is the
    fraction digits as written, as numeric_in keeps them. Values of up to
    18 digits (almost all) go through int64 arithmetic; longer ones as text."""
    values = col.fill_null("0") if col.null_count else col
    # a second point fails the int64 cast below, or _NUMERIC on the text route
    if pc.max(pc.find_substring(values, "-")).as_py() > 0:
        raise _Inexact  # a minus sign not in front
    # int64 throughout: Arrow's positions are int32, and 10**10 is not
    dot = pc.find_substring(values, ".").to_numpy().astype(np.int64)
    length = pc.binary_length(values).to_numpy().astype(np.int64)
    frac_len = np.where(dot >= 0, length - dot - 1, 0)
    digits = pc.replace_substring(values, ".", "", max_replacements=1)
    negative = pc.starts_with(digits, "-").to_numpy(zero_copy_only=False)
    count = length - (dot >= 0) - negative  # digits as written
    scale = int(frac_len.max())
    if scale > 15 or int((count + scale - frac_len).max()) > 18:
        return _numeric_text(col)
    # "5." and ".5" read as numeric_in reads them: 5 (scale 0) and 0.5
    number = np.abs(pc.cast(digits, pa.int64()).to_numpy())
    number *= np.power(np.int64(10), scale - frac_len)
    whole, part = np.divmod(number, 10**scale)
    int_groups = max(1, (int((count - frac_len).max()) + 3) // 4)
    frac_groups = (scale + 3) // 4
    part *= 10 ** (frac_groups * 4 - scale)
    base = np.empty((len(col), int_groups + frac_groups), np.int16)
    for k in range(int_groups):
        base[:, k] = whole // 10 ** (4 * (int_groups - 1 - k)) % 10000
    for k in range(frac_groups):
        base[:, int_groups + k] = part // 10 ** (4 * (frac_groups - 1 - k)) % 10000
    return _numeric_words(base, int_groups, negative, frac_len)


def _numeric_words(
    base: npt.NDArray[np.int16],
    int_groups: int,
    negative: npt.NDArray[np.bool_],
    frac_len: npt.NDArray[Any],
) -> Bytes:
    n, groups = base.shape
    head = np.empty((n, 4), ">i2")
    head[:, 0] = groups
    head[:, 1] = int_groups - 1
    head[:, 2] = np.where(negative, 0x4000, 0)
    head[:, 3] = frac_len
    out = np.empty((n, 12 + 2 * groups), np.uint8)
    out[:, :4] = np.frombuffer(struct.pack(">i", 8 + 2 * groups), np.uint8)
    out[:, 4:12] = head.view(np.uint8).reshape(n, 8)
    out[:, 12:] = base.astype(">i2").view(np.uint8).reshape(n, 2 * groups)
    return out


def _numeric_text(col: pa.Array) -> Bytes:
    """_numeric for any number of digits: the digits as text, padded."""
    n = len(col)
    parts = pc.extract_regex(col.fill_null("0") if col.null_count else col, _NUMERIC)
    if parts.null_count:
        raise _Inexact  # a value in another spelling
    whole, frac = parts.field("int"), parts.field("frac")
    int_len = pc.utf8_length(whole).to_numpy()
    frac_len = pc.utf8_length(frac).to_numpy()
    if int_len.max() > _MAX_NUMERIC_DIGITS or frac_len.max() > _MAX_NUMERIC_DIGITS:
        raise _Inexact
    int_groups = (int(int_len.max()) + 3) // 4
    frac_groups = (int(frac_len.max()) + 3) // 4
    groups = int_groups + frac_groups
    digits = pc.binary_join_element_wise(
        pc.utf8_lpad(whole, int_groups * 4, "0"), pc.utf8_rpad(frac, frac_groups * 4, "0"), ""
    )
    first = int(np.frombuffer(digits.buffers()[1], np.int32)[digits.offset])
    raw = np.frombuffer(digits.buffers()[2], np.uint8)[first : first + n * groups * 4]
    d = raw.reshape(n, groups, 4).astype(np.int16) - 48
    base = d[:, :, 0] * 1000 + d[:, :, 1] * 100 + d[:, :, 2] * 10 + d[:, :, 3]
    negative = pc.equal(parts.field("sign"), "-").to_numpy(zero_copy_only=False)
    return _numeric_words(base, int_groups, negative, frac_len)


_ENCODE: dict[str, Callable[[pa.Array], Bytes]] = {
    "numeric": _numeric,
    "date": _date,
    "timestamp": _timestamp,
    **{k: _integer(t) for k, t in _INT_TYPES.items()},
}
