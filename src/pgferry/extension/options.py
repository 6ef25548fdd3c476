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
from pgferry.sink import options as sink
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


# What a foreign-table import cannot do, of the client's list: DEFAULT is
# refused above with advice; FORCE_QUOTE is COPY TO only.
NOT_FOR_IMPORT = frozenset({"default", "force_quote"})


def whitelist(direction: str) -> dict[str, tuple[str, frozenset[str]]]:
    """The COPY options the extension's SQL passes on for `direction`, as
    name -> (kind, allowed words): the client import's own list
    (pgferry.sink.options), less NOT_FOR_IMPORT for imports. The SQL
    functions _fdw_options and _copy_options spell the same list out;
    tests/extension/test_option_whitelist.py checks that they match."""
    out: dict[str, tuple[str, frozenset[str]]] = {}
    for name in sorted(sink.KNOWN):
        if direction == "import" and name in NOT_FOR_IMPORT:
            continue
        if name in sink._WORD:
            out[name] = ("word", frozenset(sink._WORD[name]))
        elif name in sink._BOOL:
            out[name] = ("bool", frozenset({"match"} if name == "header" else set()))
        elif name in sink._STRING:
            out[name] = ("string", frozenset())
        elif name in sink._COLUMNS:
            out[name] = ("columns", frozenset())
        else:
            out[name] = ("int", frozenset())
    return out
