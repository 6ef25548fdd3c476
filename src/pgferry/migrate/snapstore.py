"""Where a snapshot lives: its URI, its objects on S3, listing and deleting.

A prefix is a snapshot when it holds manifest.json (complete) or the create
marker creating.json (started, not finished); any other prefix is a plain
folder and is neither listed nor deleted.
"""

from __future__ import annotations

import contextlib
import json
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from pgferry.errors import (
    BadSnapshotName,
    NotASnapshot,
    ObjectNotFound,
    SnapshotCorrupt,
    UnsupportedSnapshot,
    UsageError,
)
from pgferry.migrate.manifest import Manifest
from pgferry.stores.multipart import Encryption, MultipartWriter
from pgferry.stores.s3 import S3Config, make_client, map_error

NAME = re.compile(r"[A-Za-z](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){0,62}")
MANIFEST = "manifest.json"
MARKER = "creating.json"
SCHEMA = "schema.dump"
PROGRESS = "progress/"


@dataclass(frozen=True)
class SnapshotUri:
    bucket: str
    prefix: str  # ends with '/' or is empty
    name: str

    @property
    def base(self) -> str:
        return f"{self.prefix}{self.name}/"

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.base}"


def check_name(name: str) -> str:
    if not NAME.fullmatch(name):
        raise BadSnapshotName(
            f"invalid snapshot name {name!r}",
            hint="use 1-63 letters, digits or hyphens, starting with a letter, "
            "with no trailing or doubled hyphen",
        )
    return name


def parse_prefix(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://"):
        raise UsageError(f"{uri!r} is not an S3 URI", hint="write it as s3://bucket/prefix/")
    bucket, _, prefix = uri[5:].partition("/")
    if not bucket:
        raise UsageError(f"{uri!r} names no bucket", hint="write it as s3://bucket/prefix/")
    prefix = prefix.strip("/")
    return bucket, f"{prefix}/" if prefix else ""


def parse_uri(uri: str) -> SnapshotUri:
    """s3://bucket/prefix/NAME (a trailing slash is fine)."""
    bucket, path = parse_prefix(uri)
    parts = path.rstrip("/").rsplit("/", 1)
    if not path:
        raise UsageError(f"{uri!r} names no snapshot", hint="write it as s3://bucket/prefix/NAME")
    prefix, name = (parts[0] + "/", parts[1]) if len(parts) == 2 else ("", parts[0])
    return SnapshotUri(bucket, prefix, check_name(name))


class SnapshotStore:
    """The objects of one snapshot; keys are relative to its base."""

    def __init__(self, client: Any, where: SnapshotUri) -> None:
        self.client = client
        self.where = where

    def key(self, rel: str) -> str:
        return rel if rel.startswith(self.where.base) else self.where.base + rel

    def get(self, rel: str) -> bytes | None:
        key = self.key(rel)
        try:
            body: bytes = self.client.get_object(Bucket=self.where.bucket, Key=key)["Body"].read()
        except Exception as e:
            err = map_error(e, self.where.bucket, key)
            if isinstance(err, ObjectNotFound):
                return None
            raise err from None
        return body

    def get_json(self, rel: str) -> dict[str, Any] | None:
        body = self.get(rel)
        if body is None:
            return None
        try:
            data = json.loads(body)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise SnapshotCorrupt(
                f"s3://{self.where.bucket}/{self.key(rel)} is not valid JSON",
                hint=f"delete the snapshot (pgferry snapshot delete {self.where})",
                bucket=self.where.bucket,
                key=self.key(rel),
            )
        return data

    def manifest(self) -> Manifest | None:
        body = self.get(MANIFEST)
        if body is None:
            return None
        return Manifest.from_json(body, bucket=self.where.bucket, key=self.key(MANIFEST))

    def size(self, rel: str) -> int | None:
        key = self.key(rel)
        try:
            head = self.client.head_object(Bucket=self.where.bucket, Key=key)
        except Exception as e:
            err = map_error(e, self.where.bucket, key)
            if isinstance(err, ObjectNotFound):
                return None
            raise err from None
        return int(head["ContentLength"])

    def put(self, rel: str, body: bytes, enc: Encryption, content_type: str) -> None:
        key = self.key(rel)
        try:
            self.client.put_object(
                Bucket=self.where.bucket,
                Key=key,
                Body=body,
                ContentType=content_type,
                **enc.args(),
            )
        except Exception as e:
            raise map_error(e, self.where.bucket, key) from None

    def put_json(self, rel: str, data: dict[str, Any], enc: Encryption) -> None:
        self.put(rel, json.dumps(data).encode(), enc, "application/json")

    def writer(self, rel: str, pool: ThreadPoolExecutor, enc: Encryption) -> MultipartWriter:
        return MultipartWriter(self.client, self.where.bucket, self.key(rel), pool, enc)

    def list_keys(self, rel: str = "") -> list[str]:
        prefix = self.key(rel)
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.where.bucket, Prefix=prefix
            )
            return [o["Key"] for page in pages for o in page.get("Contents", [])]
        except Exception as e:
            raise map_error(e, self.where.bucket, prefix) from None

    def finished(self) -> dict[str, Any]:
        """The progress records an interrupted create left, by key."""
        out: dict[str, Any] = {}
        for key in self.list_keys(PROGRESS):
            data = self.get_json(key)
            if data is not None:
                out[key[len(self.where.base) :]] = data
        return out

    def delete(self, keys: list[str]) -> None:
        for i in range(0, len(keys), 1000):
            objects = [{"Key": k} for k in keys[i : i + 1000]]
            try:
                resp = self.client.delete_objects(
                    Bucket=self.where.bucket, Delete={"Objects": objects, "Quiet": True}
                )
            except Exception as e:
                raise map_error(e, self.where.bucket, keys[i]) from None
            failed = resp.get("Errors") or []
            if failed:
                first = failed[0]
                raise map_error(
                    RuntimeError(f"{first.get('Code')}: {first.get('Message')}"),
                    self.where.bucket,
                    first.get("Key"),
                )

    def tidy(self, manifest: Manifest) -> None:
        """After the manifest: drop the marker, progress records and streams
        of an earlier run that the manifest does not name.  Best effort: a
        leftover is harmless, the manifest is the truth."""
        keep = {self.key(MANIFEST), manifest.schema.key}
        keep |= {s.key for s in manifest.streams} | {b.key for b in manifest.large_objects}
        with contextlib.suppress(Exception):
            self.delete([k for k in self.list_keys() if k not in keep and k != self.key(MARKER)])
            self.delete([self.key(MARKER)])


@dataclass
class SnapshotInfo:
    name: str
    uri: str
    complete: bool
    created: str | None = None
    server_version: int | None = None
    tables: int = 0
    rows: int = 0
    stored_bytes: int = 0
    #: why a complete snapshot cannot be read (unknown format, damaged manifest)
    problem: str | None = None


def list_snapshots(uri: str, s3: S3Config | None = None) -> list[SnapshotInfo]:
    """The snapshots directly under a prefix; folders that are not snapshots
    are left out."""
    bucket, prefix = parse_prefix(uri)
    client = make_client(s3 or S3Config())
    try:
        pages = client.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix=prefix, Delimiter="/"
        )
        names = [
            cp["Prefix"][len(prefix) :].rstrip("/")
            for page in pages
            for cp in page.get("CommonPrefixes", [])
        ]
    except Exception as e:
        raise map_error(e, bucket, prefix) from None
    out = []
    for name in sorted(names):
        if not NAME.fullmatch(name):
            continue  # never a snapshot name: a folder
        store = SnapshotStore(client, SnapshotUri(bucket, prefix, name))
        info = SnapshotInfo(name, str(store.where), True)
        try:
            m = store.manifest()
        except (UnsupportedSnapshot, SnapshotCorrupt) as e:
            info.problem = e.what
            out.append(info)
            continue
        if m is None:
            if store.size(MARKER) is None:
                continue  # a folder
            info.complete = False
        else:
            info.created = m.created
            info.server_version = m.source.server_version
            info.tables = len(m.tables)
            info.rows = m.rows
            info.stored_bytes = m.stored_bytes
        out.append(info)
    return out


def delete_snapshot(uri: str, s3: S3Config | None = None) -> int:
    """Delete a snapshot, complete or not; returns the number of objects.

    The create marker goes last, so a delete that fails halfway leaves a
    snapshot that lists as incomplete and can be deleted again."""
    where = parse_uri(uri)
    client = make_client(s3 or S3Config())
    store = SnapshotStore(client, where)
    has_manifest = store.size(MANIFEST) is not None
    if not has_manifest and store.size(MARKER) is None:
        raise NotASnapshot(
            f"{where} is not a snapshot (no manifest.json, no creating.json)",
            hint=f"check the URI with pgferry snapshot list s3://{where.bucket}/{where.prefix}",
            bucket=where.bucket,
            key=where.base,
        )
    if has_manifest:
        store.put_json(MARKER, {"deleting": True}, Encryption())
        store.delete([store.key(MANIFEST)])
    _abort_uploads(client, where)
    keys = [k for k in store.list_keys() if k != store.key(MARKER)]
    store.delete(keys)
    store.delete([store.key(MARKER)])
    return len(keys) + (1 if has_manifest else 0)


def _abort_uploads(client: Any, where: SnapshotUri) -> None:
    """Multipart uploads an interrupted create left open under the snapshot."""
    with contextlib.suppress(Exception):  # best effort: S3 lifecycle rules catch the rest
        pages = client.get_paginator("list_multipart_uploads").paginate(
            Bucket=where.bucket, Prefix=where.base
        )
        for page in pages:
            for up in page.get("Uploads", []):
                client.abort_multipart_upload(
                    Bucket=where.bucket, Key=up["Key"], UploadId=up["UploadId"]
                )
