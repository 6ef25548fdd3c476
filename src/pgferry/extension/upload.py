"""Export upload: COPY TO output from stdin into S3 objects of about
`part_size` bytes, named KEY, KEY_part2, KEY_part3, ... like aws_s3.

A part ends at the first row end after `part_size` bytes, so every file is
loadable on its own: in text format every newline ends a row (COPY escapes
newlines in data); in CSV a newline ends a row only outside quotes, tracked
by quote parity. Binary output is never split. Memory stays bounded: each
part is sent as a multipart upload of PIECE-sized pieces (a single PUT when
it is smaller).
"""

from __future__ import annotations

import contextlib
import re
from typing import Any, BinaryIO

from pgferry.errors import UsageError
from pgferry.extension.options import parse_for
from pgferry.stores.s3 import S3Config, make_client, map_error

PIECE = 8 << 20  # S3's minimum multipart piece is 5 MiB
DEFAULT_PART = 6 << 30  # aws_s3's part size: about 6 GB
_UNITS = {"": 1, "b": 1, "kb": 1 << 10, "mb": 1 << 20, "gb": 1 << 30, "tb": 1 << 40}


def parse_size(text: object) -> int:
    if text is None or text == "":
        return DEFAULT_PART
    m = re.fullmatch(r"\s*(\d+)\s*([A-Za-z]*)\s*", str(text))
    if not m or m.group(2).lower() not in _UNITS or int(m.group(1)) < 1:
        raise UsageError(
            f"invalid aws_s3.export_part_size {text!r}", hint="e.g. 6GB, 64MB or 1048576"
        )
    return int(m.group(1)) * _UNITS[m.group(2).lower()]


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


class _Part:
    """One object being written: a single PUT if it stays under PIECE."""

    def __init__(self, client: Any, bucket: str, key: str, extra: dict[str, str]) -> None:
        self.client, self.bucket, self.key, self.extra = client, bucket, key, extra
        self.buf = bytearray()
        self.size = 0
        self.upload_id: str | None = None
        self.parts: list[dict[str, Any]] = []

    def write(self, data: bytes) -> None:
        self.buf += data
        self.size += len(data)
        while len(self.buf) >= PIECE:
            self._send(bytes(self.buf[:PIECE]))
            del self.buf[:PIECE]

    def _send(self, piece: bytes) -> None:
        if self.upload_id is None:
            resp = self.client.create_multipart_upload(
                Bucket=self.bucket, Key=self.key, **self.extra
            )
            self.upload_id = str(resp["UploadId"])
        n = len(self.parts) + 1
        resp = self.client.upload_part(
            Bucket=self.bucket, Key=self.key, UploadId=self.upload_id, PartNumber=n, Body=piece
        )
        self.parts.append({"ETag": resp["ETag"], "PartNumber": n})

    def close(self) -> None:
        if self.upload_id is None:
            self.client.put_object(
                Bucket=self.bucket, Key=self.key, Body=bytes(self.buf), **self.extra
            )
            return
        if self.buf:
            self._send(bytes(self.buf))
        self.client.complete_multipart_upload(
            Bucket=self.bucket,
            Key=self.key,
            UploadId=self.upload_id,
            MultipartUpload={"Parts": self.parts},
        )

    def abort(self) -> None:
        if self.upload_id is not None:
            # best effort: the original error is the one to report
            with contextlib.suppress(Exception):
                self.client.abort_multipart_upload(
                    Bucket=self.bucket, Key=self.key, UploadId=self.upload_id
                )


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
    extra = {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": kms_key} if kms_key else {}
    client = make_client(config, config.region)
    files, total = 1, 0
    part = _Part(client, bucket, key, extra)
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
                part = _Part(client, bucket, f"{key}_part{files}", extra)
                chunk = chunk[cut:]
            part.write(chunk)
            ends.advance(chunk)
            if split and part.size >= limit and chunk.endswith(b"\n") and not ends.open:
                part.close()
                files += 1
                part = _Part(client, bucket, f"{key}_part{files}", extra)
        if part.size == 0 and files > 1:
            files -= 1  # the output ended exactly at a part boundary
        else:
            part.close()
    except KeyboardInterrupt:  # the statement was cancelled: upload nothing more
        part.abort()
        raise
    except Exception as e:
        part.abort()
        raise map_error(e, bucket, key) from None
    return files, total
