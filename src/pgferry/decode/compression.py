"""Streaming decompression: gzip (isal), zstd (zstandard), bzip2 (stdlib).

The codec comes from the object's Content-Encoding when it names one (the
aws_s3 rule for gzip), else from the first bytes (magic numbers), unless the
caller forces it. Multi-member gzip and multi-frame zstd are followed; data
that ends mid-stream is an error, never a silent short load.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Protocol

from pgferry.errors import DecodeError, UsageError

# the codec libraries load when a compressed object comes: a plain CSV import
# (and `pgferry import --help`) does not pay for them
CODECS = ("gzip", "zstd", "bzip2")
CHOICES = ("auto", "none", *CODECS)

_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x1f\x8b\x08", "gzip"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
)
_BZIP2_BLOCK = b"\x31\x41\x59\x26\x53\x59"  # pi: the first block's magic
_ENCODING_NAMES = {
    "gzip": "gzip",
    "x-gzip": "gzip",
    "zstd": "zstd",
    "x-zstd": "zstd",
    "bzip2": "bzip2",
    "x-bzip2": "bzip2",
}


class _Decompressor(Protocol):
    @property
    def eof(self) -> bool: ...

    @property
    def unused_data(self) -> bytes: ...

    def decompress(self, data: bytes) -> bytes: ...


def _factory(codec: str) -> tuple[Callable[[], _Decompressor], type[Exception]]:
    """A new-decompressor function and the codec library's own error class."""
    if codec == "gzip":
        from isal import isal_zlib

        isal_error: type[Exception] = isal_zlib.error  # type: ignore[assignment]
        return lambda: isal_zlib.decompressobj(wbits=31), isal_error
    if codec == "zstd":
        import zstandard

        dctx = zstandard.ZstdDecompressor()
        return lambda: dctx.decompressobj(), zstandard.ZstdError
    if codec == "bzip2":
        import bz2

        return lambda: bz2.BZ2Decompressor(), OSError
    raise UsageError(f"unknown compression {codec!r}", hint=f"use one of {', '.join(CHOICES)}")


def sniff(head: bytes) -> str | None:
    for magic, codec in _MAGIC:
        if head.startswith(magic):
            return codec
    # "BZh" alone is plausible text; require the level digit and block magic
    if head[:3] == b"BZh" and head[3:4].isdigit() and head[4:10] == _BZIP2_BLOCK:
        return "bzip2"
    return None


def choose_codec(requested: str, content_encoding: str | None, head: bytes) -> str | None:
    """The codec to apply, or None for plain bytes."""
    if requested not in CHOICES:
        raise UsageError(
            f"unknown content encoding {requested!r}", hint=f"use one of {', '.join(CHOICES)}"
        )
    if requested == "none":
        return None
    if requested != "auto":
        return requested
    named = _ENCODING_NAMES.get((content_encoding or "").strip().lower())
    return named or sniff(head)


def decompress(chunks: Iterator[bytes], codec: str, *, where: str, **ctx: Any) -> Iterator[bytes]:
    """Yield the decompressed bytes of `chunks`, raising DecodeError naming
    `where` when the data is corrupt or ends before the stream does."""
    new, codec_error = _factory(codec)
    d = new()
    seen_any = False
    try:
        for chunk in chunks:
            while chunk:
                out = d.decompress(chunk)
                seen_any = True
                if out:
                    yield out
                if d.eof:
                    chunk = d.unused_data
                    d = new()
                    seen_any = False
                else:
                    chunk = b""
    except (OSError, EOFError, ValueError, codec_error) as e:
        raise DecodeError(
            f"corrupt {codec} data in {where}: {e}",
            hint="check the file (or pass --content-encoding none if it is not compressed)",
            **ctx,
        ) from None
    if seen_any and not d.eof:
        raise DecodeError(
            f"truncated {codec} data in {where}: the stream ends before its end marker",
            hint="re-upload the complete file; nothing was loaded",
            **ctx,
        )
