"""--jobs N on one object: byte ranges cut at row ends over N connections,
all or nothing by two-phase commit; one stream (with the reason) when the
object cannot be cut."""

from __future__ import annotations

import gzip
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from pgferry import parallel
from pgferry.embedded import LocalServer
from pgferry.errors import DataError
from pgferry.imports import ImportSpec
from tests.services import FAST, postgres


@pytest.fixture(scope="module")
def server() -> Iterator[LocalServer]:
    s = postgres("15", start=False)
    s.start({**FAST, "max_prepared_transactions": "4"})
    yield s
    s.destroy()


@pytest.fixture()
def url(server: LocalServer, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setattr(parallel, "MIN_RANGE", 64 << 10)
    u = server.conninfo()
    with psycopg.connect(u, autocommit=True) as c:
        c.execute("DROP TABLE IF EXISTS t; CREATE TABLE t (id int, note text)")
    return u


def _csv(rows: int, note: str = "plain") -> bytes:
    return b"".join(b"%d,%s-%d\n" % (i, note.encode(), i) for i in range(rows))


def _check(url: str, rows: int) -> None:
    with psycopg.connect(url) as c:
        q = "SELECT count(*), count(DISTINCT id), coalesce(sum(id), 0) FROM t"
        assert c.execute(q).fetchone() == (
            rows,
            rows,
            rows * (rows - 1) // 2,
        )
        assert c.execute("SELECT count(*) FROM pg_prepared_xacts").fetchone() == (0,)


def test_one_s3_object_over_three_connections(
    url: str, s3client: Any, bucket: str, s3env: Any, caplog: pytest.LogCaptureFixture
) -> None:
    body = b"id,note\n" + _csv(40_000)
    s3client.put_object(Bucket=bucket, Key="big.csv", Body=body)
    spec = ImportSpec(
        table="t", source=f"s3://{bucket}/big.csv", options="(format csv, header true)", target=url
    )
    with caplog.at_level(logging.INFO, logger="pgferry"):
        r = parallel.run_parallel(spec, 3)
    assert (r.rows, r.bytes) == (40_000, len(body))
    assert [m.getMessage() for m in caplog.records] == [
        f"s3://{bucket}/big.csv: loaded over 3 connections"
    ]
    _check(url, 40_000)


def test_quoted_line_breaks_at_a_cut_load_in_one_stream(
    url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # every row is mostly one quoted field of many lines: any cut falls inside one
    row = b'%d,"' + b"x\n" * 200 + b'"\n'
    body = b"".join(row % i for i in range(1000))
    f = tmp_path / "q.csv"
    f.write_bytes(body)
    spec = ImportSpec(table="t", source=str(f), options="(format csv)", target=url)
    with caplog.at_level(logging.WARNING, logger="pgferry"):
        r = parallel.run_parallel(spec, 2)
    assert r.rows == 1000
    (warning,) = [m.getMessage() for m in caplog.records]
    # the range after the cut failed, or parsed and ended elsewhere: one stream either way
    assert warning.startswith(
        (f"--jobs 2: the range of {f} from byte ", f"--jobs 2: {f} has a quoted line break near")
    )
    assert warning.endswith("; loading it in one stream")
    _check(url, 1000)


def test_text_format_and_a_bad_row_in_a_later_range(url: str, tmp_path: Path) -> None:
    lines = [b"%d\tn%d\n" % (i, i) for i in range(30_000)]
    lines[25_000] = b"oops\tbad\n"
    f = tmp_path / "t.txt"
    f.write_bytes(b"".join(lines))
    with pytest.raises(DataError) as e:
        parallel.run_parallel(ImportSpec(table="t", source=str(f), target=url), 2)
    assert e.value.message.startswith(f"{f} (the range from byte ")
    assert ") line " in e.value.message and ", column id rejected by table" in e.value.message
    _check(url, 0)  # nothing from the range that loaded either
    lines[25_000] = b"25000\tn25000\n"
    f.write_bytes(b"".join(lines))
    assert parallel.run_parallel(ImportSpec(table="t", source=str(f), target=url), 2).rows == 30_000
    _check(url, 30_000)


def test_what_is_not_split_says_why(
    url: str, db: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    f = tmp_path / "c.csv.gz"
    f.write_bytes(gzip.compress(_csv(20_000)))
    g = tmp_path / "plain.csv"
    g.write_bytes(_csv(20_000))
    with psycopg.connect(db, autocommit=True) as c:
        c.execute("CREATE TABLE t (id int, note text)")
    with caplog.at_level(logging.WARNING, logger="pgferry"):
        parallel.run_parallel(
            ImportSpec(table="t", source=str(f), options="(format csv)", target=url), 2
        )
        parallel.run_parallel(
            ImportSpec(table="t", source=str(g), options="(format csv)", target=db), 2
        )
    assert [m.getMessage() for m in caplog.records] == [
        f"--jobs 2: a compressed object cannot be read in ranges; loading {f} in one stream",
        "--jobs 2: loading over 2 connections all or nothing needs two-phase commit, and the "
        "target's max_prepared_transactions is 0 (set it to at least 2); "
        f"loading {g} in one stream",
    ]
    _check(url, 20_000)


def test_cli_jobs_on_one_object(url: str, tmp_path: Path) -> None:
    import os

    from tests.test_import_cli import run

    f = tmp_path / "p.csv"
    f.write_bytes(_csv(30_000))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "PG"))}
    p = run(
        "import",
        str(f),
        "-t",
        "t",
        "--options",
        "(format csv)",
        "--jobs",
        "2",
        "--target",
        url,
        env=env,
    )
    assert (p.returncode, p.stderr) == (0, "")  # too small to split: one stream, quietly
    assert p.stdout.startswith('30000 rows imported into relation "t"')
    for dry in ([], ["--dry-run"]):
        p = run("import", str(f), "-t", "t", "--commit-each", "--target", url, *dry, env=env)
        assert (p.returncode, p.stderr) == (
            2,
            "error: --commit-each applies to a prefix, folder or glob; see 'pgferry import "
            "--help'\n",
        )
    _check(url, 30_000)


def test_dry_run_says_whether_one_object_would_be_cut(url: str, tmp_path: Path) -> None:
    from pgferry.dryrun import dry_run

    big, small, packed = tmp_path / "big.csv", tmp_path / "small.csv", tmp_path / "big.csv.gz"
    big.write_bytes(_csv(20_000))
    small.write_bytes(_csv(10))
    packed.write_bytes(gzip.compress(big.read_bytes()))
    spec = ImportSpec(table="t", source=str(big), options="(format csv)", target=url)
    plan = dry_run(spec, jobs=3)
    assert (plan.jobs, plan.two_phase, plan.max_prepared_transactions) == (3, True, 4)
    assert plan.lines()[-2] == (
        "jobs: the object is cut into 3 byte ranges, one connection each; their transactions "
        "end together by two-phase commit (max_prepared_transactions is 4, at least 3)"
    )
    notes = {
        (small, 3): f"it is {small.stat().st_size} bytes, under 3 ranges of 65536 bytes",
        (packed, 3): "a compressed object cannot be read in ranges",
        (big, 5): "loading over 5 connections all or nothing needs two-phase commit, and the "
        "target's max_prepared_transactions is 4 (set it to at least 5)",
    }
    for (path, jobs), why in notes.items():
        plan = dry_run(
            ImportSpec(table="t", source=str(path), options="(format csv)", target=url), jobs=jobs
        )
        assert (plan.jobs, plan.two_phase) == (1, False)
        assert plan.jobs_note == f"--jobs {jobs} would load it in one stream: {why}"
    _check(url, 0)


def test_head_is_read_without_read_ahead(bucket: str, s3client: Any, s3env: Any) -> None:
    """Sizing up an object for ranges looks at its first 64 KiB with one
    ranged GET of exactly that, pinned to the version opened (the streaming
    reader used to fetch megabytes ahead only to be closed)."""
    from pgferry.errors import ObjectChanged
    from pgferry.stores import parse_source
    from pgferry.stores.s3 import S3Config, S3Reader

    body = bytes(range(256)) * 40_000  # 10 MB
    s3client.put_object(Bucket=bucket, Key="h.bin", Body=body)
    s3client.put_object(Bucket=bucket, Key="empty.bin", Body=b"")
    reader = S3Reader(parse_source(f"s3://{bucket}/h.bin"), S3Config())
    got: list[int] = []
    reader.client.meta.events.register(
        "after-call.s3.GetObject",
        lambda http_response, **kw: got.append(int(http_response.headers["Content-Length"])),
    )
    try:
        assert reader.first_bytes(65536) == body[:65536]
        assert got == [65536]
        assert reader.first_bytes(len(body) + 5) == body
        s3client.put_object(Bucket=bucket, Key="h.bin", Body=body[::-1])
        with pytest.raises(ObjectChanged):
            reader.first_bytes(10)
    finally:
        reader.close()
    empty = S3Reader(parse_source(f"s3://{bucket}/empty.bin"), S3Config())
    try:
        assert empty.first_bytes(10) == b""
    finally:
        empty.close()
