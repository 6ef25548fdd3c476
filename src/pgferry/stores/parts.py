"""COPY TO output split into objects of about `limit` bytes, named KEY,
KEY_part2, KEY_part3, ... like aws_s3.query_export_to_s3.

A file ends at the first row end after `limit` bytes, so every file loads
on its own: in text format every newline ends a row (COPY escapes newlines
in data); in CSV a newline ends a row only outside quotes, tracked by quote
parity. Binary output is never split. Shared by the extension's export
(extension/upload.py) and `pgferry export` (export.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from pgferry.sink.options import CopyOptions

if TYPE_CHECKING:  # multipart loads botocore: a local import must not
    from pgferry.stores.multipart import Written


class RowEnds:
    """Finds row ends in COPY TO output, carrying CSV quote state across chunks."""

    def __init__(self, fmt: str, quote: bytes, escape: bytes) -> None:
        self.csv = fmt == "csv"
        self.quote = quote
        self.escaped = escape + quote if escape != quote else b""
        self.open = False  # inside a quoted CSV field

    def flip(self, data: bytes) -> bool:
        """Whether `data` toggles the in-quotes state (an odd count of quotes)."""
        n = data.count(self.quote) - (data.count(self.escaped) if self.escaped else 0)
        return n % 2 == 1

    def first_end(self, chunk: bytes, start: int) -> int:
        """Index just past the first row end at or after `start`, or -1."""
        if not self.csv:
            i = chunk.find(b"\n", start)
            return -1 if i < 0 else i + 1
        state = self.open ^ self.flip(chunk[:start])
        pos = start
        while True:
            i = chunk.find(b"\n", pos)
            if i < 0:
                return -1
            state ^= self.flip(chunk[pos:i])
            if not state:
                return i + 1
            pos = i + 1

    def advance(self, data: bytes) -> None:
        if self.csv:
            self.open ^= self.flip(data)


def row_ends(options: CopyOptions) -> RowEnds:
    quote = str(options.values.get("quote") or '"').encode()
    escape = str(options.values.get("escape") or options.values.get("quote") or '"').encode()
    return RowEnds(options.format, quote, escape)


class Part(Protocol):
    """One object being written (stores/multipart.MultipartWriter, or a wrapper)."""

    @property
    def size(self) -> int: ...

    def write(self, data: bytes) -> None: ...

    def close(self) -> Written: ...

    def abort(self) -> None: ...


class PartSplitter:
    """Feed COPY TO output with `write`; `close` ends the last file, `abort`
    drops the one in progress. `open_part(key)` starts each file."""

    def __init__(
        self, open_part: Callable[[str], Part], key: str, limit: int, ends: RowEnds, split: bool
    ) -> None:
        self._open = open_part
        self.key = key
        self.limit = limit
        self.ends = ends
        self.split = split
        self.total = 0
        self.written: list[Written] = []
        self._part = open_part(key)

    @property
    def files(self) -> int:
        return len(self.written) + 1

    def _next(self) -> None:
        self.written.append(self._part.close())
        self._part = self._open(f"{self.key}_part{self.files}")

    def write(self, chunk: bytes) -> None:
        part, limit, ends = self._part, self.limit, self.ends
        self.total += len(chunk)
        while self.split and part.size + len(chunk) > limit:
            cut = ends.first_end(chunk, max(0, limit - part.size - 1))
            if cut < 0 or cut == len(chunk):
                break
            part.write(chunk[:cut])
            ends.advance(chunk[:cut])
            self._next()
            part = self._part
            chunk = chunk[cut:]
        part.write(chunk)
        ends.advance(chunk)
        if self.split and part.size >= limit and chunk.endswith(b"\n") and not ends.open:
            self._next()

    def close(self) -> list[Written]:
        """Every file written; the output ending exactly at a file boundary
        leaves no empty last file."""
        if self._part.size == 0 and self.written:
            self._part.abort()
        else:
            self.written.append(self._part.close())
        return self.written

    def abort(self) -> None:
        self._part.abort()
