"""Many objects from one SOURCE: an S3 prefix, a glob, or a local folder.

`is_many` says whether SOURCE names several objects; `expand` lists them in
key order. Globs follow the shell: `*` and `?` stay within one path segment,
`**` crosses folders, `[abc]` is a set. A prefix (a SOURCE ending in `/`)
takes every object below it except names starting with `_` or `.` (Spark's
`_SUCCESS`, editors' `.swp`), which no tool that writes data folders means
as data.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from pgferry.errors import ObjectNotFound, UsageError
from pgferry.stores import STDIN, ObjectRef, parse_source
from pgferry.stores.s3config import S3Config

_GLOB_CHARS = ("*", "?", "[")


@dataclass(frozen=True)
class Listed:
    ref: ObjectRef
    size: int


def is_many(source: str | None) -> bool:
    """SOURCE names a prefix or folder (it ends with /) or is a glob, rather
    than one object. A folder or bucket without the slash stays one object
    (and fails as such): a slash says "everything below" on purpose."""
    if not source or source == STDIN:
        return False
    if any(c in source for c in _GLOB_CHARS):
        return "://" not in source or source.startswith(("s3://", "S3://", "file://"))
    return source.endswith("/") and (
        "://" not in source or source[:5].lower() in ("s3://", "file:")
    )


def _pattern_start(text: str) -> int:
    """Index of the first glob character, or len(text)."""
    found = [i for i in (text.find(c) for c in _GLOB_CHARS) if i >= 0]
    return min(found) if found else len(text)


def glob_regex(pattern: str) -> re.Pattern[str]:
    """The shell glob `pattern` as a regular expression over whole keys. As
    in the shell, a wildcard never matches a name's leading dot."""
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        nodot = "(?!\\.)" if i == 0 or pattern[i - 1] == "/" else ""
        if pattern.startswith("**/", i):
            out.append("(?:(?!\\.)[^/]*/)*")
            i += 3
        elif pattern.startswith("**", i):
            out.append(f"{nodot}.*")
            i += 2
        elif c == "*":
            out.append(f"{nodot}[^/]*")
            i += 1
        elif c == "?":
            out.append(f"{nodot}[^/]")
            i += 1
        elif c == "[" and (end := pattern.find("]", i + 2)) > 0:
            body = pattern[i + 1 : end]
            if body.startswith("!"):
                body = "^" + body[1:]
            out.append(f"{nodot}[{body.replace(chr(92), chr(92) * 2)}]")
            i = end + 1
        else:
            out.append(re.escape(c))
            i += 1
    return re.compile("".join(out) + r"\Z", re.DOTALL)


def _hidden(name: str) -> bool:
    base = name.rstrip("/").rpartition("/")[2]
    return base.startswith(("_", "."))


def expand(source: str, s3: S3Config | None = None) -> list[Listed]:
    """Every object SOURCE names, in key order; none is an ObjectNotFound."""
    if source.startswith(("s3://", "S3://")):
        found = _expand_s3(source, s3 or S3Config())
    else:
        found = _expand_local(source)
    if not found:
        raise ObjectNotFound(
            f"no objects match {source}",
            hint="check the prefix or pattern (a prefix ends with /; * stays within a folder, "
            "** crosses folders)",
        )
    return found


def _expand_s3(source: str, s3: S3Config) -> list[Listed]:
    from pgferry.stores.s3 import make_client, map_error  # botocore only for s3://

    bucket, _, rest = source[5:].partition("/")
    if not bucket:
        raise UsageError(f"{source!r} names no bucket", hint="write s3://bucket/prefix/")
    start = _pattern_start(rest)
    prefix = rest[:start]
    match = glob_regex(rest) if start < len(rest) else None
    client = make_client(s3, s3.region)
    out: list[Listed] = []
    try:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                key = str(obj["Key"])
                if key.endswith("/"):  # a folder marker, not data
                    continue
                if match is None:
                    if _hidden(key[len(prefix) :]):
                        continue
                elif not match.match(key):
                    continue
                out.append(Listed(ObjectRef(key, bucket, s3.region), int(obj["Size"])))
    except Exception as e:  # botocore raises several unrelated classes
        raise map_error(e, bucket, prefix or None) from None
    return out


def _expand_local(source: str) -> list[Listed]:
    path = parse_source(source).key
    if source.endswith("/") or os.path.isdir(path):
        root = Path(path)
        if not root.is_dir():
            raise ObjectNotFound(f"folder {path} does not exist", hint="check the path", key=path)
        files = [
            p
            for p in root.rglob("*")
            if p.is_file() and not _hidden(str(p.relative_to(root)).replace(os.sep, "/"))
        ]
    else:
        start = _pattern_start(path)
        base = path[:start].rpartition("/")[0] or ("/" if path.startswith("/") else ".")
        match = glob_regex(path)
        root = Path(base)
        files = []
        if root.is_dir():
            for p in root.rglob("*"):
                name = str(p) if base != "." else str(p.relative_to(root))
                if p.is_file() and match.match(name.replace(os.sep, "/")):
                    files.append(p)
    return [Listed(ObjectRef(str(p)), p.stat().st_size) for p in sorted(files)]
