"""A big MariaDB table copied as parallel ranges of its integer primary
key (--split-tables-larger-than, --jobs): every row exactly once."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from click.testing import Result

from tests.migrate.conftest import rows

N = 60_000


def test_big_table_is_split_by_key_ranges(
    mysql_db: tuple[str, Callable[..., Any]], target_db: str, run_cli: Callable[..., Result]
) -> None:
    url, run = mysql_db
    run("SET SESSION sql_mode = ''")
    run("CREATE TABLE big (id bigint PRIMARY KEY, body varchar(100), d date NULL)")
    run(f"INSERT INTO big SELECT seq * 3, REPEAT(CHAR(65 + seq % 26), 90), '2020-01-02'"
        f" FROM seq_1_to_{N}")  # fmt: skip
    # far outside the bulk: the open-ended first and last ranges take them;
    # zero dates: those rows are read again, raw, and must stay in their range
    run("INSERT INTO big VALUES (-7, 'neg\\ttab', '0000-00-00'), (9000000000, 'far', NULL)")
    run("UPDATE big SET d = '0000-00-00' WHERE id % 9999 = 0")
    run("CREATE TABLE nokey (code varchar(20) PRIMARY KEY, body varchar(100))")
    run(f"INSERT INTO nokey SELECT CONCAT('k', seq), REPEAT('x', 90) FROM seq_1_to_{N // 2}")
    run("CREATE TABLE small (id int PRIMARY KEY)")
    run("INSERT INTO small VALUES (1), (2)")
    run("ANALYZE TABLE big, nokey, small")
    r = run_cli(
        "clone", "--source", url, "--target", target_db, "--json", "--jobs", "3",
        "--split-tables-larger-than", "1MB",
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    parts = {t["table"]: (t["rows"], t["parts"]) for t in out["tables"]}
    big_parts = parts["public.big"][1]
    assert big_parts >= 2
    assert parts == {
        "public.big": (N + 2, big_parts),
        "public.nokey": (N // 2, 1),
        "public.small": (2, 1),
    }
    assert f"big: copied as {big_parts} parallel ranges of its primary key id" in out["notes"]
    assert (
        "nokey: larger than --split-tables-larger-than but without a one-column integer"
        " primary key, so copied in one stream"
    ) in out["notes"]
    got = rows(
        target_db,
        "SELECT count(*), sum(id)::bigint, count(d),"
        " md5(string_agg(id || body, '' ORDER BY id)) FROM big",
    )
    run("SET SESSION group_concat_max_len = 1073741824")
    want = run(
        "SELECT COUNT(*), CAST(SUM(id) AS SIGNED), COUNT(d),"
        " MD5(GROUP_CONCAT(id, body ORDER BY id SEPARATOR '')) FROM big"
    )
    # ids 3..3N step 3 with a zero date every 9999 (seq a multiple of 3333): NULL
    assert got == [(N + 2, want[0][1], N - N // 3333, want[0][3])]
    assert rows(target_db, "SELECT body, d FROM big WHERE id IN (-7, 9000000000) ORDER BY id") == [
        ("neg\ttab", None),
        ("far", None),
    ]
    v = run_cli("verify", "--source", url, "--target", target_db)
    assert v.exit_code == 0, v.output
    # --jobs 1 or splitting off: one stream
    for extra in (["--jobs", "1"], ["--split-tables-larger-than", "none"]):
        r = run_cli("clone", "--source", url, "--target", target_db, "--json", "--schema",
                    f"s{len(extra[1])}", "--split-tables-larger-than", "1MB", *extra)  # fmt: skip
        assert r.exit_code == 0, r.output
        assert {t["parts"] for t in json.loads(r.stdout)["tables"]} == {1}
