"""`pgferry watch --config pipelines.toml`: many prefix-to-table pipelines in
one process.

    [defaults]                     # optional, for every pipeline below
    options = "(format csv, header true)"
    interval = "5s"

    [[pipeline]]
    source = "s3://landing/orders/"
    table = "orders"
    name = "orders"                # optional, default: the table
    pattern = "*.csv"
    workers = 2

Keys are the command's long options with `_` for `-` (`create_table`,
`on_change`, `column_types = {code = "text"}`, ...).
"""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path
from typing import Any

from pgferry.errors import UsageError
from pgferry.infer import parse_column_types
from pgferry.ingest.discover import parse_prefix
from pgferry.ingest.durations import parse_duration
from pgferry.ingest.ledger import ON_CHANGE
from pgferry.ingest.worker import WatchSpec
from pgferry.sink.names import parse_table_name

_TEXT = ("pattern", "columns", "options", "content_encoding", "ready_suffix", "ready_marker")
_DURATIONS = ("interval", "full_sweep", "retry_delay", "settle")
_COUNTS = {
    "workers": (1, 64),
    "batch": (1, 1000),
    "max_attempts": (1, 1000),
    "sample_rows": (1, 10**9),
}
_KEYS = {"source", "table", "name", "create_table", "on_change", "on_error", "column_types"}
_KEYS |= set(_TEXT) | set(_DURATIONS) | set(_COUNTS)


def load(path: str, base: WatchSpec) -> list[WatchSpec]:
    """One WatchSpec per [[pipeline]], on top of `base` (the command line's
    connection, S3 and --once settings) and the file's [defaults]."""
    try:
        doc = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as e:
        raise UsageError(
            f"cannot read --config {path}: {e.strerror}", hint="check the path"
        ) from None
    except tomllib.TOMLDecodeError as e:
        raise UsageError(f"--config {path} is not valid TOML: {e}", hint="fix the file") from None
    extra = set(doc) - {"defaults", "pipeline"}
    if extra:
        raise UsageError(
            f"--config {path}: unknown section {sorted(extra)[0]!r}",
            hint="use [defaults] and [[pipeline]]",
        )
    defaults = doc.get("defaults", {})
    pipelines = doc.get("pipeline", [])
    if not isinstance(pipelines, list) or not pipelines:
        raise UsageError(
            f"--config {path} defines no pipeline", hint="add a [[pipeline]] with source and table"
        )
    specs = [_spec(path, i + 1, {**defaults, **p}, base) for i, p in enumerate(pipelines)]
    names = [s.pipeline for s in specs]
    dup = next((n for n in names if names.count(n) > 1), None)
    if dup:
        raise UsageError(
            f"--config {path}: two pipelines are named {dup!r}",
            hint="give each a distinct name (the ledger keeps them apart by it)",
        )
    return specs


def _spec(path: str, n: int, item: dict[str, Any], base: WatchSpec) -> WatchSpec:
    where = f"--config {path}, pipeline {n}"
    unknown = sorted(set(item) - _KEYS)
    if unknown:
        raise UsageError(
            f"{where}: unknown key {unknown[0]!r}", hint=f"known keys: {', '.join(sorted(_KEYS))}"
        )
    for key in ("source", "table"):
        if not isinstance(item.get(key), str) or not item[key]:
            raise UsageError(f"{where}: {key} is missing", hint=f'add {key} = "..."')
    parse_table_name(item["table"])
    changes: dict[str, Any] = {
        "where": parse_prefix(item["source"]),
        "table": item["table"],
        "pipeline": str(item.get("name") or item["table"]),
    }
    for key in _TEXT:
        if key in item:
            changes[key] = _typed(where, key, item[key], str)
    for key in _DURATIONS:
        if key in item:
            changes[key] = parse_duration(str(item[key]), what=f"{where}: {key}")
    for key, (low, high) in _COUNTS.items():
        if key in item:
            value = _typed(where, key, item[key], int)
            if not low <= value <= high:
                raise UsageError(f"{where}: {key} must be {low} to {high}", hint="fix the value")
            changes[key] = value
    if "create_table" in item:
        changes["create_table"] = _typed(where, "create_table", item["create_table"], bool)
    if "on_change" in item:
        if item["on_change"] not in ON_CHANGE:
            raise UsageError(
                f"{where}: on_change must be one of {', '.join(ON_CHANGE)}", hint="fix the value"
            )
        changes["on_change"] = item["on_change"]
    if "on_error" in item:
        if item["on_error"] not in ("abort-file", "skip-rows"):
            raise UsageError(
                f"{where}: on_error must be abort-file or skip-rows", hint="fix the value"
            )
        changes["on_error"] = item["on_error"]
    if "column_types" in item:
        changes["column_types"] = parse_column_types(
            _typed(where, "column_types", item["column_types"], dict)
        )
    return dataclasses.replace(base, **changes)


def _typed(where: str, key: str, value: Any, kind: type) -> Any:
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise UsageError(f"{where}: {key} must be a {kind.__name__}", hint="fix the value")
    return value
