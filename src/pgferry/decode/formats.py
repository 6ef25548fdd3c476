"""What the first decoded bytes say about a file COPY cannot read.

COPY would fail on these with a row error about an invalid byte (or worse,
load garbage); recognising them by their magic bytes lets the import refuse
them up front with the one step that fixes it.
"""

from __future__ import annotations

from typing import Any

from pgferry.decode.compression import sniff
from pgferry.errors import UnsupportedFormat, UsageError
from pgferry.stores import ObjectRef

UTF8_BOM = b"\xef\xbb\xbf"
PGCOPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
_RECOMPRESS = "or recompress it with gzip, zstd or bzip2, which pgferry reads"
# magic bytes -> (what it is, what to do)
_FOREIGN: tuple[tuple[bytes, str, str], ...] = (
    (b"PK\x03\x04", "a zip archive", "unzip it and import the file inside"),
    (b"PK\x05\x06", "an empty zip archive", "unzip it and import the file inside"),
    (b"\xfd7zXZ\x00", "xz-compressed", f"decompress it (xz -d) first, {_RECOMPRESS}"),
    (b"7z\xbc\xaf\x27\x1c", "a 7z archive", "extract it (7z x) and import the file inside"),
    (b"\x04\x22\x4d\x18", "lz4-compressed", f"decompress it (lz4 -d) first, {_RECOMPRESS}"),
    (b"PAR1", "a Parquet file", "load it with --format parquet"),
    (b"\xff\xfe", "UTF-16 text", "convert it to UTF-8 first (iconv -f UTF-16 -t UTF-8)"),
    (b"\xfe\xff", "UTF-16 text", "convert it to UTF-8 first (iconv -f UTF-16 -t UTF-8)"),
)


def check_head(head: bytes, ref: ObjectRef, *, codec: str | None, requested: str, fmt: str) -> None:
    """Raise when `head` (the first decoded bytes) cannot be what COPY reads."""
    ctx: dict[str, Any] = {"bucket": ref.bucket, "key": ref.key}
    if codec is None and requested == "none" and (found := sniff(head)):
        raise UsageError(
            f"{ref.uri} is {found}-compressed but --content-encoding none loads it as it is",
            hint="drop --content-encoding none: the default (auto) decompresses it",
            **ctx,
        )
    if fmt == "binary":
        if head and not head.startswith(PGCOPY_SIGNATURE):
            raise UsageError(
                f"{ref.uri} is not in PostgreSQL's binary COPY format (format binary)",
                hint="drop format binary; a CSV file takes (format csv)",
                **ctx,
            )
        return
    for magic, what, todo in _FOREIGN:
        if head.startswith(magic):
            raise UnsupportedFormat(
                f"{ref.uri} is {what}, which COPY cannot read", hint=todo, **ctx
            )
    if head[257:262] == b"ustar":
        raise UnsupportedFormat(
            f"{ref.uri} is a tar archive, which COPY cannot read",
            hint="extract it (tar -xf) and import the file inside",
            **ctx,
        )
