import pytest

from pgferry.errors import CopyOptionsError, UsageError
from pgferry.sink.names import parse_table_name, split_identifiers
from pgferry.sink.options import parse_copy_options


def render(text: str) -> str:
    return parse_copy_options(text).render().as_string(None)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("(format csv)", "(FORMAT csv)"),
        ("DELIMITER '|'", "(DELIMITER '|')"),
        ("encoding 'WIN1252'", "(ENCODING 'WIN1252')"),
        ("(format csv, header true)", "(FORMAT csv, HEADER true)"),
        ("(FORMAT 'csv', HEADER)", "(FORMAT csv, HEADER true)"),
        (
            "CSV HEADER DELIMITER AS ';' NULL ''",
            "(FORMAT csv, HEADER true, DELIMITER ';', NULL '')",
        ),
        ("WITH csv", "(FORMAT csv)"),
        ("(format csv, quote '''')", "(FORMAT csv, QUOTE '''')"),
        ('(format csv, force_null (a, "B"))', '(FORMAT csv, FORCE_NULL ("a", "B"))'),
        ("(format csv, force_not_null *)", "(FORMAT csv, FORCE_NOT_NULL *)"),
        ("csv force not null a, b", '(FORMAT csv, FORCE_NOT_NULL ("a", "b"))'),
        ("(header match, format csv)", "(HEADER match, FORMAT csv)"),
        (
            "(format csv, on_error ignore, reject_limit 10)",
            "(FORMAT csv, ON_ERROR ignore, REJECT_LIMIT 10)",
        ),
        ("", ""),
        ("   ", ""),
    ],
)
def test_options_both_forms(text: str, expected: str) -> None:
    assert render(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("(format csv); drop table t", "cannot parse COPY options near '; drop table t'"),
        ("(program 'rm -rf /')", "unknown COPY option 'program'"),
        ("(format json)", "format must be one of binary, csv, text, not 'json'"),
        ("(format csv", "COPY options end too early"),
        ("(format csv, format text)", "COPY option 'format' given twice"),
        ("DELIMITER |", "cannot parse COPY options near '|'"),
        ("(delimiter E'\\t')", "escape-string constants are not supported"),
        ("(encoding 'UTF8'' ; x')", "invalid encoding name"),
        ("(header maybe)", "header must be true or false, not 'maybe'"),
        ("(format binary, delimiter ',')", "binary format takes no text options"),
        ("(format csv) extra", "unexpected 'extra' after the COPY options"),
    ],
)
def test_options_rejected(text: str, message: str) -> None:
    with pytest.raises(CopyOptionsError) as err:
        parse_copy_options(text)
    assert message in str(err.value)
    assert err.value.exit_code == 2


def test_quotes_in_values_stay_literals() -> None:
    # a quote inside a value is re-escaped, never closes the literal
    assert render("(null 'x'');drop table t;--')") == "(NULL 'x'');drop table t;--')"


@pytest.mark.parametrize(
    ("text", "parts"),
    [
        ("t", ("t",)),
        ("T", ("t",)),
        ("public.t1", ("public", "t1")),
        ('"My Table"', ("My Table",)),
        ('s."a.b"', ("s", "a.b")),
        ('"x""y"', ('x"y',)),
        (" public . t ", ("public", "t")),
        ("t;", ("t;",)),
    ],
)
def test_table_names(text: str, parts: tuple[str, ...]) -> None:
    assert parse_table_name(text) == parts


@pytest.mark.parametrize(
    "text", ["My Table", "public.My Table", '"a" "b"', "t; drop table x", 'My "Table"']
)
def test_a_blank_inside_an_unquoted_name_is_refused(text: str) -> None:
    # the server would refuse it too; folding it to one word loaded another table
    with pytest.raises(UsageError) as err:
        parse_table_name(text)
    assert str(err.value) == (
        f"table name {text!r} has a blank inside a name; "
        """quote a name with blanks, e.g. '"My Table"' (as in SQL)"""
    )


def test_column_lists() -> None:
    assert split_identifiers("a,b,d,e") == ["a", "b", "d", "e"]
    assert split_identifiers(' a , B ,"C d"') == ["a", "b", "C d"]
    assert split_identifiers("") == []
    with pytest.raises(UsageError, match="empty name in column list"):
        split_identifiers("a,,b")
    with pytest.raises(UsageError, match="unterminated quote"):
        split_identifiers('a,"b')
    with pytest.raises(UsageError, match="column list 'a b, c' has a blank inside a name"):
        split_identifiers("a b, c")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "format csv, header true",
            "COPY options 'format csv, header true' are a list without its parentheses; "
            "write them as '(format csv, header true)'",
        ),
        (
            "on_error ignore",
            "COPY options 'on_error ignore' are a list without its parentheses; "
            "write them as '(on_error ignore)'",
        ),
        (
            "(delimiter ',,')",
            "COPY delimiter must be one single-byte character, not ',,'; e.g. delimiter '|'",
        ),
        ("(delimiter '\\t')", "COPY delimiter must be one single-byte character, not '\\\\t'"),
        ("(quote '€')", "COPY quote must be one single-byte character, not '€'"),
        ("(escape '')", "COPY escape must be one single-byte character, not ''"),
    ],
)
def test_options_mistakes_say_what_to_write(text: str, message: str) -> None:
    with pytest.raises(CopyOptionsError) as err:
        parse_copy_options(text)
    assert str(err.value).startswith(message)


def test_options_an_import_cannot_take() -> None:
    from pgferry.sink.options import check_copy_from

    check_copy_from(parse_copy_options("(format csv, on_error ignore, reject_limit 3)"))
    check_copy_from(parse_copy_options("CSV HEADER"))
    for text, message in [
        ("(format csv, force_quote (a))", "force_quote only applies to exports (COPY TO)"),
        ("(format csv, reject_limit 3)", "reject_limit needs on_error ignore"),
        ("(on_error stop, reject_limit 3)", "reject_limit needs on_error ignore"),
    ]:
        with pytest.raises(CopyOptionsError) as err:
            check_copy_from(parse_copy_options(text))
        assert str(err.value).startswith(message)
