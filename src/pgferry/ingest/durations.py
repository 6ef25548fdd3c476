"""Durations as people write them: `5s`, `500ms`, `2m`, `1h`, `1.5` (seconds)."""

from __future__ import annotations

import re

from pgferry.errors import UsageError

_UNITS = {"ms": 0.001, "s": 1.0, "": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|min|m|h|)")


def parse_duration(text: str, *, what: str = "the duration") -> float:
    """Seconds in `text`; anything else, or zero, is a usage error."""
    m = _DURATION.fullmatch(text.strip().lower())
    if not m:
        raise UsageError(f"cannot read {what} {text!r}", hint="write it like 500ms, 5s, 2m or 1h")
    seconds = float(m.group(1)) * _UNITS[m.group(2)]
    if seconds <= 0:
        raise UsageError(f"{what} must be more than zero, not {text!r}", hint="e.g. 5s")
    return seconds
