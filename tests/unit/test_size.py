"""The one size parser every size option and setting goes through."""

from __future__ import annotations

import pytest

from pgferry.cli.migrate import parse_size as split_size
from pgferry.errors import UsageError
from pgferry.extension.upload import DEFAULT_PART
from pgferry.extension.upload import parse_size as part_size
from pgferry.units import parse_size


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("512MB", 512 << 20),
        ("2GB", 2 << 30),
        ("1.5G", 3 << 29),
        ("1.5GiB", 3 << 29),
        ("100k", 100 << 10),
        ("10kB", 10 << 10),
        ("1048576", 1 << 20),
        ("7b", 7),
        (" 3 M ", 3 << 20),
        (42, 42),
    ],
)
def test_sizes(text: str, value: int) -> None:
    assert parse_size(text) == value
    assert split_size(str(text)) == value
    assert part_size(text) == value


def test_special_values_only_where_accepted() -> None:
    for text in ("none", "off", "0", "OFF"):
        assert parse_size(text, allow_none=True) is None
        assert split_size(text) is None
    with pytest.raises(UsageError) as err:
        parse_size("none")
    assert str(err.value) == "cannot read the size 'none'; write it like 512MB, 2GB or none"
    with pytest.raises(UsageError) as err:
        part_size("0")
    assert str(err.value) == (
        "aws_s3.export_part_size must be at least one byte, not '0'; e.g. 6GB, 64MB or 1048576"
    )
    assert part_size("") == DEFAULT_PART


@pytest.mark.parametrize("text", ["lots", "12 parsecs", "-5MB", "1e3", "MB"])
def test_bad_sizes(text: str) -> None:
    with pytest.raises(UsageError) as err:
        parse_size(text, what="--split-tables-larger-than")
    assert str(err.value) == (
        f"cannot read --split-tables-larger-than {text!r}; write it like 512MB, 2GB or none"
    )
