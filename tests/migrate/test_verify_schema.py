"""verify compares the schema object by object: every kind of difference is
reported, differences between major versions that change nothing are not,
and a comparison that cannot finish exits 2.  Checked on the realistic
database (tests/migrate/realistic.py), also against `pg_dump --schema-only`."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator

import psycopg
import pytest
from click.testing import Result

from pgferry.embedded import LocalServer
from tests.migrate.conftest import drop_database, new_database, rows, version_of
from tests.migrate.realistic import build_realistic, create_roles, schema_dump_diff

Run = Callable[..., Result]
Pair = tuple[str, str]
OBJECTS = 168  # what verify counts in the realistic database

# one of each kind of change, all on the target
CHANGES = """
ALTER TABLE "Sales Ops".cache DISABLE TRIGGER t_origin;
DROP INDEX "Sales Ops".cust_doc;
ALTER TABLE "Sales Ops".bookings DROP CONSTRAINT bookings_customer_fkey;
ALTER TABLE "Sales Ops".cache DROP CONSTRAINT cache_pkey;
DROP POLICY writers ON "Sales Ops"."Cust.omers";
REVOKE SELECT ON "Sales Ops"."Cust.omers" FROM rl_reporting;
REVOKE UPDATE ("Full Name") ON "Sales Ops"."Cust.omers" FROM "rl Web User";
ALTER DEFAULT PRIVILEGES IN SCHEMA "Sales Ops" REVOKE SELECT ON TABLES FROM rl_reporting;
UPDATE pg_index SET indisvalid = false WHERE indexrelid = '"Sales Ops"."name trgm"'::regclass;
ALTER LARGE OBJECT 77002 OWNER TO rl_writer;
COMMENT ON LARGE OBJECT 77001 IS 'changed';
DROP MATERIALIZED VIEW "Sales Ops".pending;
CREATE MATERIALIZED VIEW "Sales Ops".pending AS
    SELECT city, min(temp) AS hottest FROM "Sales Ops".measurements GROUP BY city WITH NO DATA;
SELECT setval('"Sales Ops".ticket_no', 4243, false);
REFRESH MATERIALIZED VIEW "Sales Ops".rooms WITH NO DATA;
ALTER TABLE "Sales Ops"."Cust.omers" NO FORCE ROW LEVEL SECURITY;
DROP RULE "no negative" ON "Sales Ops".vehicle;
ALTER TABLE "Sales Ops".bookings OWNER TO rl_writer;
ALTER TABLE "Sales Ops"."Cust.omers" ALTER CONSTRAINT "Cust.omers_referrer_fkey" NOT DEFERRABLE;
ALTER PUBLICATION "sales pub" DROP TABLE "Sales Ops".bookings;
ALTER TABLE "Ünï ""q"" s.ch"."Tâble ""x"".y" ALTER COLUMN "Çol" TYPE bigint;
ALTER TABLE "Sales Ops"."Cust.omers" ALTER COLUMN mood SET DEFAULT 'happy';
COMMENT ON COLUMN "Sales Ops"."Cust.omers"."Full Name" IS NULL;
ALTER TABLE "Sales Ops".cache ALTER COLUMN v SET STATISTICS 100;
ALTER EVENT TRIGGER "ddl note" ENABLE;
DROP CAST (text AS "Sales Ops".pair);
ALTER OPERATOR "Sales Ops".### (int, int) OWNER TO rl_writer;
ALTER COLLATION "Sales Ops"."Straße C" OWNER TO rl_writer;
CREATE OR REPLACE AGGREGATE "Sales Ops"."cat all"(text) (SFUNC = textcat, STYPE = text,
    INITCOND = 'x');
ALTER TEXT SEARCH CONFIGURATION "Sales Ops"."fts ü" DROP MAPPING FOR word;
ALTER TEXT SEARCH DICTIONARY "Sales Ops"."simple keep" (ACCEPT = true);
ALTER USER MAPPING FOR rl_writer SERVER "other db" OPTIONS (SET password 'um-pass-w2');
ALTER SERVER "other db" OPTIONS (SET dbname 'nowhere');
ALTER FOREIGN TABLE "Sales Ops".remote OPTIONS (SET table_name 'rt2');
ALTER FOREIGN TABLE "Sales Ops".remote ALTER COLUMN a OPTIONS (DROP column_name);
REVOKE USAGE ON FOREIGN DATA WRAPPER postgres_fdw FROM rl_reporting;
DROP STATISTICS "Sales Ops".cust_stats;
"""


def expected(version: str) -> list[tuple[tuple[str, str], str]]:
    # PostgreSQL 18 deparses a one-table view without column qualification
    pending = (
        "...ts.city, max(measurements.temp) AS... -> ...ts.city, min(measurements.temp) AS..."
        if version == "15"
        else "SELECT city, max(temp) AS hottest FRO... -> SELECT city, min(temp) AS hottest FRO..."
    )
    return [
        (("materialized view", "Sales Ops.rooms"), "not populated on target"),
        (("sequence", "Sales Ops.ticket_no"), "content differs"),
        (
            ("column", "Sales Ops.Cust.omers.Full Name"),
            "differs: acl: -rl Web User=UPDATE by (owner); comment: as typed -> null",
        ),
        (
            ("column", "Sales Ops.Cust.omers.mood"),
            "differs: default: 'ok'::\"Sales Ops\".mood -> 'happy'::\"Sales Ops\".mood",
        ),
        (("column", 'Ünï "q" s.ch.Tâble "x".y.Çol'), "differs: type: integer -> bigint"),
        (("column", "Sales Ops.cache.v"), "differs: statistics target: 500 -> 100"),
        (
            ("constraint", "Sales Ops.Cust.omers.Cust.omers_referrer_fkey"),
            "differs: deferrable: true -> false; deferred: true -> false;"
            ' definition: ...omers"(id) DEFERRABLE INITIALLY DE... -> ...omers"(id)',
        ),
        (("constraint", "Sales Ops.bookings.bookings_customer_fkey"), "missing on target"),
        (("constraint", "Sales Ops.cache.cache_pkey"), "missing on target"),
        (("default privileges", "Sales Ops.for postgres on tables"), "missing on target"),
        (("event trigger", "ddl note"), "differs: enabled: D -> O"),
        (("index", "Sales Ops.cust_doc"), "missing on target"),
        (("index", "Sales Ops.name trgm"), "differs: valid: true -> false"),
        (("index", "Sales Ops.cache_pkey"), "missing on target"),
        (("large object", "77001"), "differs: comment: blob comment -> changed"),
        (("large object", "77002"), "differs: owner: postgres -> rl_writer"),
        (
            ("materialized view", "Sales Ops.pending"),
            f"differs: acl: -rl_reporting=SELECT by (owner); definition: {pending}",
        ),
        (("materialized view", "Sales Ops.rooms"), "differs: populated: true -> false"),
        (("policy", "Sales Ops.Cust.omers.writers"), "missing on target"),
        (
            ("publication", "sales pub"),
            'differs: tables: ...ust.omers", "Sales Ops".bookings -> ...ust.omers"',
        ),
        (("rule", "Sales Ops.vehicle.no negative"), "missing on target"),
        (
            ("sequence definition", "Sales Ops.bookings_id_seq"),
            "differs: owner: rl Web User -> rl_writer",
        ),
        (
            ("table", "Sales Ops.Cust.omers"),
            "differs: acl: -rl_reporting=SELECT by (owner); force row security: true -> false",
        ),
        (("table", "Sales Ops.bookings"), "differs: owner: rl Web User -> rl_writer"),
        (("trigger", "Sales Ops.cache.t_origin"), "differs: enabled: O -> D"),
        (("cast", 'text AS "Sales Ops".pair'), "missing on target"),
        (("collation", "Sales Ops.Straße C"), "differs: owner: postgres -> rl_writer"),
        (("operator", "Sales Ops.###(integer, integer)"), "differs: owner: postgres -> rl_writer"),
        (("function", "Sales Ops.cat all(text)"), "differs: aggregate initial:  -> x"),
        (
            ("text search configuration", "Sales Ops.fts ü"),
            'differs: mapping: ...ep" simple, word "Sales Ops"."simp... -> ...ep" simple',
        ),
        (
            ("text search dictionary", "Sales Ops.simple keep"),
            "differs: options: accept = 'false' -> accept = 'true'",
        ),
        # a password is never shown, only that it differs
        (("user mapping", "for rl_writer on other db"), "differs: secret options: differ"),
        (
            ("foreign server", "other db"),
            "differs: options: dbname=elsewhere, host=127.0.0.1 -> dbname=nowhere, host=127.0.0.1",
        ),
        (
            ("foreign table", "Sales Ops.remote"),
            "differs: foreign options: table_name=rt -> table_name=rt2",
        ),
        (("column", "Sales Ops.remote.a"), "differs: foreign options: column_name=aa -> null"),
        (("foreign data wrapper", "postgres_fdw"), "differs: acl: -rl_reporting=USAGE by (owner)"),
        (("statistics", "Sales Ops.cust_stats"), "missing on target"),
    ]


def differences(res: Result) -> dict[tuple[str, str], list[str]]:
    """(kind, name) -> statuses of what differs (a materialized view has a data
    check and a schema check under one name)."""
    out: dict[tuple[str, str], list[str]] = {}
    for c in json.loads(res.stdout)["checks"]:
        if c["status"] != "ok":
            out.setdefault((c["kind"], c["name"]), []).append(c["status"])
    return out


def flat(exp: list[tuple[tuple[str, str], str]]) -> dict[tuple[str, str], list[str]]:
    out: dict[tuple[str, str], list[str]] = {}
    for k, v in exp:
        out.setdefault(k, []).append(v)
    return out


@pytest.fixture(scope="module")
def changed_pair(pgserver: LocalServer) -> Iterator[Pair]:
    """The realistic database twice on one server, the second one with CHANGES."""
    create_roles(pgserver)
    src, dst = new_database(pgserver, "vs"), new_database(pgserver, "vt")
    build_realistic(src)
    build_realistic(dst)
    rows(dst, CHANGES)
    yield src, dst
    drop_database(pgserver, src)
    drop_database(pgserver, dst)


def test_same_database_twice_is_identical(pgserver: LocalServer, run_cli: Run) -> None:
    create_roles(pgserver)
    src, dst = new_database(pgserver, "vs"), new_database(pgserver, "vt")
    try:
        build_realistic(src)
        build_realistic(dst)
        res = run_cli("verify", "--source", src, "--target", dst)
        # a materialized view WITH NO DATA on both sides: compared, no crash
        assert (res.exit_code, res.stdout) == (0, f"ok: {OBJECTS} objects identical\n")
        assert schema_dump_diff(src, dst) == []
    finally:
        drop_database(pgserver, src)
        drop_database(pgserver, dst)


def test_every_kind_of_difference_is_detected(
    changed_pair: Pair, pgserver: LocalServer, run_cli: Run
) -> None:
    src, dst = changed_pair
    res = run_cli("verify", "--source", src, "--target", dst, "--json")
    assert res.exit_code == 1
    exp = expected(version_of(pgserver))
    assert differences(res) == flat(exp)
    assert "um-pass" not in res.stdout + res.stderr
    # the table shows the same, one line per object
    res = run_cli("verify", "--source", src, "--target", dst)
    assert res.exit_code == 1
    lines = res.stdout.splitlines()
    assert lines[-1] == f"{len(exp)} of {OBJECTS} objects differ"
    assert lines[6] == "column Sales Ops.Cust.omers.mood".ljust(44) + "-".rjust(12) * 2 + (
        "  differs: default: 'ok'::\"Sales Ops\".mood -> 'happy'::\"Sales Ops\".mood"
    )
    # the independent check sees the schema changes too
    diff = schema_dump_diff(src, dst)
    assert '+ALTER TABLE "Sales Ops".cache DISABLE TRIGGER t_origin' in diff
    assert '-ALTER EVENT TRIGGER "ddl note" DISABLE' in diff


def test_options_restrict_what_is_compared(changed_pair: Pair, run_cli: Run) -> None:
    src, dst = changed_pair
    base = ["verify", "--source", src, "--target", dst, "--json"]
    data = differences(run_cli(*base, "--data-only"))
    assert data == {
        ("materialized view", "Sales Ops.rooms"): ["not populated on target"],
        ("sequence", "Sales Ops.ticket_no"): ["content differs"],
    }
    schema = differences(run_cli(*base, "--schema-only"))
    assert ("sequence", "Sales Ops.ticket_no") not in schema
    assert schema[("materialized view", "Sales Ops.rooms")] == ["differs: populated: true -> false"]
    # as after a clone with --no-owner --no-acl: owners and grants are not compared
    loose = differences(run_cli(*base, "--schema-only", "--no-owner", "--no-acl"))
    assert set(schema) - set(loose) == {
        ("collation", "Sales Ops.Straße C"),
        ("default privileges", "Sales Ops.for postgres on tables"),
        ("foreign data wrapper", "postgres_fdw"),
        ("large object", "77002"),
        ("operator", "Sales Ops.###(integer, integer)"),
        ("sequence definition", "Sales Ops.bookings_id_seq"),
        ("table", "Sales Ops.bookings"),
    }
    assert loose[("table", "Sales Ops.Cust.omers")] == [
        "differs: force row security: true -> false"
    ]
    assert loose[("column", "Sales Ops.Cust.omers.Full Name")] == [
        "differs: comment: as typed -> null"
    ]
    # --table: that table's objects only, nothing database-wide
    one = differences(run_cli(*base, "--table", "Sales Ops.cache"))
    assert one == {
        ("column", "Sales Ops.cache.v"): ["differs: statistics target: 500 -> 100"],
        ("constraint", "Sales Ops.cache.cache_pkey"): ["missing on target"],
        ("index", "Sales Ops.cache_pkey"): ["missing on target"],
        ("trigger", "Sales Ops.cache.t_origin"): ["differs: enabled: O -> D"],
    }
    # its foreign key to a table left out is not compared: clone cannot carry it
    one = differences(run_cli(*base, "--table", "Sales Ops.bookings"))
    assert one == {
        ("table", "Sales Ops.bookings"): ["differs: owner: rl Web User -> rl_writer"],
        ("sequence definition", "Sales Ops.bookings_id_seq"): [
            "differs: owner: rl Web User -> rl_writer"
        ],
    }
    # a statistics object goes with its table
    one = differences(run_cli(*base, "--table", "Sales Ops.Cust.omers", "--schema-only"))
    assert one[("statistics", "Sales Ops.cust_stats")] == ["missing on target"]
    rest = differences(run_cli(*base, "--exclude", "Sales Ops.Cust.omers", "--schema-only"))
    assert ("statistics", "Sales Ops.cust_stats") not in rest
    assert ("constraint", "Sales Ops.bookings.bookings_customer_fkey") not in rest
    res = run_cli("verify", "--source", src, "--target", dst, "--data-only", "--schema-only")
    assert res.exit_code == 2
    assert res.stderr == "error: --data-only and --schema-only exclude each other; pick one\n"
    # a selection of nothing is a usage error, never "identical"
    res = run_cli("verify", "--source", src, "--target", dst, "--table", "nowhere.*")
    assert res.exit_code == 2
    assert res.stderr == (
        "error: no source table or view matches --table nowhere.*;"
        " patterns are globs on schema.table (or on table alone)\n"
    )


def test_unpopulated_materialized_view_is_compared(pgserver: LocalServer, run_cli: Run) -> None:
    """Stock pagila has a materialized view WITH NO DATA: verify used to crash."""
    src, dst = new_database(pgserver, "vs"), new_database(pgserver, "vt")
    try:
        for url in (src, dst):
            rows(url, "CREATE MATERIALIZED VIEW mv AS SELECT 1 AS one WITH NO DATA")
        res = run_cli("verify", "--source", src, "--target", dst)
        assert (res.exit_code, res.stdout) == (0, "ok: 6 objects identical\n")
        rows(dst, "REFRESH MATERIALIZED VIEW mv")
        res = run_cli("verify", "--source", src, "--target", dst)
        assert res.exit_code == 1
        assert res.stdout.splitlines()[1:] == [
            "materialized view public.mv".ljust(44) + f"{0:>12}{1:>12}  not populated on source",
            "materialized view public.mv".ljust(44)
            + "-".rjust(12) * 2
            + "  differs: populated: false -> true",
            "2 of 6 objects differ",
        ]
    finally:
        drop_database(pgserver, src)
        drop_database(pgserver, dst)


def test_unfinished_run_exits_2(pgserver: LocalServer, run_cli: Run) -> None:
    src = new_database(pgserver, "vs")
    gone = new_database(pgserver, "vt")
    drop_database(pgserver, gone)
    try:
        res = run_cli("verify", "--source", src, "--target", gone)
        assert res.exit_code == 2
        assert res.stdout == ""
        name = psycopg.conninfo.conninfo_to_dict(gone)["dbname"]
        what = f'database "{name}" does not exist'
        assert res.stderr.startswith(f"error: verify could not finish: {what}")
        assert len(res.stderr.splitlines()) == 1
        # a query failing half-way: a table this role may not read
        rows(src, "CREATE TABLE secret (x int)")
        with contextlib.suppress(psycopg.errors.DuplicateObject):  # an earlier run made it
            rows(pgserver.conninfo(), "CREATE ROLE rl_nosy LOGIN")
        dbname = psycopg.conninfo.conninfo_to_dict(src)["dbname"]
        nosy = pgserver.conninfo(str(dbname), user="rl_nosy")
        res = run_cli("verify", "--source", nosy, "--target", src)
        assert res.exit_code == 2
        assert res.stderr == (
            "error: verify could not finish: source: permission denied for table secret;"
            " run verify as a role that can read every compared table and large object"
            " in full (the owner, or a superuser; a role with BYPASSRLS past row-level"
            " security), or leave the table out with --exclude\n"
        )
    finally:
        drop_database(pgserver, src)


def test_rows_hidden_by_a_policy_are_not_called_identical(
    changed_pair: Pair, pgserver: LocalServer, run_cli: Run
) -> None:
    """A role that policies would show only some rows to cannot verify those
    tables: verify fails (exit 2) rather than compare the visible rows."""
    src, dst = changed_pair
    with contextlib.suppress(psycopg.errors.DuplicateObject):
        rows(pgserver.conninfo(), "CREATE ROLE rl_checker LOGIN IN ROLE rl_reporting")
    for url in (src, dst):
        rows(url, 'GRANT SELECT ON "Sales Ops"."Cust.omers" TO rl_checker')
        rows(url, 'GRANT SELECT ON ALL SEQUENCES IN SCHEMA "Sales Ops" TO rl_checker')
    # a row the policy "own rows" hides from rl_reporting (mood 'sad')
    rows(dst, 'UPDATE "Sales Ops"."Cust.omers" SET balance = -1 WHERE id = 300')
    as_checker = [
        pgserver.conninfo(str(psycopg.conninfo.conninfo_to_dict(u)["dbname"]), user="rl_checker")
        for u in (src, dst)
    ]
    table = ["--data-only", "--table", "Sales Ops.Cust.omers"]
    res = run_cli("verify", "--source", as_checker[0], "--target", as_checker[1], *table)
    assert res.exit_code == 2
    assert res.stderr.startswith(
        "error: verify could not finish: source: query would be affected by row-level"
        ' security policy for table "Cust.omers"; run verify as a role that can read'
    )
    res = run_cli("verify", "--source", src, "--target", dst, *table)
    assert res.exit_code == 1
    assert "table Sales Ops.Cust.omers" in res.stdout and "content differs" in res.stdout
    # a user mapping's options this role may not read are said to be hidden,
    # never compared as "no options"
    res = run_cli("verify", "--source", src, "--target", as_checker[0], "--schema-only", "--json")
    assert differences(res) == {
        ("user mapping", "for rl_writer on other db"): [
            "differs: options: password=****, user=w -> hidden from rl_checker;"
            " secret options: differ"
        ]
    }


@pytest.mark.slow
def test_major_version_differences_are_not_differences(
    cross_servers: tuple[LocalServer, LocalServer], run_cli: Run
) -> None:
    """The same database built on 15 and on 18 (views deparse differently,
    owners have MAINTAIN on 18, extensions are newer there): identical."""
    old, new = cross_servers
    create_roles(old)
    create_roles(new)
    src, dst = new_database(old, "v"), new_database(new, "v")
    try:
        build_realistic(src)
        build_realistic(dst)
        assert rows(dst, "SELECT extversion FROM pg_extension WHERE extname = 'citext'") != rows(
            src, "SELECT extversion FROM pg_extension WHERE extname = 'citext'"
        )
        res = run_cli("verify", "--source", src, "--target", dst)
        assert (res.exit_code, res.stdout) == (0, f"ok: {OBJECTS} objects identical\n")
        assert schema_dump_diff(src, dst) == []
        # a real difference still shows through the normalisation
        rows(
            dst,
            'CREATE OR REPLACE VIEW "Sales Ops".booking_view AS'
            " SELECT b.id, c.email, b.room, upper(b.during) AS until"
            ' FROM "Sales Ops".bookings b JOIN "Sales Ops"."Cust.omers" c ON c.id = b.customer'
            " WHERE b.room > 1",
        )
        res = run_cli("verify", "--source", src, "--target", dst, "--schema-only")
        assert res.exit_code == 1
        assert res.stdout.splitlines()[1].startswith(
            "view Sales Ops.booking_view".ljust(44) + "-".rjust(12) * 2 + "  differs: definition: "
        )
        assert len(schema_dump_diff(src, dst)) == 2
    finally:
        drop_database(old, src)
        drop_database(new, dst)


@pytest.mark.slow
@pytest.mark.parametrize("to", ["15", "18"])
def test_clone_of_realistic_is_identical(
    cross_servers: tuple[LocalServer, LocalServer], run_cli: Run, to: str
) -> None:
    """15 -> 15 and 15 -> 18 with the clone command: verify and pg_dump agree."""
    old, new = cross_servers
    create_roles(old)
    target_server = old if to == "15" else new
    create_roles(target_server)
    src, dst = new_database(old, "c"), new_database(target_server, "c")
    try:
        build_realistic(src)
        res = run_cli("clone", "--source", src, "--target", dst, "-q", "--jobs", "2")
        assert res.exit_code == 0, res.output
        assert schema_dump_diff(src, dst) == []
        res = run_cli("verify", "--source", src, "--target", dst)
        assert (res.exit_code, res.stdout) == (0, f"ok: {OBJECTS} objects identical\n")
    finally:
        drop_database(old, src)
        drop_database(target_server, dst)


@pytest.mark.slow
@pytest.mark.parametrize("path", ["clone", "snapshot", "table", "exclude"])
def test_other_paths_of_realistic(
    pgserver: LocalServer, run_cli: Run, path: str, request: pytest.FixtureRequest
) -> None:
    """Same-version clone, snapshot round trip and selections, on each server."""
    create_roles(pgserver)
    src, dst = new_database(pgserver, "p"), new_database(pgserver, "p")
    pick = {
        "clone": [],
        "snapshot": [],
        "table": ["--table", "Sales Ops.Cust.omers", "--table", "Sales Ops.measurements"],
        "exclude": ["--exclude", "Sales Ops.cache", "--exclude", "Sales Ops.bookings"],
    }[path]
    try:
        build_realistic(src)
        if path == "snapshot":
            bucket = request.getfixturevalue("bucket")
            request.getfixturevalue("s3env")
            uri = f"s3://{bucket}/realistic"
            res = run_cli("snapshot", "create", "--source", src, uri, "-q")
            assert res.exit_code == 0, res.output
            res = run_cli("snapshot", "restore", uri, "--target", dst, "-q")
        else:
            res = run_cli("clone", "--source", src, "--target", dst, "-q", *pick)
        assert res.exit_code == 0, res.output
        res = run_cli("verify", "--source", src, "--target", dst, *pick)
        assert res.exit_code == 0, res.output
        if not pick:
            assert schema_dump_diff(src, dst) == []
    finally:
        drop_database(pgserver, src)
        drop_database(pgserver, dst)


def test_names_that_print_alike_are_kept_apart(pgserver: LocalServer, run_cli: Run) -> None:
    """ "a.b"."c" and "a"."b.c" both print as a.b.c: each is still compared with itself."""
    src, dst = new_database(pgserver, "vs"), new_database(pgserver, "vt")
    ddl = (
        'CREATE SCHEMA "a.b"; CREATE SCHEMA a; CREATE TABLE "a.b".c (x int);'
        ' CREATE TABLE a."b.c" (x int); INSERT INTO "a.b".c VALUES (1), (2);'
        ' INSERT INTO a."b.c" VALUES (3)'
    )
    try:
        rows(src, ddl)
        rows(dst, ddl)
        res = run_cli("verify", "--source", src, "--target", dst, "--data-only")
        assert (res.exit_code, res.stdout) == (0, "ok: 3 objects identical\n")
        rows(dst, 'DELETE FROM a."b.c"')
        res = run_cli("verify", "--source", src, "--target", dst, "--data-only")
        assert res.exit_code == 1
        assert res.stdout.splitlines()[1:] == [
            "table a.b.c".ljust(44) + f"{1:>12}{0:>12}  row count differs",
            "1 of 3 objects differ",
        ]
    finally:
        drop_database(pgserver, src)
        drop_database(pgserver, dst)
