"""Fetch and decode one object: the single code path shared by the
client-side import and the in-database extension's fetcher program.

`open_decoded` opens the object, picks the codec (forced, Content-Encoding,
or magic bytes) and returns a `Decoded` whose `stream()` yields plain bytes
in bounded pieces. Charset conversion is left to COPY's `encoding` option,
which the server applies to the plain bytes on both paths.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from pgferry.decode.compression import choose_codec, decompress
from pgferry.stores import ObjectReader, ObjectRef
from pgferry.stores.local import LocalReader
from pgferry.stores.s3config import S3Config


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
