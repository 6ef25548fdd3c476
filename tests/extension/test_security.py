"""Security of the extension, as an ordinary role granted EXECUTE (APP)."""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.extension.conftest import APP, ExtServer
from tests.services import ACCESS_KEY, SECRET_KEY

MARKER = Path(f"/tmp/pgferry-pwned-{os.getpid()}")


def app_psql(ext: ExtServer, db: str, script: str) -> Any:
    return ext.psql(script, db, user=APP, check=False)


def err(proc: Any) -> str:
    """The first ERROR line psql printed."""
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("ERROR:")]
    assert lines, f"expected an error, got: {proc.stdout}{proc.stderr}"
    return lines[0]


@pytest.fixture()
def csv_object(s3client: Any, bucket: str) -> tuple[str, str]:
    s3client.put_object(Bucket=bucket, Key="rows.csv", Body=b"1,x\n2,y\n")
    return bucket, "rows.csv"


def test_insert_privilege_is_the_callers(
    ext: ExtServer, edb: str, csv_object: Any, s3client: Any
) -> None:
    b, k = csv_object
    ext.psql(
        f"CREATE TABLE locked (a int, b text); CREATE TABLE cols (a int, b text);"
        f"GRANT INSERT (a), SELECT ON cols TO {APP};",
        edb,
    )
    call = "SELECT aws_s3.table_import_from_s3('{t}', '{c}', '(format csv)', '{b}', '{k}', '');"
    proc = app_psql(ext, edb, call.format(t="locked", c="", b=b, k=k))
    assert err(proc) == "ERROR:  permission denied for table locked"
    proc = app_psql(ext, edb, call.format(t="cols", c="a,b", b=b, k=k))
    assert err(proc) == "ERROR:  permission denied for table cols"
    # the granted column alone works
    s3 = f"SELECT aws_s3.table_import_from_s3('cols', 'a', '(format csv)', '{b}', 'a.csv', '');"
    s3client.put_object(Bucket=b, Key="a.csv", Body=b"7\n")
    proc = app_psql(ext, edb, s3)
    assert '1 rows imported into relation "cols" from file a.csv of 2 bytes' in proc.stdout
    assert ext.execute("SELECT count(*) FROM locked", edb) == [(0,)]


def test_rls_triggers_domains_run_as_caller(
    ext: ExtServer, edb: str, s3client: Any, bucket: str
) -> None:
    s3client.put_object(Bucket=bucket, Key="d.csv", Body=b"1,ok\n2,no\n")
    ext.psql(
        f"""
        CREATE TABLE audit (who text, what text);
        GRANT INSERT ON audit TO {APP};
        CREATE FUNCTION who_check(int) RETURNS boolean LANGUAGE sql AS
          $$ INSERT INTO audit VALUES (current_user, 'domain'); SELECT true $$;
        CREATE DOMAIN watched AS int CHECK (who_check(VALUE));
        CREATE FUNCTION trg() RETURNS trigger LANGUAGE plpgsql AS
          $$ BEGIN INSERT INTO audit VALUES (current_user, 'trigger'); RETURN NEW; END $$;
        CREATE TABLE guarded (id watched, tag text);
        CREATE TRIGGER t BEFORE INSERT ON guarded FOR EACH ROW EXECUTE FUNCTION trg();
        ALTER TABLE guarded ENABLE ROW LEVEL SECURITY;
        CREATE POLICY only_ok ON guarded FOR INSERT TO {APP} WITH CHECK (tag = 'ok');
        GRANT INSERT, SELECT ON guarded TO {APP};
        """,
        edb,
    )
    proc = app_psql(
        ext,
        edb,
        f"SELECT aws_s3.table_import_from_s3('guarded', '', '(format csv)', '{bucket}', "
        "'d.csv', '');",
    )
    assert err(proc) == 'ERROR:  new row violates row-level security policy for table "guarded"'
    s3client.put_object(Bucket=bucket, Key="d.csv", Body=b"1,ok\n")
    proc = app_psql(
        ext,
        edb,
        f"SELECT aws_s3.table_import_from_s3('guarded', '', '(format csv)', '{bucket}', "
        "'d.csv', '');",
    )
    assert '1 rows imported into relation "guarded" from file d.csv of 5 bytes' in proc.stdout
    who = {row[0] for row in ext.execute("SELECT who FROM audit", edb)}
    assert who == {APP}


def test_export_needs_select(ext: ExtServer, edb: str, bucket: str) -> None:
    ext.psql("CREATE TABLE secret (s text); INSERT INTO secret VALUES ('x');", edb)
    proc = app_psql(
        ext,
        edb,
        f"SELECT * FROM aws_s3.query_export_to_s3('select * from secret', '{bucket}', 'o');",
    )
    assert err(proc) == "ERROR:  permission denied for table secret"
    # the definer entry point takes only the caller's own plain temp table
    proc = app_psql(
        ext, edb, f"SELECT aws_s3._upload_stage('secret', '', '{bucket}', 'o', '', NULL);"
    )
    assert err(proc) == "ERROR:  aws_s3: internal error: bad export staging table"
    proc = app_psql(
        ext,
        edb,
        "CREATE TEMP VIEW v AS SELECT * FROM secret;"
        f"SELECT aws_s3._upload_stage('v', '', '{bucket}', 'o', '', NULL);",
    )
    assert err(proc) == "ERROR:  aws_s3: internal error: bad export staging table"


def test_internal_helpers_give_no_file_or_program_access(ext: ExtServer, edb: str) -> None:
    proc = app_psql(ext, edb, "SELECT aws_s3._write_request(aws_s3._new_id(), '{}');")
    assert "permission denied" in err(proc) or "must be superuser" in err(proc)
    proc = app_psql(ext, edb, "SELECT aws_s3._options('(format csv)', 'import');")
    assert "permission denied" in err(proc) or "must be superuser" in err(proc)


def test_rollback_undoes_import(ext: ExtServer, edb: str, csv_object: Any) -> None:
    b, k = csv_object
    ext.psql(f"CREATE TABLE r (a int, b text); GRANT INSERT, SELECT ON r TO {APP};", edb)
    proc = app_psql(
        ext,
        edb,
        f"""BEGIN;
        SELECT aws_s3.table_import_from_s3('r', '', '(format csv)', '{b}', '{k}', '');
        SELECT count(*) AS inside FROM r;
        ROLLBACK;
        SELECT count(*) AS after FROM r;""",
    )
    assert " inside \n--------\n      2\n" in proc.stdout
    assert " after \n-------\n     0\n" in proc.stdout


INJECTIONS = [
    # (table, columns, options, bucket, key, expected first ERROR line)
    (
        "t; COPY t FROM PROGRAM 'touch {m}'",
        "",
        "(format csv)",
        None,
        "rows.csv",
        """ERROR:  string is not a valid identifier: "t; COPY t FROM PROGRAM 'touch {m}'\"""",
    ),
    (
        "t",
        "a) FROM PROGRAM 'touch {m}' --",
        "(format csv)",
        None,
        "rows.csv",
        "ERROR:  string is not a valid identifier: \"a) FROM PROGRAM 'touch {m}' --\"",
    ),
    (
        "t",
        "a,\"b) FROM PROGRAM 'touch {m}' --",
        "(format csv)",
        None,
        "rows.csv",
        "ERROR:  invalid column list 'a,\"b) FROM PROGRAM ''touch {m}'' --'",
    ),
    (
        "t",
        "",
        "(format csv) TO PROGRAM 'touch {m}'",
        None,
        "rows.csv",
        "ERROR:  unexpected 'TO' after the COPY options; remove it",
    ),
    (
        "t",
        "",
        "(format csv, delimiter ',') FROM PROGRAM 'touch {m}'",
        None,
        "rows.csv",
        "ERROR:  unexpected 'FROM' after the COPY options; remove it",
    ),
    (
        "t",
        "",
        "(encoding 'UTF8'' FROM PROGRAM ''touch {m}')",
        None,
        "rows.csv",
        "ERROR:  invalid encoding name \"UTF8' FROM PROGRAM 'touch {m}\"; e.g. encoding 'WIN1252'",
    ),
    (
        "t",
        "",
        "(format csv)",
        None,
        "x$(touch {m})`touch {m}`;touch {m}",
        "ERROR:  object s3://{b}/x$(touch {m})`touch {m}`;touch {m} does not exist; "
        "check the key; list the prefix with 'aws s3 ls s3://{b}/{folder}/'",
    ),
    (
        "t",
        "",
        "(format csv)",
        "b;touch {m}",
        "rows.csv",
        "ERROR:  invalid S3 bucket name 'b;touch {m}'",
    ),
]


@pytest.mark.parametrize("case", range(len(INJECTIONS)))
def test_injection_fails_cleanly(ext: ExtServer, edb: str, csv_object: Any, case: int) -> None:
    b, _ = csv_object
    table, cols, opts, bkt, key, expected = INJECTIONS[case]

    def lit(s: str) -> str:
        return "'" + s.format(m=MARKER, b=b).replace("'", "''") + "'"

    ext.psql(f"CREATE TABLE t (a int, b text); GRANT INSERT ON t TO {APP};", edb)
    proc = app_psql(
        ext,
        edb,
        f"SELECT aws_s3.table_import_from_s3({lit(table)}, {lit(cols)}, {lit(opts)}, "
        f"{lit(bkt or b)}, {lit(key)}, '');",
    )
    folder = key.format(m=MARKER, b=b).rpartition("/")[0]  # the hint lists the key's folder
    assert err(proc) == expected.format(m=MARKER, b=b, folder=folder)
    assert not MARKER.exists()
    assert ext.execute("SELECT count(*) FROM t", edb) == [(0,)]


def test_caller_cannot_choose_the_endpoint(ext: ExtServer, edb: str, bucket: str) -> None:
    """Ambient credentials go only to the administrator's endpoint: a trap
    listener must never be contacted, whatever the caller passes."""
    trap = socket.socket()
    trap.bind(("127.0.0.1", 0))
    trap.listen(8)
    trap.settimeout(0.5)
    port = trap.getsockname()[1]
    ext.psql(f"CREATE TABLE t (a int, b text); GRANT INSERT ON t TO {APP};", edb)
    tries = {
        (f"127.0.0.1:{port}", "k", ""): "ERROR:  invalid S3 bucket name '127.0.0.1:{p}'",
        (f"x@127.0.0.1:{port}", "k", ""): "ERROR:  invalid S3 bucket name 'x@127.0.0.1:{p}'",
        (bucket, "k", f"us-east-1.127.0.0.1:{port}#"): "ERROR:  invalid AWS region "
        "'us-east-1.127.0.0.1:{p}#'",
        (bucket, f"http://127.0.0.1:{port}/k", ""): "ERROR:  object s3://{b}/http://127.0.0.1:"
        "{p}/k does not exist; check the key; list the prefix with "
        "'aws s3 ls s3://{b}/http://127.0.0.1:{p}/'",
    }
    for (bkt, key, region), expected in tries.items():
        proc = app_psql(
            ext,
            edb,
            f"SELECT aws_s3.table_import_from_s3('t', '', '', '{bkt}', '{key}', '{region}');",
        )
        assert err(proc) == expected.format(p=port, b=bucket)
    proc = app_psql(
        ext,
        edb,
        "SELECT aws_s3.table_import_from_s3('t', '', "
        f"'(endpoint_url ''http://127.0.0.1:{port}'')', '{bucket}', 'k', '');",
    )
    assert err(proc).startswith("ERROR:  unknown COPY option 'endpoint_url'")
    with pytest.raises(TimeoutError):
        trap.accept()
    trap.close()


def test_functions_pin_search_path(ext: ExtServer, edb: str) -> None:
    rows = ext.execute(
        """SELECT p.oid::regprocedure::text, p.proconfig, p.prosrc FROM pg_proc p
           JOIN pg_namespace n ON n.oid = p.pronamespace
           WHERE n.nspname IN ('aws_s3', 'aws_commons')""",
        edb,
    )
    assert len(rows) > 10
    for name, config, src in rows:
        if name.startswith(("aws_s3.table_import_from_s3", "aws_s3.query_export_to_s3")):
            # thin wrappers that pass the caller's search_path on: every name qualified
            assert config is None
            assert "aws_s3._" in src and "pg_catalog.current_setting('search_path')" in src
        else:
            assert config and "search_path=pg_catalog, pg_temp" in config, name


def test_secrets_stay_out_of_argv_activity_and_log(
    ext: ExtServer, edb: str, s3client: Any, bucket: str
) -> None:
    """Keys passed in a call (here from a table: no literal in the statement)
    appear in no process's argv, in no pg_stat_activity text, in no log line:
    sampled while a large import runs, and around failing calls."""
    body = b"".join(b"%d,%s\n" % (i, b"y" * 60) for i in range(400_000))  # ~25 MB
    s3client.put_object(Bucket=bucket, Key="big.csv", Body=body)
    ext.psql(
        f"CREATE TABLE big (a int, b text); GRANT INSERT, SELECT ON big TO {APP};"
        f"CREATE TABLE creds (c aws_commons._aws_credentials_1); GRANT SELECT ON creds TO {APP};"
        f"COPY creds FROM STDIN;\n({ACCESS_KEY},{SECRET_KEY},)\n\\.\n"
        f"ALTER DATABASE {edb} SET log_statement = 'all';",
        edb,
    )
    log_start = len(ext.log())
    call = (
        "SELECT aws_s3.table_import_from_s3('big', '', '(format csv)', "
        "aws_commons.create_s3_uri('{b}', '{k}', ''), (SELECT c FROM creds))"
    )
    result: list[Any] = []

    def run() -> None:
        with psycopg.connect(ext.conninfo(edb, APP), autocommit=True) as c:
            result.append(c.execute(call.format(b=bucket, k="big.csv").encode()).fetchone())

    thread = threading.Thread(target=run)
    thread.start()
    seen_fetcher = False
    leaks: list[str] = []
    with psycopg.connect(ext.conninfo(edb), autocommit=True) as watch:
        while thread.is_alive():
            for proc in Path("/proc").iterdir():
                try:
                    argv = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                except OSError:
                    continue
                seen_fetcher |= "pgferry.extension.fetcher import" in argv
                if SECRET_KEY in argv:
                    leaks.append(f"argv: {argv}")
            for (query,) in watch.execute("SELECT query FROM pg_stat_activity").fetchall():
                if query and SECRET_KEY in query:
                    leaks.append(f"pg_stat_activity: {query}")
            time.sleep(0.01)
    thread.join()
    assert result and result[0][0].startswith('400000 rows imported into relation "big"')
    assert seen_fetcher, "the sampler never saw the fetcher running"
    # failing calls: the error path must not log the caller's statement either
    proc = app_psql(ext, edb, call.format(b=bucket, k="missing.csv") + ";")
    assert err(proc).startswith(f"ERROR:  object s3://{bucket}/missing.csv does not exist")
    ext.psql(f"ALTER DATABASE {edb} RESET log_statement;", edb)
    inline = (
        f"SELECT aws_s3.table_import_from_s3('big', '', '(format csv)', '{bucket}', "
        f"'missing.csv', '', '{ACCESS_KEY}', '{SECRET_KEY}', '');"
    )
    proc = app_psql(ext, edb, inline)
    assert err(proc).startswith(f"ERROR:  object s3://{bucket}/missing.csv does not exist")
    time.sleep(0.3)
    log = ext.log()[log_start:]
    assert "missing.csv does not exist" in log  # the log was written and read
    assert "table_import_from_s3" in log  # log_statement = all was on
    assert SECRET_KEY not in log
    assert not leaks, leaks[:3]
