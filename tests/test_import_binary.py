"""Large CSV loads go as COPY BINARY where that stores exactly what COPY's
CSV reading stores, and as CSV from the first block where it would not.

Every case loads the same bytes twice on a real server, through the fast
path and through a plain CSV COPY, and compares what each stored (row by
row, as the server prints it) or the error each raised (message and line).
"""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest

from pgferry.errors import PgferryError
from pgferry.imports import ImportSpec, run_import
from pgferry.sink import fastcopy
from pgferry.sink.copyin import copy_in
from pgferry.sink.options import parse_copy_options
from pgferry.stores import ObjectRef

REF = ObjectRef(key="data.csv")
Outcome = tuple[Any, ...]
CPUS = fastcopy.cpus


@pytest.fixture(autouse=True)
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every load takes the fast path, in blocks of a few lines, whatever
    CPUs the machine running the tests has."""
    monkeypatch.setattr(fastcopy, "MIN_SIZE", 0)
    monkeypatch.setattr(fastcopy, "BLOCK", 64)
    monkeypatch.setattr(fastcopy, "cpus", lambda: 2.0)


def _chunks(data: bytes) -> Iterator[bytes]:
    for i in range(0, len(data), 50):  # chunk edges fall anywhere in a line
        yield data[i : i + 50]


def load(
    conn: psycopg.Connection[Any],
    data: bytes,
    options: str = "(format csv)",
    *,
    fast: bool,
    columns: tuple[str, ...] = (),
) -> Outcome:
    opts = parse_copy_options(options)
    try:
        with conn.transaction(force_rollback=True):
            if fast:
                rows = fastcopy.copy_csv(
                    conn, ("t",), columns, opts, _chunks(data), ref=REF, size=len(data)
                )[0]
            else:
                rows, _ = copy_in(conn, ("t",), columns, opts, _chunks(data), ref=REF)
            stored = conn.execute("SELECT t::text FROM t ORDER BY ctid").fetchall()
            return ("ok", rows, [r[0] for r in stored])
    except PgferryError as e:
        return ("error", type(e).__name__, str(e), getattr(e, "line", None))


def both(conn: psycopg.Connection[Any], data: bytes, options: str = "(format csv)") -> Outcome:
    fast = load(conn, data, options, fast=True)
    plain = load(conn, data, options, fast=False)
    assert fast == plain, data
    return fast


def binary_rows(caplog: pytest.LogCaptureFixture) -> tuple[int, int | None] | None:
    """What the fast path logged: rows sent in binary, and where CSV took over."""
    for r in caplog.records:
        if "loaded as COPY BINARY" in r.getMessage():
            args = r.args
            assert isinstance(args, tuple)
            return int(args[1]), (int(args[2]) if len(args) > 2 else None)
    return None


# Each value is one CSV field as written in the file. The fast path must
# store what COPY stores, or fail as COPY fails: a spelling it does not
# check makes it load as CSV, which the comparison cannot tell apart.
CORPUS: dict[str, list[str]] = {
    "bigint": [
        "0",
        "-0",
        "007",
        "+5",
        " 5",
        "5 ",
        "0x1F",
        "0X1f",
        "0o17",
        "0b101",
        "1_000",
        "9223372036854775807",
        "9223372036854775808",
        "-9223372036854775808",
        "1e3",
        '""',
        "٣",
        "-",
        "--5",
        "5-",
        '"12"',
        "1.0",
    ],
    "integer": ["2147483647", "2147483648", "-2147483648", "12", "0x10"],
    "smallint": ["32767", "32768", "-32768", "-32769", "7"],
    "numeric": [
        "0",
        "-0",
        "-0.00",
        "1.005",
        "0.0001",
        ".5",
        "5.",
        "1e5",
        "NaN",
        "Infinity",
        "-1.5",
        "00012.3400",
        "1_000.5",
        " 1",
        "+1",
        '""',
        "1.2.3",
        "1-2",
        "-.5",
        "123456789012345678901234567890.123456789012345678901234567890",
        "9" * 70,
        "0." + "0" * 70 + "1",
        '"3.25"',
        "10000",
        "99999999.99999999",
        "--5",
        ".-5",
        "5-",
        "-5.",
        "0.5e1",
    ],
    "numeric(6,2)": ["1.005", "1.015", "-1.005", "9999.995", "9999.99", "0.001", "12345"],
    "numeric(4,-1)": ["12345", "15", "-15"],
    "date": [
        "2000-01-01",
        "0001-01-01",
        "0000-01-01",
        "9999-12-31",
        "2001-02-29",
        "2000-02-29",
        "1999-1-1",
        "20000101",
        "2000-01-01 ",
        "01/02/2000",
        "2000-01-01 00:00",
        "epoch",
        "infinity",
        "0099-03-04",
        "2000-01-01T00",
        '"2000-01-02"',
        "1970-01-01",
        "1899-12-31",
    ],
    "timestamp": [
        "2000-01-01 00:00:00",
        "2000-01-01 00:00:00.5",
        "2000-01-01 00:00:00.123456",
        "2000-01-01 00:00:00.1234567",
        "2000-01-01T00:00:00",
        "2000-01-01 24:00:00",
        "2000-01-01 23:59:60",
        "2000-01-01 00:00:00+05",
        "2000-01-01 00:00:00Z",
        "2000-01-01",
        "0001-01-01 00:00:00",
        "0000-01-01 00:00:00",
        "1999-12-31 23:59:59.999999",
        "2000-02-30 00:00:00",
        "2000-01-01 1:00:00",
        "infinity",
        "2000-01-01 00:00:00 BC",
        "1969-07-20 20:17:40",
        "9999-12-31 23:59:59.999999",
        "2000-01-01 00:00:00.",
        "2000-01-01 00:60:00",
        "2000-01-01 05",
        "2000-01-01T05",
        "2000-01-01 05:07",
        "2000-01-01T05:07:09.5",
    ],
    "text": [
        "abc",
        "",
        '""',
        '"a,b"',
        '"a""b"',
        'ab"c',
        '"ab"c',
        '"a"b"c"',
        "\\N",
        "   ",
        "é",
        "日本",
        "a\tb",
        '"line\nbreak"',
        "\\.",
        '"\\."',
        "x\\",
        "\x7f",
    ],
    "varchar(3)": ["abc", "abcd", "日本語", "日本語x", '""', "  ab"],
    "char(3)": ["a", "abc", "abcd", "ab "],
}


@pytest.mark.parametrize("column_type", list(CORPUS))
def test_each_value_stores_what_csv_copy_stores(
    conn: psycopg.Connection[Any], column_type: str
) -> None:
    conn.execute(f"CREATE TABLE t (k int, v {column_type}, w text)")
    engaged = 0
    for value in CORPUS[column_type]:
        # the value alone and among plain rows, first and last on its line
        for line in (f"1,{value},x\n", f"2,{value},\n"):
            data = line.encode() + b"3,,z\n" * 3
            outcome = both(conn, data)
            if outcome[0] == "ok":
                engaged += 1
    assert engaged > len(CORPUS[column_type]) // 3  # the corpus is not all refusals


def test_the_fast_path_really_sends_binary(
    conn: psycopg.Connection[Any], caplog: pytest.LogCaptureFixture
) -> None:
    conn.execute(
        "CREATE TABLE t (id bigint, n numeric(12,2), d date, ts timestamp, note text, "
        "s smallint, i int)"
    )
    data = b"".join(
        b'%d,%d.%02d,2001-02-%02d,2001-02-03 04:05:%02d.5,"q ""%d"", x",%d,-%d\n'
        % (i, i * 7, i % 100, i % 28 + 1, i % 60, i, i % 300, i)
        for i in range(500)
    )
    caplog.set_level(logging.DEBUG, logger="pgferry.import")
    outcome = both(conn, data)
    assert outcome[:2] == ("ok", 500)
    assert binary_rows(caplog) == (500, None)
    assert outcome[2][7] == '(7,49.07,2001-02-08,"2001-02-03 04:05:07.5","q ""7"", x",7,-7)'


@pytest.mark.parametrize(
    "values",
    [
        # up to 18 digits: int64 arithmetic
        ["1", "1.5", "-0.25", "123.456", "0.000001", "-99999.9999", "5.", ".5",
         "10000000", "0.10", "-0", "-.5", "7.0000000001"],
        # a longer value in the block: the digits as text
        ["1", "1.5", "-0.25", "123.456", "0.000001", "-99999999999999.9999",
         "12345678901234567890.12", "0.10", "-0", "7.0000000000000001"],
    ],
    ids=["int64", "text"],
)  # fmt: skip
def test_numerics_of_mixed_scales_in_one_block(
    conn: psycopg.Connection[Any],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    values: list[str],
) -> None:
    """One block, values of different scales and lengths: the digit groups
    of each are aligned on the point, dscale is each value's own."""
    monkeypatch.setattr(fastcopy, "BLOCK", 1 << 20)
    conn.execute("CREATE TABLE t (id int, n numeric, m numeric(30,4))")
    data = b"".join(b"%d,%s,%s\n" % (i, v.encode(), v.encode()) for i, v in enumerate(values))
    caplog.set_level(logging.DEBUG, logger="pgferry.import")
    outcome = both(conn, data)
    assert outcome[:2] == ("ok", len(values))
    assert binary_rows(caplog) == (len(values), None)
    assert outcome[2][3] == "(3,123.456,123.4560)"


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_values_store_what_csv_copy_stores(
    conn: psycopg.Connection[Any],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    seed: int,
) -> None:
    """Thousands of random values in the spellings binary.py takes, in
    blocks of a few hundred lines: every block goes in binary and the
    server stores exactly what it stores from CSV."""
    monkeypatch.setattr(fastcopy, "BLOCK", 16 << 10)
    rnd = random.Random(seed)

    def number() -> str:
        whole = "".join(rnd.choice("0123456789") for _ in range(rnd.randint(1, 6)))
        frac = "".join(rnd.choice("0123456789") for _ in range(rnd.randint(0, 12)))
        sign = rnd.choice(["", "", "-"])
        return f"{sign}{whole}.{frac}" if frac or rnd.random() < 0.1 else f"{sign}{whole}"

    def stamp() -> str:
        base = datetime(1, 1, 1) + timedelta(seconds=rnd.randint(0, 315_000_000_000))
        frac = "".join(rnd.choice("0123456789") for _ in range(rnd.choice([0, 1, 3, 6])))
        return base.isoformat(sep=" ") + (f".{frac}" if frac else "")

    conn.execute(
        "CREATE TABLE t (a bigint, b int, c smallint, n numeric, m numeric(14,3), "
        "d date, ts timestamp, s text, v varchar(12))"
    )
    lines = []
    for _ in range(3000):
        row = [
            str(rnd.randint(-(2**63), 2**63 - 1)),
            str(rnd.randint(-(2**31), 2**31 - 1)),
            str(rnd.randint(-(2**15), 2**15 - 1)),
            number(),
            f"{rnd.choice(['', '-'])}{rnd.randint(0, 10**11 - 1)}.{rnd.randint(0, 999)}",
            (date(1, 1, 1) + timedelta(days=rnd.randint(0, 3_652_058))).isoformat(),
            stamp(),
            rnd.choice(["", '""', '"a,b"', '"say ""hi"""', "plain", "日本", "x y"]),
            rnd.choice(["", "short", '"q,uoted"']),
        ]
        lines.append(",".join(row) + "\n")
    data = "".join(lines).encode()
    caplog.set_level(logging.DEBUG, logger="pgferry.import")
    outcome = both(conn, data)
    assert outcome[:2] == ("ok", 3000), outcome[2]
    assert binary_rows(caplog) == (3000, None)


def test_an_inexact_value_midway_sends_the_rest_as_csv(
    conn: psycopg.Connection[Any], caplog: pytest.LogCaptureFixture
) -> None:
    conn.execute("CREATE TABLE t (id int, n numeric, note text)")
    lines = [b"%d,%d.5,n%d\n" % (i, i, i) for i in range(200)]
    lines[120] = b"120,1e3,exponent\n"  # numeric_in reads it; binary.py does not
    caplog.set_level(logging.DEBUG, logger="pgferry.import")
    outcome = both(conn, b"".join(lines))
    assert outcome[:2] == ("ok", 200)
    assert "(120,1000,exponent)" in outcome[2]
    sent, csv_from = binary_rows(caplog) or (0, None)
    assert 0 < sent <= 120 and csv_from == sent + 1


@pytest.mark.parametrize("header", [False, True])
def test_error_lines_are_the_files_in_either_part(
    conn: psycopg.Connection[Any], header: bool
) -> None:
    conn.execute("CREATE TABLE t (id int PRIMARY KEY, code varchar(4), n numeric(5,1))")
    options = "(format csv, header true)" if header else "(format csv)"
    top = b"id,code,n\n" if header else b""
    rows = [b"%d,c%d,%d.5\n" % (i, i % 100, i % 1000) for i in range(300)]
    cases = {
        # in the binary part: the server's own checks on binary rows
        "too long": (40, b"40,toolong,1.5\n"),
        "duplicate": (50, b"7,c7,7.5\n"),
        "overflow": (60, b"60,c60,123456.5\n"),
        # past an inexact block: the CSV part
        "bad integer": (250, b"x250,c,1\n"),
    }
    for name, (at, bad) in cases.items():
        data = top + b"".join(rows[:at]) + bad + b"".join(rows[at + 1 :])
        outcome = both(conn, data, options)
        assert outcome[0] == "error", name
        assert outcome[3] == at + 1 + int(header), (name, outcome)
    # an inexact block first, then a duplicate key far past it
    data = top + b"0,c0,1e1\n" + b"".join(rows[1:280]) + b"5,c5,5.5\n"
    outcome = both(conn, data, options)
    assert outcome[0] == "error" and outcome[3] == 281 + int(header)


def test_line_ends_that_change_midway_fail_as_copy_fails(conn: psycopg.Connection[Any]) -> None:
    conn.execute("CREATE TABLE t (id int, note text)")
    lf = b"".join(b"%d,a%d\n" % (i, i) for i in range(100))
    crlf = b"".join(b"%d,b%d\r\n" % (i, i) for i in range(100, 200))
    assert both(conn, lf + crlf)[0] == "error"
    assert both(conn, crlf + lf)[0] == "error"
    assert both(conn, crlf + crlf)[:2] == ("ok", 200)
    assert both(conn, b"1,a\r2,b\r")[0] in ("ok", "error")  # CR only: COPY decides


def test_quoting_copy_reads_differently_from_arrow(conn: psycopg.Connection[Any]) -> None:
    conn.execute("CREATE TABLE t (a text, b text, c text)")
    plain = b"".join(b"x%d,y,z\n" % i for i in range(60))
    for odd in (
        b'ab"c,d"e,f\n',  # a quote mid-field: COPY reads `abc,de` and then f
        b'"a\nb",c,d\n',  # a quoted line break
        b'"a",b"",c\n',
        b'"a"x,b,c\n',
        b",,\n",
        b"\n",  # an empty line with three columns
        b"\\.\n",  # the end-of-data marker
        b'"\\.",b,c\n',
        b"a,b\n",
        b"a,b,c,d\n",
        b"a\x00,b,c\n",
        b"\xff\xfe,b,c\n",  # not UTF-8
    ):
        both(conn, plain + odd + plain)
        both(conn, odd + plain)


def test_long_lines(conn: psycopg.Connection[Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """A line longer than a block waits for its end; one longer than
    MAX_LINE goes on as CSV in pieces, so memory stays bounded."""
    monkeypatch.setattr(fastcopy, "MAX_LINE", 4096)
    conn.execute("CREATE TABLE t (id int, note text)")
    rows = [b"%d,n%d\n" % (i, i) for i in range(100)]
    for size in (1000, 10_000):
        rows[50] = b'50,"' + b"x," * (size // 2) + b'"\n'
        outcome = both(conn, b"".join(rows))
        assert outcome[:2] == ("ok", 100)
        assert len(outcome[2][50]) > size


def test_one_column_empty_lines_and_tab_delimiter(conn: psycopg.Connection[Any]) -> None:
    conn.execute("CREATE TABLE t (a text)")
    assert both(conn, b"a\n\nb\n" * 30)[:2] == ("ok", 90)
    conn.execute("DROP TABLE t; CREATE TABLE t (a int, b text)")
    data = b"a\tb\r\n" + b"".join(b'%d\t"t,%d"\r\n' % (i, i) for i in range(80))
    assert both(conn, data, "(format csv, delimiter '\t', header true)")[:2] == ("ok", 80)


def test_columns_named_generated_and_default(
    conn: psycopg.Connection[Any], caplog: pytest.LogCaptureFixture
) -> None:
    conn.execute(
        "CREATE TABLE t (id int, made timestamp DEFAULT '2001-01-01', n numeric, "
        "twice numeric GENERATED ALWAYS AS (n * 2) STORED)"
    )
    caplog.set_level(logging.DEBUG, logger="pgferry.import")
    data = b"".join(b"%d.25,%d\n" % (i, i) for i in range(100))
    fast = load(conn, data, fast=True, columns=("n", "id"))
    assert fast == load(conn, data, fast=False, columns=("n", "id"))
    assert fast[2][3] == '(3,"2001-01-01 00:00:00",3.25,6.50)'
    assert binary_rows(caplog) == (100, None)


@pytest.mark.parametrize(
    ("ddl", "options"),
    [
        ("CREATE TABLE t (a int, b jsonb)", "(format csv)"),  # a type binary.py does not encode
        ("CREATE TABLE t (a int, b text)", "(format csv, force_null (b))"),
        ("CREATE TABLE t (a int, b text)", "(format csv, null 'NA')"),
        ("CREATE TABLE t (a int, b text)", "(format csv, header match)"),
        ("CREATE TABLE t (a int, b text)", "(format text)"),
    ],
)
def test_what_stays_plain_csv(
    conn: psycopg.Connection[Any], caplog: pytest.LogCaptureFixture, ddl: str, options: str
) -> None:
    conn.execute(ddl)
    caplog.set_level(logging.DEBUG, logger="pgferry.import")
    sep = b"\t" if "text" in options else b","
    data = b"a" + sep + b"b\n" + b"".join(b"%d%s{}\n" % (i, sep) for i in range(50))
    load(conn, data, options, fast=True)
    assert binary_rows(caplog) is None


def test_statement_triggers_fire_once(
    conn: psycopg.Connection[Any], caplog: pytest.LogCaptureFixture
) -> None:
    conn.execute(
        "CREATE TABLE t (a int, b text); CREATE TABLE fired (n int);"
        "CREATE FUNCTION note() RETURNS trigger LANGUAGE plpgsql AS "
        "$$BEGIN INSERT INTO fired VALUES (1); RETURN NULL; END$$;"
        "CREATE TRIGGER once AFTER INSERT ON t FOR EACH STATEMENT EXECUTE FUNCTION note()"
    )
    caplog.set_level(logging.DEBUG, logger="pgferry.import")
    data = b"".join(b"%d,b\n" % i for i in range(60)) + b"1e1,x\n" + b"2,b\n" * 30
    opts = parse_copy_options("(format csv)")
    with pytest.raises(PgferryError):
        fastcopy.copy_csv(conn, ("t",), (), opts, _chunks(data), ref=REF, size=len(data))
    data = data.replace(b"1e1", b"10")
    with conn.transaction():
        fastcopy.copy_csv(conn, ("t",), (), opts, _chunks(data), ref=REF, size=len(data))
    assert conn.execute("SELECT count(*) FROM fired").fetchone() == (1,)
    assert binary_rows(caplog) is None


def test_import_from_s3_through_the_fast_path(
    db: str, s3client: Any, bucket: str, s3env: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """The whole import: S3 object, header, transaction, result."""
    with psycopg.connect(db, autocommit=True) as c:
        c.execute("CREATE TABLE items (id bigint, price numeric(10,2), sold date, note text)")
    body = b"id,price,sold,note\n" + b"".join(
        b'%d,%d.%02d,2020-03-%02d,"n, %d"\n' % (i, i, i % 100, i % 28 + 1, i) for i in range(5000)
    )
    s3client.put_object(Bucket=bucket, Key="items.csv", Body=body)
    caplog.set_level(logging.DEBUG, logger="pgferry.import")
    result = run_import(
        ImportSpec(
            table="items",
            source=f"s3://{bucket}/items.csv",
            options="(format csv, header true)",
            target=db,
        )
    )
    assert result.rows == result.binary_rows == 5000
    assert binary_rows(caplog) == (5000, None)
    price = sum(Decimal(i) + Decimal(i % 100) / 100 for i in range(5000))
    with psycopg.connect(db) as c:
        assert c.execute(
            "SELECT count(*), sum(id), sum(price), min(sold), max(sold), "
            "count(*) FILTER (WHERE note = 'n, ' || id) FROM items"
        ).fetchone() == (5000, 12497500, price, date(2020, 3, 1), date(2020, 3, 28), 5000)


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs to compare")
def test_a_process_with_one_cpu_loads_as_csv(
    db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Encoding costs the client more CPU than it saves the server: with one
    CPU to use the load goes as CSV; with two, in binary."""
    monkeypatch.setattr(fastcopy, "cpus", CPUS)
    with psycopg.connect(db, autocommit=True) as c:
        c.execute("CREATE TABLE few (id bigint, at date)")
    path = tmp_path / "few.csv"
    path.write_bytes(b"".join(b"%d,2021-01-%02d\n" % (i, i % 28 + 1) for i in range(300)))
    spec = ImportSpec(table="few", source=str(path), options="(format csv)", target=db)
    caplog.set_level(logging.DEBUG, logger="pgferry.import")
    allowed = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(allowed)})  # this thread's: the one that plans the load
    try:
        one = run_import(spec)
    finally:
        os.sched_setaffinity(0, allowed)
    assert (one.rows, one.binary_rows) == (300, 0)
    assert "fewer than 2 CPUs to use: loading as CSV" in caplog.messages
    two = run_import(spec)
    assert (two.rows, two.binary_rows) == (300, 300)
    with psycopg.connect(db) as c:
        assert c.execute("SELECT count(*), sum(id), max(at) FROM few").fetchone() == (
            600,
            2 * 44850,
            date(2021, 1, 28),
        )


def _cgroup(tmp_path: Path, own: str, files: dict[str, str]) -> float:
    root = tmp_path / "cgroup"
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    (tmp_path / "own").write_text(own)
    return CPUS(root, tmp_path / "own")


def test_cpus_reads_the_cgroup_quota_of_the_process_and_its_parents(tmp_path: Path) -> None:
    mine = float(len(os.sched_getaffinity(0)))
    v2 = {"pod/cpu.max": "150000 100000\n", "pod/app/cpu.max": "max 100000\n"}
    assert _cgroup(tmp_path / "a", "0::/pod/app\n", v2) == min(mine, 1.5)
    v1 = {
        "cpu,cpuacct/docker/x/cpu.cfs_quota_us": "50000",
        "cpu,cpuacct/docker/x/cpu.cfs_period_us": "100000",
    }
    assert _cgroup(tmp_path / "b", "4:cpu,cpuacct:/docker/x\n2:memory:/y\n", v1) == 0.5
    # no quota, unreadable or odd files, malformed lines: the affinity alone
    none = {
        "cpu/cpu.cfs_quota_us": "-1",
        "cpu/cpu.cfs_period_us": "100000",
        "cpu.max": "max 100000",
    }
    assert _cgroup(tmp_path / "c", "1:cpu:/\n0::/\nnonsense\n", none) == mine
    assert _cgroup(tmp_path / "d", "0::/gone\n", {"cpu.max": "lots 0"}) == mine
    assert CPUS(tmp_path / "nowhere", tmp_path / "no-such-file") == mine
