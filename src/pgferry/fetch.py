"""Fetch and decode one object: the single code path shared by the
client-side import and the in-database extension's fetcher program.

`open_decoded` opens the object, picks the codec (forced, Content-Encoding,
or magic bytes) and returns a `Decoded` whose `stream()` yields plain bytes
in bounded pieces. `checked` then looks at the first decoded bytes, on both
paths: it refuses what COPY cannot read (a zip, xz, 7z... with one line
naming the object) and drops a UTF-8 byte-order mark. Charset conversion is
left to COPY's `encoding` option, which the server applies to the plain
bytes on both paths.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from pgferry.decode.compression import choose_codec, decompress
from pgferry.decode.formats import UTF8_BOM, check_head
from pgferry.stores import ObjectReader, ObjectRef
from pgferry.stores.local import LocalReader
from pgferry.stores.s3config import S3Config

#: decoded bytes looked at before loading: format checks, BOM, header guess
HEAD_BYTES = 64 << 10


def open_object(ref: ObjectRef, s3: S3Config | None = None) -> ObjectReader:
    if ref.is_local:
        return LocalReader(ref)
    # botocore loads here, on the thread that opens the object: a local file
    # never pays for it, and an S3 import loads it while it connects
    from pgferry.stores.s3 import S3Reader

    return S3Reader(ref, s3 or S3Config())


@dataclass
class Decoded:
    reader: ObjectReader
    codec: str | None
    _chunks: Iterator[bytes]

    @property
    def ref(self) -> ObjectRef:
        return self.reader.ref

    @property
    def size(self) -> int:
        return self.reader.size

    def stream(self) -> Iterator[bytes]:
        if self.codec is None:
            return self._chunks
        ref = self.reader.ref
        return decompress(self._chunks, self.codec, where=ref.uri, bucket=ref.bucket, key=ref.key)

    def close(self) -> None:
        self.reader.close()

    def __enter__(self) -> Decoded:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_decoded(
    ref: ObjectRef,
    s3: S3Config | None = None,
    *,
    content_encoding: str = "auto",
    on_bytes: Callable[[int, int], None] | None = None,
    reader: ObjectReader | None = None,
) -> Decoded:
    """Open `ref` for reading; `on_bytes(done, total)` is told how many stored
    (compressed) bytes arrived so far, for progress reporting. `reader`: the
    object already opened (`pgferry watch` fetches small ones ahead)."""
    reader = reader or open_object(ref, s3)
    try:
        raw = reader.chunks()
        if on_bytes is not None:
            raw = _counted(raw, reader.size, on_bytes)
        first = next(raw, b"")
        codec = choose_codec(content_encoding, reader.content_encoding, first)
        chunks = itertools.chain([first] if first else [], raw)
        return Decoded(reader, codec, chunks)
    except BaseException:
        reader.close()
        raise


def _counted(
    chunks: Iterator[bytes], total: int, on_bytes: Callable[[int, int], None]
) -> Iterator[bytes]:
    done = 0
    for chunk in chunks:
        done += len(chunk)
        on_bytes(done, total)
        yield chunk


def is_utf8(encoding: str | None) -> bool:
    """Whether COPY reads the bytes as UTF-8 (None: the default, UTF-8)."""
    enc = (encoding or "UTF8").upper().replace("-", "").replace("_", "")
    return enc in ("UTF8", "UNICODE")


def checked(
    stream: Iterator[bytes],
    ref: ObjectRef,
    *,
    codec: str | None,
    requested: str,
    fmt: str,
    utf8: bool,
) -> tuple[bytes, Iterator[bytes]]:
    """The first HEAD_BYTES of decoded `stream` and the stream to load.

    Raises UnsupportedFormat (naming bucket and key) for what COPY cannot
    read. A UTF-8 BOM is dropped when the text is read as UTF-8 (Excel's
    "CSV UTF-8" starts with one): COPY would keep it in the first value, or
    the first header name. `requested` is the --content-encoding asked for,
    `fmt` COPY's format. The returned head starts where the stream does."""
    taken: list[bytes] = []
    size = 0
    for chunk in stream:
        taken.append(chunk)
        size += len(chunk)
        if size >= HEAD_BYTES:
            break
    head = b"".join(taken)
    check_head(head, ref, codec=codec, requested=requested, fmt=fmt)
    if utf8 and fmt != "binary" and head.startswith(UTF8_BOM):
        head = head[len(UTF8_BOM) :]
    return head, _again(head, stream)


def _again(head: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    if head:
        yield head
    yield from rest
