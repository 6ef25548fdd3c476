"""Streaming uploads to S3: multipart, bounded memory, one writer for all.

Used by snapshots (many streams at once, parts in parallel on a shared pool)
and by the extension's export (one object at a time, parts sent inline).
A writer buffers one part (8 MiB) at a time; with a pool it hands full parts
over with at most `inflight` of one stream in the air, so memory stays near
streams x (inflight + 1) x part size whatever the object size.  An object
smaller than a part goes up as one PutObject.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from pgferry.errors import PgferryError, UsageError
from pgferry.stores.s3 import map_error

PART = 8 << 20  # S3's minimum part is 5 MiB (except the last)


@dataclass(frozen=True)
class Encryption:
    """Server-side encryption at rest: None, 'AES256' or 'aws:kms'."""

    sse: str | None = None
    kms_key_id: str | None = None

    def __post_init__(self) -> None:
        if self.sse not in (None, "AES256", "aws:kms"):
            raise UsageError(f"unknown --sse {self.sse!r}", hint="use AES256 or aws:kms")
        if self.kms_key_id and self.sse != "aws:kms":
            raise UsageError("--sse-kms-key-id needs --sse aws:kms")

    def args(self) -> dict[str, str]:
        out: dict[str, str] = {}
        if self.sse:
            out["ServerSideEncryption"] = self.sse
        if self.kms_key_id:
            out["SSEKMSKeyId"] = self.kms_key_id
        return out


@dataclass
class Written:
    key: str
    nbytes: int
    sha256: str


class _Inline:
    """Stand-in for a pool: runs each part upload at once, in the caller."""

    def submit(self, fn: Any, *args: Any) -> Future[dict[str, Any]]:
        fut: Future[dict[str, Any]] = Future()
        try:
            fut.set_result(fn(*args))
        except BaseException as e:
            fut.set_exception(e)
        return fut


@dataclass
class MultipartWriter:
    """Write bytes with `write`, then `close` (or `abort` on failure).

    `pool` None sends each part inline; errors come out as StoreError
    subclasses naming the bucket and key."""

    client: Any
    bucket: str
    key: str
    pool: ThreadPoolExecutor | None = None
    enc: Encryption = field(default_factory=Encryption)
    inflight: int = 3
    part_size: int = 0  # 0: the module's PART, read at creation (tests lower it)
    #: Content-Encoding of the object (gzip, zstd), so readers decompress it
    content_encoding: str | None = None

    def __post_init__(self) -> None:
        self._part = self.part_size or PART
        self._buf = bytearray()
        self._hash = hashlib.sha256()
        self._size = 0
        self._upload_id: str | None = None
        self._parts: list[Future[dict[str, Any]]] = []
        self._slots = threading.Semaphore(self.inflight)
        self._runner: Any = self.pool if self.pool is not None else _Inline()

    def _args(self) -> dict[str, str]:
        out = self.enc.args()
        if self.content_encoding:
            out["ContentEncoding"] = self.content_encoding
        return out

    @property
    def size(self) -> int:
        """Bytes written so far."""
        return self._size

    def write(self, data: bytes) -> None:
        self._hash.update(data)
        self._size += len(data)
        self._buf += data
        while len(self._buf) >= self._part:
            self._send(bytes(self._buf[: self._part]))
            del self._buf[: self._part]

    def _send(self, body: bytes) -> None:
        if self._upload_id is None:
            try:
                resp = self.client.create_multipart_upload(
                    Bucket=self.bucket, Key=self.key, **self._args()
                )
            except Exception as e:
                raise map_error(e, self.bucket, self.key) from None
            self._upload_id = str(resp["UploadId"])
        number = len(self._parts) + 1
        self._slots.acquire()
        fut = self._runner.submit(self._upload, number, body)
        self._parts.append(fut)
        err = fut.exception() if self.pool is None else None
        if err is not None:
            raise err

    def _upload(self, number: int, body: bytes) -> dict[str, Any]:
        try:
            resp = self.client.upload_part(
                Bucket=self.bucket,
                Key=self.key,
                UploadId=self._upload_id,
                PartNumber=number,
                Body=body,
            )
            return {"PartNumber": number, "ETag": resp["ETag"]}
        except Exception as e:
            raise map_error(e, self.bucket, self.key) from None
        finally:
            self._slots.release()

    def close(self) -> Written:
        try:
            if self._upload_id is None:
                self.client.put_object(
                    Bucket=self.bucket, Key=self.key, Body=bytes(self._buf), **self._args()
                )
            else:
                if self._buf:
                    self._send(bytes(self._buf))
                parts = [f.result() for f in self._parts]
                self.client.complete_multipart_upload(
                    Bucket=self.bucket,
                    Key=self.key,
                    UploadId=self._upload_id,
                    MultipartUpload={"Parts": parts},
                )
        except Exception as e:
            self.abort()
            if isinstance(e, PgferryError):
                raise
            raise map_error(e, self.bucket, self.key) from None
        self._buf.clear()
        return Written(self.key, self._size, self._hash.hexdigest())

    def abort(self) -> None:
        for f in self._parts:
            f.cancel()
        if self._upload_id is not None:
            # best effort: the original error is the one to report, and a
            # bucket lifecycle rule cleans up what this misses
            with contextlib.suppress(Exception):
                self.client.abort_multipart_upload(
                    Bucket=self.bucket, Key=self.key, UploadId=self._upload_id
                )
            self._upload_id = None
