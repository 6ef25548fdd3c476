"""COPY options for the extension: pgferry's parser, as a JSON list the SQL
side re-renders from its whitelist.

Imports take the options text exactly as the client import does. Exports
also take RDS's export form, a bare list such as `format csv, delimiter
$$:$$` (COPY's parenthesised form without the parentheses, dollar quotes
allowed).
"""

from __future__ import annotations

import re

from pgferry.errors import CopyOptionsError
from pgferry.sink.options import CopyOptions, parse_copy_options

_DOLLAR = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*|)\$(.*?)\$\1\$", re.DOTALL)


def _undollar(text: str) -> str:
    return _DOLLAR.sub(lambda m: "'" + m.group(2).replace("'", "''") + "'", text)


def parse_for(text: str, direction: str) -> CopyOptions:
    if direction == "import":
        opts = parse_copy_options(text)
        if "default" in opts.values:
            # the rows come through a foreign table, which knows no defaults
            raise CopyOptionsError(
                "COPY option DEFAULT is not supported by aws_s3 imports on pgferry",
                hint="leave the column out of the column list to get its default",
            )
        return opts
    text = _undollar(text).strip()
    if text and not text.startswith("("):
        try:
            return parse_copy_options(f"({text})")
        except CopyOptionsError:
            pass
    return parse_copy_options(text)


def options_for(text: str, direction: str) -> list[list[object]]:
    """[[name, value], ...]: values are str, bool, int or a list of column names."""
    out: list[list[object]] = []
    for name, value in parse_for(text, direction).values.items():
        out.append([name, list(value) if isinstance(value, tuple) else value])
    return out
