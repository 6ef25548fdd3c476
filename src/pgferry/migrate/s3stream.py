"""Streaming uploads to S3: multipart, parts in parallel, bounded memory.

A writer buffers one part (8 MiB) at a time and hands full parts to a shared
thread pool, with at most `inflight` parts of one stream in the air, so
memory stays near jobs x (inflight + 1) x part size whatever the table size.
Streams smaller than a part go up as one PutObject.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from pgferry.errors import UsageError
from pgferry.stores.s3 import map_error

PART = 8 << 20


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


@dataclass
class MultipartWriter:
    client: Any
    bucket: str
    key: str
    pool: ThreadPoolExecutor
    enc: Encryption = field(default_factory=Encryption)
    inflight: int = 3

    def __post_init__(self) -> None:
        self._buf = bytearray()
        self._hash = hashlib.sha256()
        self._size = 0
        self._upload_id: str | None = None
        self._parts: list[Future[dict[str, Any]]] = []
        self._slots = threading.Semaphore(self.inflight)

    def write(self, data: bytes) -> None:
        self._hash.update(data)
        self._size += len(data)
        self._buf += data
        while len(self._buf) >= PART:
            self._send(bytes(self._buf[:PART]))
            del self._buf[:PART]

    def _send(self, body: bytes) -> None:
        if self._upload_id is None:
            try:
                resp = self.client.create_multipart_upload(
                    Bucket=self.bucket, Key=self.key, **self.enc.args()
                )
            except Exception as e:
                raise map_error(e, self.bucket, self.key) from None
            self._upload_id = str(resp["UploadId"])
        number = len(self._parts) + 1
        self._slots.acquire()
        self._parts.append(self.pool.submit(self._upload, number, body))

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
                    Bucket=self.bucket, Key=self.key, Body=bytes(self._buf), **self.enc.args()
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
            if isinstance(e, UsageError) or hasattr(e, "transient"):
                raise
            raise map_error(e, self.bucket, self.key) from None
        self._buf.clear()
        return Written(self.key, self._size, self._hash.hexdigest())

    def abort(self) -> None:
        for f in self._parts:
            f.cancel()
        if self._upload_id is not None:
            # best effort: a bucket lifecycle rule cleans up what this misses
            with contextlib.suppress(Exception):
                self.client.abort_multipart_upload(
                    Bucket=self.bucket, Key=self.key, UploadId=self._upload_id
                )
            self._upload_id = None
