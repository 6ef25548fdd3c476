"""Small objects fetched ahead, one GET each, while the worker loads others.

A backlog of small objects is bound by per-object cost, not bytes. The
one-object reader spends a HEAD, a ranged GET and two threads on each; here
the listing already gave the ETag and size, so a single GET with If-Match on
the listed ETag reads the version asked for (412: it was replaced, nothing is
read), and the next objects of the worker's batch are fetched while the
current one is COPYed.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from pgferry.errors import ObjectChanged, StoreError, TransientStoreError
from pgferry.stores import ObjectRef
from pgferry.stores.s3 import PIECE, S3Config, make_client, map_error

ATTEMPTS = 3


@dataclass
class Fetched:
    """An object read whole into memory; an ObjectReader for run_import."""

    ref: ObjectRef
    size: int
    content_encoding: str | None
    data: bytes

    def chunks(self) -> Iterator[bytes]:
        view = memoryview(self.data)
        for at in range(0, len(view), PIECE):
            yield bytes(view[at : at + PIECE])

    def close(self) -> None:
        self.data = b""


def fetch(client: Any, ref: ObjectRef, size: int) -> Fetched:
    """GET the listed version of `ref` (`size` > 0 bytes, ETag `ref.etag`);
    transient failures are retried a few times, then raised."""
    assert ref.bucket is not None and ref.etag is not None and size > 0
    for attempt in range(1, ATTEMPTS + 1):
        try:
            return _get(client, ref, size)
        except Exception as e:  # botocore raises several unrelated classes
            err = e if isinstance(e, StoreError) else map_error(e, ref.bucket, ref.key)
            if not err.transient or isinstance(err, ObjectChanged) or attempt == ATTEMPTS:
                raise err from None
            time.sleep(0.2 * 2**attempt)
    raise AssertionError("unreachable")


def _get(client: Any, ref: ObjectRef, size: int) -> Fetched:
    # a Range, as the one-object reader asks: the stored bytes as they are,
    # whatever Content-Encoding the object carries
    resp = client.get_object(
        Bucket=ref.bucket, Key=ref.key, Range=f"bytes=0-{size - 1}", IfMatch=f'"{ref.etag}"'
    )
    body = resp["Body"]
    try:
        data = body.read()
    finally:
        body.close()
    if len(data) != size:
        raise TransientStoreError(
            f"S3 sent {len(data)} bytes of {ref.uri}, the listing said {size}",
            hint="it is read again on the next attempt",
            bucket=ref.bucket,
            key=ref.key,
        )
    return Fetched(ref, size, resp.get("ContentEncoding") or None, data)


class Prefetcher:
    """A few GETs in flight for one worker, through one client (botocore
    clients are thread-safe; its connection pool holds 16)."""

    def __init__(self, config: S3Config, region: str | None, threads: int) -> None:
        self._client = make_client(config, region)
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="pgferry-get")

    def submit(self, ref: ObjectRef, size: int) -> Future[Fetched]:
        return self._pool.submit(fetch, self._client, ref, size)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
