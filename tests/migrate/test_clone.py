"""clone end to end on real servers, checked with verify and by direct queries."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable

import psycopg
import pytest
from click.testing import Result
from psycopg import sql

from pgferry.embedded import LocalServer
from pgferry.errors import ExtensionMissing
from pgferry.migrate import CloneConfig, clone
from pgferry.migrate.verify import VerifyConfig, verify
from tests.migrate.conftest import BIG_ROWS, READER, drop_database, new_database, rows
from tests.migrate.dbgen import generate
from tests.services import postgres

Run = Callable[..., Result]


@pytest.mark.slow
def test_clone_round_trip(source_db: str, target_db: str, run_cli: Run) -> None:
    res = run_cli(
        "clone",
        "--source",
        source_db,
        "--target",
        target_db,
        "--jobs",
        "3",
        "--split-tables-larger-than",
        "20MB",
        "--json",
    )
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert [p for p, _ in out["phases"]] == [
        "pre-data",
        "data",
        "large-objects",
        "indexes",
        "sequences",
        "vacuum-analyze",
        "post-data",
    ]
    tables = {t["table"]: t["rows"] for t in out["tables"]}
    assert tables["app.events"] == BIG_ROWS
    assert tables['Mixed Case.Odd "Table"'] == 3

    res = run_cli("verify", "--source", source_db, "--target", target_db)
    assert res.exit_code == 0, res.output
    assert res.stdout.startswith("ok: ")

    # what verify does not look at: schema objects and their behaviour
    assert rows(target_db, "SELECT last_value FROM app.invoice_no") == [(4242,)]
    assert rows(target_db, "SELECT nextval('app.orders_id_seq')") == [(BIG_ROWS // 20 + 2,)]
    new_user = rows(
        target_db,
        "INSERT INTO app.users (email, created) VALUES ('NEW@x', now()) RETURNING id",
    )
    assert new_user == [(BIG_ROWS // 100 + 1,)]
    assert rows(target_db, "SELECT total_with_tax FROM app.orders WHERE id = 7") == rows(
        source_db, "SELECT round(total * 1.2, 2) FROM app.orders WHERE id = 7"
    )
    assert rows(target_db, "SELECT lo_get(424242)") == [(b"small large object",)]
    assert rows(target_db, "SELECT count(*) FROM sales.daily") == rows(
        source_db, "SELECT count(*) FROM sales.daily"
    )
    assert rows(target_db, "SELECT obj_description('app.users'::regclass)") == [
        ("people who order",)
    ]
    assert rows(target_db, "SELECT has_table_privilege(%s, 'app.users', 'SELECT')", READER) == [
        (True,)
    ]
    fks = rows(target_db, "SELECT conname FROM pg_constraint WHERE contype = 'f' ORDER BY 1")
    assert fks == [("events_order_id_fkey",), ("orders_user_id_fkey",)]
    # the trigger came after the data (so it did not touch copied rows) and works
    touched = "SELECT count(*) FROM app.orders WHERE note = 'touched'"
    assert rows(target_db, touched) == [(BIG_ROWS // 100,)] == rows(source_db, touched)
    rows(target_db, "INSERT INTO app.orders (user_id, total, placed_at) VALUES (1, 1, now())")
    assert rows(target_db, touched) == [(BIG_ROWS // 100 + 1,)]
    # partition routing and the partitioned index survived
    attached = "SELECT count(*) FROM pg_inherits WHERE inhparent = %s::regclass"
    assert rows(target_db, attached, "sales.measurements_temp_idx") == [(3,)]
    assert rows(target_db, "SELECT to_regnamespace('pgferry')") == [(None,)]


def test_verify_reports_changed_and_missing_rows(
    source_db: str, target_db: str, run_cli: Run
) -> None:
    res = run_cli(
        "clone",
        "--source",
        source_db,
        "--target",
        target_db,
        "--table",
        "app.users",
        "--table",
        "Mixed Case.*",
        "-q",
    )
    assert res.exit_code == 0, res.output
    args = [
        "verify",
        "--source",
        source_db,
        "--target",
        target_db,
        "--table",
        "app.users",
        "--table",
        "Mixed Case.*",
    ]
    assert run_cli(*args).exit_code == 0
    rows(target_db, "UPDATE app.users SET name = 'Changed' WHERE id = 17")
    rows(target_db, 'DELETE FROM "Mixed Case"."Odd ""Table""" WHERE "Col A" = 2')
    res = run_cli(*args)
    assert res.exit_code == 1
    lines = res.stdout.splitlines()
    assert lines[0].split() == ["object", "source", "rows", "target", "rows", "status"]
    assert lines[1:] == [
        'table Mixed Case.Odd "Table"'.ljust(44) + f"{3:>12}{2:>12}  row count differs",
        "table app.users".ljust(44) + f"{10000:>12}{10000:>12}  content differs",
        "2 of 18 objects differ",  # 3 tables' rows, 15 schema objects
    ]


def test_target_not_empty_is_refused(source_db: str, target_db: str, run_cli: Run) -> None:
    rows(target_db, "CREATE SCHEMA app; CREATE TABLE app.users (id int)")
    res = run_cli("clone", "--source", source_db, "--target", target_db, "-q")
    assert res.exit_code == 1
    assert res.stderr.strip() == (
        "error: the target already has table app.users; "
        "clone into an empty database, or use --data-only"
    )


def test_schema_only_then_data_only(source_db: str, target_db: str, run_cli: Run) -> None:
    pick = ["--table", "app.users", "--table", "app.orders"]
    res = run_cli("clone", "--source", source_db, "--target", target_db, "--schema-only", *pick)
    assert res.exit_code == 0, res.output
    assert rows(target_db, "SELECT count(*) FROM app.orders") == [(0,)]
    res = run_cli("clone", "--source", source_db, "--target", target_db, "--data-only", *pick)
    assert res.exit_code == 0, res.output
    res = run_cli("verify", "--source", source_db, "--target", target_db, *pick)
    assert res.exit_code == 0, res.output


def test_cross_version_and_missing_extension(
    cross_servers: tuple[LocalServer, LocalServer],
) -> None:
    old, new = cross_servers
    src, dst = new_database(old, "x"), new_database(new, "x")
    try:
        generate(src, 20_000)
        rows(src, "CREATE EXTENSION pgcrypto")  # in Debian's 15, not in the wheel's 18
        with pytest.raises(ExtensionMissing) as err:
            clone(CloneConfig(src, dst, jobs=2))
        assert str(err.value) == (
            "the source uses extension(s) pgcrypto, which the target server cannot install; "
            "install them on the target server (its package), or exclude what uses them"
        )
        rows(src, "DROP EXTENSION pgcrypto")
        result = clone(CloneConfig(src, dst, jobs=2, split_bytes=1 << 20, no_owner=True))
        assert result.tools["pg_dump"].endswith("(15)")
        check = verify(VerifyConfig(src, dst))
        assert check.ok, check.differences
        assert len([c for c in check.checks if c.changes is None]) == 14  # data checks
    finally:
        drop_database(old, src)
        drop_database(new, dst)


def test_an_older_target_is_refused_before_anything_starts(
    cross_servers: tuple[LocalServer, LocalServer],
    run_cli: Run,
    s3env: dict[str, str],
    bucket: str,
) -> None:
    """18 -> 15: pg_restore failed half-way through pre-data on a setting 15
    lacks, with a hint about roles; now one line before any work, on clone,
    snapshot restore and the replica's checks."""
    old, new = cross_servers
    src, dst = new_database(new, "dn"), new_database(old, "dn")
    said = (
        "the target runs PostgreSQL 15, older than {} (18): a schema cannot be restored"
        " into an older major version; use a target running PostgreSQL 18 or later"
    )
    try:
        rows(src, "CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1)")
        res = run_cli("clone", "--source", src, "--target", dst)
        assert (res.exit_code, res.stderr) == (1, f"error: {said.format('the source')}\n")
        assert rows(dst, "SELECT count(*) FROM pg_namespace WHERE nspname = 'pgferry'") == [(0,)]
        res = run_cli("snapshot", "create", "--source", src, f"s3://{bucket}/dn")
        assert res.exit_code == 0, res.output
        res = run_cli("snapshot", "restore", f"s3://{bucket}/dn", "--target", dst)
        restored = said.format("the snapshot's source")
        assert (res.exit_code, res.stderr) == (1, f"error: {restored}\n")
        assert rows(dst, "SELECT count(*) FROM pg_class WHERE relname = 't'") == [(0,)]
        # the rows alone go into a schema made on the older server
        rows(dst, "CREATE TABLE t (id int PRIMARY KEY)")
        res = run_cli("clone", "--source", src, "--target", dst, "--data-only", "-q")
        assert res.exit_code == 0, res.output
        assert rows(dst, "SELECT id FROM t") == [(1,)]
    finally:
        drop_database(new, src)
        drop_database(old, dst)


def test_missing_source_tool_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    from pgferry.migrate import tools

    monkeypatch.setattr(tools, "DEBIAN_ROOT", tools.Path("/nonexistent"))
    monkeypatch.setattr(tools, "wheel_bindir", lambda: None)
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(tools.ToolNotFound) as err:
        tools.find_tool("pg_dump", 15)
    assert str(err.value) == (
        "no pg_dump for PostgreSQL 15 or newer was found (found: none); "
        "install the client programs, e.g. apt-get install postgresql-client-15"
    )


def test_bad_source_url_is_one_line(target_db: str, run_cli: Run) -> None:
    res = run_cli("clone", "--source", "postgresql://nobody@127.0.0.1:1/x", "--target", target_db)
    assert res.exit_code == 1
    assert res.stderr.startswith(
        "error: source: cannot connect to postgresql://nobody@127.0.0.1:1/x"
    )
    assert len(res.stderr.strip().splitlines()) == 1


def test_exclude_keeps_large_objects_and_free_sequences(
    source_db: str, target_db: str, run_cli: Run
) -> None:
    skip = ["--exclude", "sales.*", "--exclude", "app.events"]
    res = run_cli("clone", "--source", source_db, "--target", target_db, "-q", *skip)
    assert res.exit_code == 0, res.output
    assert rows(target_db, "SELECT to_regclass('sales.log'), to_regclass('sales.daily')") == [
        (None, None)
    ]
    assert rows(target_db, "SELECT lo_get(424242)") == [(b"small large object",)]
    assert rows(target_db, "SELECT last_value FROM app.invoice_no") == [(4242,)]
    res = run_cli("verify", "--source", source_db, "--target", target_db, "--json", *skip)
    assert res.exit_code == 0, res.output
    checks = json.loads(res.stdout)["checks"]
    kinds = sorted({c["kind"] for c in checks if c["changes"] is None})  # data checks
    assert kinds == ["large objects", "sequence", "table"]


def test_unreadable_table_is_named_before_anything_starts(
    pgserver: LocalServer, run_cli: Run, s3env: dict[str, str], bucket: str
) -> None:
    """An ordinary role that cannot read a table: one line naming it and what
    to do, before pg_dump runs and before anything is written to the target;
    leaving it out works."""
    src, tgt = new_database(pgserver, "pr"), new_database(pgserver, "pt")
    rows(
        src,
        "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'pr_reader')"
        " THEN CREATE ROLE pr_reader LOGIN; END IF; END $$;"
        ' CREATE TABLE open_t (id int); CREATE TABLE "Locked Tab" (id int);'
        " CREATE TABLE zlocked (id int); INSERT INTO open_t VALUES (1), (2);"
        " GRANT SELECT ON open_t TO pr_reader",
    )
    dbname = src.rsplit("/", 1)[1].split("?", 1)[0]
    reader = pgserver.conninfo(dbname, user="pr_reader")
    said = (
        "error: the source role pr_reader cannot read table public.Locked Tab (nor 1 more:"
        " public.zlocked); GRANT SELECT on it to pr_reader on the source, or leave it out"
        " with --exclude 'public.Locked Tab'\n"
    )
    try:
        res = run_cli("clone", "--source", reader, "--target", tgt)
        assert (res.exit_code, res.stderr) == (1, said)
        assert rows(tgt, "SELECT count(*) FROM pg_namespace WHERE nspname = 'pgferry'") == [(0,)]
        res = run_cli("snapshot", "create", "--source", reader, f"s3://{bucket}/pr")
        assert (res.exit_code, res.stderr) == (1, said)
        res = run_cli(
            "clone", "--source", reader, "--target", tgt,
            "--exclude", "public.Locked Tab", "--exclude", "zlocked",
        )  # fmt: skip
        assert res.exit_code == 0, res.output
        assert rows(tgt, "SELECT id FROM open_t ORDER BY id") == [(1,), (2,)]
    finally:
        drop_database(pgserver, src)
        drop_database(pgserver, tgt)


def test_rows_hidden_by_policies_are_never_left_out_silently(
    pgserver: LocalServer, run_cli: Run, s3env: dict[str, str], bucket: str
) -> None:
    """A source role that row-level security shows only some rows to (the
    owner of a FORCE table, a reader under a policy): clone and snapshot name
    the table before anything starts, instead of copying the visible rows."""
    src, tgt = new_database(pgserver, "pr"), new_database(pgserver, "pt")
    rows(
        src,
        "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'pr_owner')"
        " THEN CREATE ROLE pr_owner LOGIN; END IF; END $$;"
        ' CREATE TABLE "Tenant Rows" (id int, tenant text);'
        " INSERT INTO \"Tenant Rows\" SELECT g, CASE WHEN g % 2 = 0 THEN 'x' ELSE 'y' END"
        " FROM generate_series(1, 100) g;"
        " CREATE TABLE plain (id int); INSERT INTO plain VALUES (1);"
        ' ALTER TABLE "Tenant Rows" OWNER TO pr_owner; ALTER TABLE plain OWNER TO pr_owner;'
        ' ALTER TABLE "Tenant Rows" ENABLE ROW LEVEL SECURITY;'
        " CREATE POLICY mine ON \"Tenant Rows\" USING (tenant = 'x')",
    )
    dbname = src.rsplit("/", 1)[1].split("?", 1)[0]
    owner = pgserver.conninfo(dbname, user="pr_owner")
    try:
        # the owner is exempt from its table's policies until FORCE
        res = run_cli("clone", "--source", owner, "--target", tgt, "-q", "--no-owner")
        assert res.exit_code == 0, res.output
        assert rows(tgt, 'SELECT count(*) FROM "Tenant Rows"') == [(100,)]
        res = run_cli("verify", "--source", owner, "--target", tgt, "--data-only")
        assert res.exit_code == 0, res.output
        drop_database(pgserver, tgt)
        tgt = new_database(pgserver, "pt")
        rows(src, 'ALTER TABLE "Tenant Rows" FORCE ROW LEVEL SECURITY')
        said = (
            "error: row-level security policies would hide rows of table public.Tenant Rows"
            " from the source role pr_owner; read the source as a superuser or a role with"
            " BYPASSRLS (or as the table's owner when it does not FORCE ROW LEVEL SECURITY),"
            " or leave it out with --exclude 'public.Tenant Rows'\n"
        )
        res = run_cli("clone", "--source", owner, "--target", tgt, "--no-owner")
        assert (res.exit_code, res.stderr) == (1, said)
        assert rows(tgt, "SELECT count(*) FROM pg_class WHERE relname = 'Tenant Rows'") == [(0,)]
        res = run_cli("snapshot", "create", "--source", owner, f"s3://{bucket}/rls")
        assert (res.exit_code, res.stderr) == (1, said)
        # verify reads with row_security off too: it cannot finish, never "identical"
        res = run_cli("verify", "--source", owner, "--target", owner, "--data-only")
        assert res.exit_code == 2
        assert "query would be affected by row-level security policy" in res.stderr
        res = run_cli(
            "clone", "--source", owner, "--target", tgt, "-q", "--no-owner",
            "--exclude", "public.Tenant Rows",
        )  # fmt: skip
        assert res.exit_code == 0, res.output
        assert rows(tgt, "SELECT id FROM plain") == [(1,)]
    finally:
        drop_database(pgserver, src)
        drop_database(pgserver, tgt)


def test_money_keeps_its_value_across_lc_monetary(
    pgserver: LocalServer,
    run_cli: Run,
    monkeypatch: pytest.MonkeyPatch,
    s3env: dict[str, str],
    bucket: str,
) -> None:
    """money's text follows lc_monetary: a source that prints "1.234,56 €"
    (de_DE) made the clone fail with a traceback on a target in C, and a
    different pair of locales could misread it. Both sides now use C."""
    locales = tempfile.mkdtemp(prefix="pgferry-locales-")
    # public locale data, read by the server's own OS user
    os.chmod(locales, 0o755)  # noqa: S103
    server = None
    try:
        subprocess.run(
            ["localedef", "-c", "-i", "de_DE", "-f", "UTF-8", f"{locales}/de_DE.UTF-8"],
            capture_output=True,
        )
        assert os.path.isdir(f"{locales}/de_DE.UTF-8"), "localedef could not build de_DE"
        monkeypatch.setenv("LOCPATH", locales)  # inherited by the source server only
        server = postgres("15", start=False)
        server.start({})
        monkeypatch.delenv("LOCPATH")
        src, dst = new_database(server, "mo"), new_database(pgserver, "mo")
        back = new_database(server, "mo")
        alter = sql.SQL("ALTER DATABASE {} SET lc_monetary = 'de_DE.UTF-8'")
        for url in (src, back):
            with psycopg.connect(url, autocommit=True) as c:
                c.execute(alter.format(sql.Identifier(c.info.dbname)))
        rows(src, "CREATE TABLE prices (id int PRIMARY KEY, price money)")
        rows(src, "INSERT INTO prices VALUES (1, 1234.56), (2, 0.5), (3, -7)")
        assert rows(src, "SELECT price::text FROM prices WHERE id = 1") == [("1.234,56 €",)]
        res = run_cli("clone", "--source", src, "--target", dst, "-q")
        assert res.exit_code == 0, res.output
        assert rows(dst, "SELECT id, price::numeric::text FROM prices ORDER BY id") == [
            (1, "1234.56"),
            (2, "0.50"),
            (3, "-7.00"),
        ]
        res = run_cli("verify", "--source", src, "--target", dst)
        assert res.exit_code == 0, res.output
        # the way back: a target whose money reads "1.234,56 €" (rows in
        # process), and a snapshot (read by psql children) restored there
        rows(back, "CREATE TABLE prices (id int PRIMARY KEY, price money)")
        res = run_cli("clone", "--source", dst, "--target", back, "-q", "--data-only")
        assert res.exit_code == 0, res.output
        assert rows(back, "SELECT price::text FROM prices WHERE id = 1") == [("1.234,56 €",)]
        res = run_cli("snapshot", "create", "--source", src, f"s3://{bucket}/mo")
        assert res.exit_code == 0, res.output
        rows(back, "DROP TABLE prices")
        res = run_cli("snapshot", "restore", f"s3://{bucket}/mo", "--target", back)
        assert res.exit_code == 0, res.output
        res = run_cli("verify", "--source", src, "--target", back)
        assert res.exit_code == 0, res.output
        rows(dst, "UPDATE prices SET price = 1234.57 WHERE id = 1")
        res = run_cli("verify", "--source", src, "--target", dst, "--data-only")
        assert res.exit_code == 1
        assert "table public.prices" in res.stdout
        drop_database(pgserver, dst)
    finally:
        if server is not None:
            server.destroy()
            shutil.rmtree(server.datadir.parent, ignore_errors=True)
        shutil.rmtree(locales, ignore_errors=True)


def test_a_row_the_target_refuses_is_one_line(source_db: str, target_db: str, run_cli: Run) -> None:
    """A data error on the target (a schema made there that refuses a row)
    names the table and the line, never a traceback."""
    one = ["--source", source_db, "--target", target_db, "--table", "app.users", "-q"]
    assert run_cli("clone", *one, "--schema-only").exit_code == 0
    rows(target_db, "ALTER TABLE app.users ADD CHECK (email = 'nobody') NOT VALID")
    res = run_cli("clone", *one, "--data-only")
    assert res.exit_code == 1
    assert res.stderr.startswith(
        "error: loading table app.users failed on the target: new row for relation"
        ' "users" violates check constraint "users_email_check" (line 1'
    ), res.stderr
    assert res.stderr.rstrip().endswith(
        "nothing of this table's part was kept; fix the cause, then rerun with --resume"
    )
    assert "Traceback" not in res.output


def test_xml_fragments_load_where_xmloption_is_document(
    cross_servers: tuple[LocalServer, LocalServer], run_cli: Run
) -> None:
    """A target database set to xmloption = document refused the source's
    XML content fragments; rows are read as content there, as pg_restore does.
    (PostgreSQL 15 of Debian: the 18 of the wheel is built without libxml.)"""
    old, _new = cross_servers
    src, dst = new_database(old, "xm"), new_database(old, "xm")
    try:
        with psycopg.connect(dst, autocommit=True) as c:
            c.execute(
                sql.SQL("ALTER DATABASE {} SET xmloption = document").format(
                    sql.Identifier(c.info.dbname)
                )
            )
        rows(src, "CREATE TABLE t (id int, x xml)")
        rows(src, "INSERT INTO t VALUES (1, 'abc<b>1</b>'), (2, '<doc/>')")
        res = run_cli("clone", "--source", src, "--target", dst, "-q")
        assert res.exit_code == 0, res.output
        assert rows(dst, "SELECT id, x::text FROM t ORDER BY id") == [
            (1, "abc<b>1</b>"),
            (2, "<doc/>"),
        ]
        res = run_cli("verify", "--source", src, "--target", dst)
        assert res.exit_code == 0, res.output
    finally:
        drop_database(old, src)
        drop_database(old, dst)


def test_text_keeps_its_characters_across_database_encodings(
    pgserver: LocalServer,
    run_cli: Run,
    s3env: dict[str, str],
    bucket: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """UTF8 -> LATIN1: rows went over as raw bytes, which the target took as
    LATIN1 ("Ãœ" stored for "Ü"), and verify, hashing bytes, called it
    identical. Both ends now name UTF8; verify hashes the text as UTF-8 when
    the encodings differ; what LATIN1 cannot hold fails in one line."""
    src = new_database(pgserver, "en")
    made: list[str] = []

    def database(encoding: str) -> str:
        name = f"en_{encoding.lower()}_{os.getpid()}_{len(made)}"
        with psycopg.connect(pgserver.conninfo(), autocommit=True) as c:
            c.execute(
                sql.SQL(
                    "CREATE DATABASE {} ENCODING {} LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0"
                ).format(sql.Identifier(name), sql.Literal(encoding))
            )
        made.append(pgserver.conninfo(name))
        return made[-1]

    try:
        rows(src, "CREATE TABLE t (id int PRIMARY KEY, v text)")
        rows(src, "INSERT INTO t VALUES (1, 'plain'), (2, 'Ünï Straße')")
        latin1 = database("LATIN1")
        res = run_cli("clone", "--source", src, "--target", latin1, "-q")
        assert res.exit_code == 0, res.output
        assert rows(latin1, "SELECT v FROM t ORDER BY id") == [("plain",), ("Ünï Straße",)]
        assert rows(latin1, "SELECT octet_length(v) FROM t WHERE id = 2") == [(10,)]
        assert run_cli("verify", "--source", src, "--target", latin1).exit_code == 0
        # what the old copy stored: the UTF-8 bytes read as LATIN1
        rows(latin1, "UPDATE t SET v = convert_from(convert_to(v, 'UTF8'), 'LATIN1')")
        res = run_cli("verify", "--source", src, "--target", latin1, "--data-only")
        assert res.exit_code == 1
        assert "table public.t" in res.stdout and "content differs" in res.stdout
        # the same through a snapshot, whose rows psql children read
        res = run_cli("snapshot", "create", "--source", src, f"s3://{bucket}/en")
        assert res.exit_code == 0, res.output
        restored = database("LATIN1")
        res = run_cli("snapshot", "restore", f"s3://{bucket}/en", "--target", restored)
        assert res.exit_code == 0, res.output
        assert rows(restored, "SELECT v FROM t ORDER BY id") == [("plain",), ("Ünï Straße",)]
        latin1_src = restored  # correct LATIN1 rows, read back below
        # and from a LATIN1 source, read by psql children in the C locale (whose
        # own client encoding would be SQL_ASCII: the raw LATIN1 bytes)
        monkeypatch.setenv("LC_ALL", "C")
        monkeypatch.delenv("PGCLIENTENCODING", raising=False)
        res = run_cli("snapshot", "create", "--source", latin1_src, f"s3://{bucket}/l1")
        assert res.exit_code == 0, res.output
        utf8 = database("UTF8")
        res = run_cli("snapshot", "restore", f"s3://{bucket}/l1", "--target", utf8)
        assert res.exit_code == 0, res.output
        assert rows(utf8, "SELECT v FROM t ORDER BY id") == [("plain",), ("Ünï Straße",)]
        # a character LATIN1 has not: one line, nothing kept
        rows(src, "INSERT INTO t VALUES (3, 'check ✓')")
        other = database("LATIN1")
        res = run_cli("clone", "--source", src, "--target", other, "-q")
        assert res.exit_code == 1
        assert res.stderr.startswith(
            "error: loading table public.t failed on the target: character with byte sequence"
            ' 0xe2 0x9c 0x93 in encoding "UTF8" has no equivalent in encoding "LATIN1" (line 3)'
        ), res.stderr
        assert rows(other, "SELECT count(*) FROM t") == [(0,)]
        # SQL_ASCII stores the bytes as they come; verify reads it (it crashed on bytes)
        ascii_db = database("SQL_ASCII")
        res = run_cli("clone", "--source", src, "--target", ascii_db, "-q")
        assert res.exit_code == 0, res.output
        res = run_cli("verify", "--source", src, "--target", ascii_db)
        assert res.exit_code == 0, res.output
    finally:
        for url in [*made, src]:
            drop_database(pgserver, url)
