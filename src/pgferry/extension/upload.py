"""Export upload: COPY TO output from stdin into S3 objects of about
`part_size` bytes, named KEY, KEY_part2, KEY_part3, ... like aws_s3.

A part ends at the first row end after `part_size` bytes, so every file is
loadable on its own: in text format every newline ends a row (COPY escapes
newlines in data); in CSV a newline ends a row only outside quotes, tracked
by quote parity. Binary output is never split. Memory stays bounded: each
part goes up through the shared multipart writer (stores/multipart.py) in
8 MiB pieces, a single PUT when it is smaller.
"""

from __future__ import annotations

from typing import BinaryIO

from pgferry import units
from pgferry.errors import PgferryError
from pgferry.extension.options import parse_for
from pgferry.stores.multipart import Encryption, MultipartWriter
from pgferry.stores.s3 import S3Config, make_client, map_error

DEFAULT_PART = 6 << 30  # aws_s3's part size: about 6 GB


def parse_size(text: object) -> int:
    if text is None or text == "":
        return DEFAULT_PART
    size = units.parse_size(
        str(text), what="aws_s3.export_part_size", hint="e.g. 6GB, 64MB or 1048576"
    )
    assert size is not None  # without allow_none it is a positive int or an error
    return size


class RowEnds:
    """Finds row ends in COPY TO output, carrying CSV quote state across chunks."""

    def __init__(self, fmt: str, quote: bytes, escape: bytes) -> None:
        self.csv = fmt == "csv"
        self.quote = quote
        self.escaped = escape + quote if escape != quote else b""
        self.open = False  # inside a quoted CSV field

    def _flip(self, data: bytes) -> bool:
        n = data.count(self.quote) - (data.count(self.escaped) if self.escaped else 0)
        return n % 2 == 1

    def first_end(self, chunk: bytes, start: int) -> int:
        """Index just past the first row end at or after `start`, or -1."""
        if not self.csv:
            i = chunk.find(b"\n", start)
            return -1 if i < 0 else i + 1
        state = self.open ^ self._flip(chunk[:start])
        pos = start
        while True:
            i = chunk.find(b"\n", pos)
            if i < 0:
                return -1
            state ^= self._flip(chunk[pos:i])
            if not state:
                return i + 1
            pos = i + 1

    def advance(self, data: bytes) -> None:
        if self.csv:
            self.open ^= self._flip(data)


def upload_parts(
    source: BinaryIO,
    *,
    bucket: str,
    key: str,
    config: S3Config,
    options: str,
    part_size: object,
    kms_key: str | None = None,
    read_size: int = 1 << 20,
) -> tuple[int, int]:
    """Upload all of `source`; return (files, bytes)."""
    limit = parse_size(part_size)
    opts = parse_for(options, "export")
    quote = str(opts.values.get("quote") or '"').encode()
    escape = str(opts.values.get("escape") or opts.values.get("quote") or '"').encode()
    ends = RowEnds(opts.format, quote, escape)
    split = opts.format != "binary"
    enc = Encryption("aws:kms", kms_key) if kms_key else Encryption()
    client = make_client(config, config.region)
    files, total = 1, 0
    part = MultipartWriter(client, bucket, key, enc=enc)
    try:
        while chunk := source.read(read_size):
            total += len(chunk)
            while split and part.size + len(chunk) > limit:
                cut = ends.first_end(chunk, max(0, limit - part.size - 1))
                if cut < 0 or cut == len(chunk):
                    break
                part.write(chunk[:cut])
                ends.advance(chunk[:cut])
                part.close()
                files += 1
                part = MultipartWriter(client, bucket, f"{key}_part{files}", enc=enc)
                chunk = chunk[cut:]
            part.write(chunk)
            ends.advance(chunk)
            if split and part.size >= limit and chunk.endswith(b"\n") and not ends.open:
                part.close()
                files += 1
                part = MultipartWriter(client, bucket, f"{key}_part{files}", enc=enc)
        if part.size == 0 and files > 1:
            files -= 1  # the output ended exactly at a part boundary
        else:
            part.close()
    except (PgferryError, KeyboardInterrupt):  # cancelled: upload nothing more
        part.abort()
        raise
    except Exception as e:
        part.abort()
        raise map_error(e, bucket, key) from None
    return files, total
