"""The import streams: program -> file_fdw scan -> INSERT as the caller, with
no temp table and no temp file, and the foreign table it reads is the
calling role's alone, for the one call."""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.extension.conftest import APP, ExtServer
from tests.services import ACCESS_KEY, SECRET_KEY

OTHER = "app_other"  # a second ordinary role with the same grants


def first_error(proc: Any) -> str:
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("ERROR:")]
    assert lines, f"expected an error, got: {proc.stdout}{proc.stderr}"
    return lines[0]


def temp_stats(ext: ExtServer, db: str) -> tuple[int, int]:
    with psycopg.connect(ext.conninfo(db), autocommit=True) as conn:
        conn.execute("SELECT pg_stat_clear_snapshot()")
        row = conn.execute(
            "SELECT temp_files, temp_bytes FROM pg_stat_database WHERE datname = current_database()"
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def private_tables(ext: ExtServer, db: str) -> list[tuple[Any, ...]]:
    return ext.execute(
        "SELECT relname FROM pg_class WHERE relnamespace = 'aws_s3_private'::regnamespace "
        "AND relkind = 'f'",
        db,
    )


@pytest.fixture()
def big_object(s3client: Any, bucket: str) -> tuple[str, str, int]:
    body = b"".join(b"%d,%s\n" % (i, b"z" * 60) for i in range(400_000))  # ~25 MB
    s3client.put_object(Bucket=bucket, Key="stream.csv", Body=body)
    return bucket, "stream.csv", len(body)


def test_no_temp_table_and_no_temp_files(
    ext: ExtServer, edb: str, big_object: tuple[str, str, int]
) -> None:
    b, k, size = big_object
    ext.psql(
        f"""
        CREATE TABLE big (a int, b text); GRANT INSERT, SELECT ON big TO {APP};
        CREATE TABLE ddl_log (tag text, temp_rels bigint);
        CREATE FUNCTION log_ddl() RETURNS event_trigger LANGUAGE plpgsql SECURITY DEFINER
          SET search_path = pg_catalog AS $$
          BEGIN
            INSERT INTO public.ddl_log SELECT tg_tag, count(*) FROM pg_class
             WHERE relpersistence = 't';
          END $$;
        CREATE EVENT TRIGGER log_ddl ON ddl_command_end EXECUTE FUNCTION log_ddl();
        ALTER DATABASE {edb} SET log_temp_files = 0;
        ALTER DATABASE {edb} SET temp_buffers = '800kB';
        """,
        edb,
    )
    log_start = len(ext.log())
    before = temp_stats(ext, edb)
    temp_rels = ext.execute("SELECT count(*) FROM pg_class WHERE relpersistence = 't'", edb)
    proc = ext.psql(
        f"SELECT aws_s3.table_import_from_s3('big', '', '(format csv)', '{b}', '{k}', '');",
        edb,
        user=APP,
    )
    assert f'400000 rows imported into relation "big" from file {k} of {size} bytes' in proc.stdout
    time.sleep(0.5)  # the backend flushed its statistics when it exited
    assert temp_stats(ext, edb) == before
    tags = ext.execute("SELECT tag, temp_rels FROM ddl_log", edb)
    assert {t for t, _ in tags} == {"CREATE FOREIGN TABLE", "GRANT", "DROP FOREIGN TABLE"}
    assert {n for _, n in tags} == {temp_rels[0][0]}  # no temp relation at any step
    assert "temporary file" not in ext.log()[log_start:]
    # the counters and the log do see a query that spills (so the checks above mean something)
    ext.psql(
        "SET work_mem = '64kB'; SELECT count(*) FROM "
        "(SELECT g FROM generate_series(1, 300000) g ORDER BY g DESC) s;",
        edb,
    )
    deadline = time.monotonic() + 5
    while temp_stats(ext, edb) == before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert temp_stats(ext, edb)[0] > before[0]
    assert "temporary file" in ext.log()[log_start:]
    ext.psql(f"DROP EVENT TRIGGER log_ddl; ALTER DATABASE {edb} RESET ALL;", edb)


def test_no_insert_privilege_loads_and_keeps_nothing(
    ext: ExtServer, edb: str, big_object: tuple[str, str, int]
) -> None:
    b, k, _ = big_object
    ext.psql("CREATE TABLE locked (a int, b text);", edb)
    proc = ext.psql(
        f"SELECT aws_s3.table_import_from_s3('locked', '', '(format csv)', '{b}', '{k}', '', "
        f"'{ACCESS_KEY}', '{SECRET_KEY}', '');",
        edb,
        user=APP,
        check=False,
    )
    assert first_error(proc) == "ERROR:  permission denied for table locked"
    assert ext.execute("SELECT count(*) FROM locked", edb) == [(0,)]
    assert private_tables(ext, edb) == []
    # the program never ran: its request (with the keys) is not left on disk
    spool = ext.server.datadir / "pgferry_aws_s3"
    for path in spool.iterdir():
        assert SECRET_KEY.encode().hex().encode() not in path.read_bytes(), path


def _fetcher_id() -> str | None:
    for proc in Path("/proc").iterdir():
        try:
            argv = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        m = re.search(r"pgferry\.extension\.fetcher import ([0-9a-f]{32})", argv)
        if m:
            return m.group(1)
    return None


def test_foreign_table_is_the_callers_for_one_call(
    ext: ExtServer, edb: str, big_object: tuple[str, str, int]
) -> None:
    b, k, _ = big_object
    ext.psql(
        f"""
        DO $$ BEGIN CREATE ROLE {OTHER} LOGIN; EXCEPTION WHEN duplicate_object THEN END $$;
        GRANT USAGE ON SCHEMA aws_s3 TO {OTHER};
        GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA aws_s3 TO {OTHER};
        CREATE TABLE big (a int, b text); GRANT INSERT, SELECT ON big TO {APP};
        """,
        edb,
    )
    result: list[Any] = []

    def run() -> None:
        with psycopg.connect(ext.conninfo(edb, APP), autocommit=True) as c:
            result.append(
                c.execute(
                    "SELECT aws_s3.table_import_from_s3('big', '', '(format csv)', %s, %s, '')",
                    [b, k],
                ).fetchone()
            )

    thread = threading.Thread(target=run)
    thread.start()
    fetch_id = None
    while thread.is_alive() and fetch_id is None:
        fetch_id = _fetcher_id()
    assert fetch_id, "the sampler never saw the fetcher running"
    name = f"aws_s3_private.pgferry_fetch_{fetch_id}"
    # in flight: another session of the same role (or a superuser) cannot see it
    for user in (APP, OTHER, None):
        with (
            psycopg.connect(ext.conninfo(edb, user), autocommit=True) as c,
            pytest.raises(psycopg.errors.UndefinedTable),
        ):
            c.execute(f"SELECT count(*) FROM {name}")
    thread.join()
    assert result and result[0][0].startswith('400000 rows imported into relation "big"')
    # done: dropped with the call, nothing to reuse
    with (
        psycopg.connect(ext.conninfo(edb, APP), autocommit=True) as c,
        pytest.raises(psycopg.errors.UndefinedTable),
    ):
        c.execute(f"SELECT count(*) FROM {name}")
    assert private_tables(ext, edb) == []


def test_direct_call_of_the_definer_function(
    ext: ExtServer, edb: str, s3client: Any, bucket: str
) -> None:
    """The definer steps run only inside aws_s3._import: called by hand, by
    any role, they refuse, and leave nothing behind."""
    s3client.put_object(Bucket=bucket, Key="one.csv", Body=b"1,x\n")
    ext.psql(f"CREATE TABLE t (a int, b text); GRANT INSERT, SELECT ON t TO {APP};", edb)
    call = (
        "SELECT aws_s3._fetch_open('t'::regclass, ARRAY['a', 'b'], ARRAY[23, 25]::oid[], "
        "ARRAY[-1, -1], {role}, '(format csv)', '{b}', 'one.csv', '', NULL, NULL, NULL)"
    )
    for role in ("'postgres'", "'public'", "current_user", "NULL"):
        proc = ext.psql(call.format(role=role, b=bucket) + ";", edb, user=APP, check=False)
        assert first_error(proc) == (
            "ERROR:  aws_s3: _fetch_open is an internal step of aws_s3.table_import_from_s3"
        )
    assert private_tables(ext, edb) == []
    ext.psql(
        f"SELECT aws_s3.table_import_from_s3('t', '', '(format csv)', '{bucket}', 'one.csv', '');",
        edb,
        user=APP,
    )
    assert ext.execute("SELECT * FROM t", edb) == [(1, "x")]
    assert private_tables(ext, edb) == []


def test_options_and_rejected_row(ext: ExtServer, edb: str, s3client: Any, bucket: str) -> None:
    data = 'id;name;note;extra\n1;"NA";NA;NA\n2;x;"";"NA"\n3;;y;\n'
    s3client.put_object(Bucket=bucket, Key="h.csv", Body=data.encode())
    opts = "format csv, header true, delimiter ';', null 'NA', force_not_null (note), "
    opts += "force_null (name)"
    ext.psql(
        f"CREATE TABLE o (id int, name text, note text, extra text); GRANT ALL ON o TO {APP};"
        f"CREATE TABLE ref (LIKE o); COPY ref FROM STDIN ({opts});\n{data}\\.\n",
        edb,
    )
    lit = "'(" + opts.replace("'", "''") + ")'"
    proc = ext.psql(
        f"SELECT aws_s3.table_import_from_s3('o', 'id, name, note, extra', {lit}, "
        f"'{bucket}', 'h.csv', '');",
        edb,
        user=APP,
    )
    assert '3 rows imported into relation "o"' in proc.stdout
    rows = ext.execute("SELECT id, name, note, extra FROM o ORDER BY id", edb)
    assert rows == ext.execute("SELECT id, name, note, extra FROM ref ORDER BY id", edb)
    assert rows == [(1, None, "NA", None), (2, "x", "", "NA"), (3, "", "y", "")]
    proc = ext.psql(
        f"SELECT aws_s3.table_import_from_s3('o', 'id', '(format csv, force_null (name))', "
        f"'{bucket}', 'h.csv', '');",
        edb,
        user=APP,
        check=False,
    )
    assert first_error(proc) == 'ERROR:  FORCE_NULL column "name" not referenced by COPY'
    s3client.put_object(Bucket=bucket, Key="bad.csv", Body=b"1,a,b,c\nzz,b,c,d\n")
    proc = ext.psql(
        f"SELECT aws_s3.table_import_from_s3('o', '', '(format csv)', '{bucket}', 'bad.csv', '');",
        edb,
        user=APP,
        check=False,
    )
    assert first_error(proc) == 'ERROR:  invalid input syntax for type integer: "zz"'
    assert f'DETAIL:  s3://{bucket}/bad.csv line 2, column id: "zz"' in proc.stderr
    assert ext.execute("SELECT count(*) FROM o", edb) == [(3,)]
