"""Smaller behaviours: progress display, secrets kept out of argv, sizes."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from pgferry.errors import UsageError
from pgferry.migrate import CloneConfig, clone
from pgferry.migrate.display import RichReporter
from pgferry.migrate.tools import split_password
from tests.migrate.conftest import rows


def test_progress_bars_on_a_terminal(source_db: str, target_db: str) -> None:
    buf = io.StringIO()
    reporter = RichReporter(Console(file=buf, force_terminal=True, width=160))
    result = clone(
        CloneConfig(source_db, target_db, jobs=2, tables=("app.orders", "app.users")), reporter
    )
    reporter.close()
    text = buf.getvalue()
    for phase in ("pre-data", "data", "indexes", "sequences", "vacuum-analyze", "post-data"):
        assert phase in text
    assert "rows" in text
    assert [t.table for t in result.tables] == ["app.orders", "app.users"]
    assert rows(target_db, "SELECT count(*) FROM app.orders") == [(50_000,)]


def test_password_travels_in_the_environment_only() -> None:
    clean, env = split_password("postgresql://alice:s3cr%40t@db.example:5433/prod?sslmode=require")
    assert "s3cr" not in clean
    assert env == {"PGPASSWORD": "s3cr@t"}
    assert "user=alice" in clean and "port=5433" in clean and "sslmode=require" in clean
    clean, env = split_password("host=h dbname=d password='a b'")
    assert env == {"PGPASSWORD": "a b"} and "password" not in clean


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("512MB", 512 << 20),
        ("2GB", 2 << 30),
        ("1.5G", 3 << 29),
        ("100k", 100 << 10),
        ("none", None),
        ("0", None),
    ],
)
def test_sizes(text: str, value: int | None) -> None:
    from pgferry.cli.migrate import parse_size

    assert parse_size(text) == value


def test_bad_size() -> None:
    from pgferry.cli.migrate import parse_size

    with pytest.raises(UsageError) as err:
        parse_size("lots")
    assert str(err.value) == "cannot read the size 'lots'; write it like 512MB, 2GB or none"
