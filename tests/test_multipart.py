"""The one S3 multipart writer (stores/multipart.py), as the extension's
export drives it: inline parts, objects split at row ends, against real S3."""

from __future__ import annotations

import io
from typing import Any

import pytest

from pgferry.extension.upload import upload_parts
from pgferry.stores import multipart
from pgferry.stores.s3 import S3Config


def _csv(rows: int) -> bytes:
    return b"".join(b'%d,"line\nwith newline",%s\n' % (i, b"x" * 200) for i in range(rows))


def test_export_upload_goes_multipart(
    bucket: str, s3env: dict[str, str], s3client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(multipart, "PART", 5 << 20)  # the S3 minimum: more parts
    data = _csv(60_000)  # about 13 MiB
    files, total = upload_parts(
        io.BytesIO(data),
        bucket=bucket,
        key="out/all.csv",
        config=S3Config(),
        options="(format csv)",
        part_size="6GB",
    )
    assert (files, total) == (1, len(data))
    head = s3client.head_object(Bucket=bucket, Key="out/all.csv")
    assert head["ETag"].strip('"').endswith("-3")
    assert s3client.get_object(Bucket=bucket, Key="out/all.csv")["Body"].read() == data


def test_export_upload_splits_at_row_ends(
    bucket: str, s3env: dict[str, str], s3client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(multipart, "PART", 5 << 20)
    data = _csv(60_000)
    files, total = upload_parts(
        io.BytesIO(data),
        bucket=bucket,
        key="out/p.csv",
        config=S3Config(),
        options="(format csv)",
        part_size="8MB",
    )
    assert (files, total) == (2, len(data))
    first = s3client.get_object(Bucket=bucket, Key="out/p.csv")["Body"].read()
    second = s3client.get_object(Bucket=bucket, Key="out/p.csv_part2")["Body"].read()
    assert first + second == data
    assert len(first) >= 8 << 20 and first.endswith(b"x\n")
    # the multipart upload of the first file is complete, none is left open
    assert s3client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
