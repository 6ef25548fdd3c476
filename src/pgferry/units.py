"""Sizes as people write them: `512MB`, `2G`, `1.5GiB`, `100k`, `1048576`.

One parser for every option and setting that takes a size, so `10kB` means
the same everywhere. Units are binary (k = 1024), as PostgreSQL's own
settings are.
"""

from __future__ import annotations

import re

from pgferry.errors import UsageError

_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*(?:([kmgt])(?:i?b)?|b)?")
#: words that mean "no size" where a caller accepts that
NONE_WORDS = ("none", "off")


def parse_size(
    text: str | int,
    *,
    what: str = "the size",
    hint: str = "write it like 512MB, 2GB or none",
    allow_none: bool = False,
) -> int | None:
    """Bytes in `text`. With `allow_none`, `none`, `off` and `0` mean None
    (the caller's "no limit"); without it they are errors, as is anything
    below one byte. Returns None only when `allow_none` is set."""
    raw = str(text).strip().lower()
    if allow_none and raw in NONE_WORDS:
        return None
    m = _SIZE.fullmatch(raw)
    if not m:
        raise UsageError(f"cannot read {what} {str(text)!r}", hint=hint)
    value = int(float(m.group(1)) * _UNITS[m.group(2) or ""])
    if value < 1:
        if allow_none:
            return None
        raise UsageError(f"{what} must be at least one byte, not {str(text)!r}", hint=hint)
    return value
