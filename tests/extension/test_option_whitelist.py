"""One COPY option whitelist: the client import's (pgferry.sink.options) is
the source; the extension's SQL functions, which re-render the parsed
options, must accept exactly it (less what a foreign-table import cannot
do), with the same words for each option."""

from __future__ import annotations

import json
import re
from typing import Any

import psycopg
import pytest

from pgferry.extension.options import NOT_FOR_IMPORT, whitelist
from pgferry.sink.options import KNOWN
from tests.extension.conftest import ExtServer


def samples(kind: str, words: frozenset[str]) -> list[Any]:
    if kind == "word":
        return sorted(words)
    if kind == "bool":
        return [True, False, *sorted(words)]
    if kind == "string":
        return ["|"]
    if kind == "columns":
        return [["a"], ["*"]]
    return [5]


def render(ext: ExtServer, db: str, direction: str, options: list[list[Any]]) -> Any:
    with psycopg.connect(ext.conninfo(db), autocommit=True) as c:
        if direction == "import":
            row = c.execute(
                "SELECT o_table FROM aws_s3._fdw_options(%s::jsonb, ARRAY['a'])",
                [json.dumps(options)],
            ).fetchone()
        else:
            row = c.execute(
                "SELECT aws_s3._copy_options(%s::jsonb)", [json.dumps(options)]
            ).fetchone()
    assert row is not None
    return row[0]


@pytest.mark.parametrize("direction", ["import", "export"])
def test_sql_accepts_the_client_whitelist(ext: ExtServer, edb: str, direction: str) -> None:
    allowed = whitelist(direction)
    assert set(allowed) | (NOT_FOR_IMPORT if direction == "import" else set()) == KNOWN
    for name, (kind, words) in allowed.items():
        for value in samples(kind, words):
            render(ext, edb, direction, [[name, value]])  # raises if refused
        if kind == "word":
            with pytest.raises(psycopg.errors.InvalidParameterValue, match="unsupported COPY"):
                render(ext, edb, direction, [[name, "bogus"]])
    for name in sorted(KNOWN - set(allowed)):
        with pytest.raises(psycopg.errors.InvalidParameterValue, match="unsupported COPY"):
            render(ext, edb, direction, [[name, "x"]])


def test_sql_knows_no_option_beyond_the_whitelist(ext: ExtServer, edb: str) -> None:
    """Every option name the SQL functions compare against is in the client's list."""
    rows = ext.execute(
        "SELECT proname, prosrc FROM pg_proc WHERE pronamespace = 'aws_s3'::regnamespace "
        "AND proname IN ('_fdw_options', '_copy_options')",
        edb,
    )
    assert len(rows) == 2
    for proname, src in rows:
        names: set[str] = set()
        for group in re.findall(r"v_name\s+IN\s+\(([^)]*)\)", src):
            names |= set(re.findall(r"'([a-z_]+)'", group))
        names |= set(re.findall(r"v_name\s*=\s*'([a-z_]+)'", src))
        direction = "import" if proname == "_fdw_options" else "export"
        assert names == set(whitelist(direction)), proname
