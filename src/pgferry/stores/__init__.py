"""Object stores: where the bytes come from (S3 and S3-compatible, local files).

`ObjectRef` names one object; `open_object` returns a reader that yields its
bytes in order, in bounded chunks, whatever the store.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlsplit

from pgferry.errors import UsageError

#: the SOURCE that means standard input
STDIN = "-"


@dataclass(frozen=True)
class ObjectRef:
    """One object: `bucket`/`key` for S3; `bucket` None and `key` a path for files."""

    key: str
    bucket: str | None = None
    region: str | None = None
    #: read only this version (the ETag a listing showed); None: whatever is there
    etag: str | None = None

    @property
    def is_local(self) -> bool:
        return self.bucket is None

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}" if self.bucket else self.key


class ObjectReader(Protocol):
    ref: ObjectRef
    size: int
    content_encoding: str | None

    def chunks(self) -> Iterator[bytes]: ...

    def close(self) -> None: ...


def parse_source(source: str, region: str | None = None) -> ObjectRef:
    """`s3://bucket/key`, `file:///path`, a plain local path, or `-` (stdin)."""
    if source == STDIN:
        return ObjectRef(key=STDIN)
    if not source:
        raise UsageError("empty SOURCE", hint="give s3://bucket/key or a local file path")
    if source.startswith(("s3://", "S3://")):
        rest = source[5:]
        bucket, _, key = rest.partition("/")
        if not bucket or not key:
            raise UsageError(
                f"{source!r} is not a full S3 object URI",
                hint="write it as s3://bucket/path/to/object",
            )
        return ObjectRef(key=key, bucket=bucket, region=region)
    if source.startswith("file://"):
        parts = urlsplit(source)
        if parts.netloc not in ("", "localhost"):
            raise UsageError(
                f"{source!r} names a remote host", hint="file:// URIs must be local: file:///path"
            )
        return ObjectRef(key=str(Path(unquote(parts.path))))
    if "://" in source:
        scheme = source.split("://", 1)[0]
        raise UsageError(
            f"unsupported scheme {scheme!r} in {source!r}",
            hint="use s3://bucket/key, file:///path or a local path",
        )
    return ObjectRef(key=str(Path(source).expanduser()))
