"""replica create / status / promote / drop on real servers with
wal_level = logical (our own pair: the suite's servers run wal_level =
replica), under a steady write load."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from click.testing import Result

from pgferry.embedded import LocalServer
from tests.migrate.conftest import drop_database, new_database, rows
from tests.migrate.dbgen import generate
from tests.services import FAST, postgres

Run = Callable[..., Result]
# apply workers restart (after an error, ENABLE, a lost connection) this
# soon, instead of 5 s: keeps the tests that disable and enable quick
LOGICAL = {**FAST, "wal_level": "logical", "wal_retrieve_retry_interval": "200ms"}


@pytest.fixture(scope="module")
def logical() -> Iterator[dict[str, LocalServer]]:
    servers: dict[str, LocalServer] = {}
    for v in ("15", "18"):
        s = postgres(v, start=False)
        s.start(LOGICAL)
        servers[v] = s
    yield servers
    for s in servers.values():
        s.destroy()
        shutil.rmtree(s.datadir.parent, ignore_errors=True)


@pytest.fixture(autouse=True)
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    d = tmp_path / "state"
    monkeypatch.setenv("PGFERRY_STATE_DIR", str(d))
    return d


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["promote", "--max-lag", "abc"],
            "error: cannot read --max-lag 'abc'; write it like 64MB or 0",
        ),
        (
            ["promote", "--timeout", "5x"],
            "error: cannot read --timeout '5x'; write it like 60s, 2m or 500ms",
        ),
        (
            ["status", "--name", "Bad Name"],
            "error: --name 'Bad Name' is not a valid replica name;"
            " use 1-40 lower-case letters, digits and _, starting with a letter",
        ),
    ],
)
def test_usage_errors(run_cli: Run, args: list[str], message: str) -> None:
    res = run_cli("replica", *args)
    assert res.exit_code == 2
    assert res.stderr.strip() == message


def test_unknown_name(run_cli: Run, state_dir: Path) -> None:
    for command in ("status", "promote", "drop"):
        res = run_cli("replica", command, "--name", "nope")
        assert res.exit_code == 1
        assert res.stderr.strip() == (
            f"error: no replica set-up named 'nope' is recorded (looked in {state_dir});"
            " run 'pgferry replica create' first, or pass the --name it was created with"
        )


SCHEMA = """
CREATE TABLE orders (id bigserial PRIMARY KEY, qty int NOT NULL, note text);
CREATE TABLE events (at timestamptz NOT NULL DEFAULT now(), kind int, payload text);
CREATE TABLE docs (id int PRIMARY KEY, n int NOT NULL, body text);
ALTER TABLE docs ALTER body SET STORAGE EXTERNAL;
CREATE SEQUENCE tickets START 100;
INSERT INTO orders (qty, note) SELECT g % 97, 'order ' || g FROM generate_series(1, 20000) g;
INSERT INTO events (kind, payload) SELECT g % 5, md5(g::text) FROM generate_series(1, 2000) g;
INSERT INTO docs SELECT g, 0, repeat(md5(g::text), 300) FROM generate_series(1, 40) g;
SELECT nextval('tickets') FROM generate_series(1, 5);
SELECT lo_from_bytea(0, 'large object before');
"""


def make_source(server: LocalServer) -> str:
    url = new_database(server, "rsrc")
    with psycopg.connect(url, autocommit=True) as c:
        c.execute(SCHEMA)
    return url


class Writer(threading.Thread):
    """Inserts, updates and deletes on every table until stopped or until
    the source refuses writes (promote blocked them)."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.stop = threading.Event()
        self.writes = 0
        self.refused: Exception | None = None

    def run(self) -> None:
        i = 0
        while not self.stop.is_set():
            try:
                with psycopg.connect(self.url, autocommit=True) as c:
                    while not self.stop.is_set():
                        i += 1
                        with c.transaction():
                            c.execute("INSERT INTO orders (qty, note) VALUES (%s, 'w')", [i])
                            c.execute("UPDATE orders SET qty = qty + 1 WHERE id = %s", [i % 20000])
                            c.execute("DELETE FROM orders WHERE id = %s", [(i * 7) % 20000 + 1])
                            c.execute(
                                "INSERT INTO events (kind, payload) VALUES (%s, 'w')", [i % 5]
                            )
                            c.execute(
                                "UPDATE events SET payload = payload || '+' WHERE kind = %s"
                                " AND ctid = (SELECT min(ctid) FROM events WHERE kind = %s)",
                                [i % 5, i % 5],
                            )
                            c.execute(
                                "DELETE FROM events WHERE ctid = (SELECT max(ctid) FROM events)"
                            )
                            # body is TOASTed and left unchanged by the update
                            c.execute("UPDATE docs SET n = n + 1 WHERE id = %s", [i % 40 + 1])
                            c.execute("SELECT nextval('tickets')")
                        self.writes += 1
                        time.sleep(0.005)
            except psycopg.errors.ReadOnlySqlTransaction as e:
                self.refused = e
                return
            except psycopg.OperationalError:
                time.sleep(0.05)  # ended by promote's block: reconnect (read-only now)


def wait_caught_up(run_cli: Run, name: str, timeout: float = 60) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while True:
        res = run_cli("replica", "status", "--name", name, "--json")
        st = json.loads(res.stdout)
        if st["lag_seconds"] is not None and st["lag_seconds"] < 2:
            return dict(st)
        assert time.monotonic() < deadline, res.stdout
        time.sleep(0.2)


def assert_source_clean(url: str, name: str) -> None:
    slot = f"pgferry_{name}"
    assert rows(url, "SELECT slot_name FROM pg_replication_slots WHERE slot_name = %s", slot) == []
    assert rows(url, "SELECT pubname FROM pg_publication") == []
    for app in (slot, f"{slot}_back"):
        assert (
            rows(url, "SELECT pid FROM pg_stat_replication WHERE application_name = %s", app) == []
        )
    assert rows(url, "SELECT to_regnamespace('pgferry_replica')") == [(None,)]
    with psycopg.connect(url) as c:
        assert c.execute("SHOW default_transaction_read_only").fetchone() == ("off",)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("versions", "reverse"), [(("15", "15"), False), (("15", "18"), True), (("18", "18"), True)]
)
def test_create_catch_up_promote(
    logical: dict[str, LocalServer], run_cli: Run, versions: tuple[str, str], reverse: bool
) -> None:
    src_server, tgt_server = logical[versions[0]], logical[versions[1]]
    src = make_source(src_server)
    tgt = new_database(tgt_server, "rdst")
    name = f"r{versions[0]}{versions[1]}"
    writer = Writer(src)
    writer.start()
    try:
        res = run_cli(
            "replica",
            "create",
            "--source",
            src,
            "--target",
            tgt,
            "--name",
            name,
            "--jobs",
            "2",
            "--quiet",
        )
        assert res.exit_code == 1
        assert "preflight: 1 table(s) have no primary key or replica identity" in res.stderr
        assert "public.events; add a primary key, or pass --replica-identity-full" in res.stderr

        res = run_cli(
            "replica",
            "create",
            "--source",
            src,
            "--target",
            tgt,
            "--name",
            name,
            "--jobs",
            "2",
            "--quiet",
            "--replica-identity-full",
        )
        assert res.exit_code == 0, res.output
        assert f"replica '{name}' is streaming: 4 table(s) published" in res.stdout
        writes_at_create = writer.writes
        st = wait_caught_up(run_cli, name)
        assert st["slot_exists"] and st["wal_status"] in ("reserved", "extended")
        assert st["subscription"]["enabled"] is True  # type: ignore[index]
        assert st["drift"] == [] and st["warnings"] == []
        while writer.writes < writes_at_create + 50:  # writes keep streaming in
            assert writer.is_alive()
            time.sleep(0.05)
        with psycopg.connect(src, autocommit=True) as c:  # changed after the copy
            c.execute("SELECT lo_from_bytea(0, 'large object after')")

        back = ("--reverse",) if reverse else ()
        res = run_cli("replica", "promote", "--name", name, "--timeout", "60s", *back)
        assert res.exit_code == 0, res.output
        assert "writes unavailable for" in res.stdout
        said = f"the source now follows the target (subscription pgferry_{name}_back)"
        assert (said in res.stdout) == reverse
        writer.join(30)
        assert not writer.is_alive()
        assert isinstance(writer.refused, psycopg.errors.ReadOnlySqlTransaction)
    finally:
        writer.stop.set()
        writer.join(30)

    # the way back's publication (--reverse) is pgferry's, not a difference
    res = run_cli("verify", "--source", src, "--target", tgt)
    assert res.exit_code == 0, res.output
    assert res.stdout.startswith("ok: ")
    if reverse:
        assert rows(tgt, "SELECT pubname FROM pg_publication") == [(f"pgferry_{name}_back",)]
    for seq in ("orders_id_seq", "tickets"):
        q = f"SELECT last_value FROM {seq}"
        assert rows(tgt, q)[0][0] >= rows(src, q)[0][0]
    assert rows(
        tgt,
        "SELECT count(*) FROM pg_subscription s JOIN pg_database d"
        " ON d.oid = s.subdbid WHERE d.datname = current_database()",
    ) == [(0,)]
    # the source stays read-only after the cutover, until drop
    with psycopg.connect(src) as c:
        assert c.execute("SHOW default_transaction_read_only").fetchone() == ("on",)
    if reverse:  # writes on the new primary flow back to the old one
        with psycopg.connect(tgt, autocommit=True) as c:
            c.execute("INSERT INTO orders VALUES (99999999, -1, 'written on the new primary')")
            c.execute("UPDATE docs SET n = -1 WHERE id = 1")
        q = "SELECT count(*) FROM orders WHERE id = 99999999"
        deadline = time.monotonic() + 30
        while rows(src, q) != [(1,)] or rows(src, "SELECT n FROM docs WHERE id = 1") != [(-1,)]:
            assert time.monotonic() < deadline, "the reverse subscription applied nothing"
            time.sleep(0.05)
        res = run_cli("replica", "status", "--name", name, "--json")
        st = json.loads(res.stdout)
        assert st["direction"] == "target -> source (--reverse)" and st["slot_exists"]
        assert st["subscription"]["enabled"] is True
    res = run_cli("replica", "drop", "--name", name)
    assert res.exit_code == 0, res.output
    assert (f"dropped subscription pgferry_{name}_back on the source" in res.stdout) == reverse
    assert_source_clean(src, name)
    for url in (src, tgt):  # subscriptions and their origins are cluster-wide
        assert rows(url, "SELECT count(*) FROM pg_subscription") == [(0,)]
        assert rows(url, "SELECT count(*) FROM pg_replication_origin") == [(0,)]
    res = run_cli("verify", "--source", src, "--target", tgt)
    assert res.exit_code == 0, res.output
    assert rows(
        src,
        "SELECT count(*) FROM pg_subscription s JOIN pg_database d"
        " ON d.oid = s.subdbid WHERE d.datname = current_database()",
    ) == [(0,)]
    assert rows(
        tgt, "SELECT count(*) FROM pg_replication_slots WHERE database = current_database()"
    ) == [(0,)]
    assert rows(tgt, "SELECT count(*) FROM pg_publication") == [(0,)]
    drop_database(src_server, src)
    drop_database(tgt_server, tgt)


def test_check_only_reports(logical: dict[str, LocalServer], run_cli: Run) -> None:
    src = make_source(logical["15"])
    tgt = new_database(logical["15"], "rdst")
    res = run_cli("replica", "create", "--source", src, "--target", tgt, "--check")
    assert res.exit_code == 1
    assert "info: source PostgreSQL 15, target PostgreSQL 15" in res.stdout
    assert "warning: 1 large object(s): logical replication does not carry them" in res.stdout
    assert "blocker: 1 table(s) have no primary key or replica identity" in res.stdout
    assert rows(src, "SELECT count(*) FROM pg_replication_slots") == [(0,)]
    res = run_cli(
        "replica", "create", "--source", src, "--target", tgt, "--check", "--exclude", "events"
    )
    assert res.exit_code == 0, res.output
    assert "blocker" not in res.stdout
    drop_database(logical["15"], src)
    drop_database(logical["15"], tgt)


def test_promote_refuses_and_undoes(logical: dict[str, LocalServer], run_cli: Run) -> None:
    server = logical["15"]
    src = make_source(server)
    tgt = new_database(server, "rdst")
    name = "undo"
    res = run_cli(
        "replica",
        "create",
        "--source",
        src,
        "--target",
        tgt,
        "--name",
        name,
        "--exclude",
        "events",
        "--quiet",
    )
    assert res.exit_code == 0, res.output
    wait_caught_up(run_cli, name)
    with psycopg.connect(tgt, autocommit=True) as c:
        c.execute("ALTER SUBSCRIPTION pgferry_undo DISABLE")
    with psycopg.connect(src, autocommit=True) as c:
        c.execute("INSERT INTO orders (qty) SELECT g FROM generate_series(1, 5000) g")

    res = run_cli("replica", "status", "--name", name, "--max-retained-wal", "64kB")
    assert res.exit_code == 1
    assert "  free storage      " in res.stdout
    # a server on this host: its disk's free space, by its data directory
    st = json.loads(run_cli("replica", "status", "--name", name, "--json").stdout)
    fs = os.statvfs(server.datadir)
    assert abs(st["free_storage_bytes"] - fs.f_bavail * fs.f_frsize) < 256 << 20
    assert "warning: the slot retains " in res.stderr
    assert "bytes of WAL on the source, more than --max-retained-wal (65536)" in res.stderr
    res = run_cli("replica", "promote", "--name", name, "--max-lag", "0")
    assert res.exit_code == 1
    assert "bytes behind the source, more than --max-lag (0); wait for" in res.stderr
    res = run_cli("replica", "promote", "--name", name, "--timeout", "1s")
    assert res.exit_code == 1
    assert "within --timeout 1s; writes on the source are unblocked again" in res.stderr
    # unblocked: a new session writes
    with psycopg.connect(src, autocommit=True) as c:
        c.execute("INSERT INTO orders (qty) VALUES (1)")
        assert c.execute("SHOW default_transaction_read_only").fetchone() == ("off",)

    # a row missing on the target: the quick verify refuses the cutover
    with psycopg.connect(tgt, autocommit=True) as c:
        c.execute("ALTER SUBSCRIPTION pgferry_undo ENABLE")
        c.execute("DELETE FROM orders WHERE id = 1")
    res = run_cli("replica", "promote", "--name", name)
    assert res.exit_code == 1
    n = rows(src, "SELECT count(*) FROM orders")[0][0]
    assert (
        f"error: row counts differ after catch-up: public.orders has {n} rows on the source,"
        f" {n - 1} on the target; writes on the source are unblocked again"
    ) in res.stderr
    with psycopg.connect(src, autocommit=True) as c:
        c.execute("INSERT INTO orders (qty) VALUES (2)")  # writable again
        qty, note = c.execute("SELECT qty, note FROM orders WHERE id = 1").fetchone()  # type: ignore[misc]
    with psycopg.connect(tgt, autocommit=True) as c:
        c.execute("INSERT INTO orders VALUES (1, %s, %s)", [qty, note])
    res = run_cli("replica", "promote", "--name", name, "--verify", "full")
    assert res.exit_code == 0, res.output
    assert "verify rows (pgferry verify --data-only)" in res.stdout
    assert rows(tgt, "SELECT count(*) FROM orders") == rows(src, "SELECT count(*) FROM orders")
    res = run_cli("replica", "drop", "--name", name)
    assert res.exit_code == 0, res.output
    assert_source_clean(src, name)
    drop_database(server, src)
    drop_database(server, tgt)


def test_drop_while_streaming(logical: dict[str, LocalServer], run_cli: Run) -> None:
    server = logical["15"]
    src = make_source(server)
    tgt = new_database(server, "rdst")
    res = run_cli(
        "replica",
        "create",
        "--source",
        src,
        "--target",
        tgt,
        "--name",
        "gone",
        "--exclude",
        "events",
        "--quiet",
    )
    assert res.exit_code == 0, res.output
    deadline = time.monotonic() + 30
    while rows(src, "SELECT count(*) FROM pg_replication_slots WHERE active") != [(1,)]:
        assert time.monotonic() < deadline, "the subscription never took the slot"
        time.sleep(0.05)
    # DDL is not replicated: a column added on the source shows as drift
    with psycopg.connect(src, autocommit=True) as c:
        c.execute("ALTER TABLE orders ADD COLUMN extra int")
    res = run_cli("replica", "status", "--name", "gone")
    assert res.exit_code == 1
    assert "  drift: public.orders.extra: only on the source (add it on the target)" in res.stdout
    with psycopg.connect(src, autocommit=True) as c:
        c.execute("CREATE TABLE added (id int PRIMARY KEY)")
    res = run_cli("replica", "status", "--name", "gone")
    assert (
        "  drift: public.added: new on the source, not replicated"
        " (drop and create the replica again to include it)"
    ) in res.stdout
    with psycopg.connect(tgt, autocommit=True) as c:
        c.execute("CREATE TABLE only_here (id int)")
        c.execute("ALTER TABLE docs ADD COLUMN mine text")
    res = run_cli("replica", "status", "--name", "gone")
    assert [line for line in res.stdout.splitlines() if "drift:" in line] == [
        "  drift: public.added: new on the source, not replicated"
        " (drop and create the replica again to include it)",
        "  drift: public.only_here: new on the target, not on the source",
        "  drift: public.orders.extra: only on the source (add it on the target)",
        "  drift: public.docs.mine: only on the target",
    ]
    res = run_cli("replica", "drop", "--name", "gone")
    assert res.exit_code == 0, res.output
    assert "dropped subscription pgferry_gone on the target" in res.stdout
    assert_source_clean(src, "gone")
    assert rows(tgt, "SELECT count(*) FROM pg_subscription") == [(0,)]
    assert rows(tgt, "SELECT to_regnamespace('pgferry_replica')") == [(None,)]
    assert rows(tgt, "SELECT count(*) FROM orders") == [(20000,)]  # the data stays
    res = run_cli("replica", "status", "--name", "gone")
    assert res.exit_code == 1
    assert "no replica set-up named 'gone' is recorded" in res.stderr
    drop_database(server, src)
    drop_database(server, tgt)


def _count(url: str, query: str) -> int:
    try:
        return int(rows(url, query)[0][0])
    except psycopg.Error:  # not created yet
        return -1


@pytest.mark.slow
def test_kill_during_copy_then_resume(
    logical: dict[str, LocalServer], run_cli: Run, state_dir: Path
) -> None:
    server = logical["15"]
    src = make_source(server)
    with psycopg.connect(src, autocommit=True) as c:
        c.execute(
            "CREATE TABLE big (id bigint PRIMARY KEY, pad text);"
            " INSERT INTO big SELECT g, repeat('x', 200) FROM generate_series(1, 400000) g"
        )
    tgt = new_database(server, "rdst")
    args = [
        "replica",
        "create",
        "--source",
        src,
        "--target",
        tgt,
        "--name",
        "killed",
        "--replica-identity-full",
        "--jobs",
        "1",
        "--quiet",
    ]
    proc = subprocess.Popen(
        [sys.executable, "-c", "from pgferry.cli import main; main()", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 120
    try:
        # killed once a table is in but before big is
        while (
            _count(tgt, "SELECT count(*) FROM pgferry.clone_progress WHERE item LIKE 'table:%'") < 1
        ):
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert rows(
        src, "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'pgferry_killed'"
    ) == [(1,)]
    with psycopg.connect(src, autocommit=True) as c:  # written while nobody copies
        c.execute("INSERT INTO orders (qty) SELECT g FROM generate_series(1, 100) g")
        c.execute("UPDATE big SET pad = 'changed' WHERE id <= 10")

    res = run_cli(*args)
    assert res.exit_code == 1
    assert "a replica set-up named 'killed' already exists" in res.stderr
    res = run_cli(*args, "--resume")
    assert res.exit_code == 0, res.output
    assert "dropped the slot pgferry_killed of the interrupted run" in res.stderr
    assert rows(src, "SELECT count(*) FROM pg_replication_slots") == [(1,)]
    with psycopg.connect(src, autocommit=True) as c:
        c.execute("DELETE FROM big WHERE id > 399990")
    wait_caught_up(run_cli, "killed")
    res = run_cli("replica", "promote", "--name", "killed")
    assert res.exit_code == 0, res.output
    res = run_cli("verify", "--source", src, "--target", tgt)
    assert res.exit_code == 0, res.output
    assert rows(tgt, "SELECT count(*) FROM big WHERE pad = 'changed'") == [(10,)]
    res = run_cli("replica", "drop", "--name", "killed")
    assert res.exit_code == 0, res.output
    assert_source_clean(src, "killed")
    drop_database(server, src)
    drop_database(server, tgt)


def _promote_proc(name: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from pgferry.cli import main; main()",
            *["replica", "promote", "--name", name, "--timeout", "120s"],
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def test_kill_during_promote(logical: dict[str, LocalServer], run_cli: Run) -> None:
    server = logical["15"]
    src = make_source(server)
    tgt = new_database(server, "rdst")
    name = "halfway"
    res = run_cli(
        "replica",
        "create",
        "--source",
        src,
        "--target",
        tgt,
        "--name",
        name,
        "--exclude",
        "events",
        "--quiet",
    )
    assert res.exit_code == 0, res.output
    wait_caught_up(run_cli, name)
    with psycopg.connect(tgt, autocommit=True) as c:  # promote will wait for apply
        c.execute("ALTER SUBSCRIPTION pgferry_halfway DISABLE")
    proc = _promote_proc(name)
    blocked = (
        "SELECT count(*) FROM pg_db_role_setting WHERE setdatabase ="
        " (SELECT oid FROM pg_database WHERE datname = current_database())"
        " AND 'default_transaction_read_only=on' = ANY(setconfig)"
    )
    deadline = time.monotonic() + 60
    try:
        while _count(src, blocked) != 1:  # (promote ends our polling sessions too)
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    # killed with writes blocked
    with (
        psycopg.connect(src, autocommit=True) as c,
        pytest.raises(psycopg.errors.ReadOnlySqlTransaction),
    ):
        c.execute("INSERT INTO orders (qty) VALUES (1)")
    res = run_cli("replica", "status", "--name", name)
    assert "  writes blocked    yes" in res.stdout

    # rerun: it finishes from where it stopped
    with psycopg.connect(tgt, autocommit=True) as c:
        c.execute("ALTER SUBSCRIPTION pgferry_halfway ENABLE")
    res = run_cli("replica", "promote", "--name", name)
    assert res.exit_code == 0, res.output
    assert "writes unavailable for" in res.stdout
    res = run_cli("verify", "--source", src, "--target", tgt, "--exclude", "events")
    assert res.exit_code == 0, res.output
    res = run_cli("replica", "drop", "--name", name)
    assert res.exit_code == 0, res.output
    assert_source_clean(src, name)
    drop_database(server, src)
    drop_database(server, tgt)


def test_kill_during_promote_then_drop(logical: dict[str, LocalServer], run_cli: Run) -> None:
    server = logical["15"]
    src = make_source(server)
    tgt = new_database(server, "rdst")
    name = "abort"
    res = run_cli(
        "replica",
        "create",
        "--source",
        src,
        "--target",
        tgt,
        "--name",
        name,
        "--exclude",
        "events",
        "--quiet",
    )
    assert res.exit_code == 0, res.output
    with psycopg.connect(tgt, autocommit=True) as c:
        c.execute("ALTER SUBSCRIPTION pgferry_abort DISABLE")
    proc = _promote_proc(name)
    deadline = time.monotonic() + 60
    try:
        while _count(src, "SELECT n FROM pgferry_replica.heartbeat") < 1:  # the marker
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    res = run_cli("replica", "drop", "--name", name)
    assert res.exit_code == 0, res.output
    assert "unblocked writes on the source" in res.stdout
    assert_source_clean(src, name)
    with psycopg.connect(src, autocommit=True) as c:
        c.execute("INSERT INTO orders (qty) VALUES (1)")
    drop_database(server, src)
    drop_database(server, tgt)


def test_lost_slot(logical: dict[str, LocalServer], run_cli: Run) -> None:
    server = logical["18"]
    src = make_source(server)
    tgt = new_database(server, "rdst")
    name = "lost"
    res = run_cli(
        "replica",
        "create",
        "--source",
        src,
        "--target",
        tgt,
        "--name",
        name,
        "--exclude",
        "events",
        "--quiet",
    )
    assert res.exit_code == 0, res.output
    with psycopg.connect(tgt, autocommit=True) as c:
        c.execute("ALTER SUBSCRIPTION pgferry_lost DISABLE")
    lost = "SELECT wal_status FROM pg_replication_slots WHERE slot_name = 'pgferry_lost'"
    with psycopg.connect(src, autocommit=True) as c:
        c.execute("ALTER SYSTEM SET max_slot_wal_keep_size = '1MB'")
        c.execute("SELECT pg_reload_conf()")
        try:
            deadline = time.monotonic() + 60
            while rows(src, lost) != [("lost",)]:
                assert time.monotonic() < deadline, rows(src, lost)
                c.execute("INSERT INTO orders (qty) SELECT g FROM generate_series(1, 1000) g")
                c.execute("SELECT pg_switch_wal()")
                c.execute("CHECKPOINT")
        finally:
            c.execute("ALTER SYSTEM RESET max_slot_wal_keep_size")
            c.execute("SELECT pg_reload_conf()")
    res = run_cli("replica", "status", "--name", name)
    assert res.exit_code == 1
    assert "  wal_status        lost" in res.stdout
    assert (
        "warning: the slot pgferry_lost is lost (the source removed WAL it needed): the target"
        " can no longer catch up; run 'pgferry replica drop', then create the replica again"
    ) in res.stderr
    res = run_cli("replica", "promote", "--name", name)
    assert res.exit_code == 1
    assert "error: the replication slot pgferry_lost is lost" in res.stderr
    res = run_cli("replica", "drop", "--name", name)
    assert res.exit_code == 0, res.output
    assert_source_clean(src, name)
    drop_database(server, src)
    drop_database(server, tgt)


def test_failed_copy_leaves_no_slot(logical: dict[str, LocalServer], run_cli: Run) -> None:
    server = logical["15"]
    src = make_source(server)
    tgt = new_database(server, "rdst")
    with psycopg.connect(tgt, autocommit=True) as c:
        c.execute("CREATE TABLE orders (id int)")
    args = [
        "replica",
        "create",
        "--source",
        src,
        "--target",
        tgt,
        "--name",
        "clash",
        "--exclude",
        "events",
        "--quiet",
    ]
    res = run_cli(*args)
    assert res.exit_code == 1
    assert "error: the target already has table public.orders" in res.stderr
    assert rows(src, "SELECT count(*) FROM pg_replication_slots") == [(0,)]
    with psycopg.connect(tgt, autocommit=True) as c:
        c.execute("DROP TABLE orders")
    res = run_cli(*args, "--resume")
    assert res.exit_code == 0, res.output
    assert rows(src, "SELECT count(*) FROM pg_replication_slots") == [(1,)]
    res = run_cli("replica", "drop", "--name", "clash")
    assert res.exit_code == 0, res.output
    assert_source_clean(src, "clash")
    drop_database(server, src)
    drop_database(server, tgt)


def test_target_restart_and_source_down(logical: dict[str, LocalServer], run_cli: Run) -> None:
    src_server, tgt_server = logical["15"], logical["18"]
    src = make_source(src_server)
    tgt = new_database(tgt_server, "rdst")
    name = "bumpy"
    res = run_cli(
        "replica",
        "create",
        "--source",
        src,
        "--target",
        tgt,
        "--name",
        name,
        "--exclude",
        "events",
        "--quiet",
    )
    assert res.exit_code == 0, res.output
    wait_caught_up(run_cli, name)
    tgt_server.stop()
    try:
        with psycopg.connect(src, autocommit=True) as c:  # written while the target is down
            c.execute("INSERT INTO orders (qty) SELECT g FROM generate_series(1, 3000) g")
        res = run_cli("replica", "status", "--name", name)
        assert res.exit_code == 1
        assert res.stderr.startswith("error: cannot connect to ")
        assert res.stderr.rstrip().endswith(
            "check that the server is running and the URL (--target) is right"
        )
        assert len(res.stderr.strip().splitlines()) == 1
    finally:
        tgt_server.start(LOGICAL)
    wait_caught_up(run_cli, name)  # the subscription resumes from its slot by itself
    assert rows(tgt, "SELECT count(*) FROM orders") == rows(src, "SELECT count(*) FROM orders")

    src_server.stop()
    try:
        res = run_cli("replica", "status", "--name", name)
        assert res.exit_code == 1
        assert res.stderr.startswith("error: source: cannot connect to ")
        assert res.stderr.rstrip().endswith("check --source and that the server is running")
        assert len(res.stderr.strip().splitlines()) == 1
        res = run_cli("replica", "promote", "--name", name)
        assert res.exit_code == 1
        assert res.stderr.startswith("error: source: ")
    finally:
        src_server.start(LOGICAL)
    with psycopg.connect(src, autocommit=True) as c:  # promote never blocked writes
        c.execute("INSERT INTO orders (qty) VALUES (1)")
    wait_caught_up(run_cli, name)
    res = run_cli("replica", "drop", "--name", name)
    assert res.exit_code == 0, res.output
    assert_source_clean(src, name)
    drop_database(src_server, src)
    drop_database(tgt_server, tgt)


def _stuck(run_cli: Run, name: str) -> tuple[Result, dict[str, object]]:
    """Status, polled until it names the row apply is stuck on."""
    deadline = time.monotonic() + 60
    while True:
        res = run_cli("replica", "status", "--name", name, "--json")
        st = json.loads(res.stdout)
        if st["conflict"] is not None:
            return res, st
        assert time.monotonic() < deadline, res.stdout
        time.sleep(0.2)


@pytest.mark.slow
def test_apply_conflict_named_and_cleared(logical: dict[str, LocalServer], run_cli: Run) -> None:
    src_server, tgt_server = logical["15"], logical["18"]
    src = make_source(src_server)
    with psycopg.connect(src, autocommit=True) as c:
        c.execute("CREATE TABLE users (id int PRIMARY KEY, email text UNIQUE)")
        c.execute("INSERT INTO users VALUES (1, 'a@x'), (2, 'b@x')")
    tgt = new_database(tgt_server, "rdst")
    name = "clash2"
    res = run_cli(
        "replica",
        "create",
        "--source",
        src,
        "--target",
        tgt,
        "--name",
        name,
        "--exclude",
        "events",
        "--quiet",
    )
    assert res.exit_code == 0, res.output
    wait_caught_up(run_cli, name)
    with psycopg.connect(tgt, autocommit=True) as c:  # rows written on the target by hand
        c.execute("INSERT INTO orders VALUES (20001, 0, 'by hand'), (20002, 0, 'by hand')")
    with psycopg.connect(src, autocommit=True) as c, c.transaction():
        # a key deleted and added back in the transaction is no conflict
        c.execute("DELETE FROM orders WHERE id = 5")
        c.execute("INSERT INTO orders VALUES (5, 5, 'again')")
        c.execute("UPDATE orders SET qty = qty + 1 WHERE id = 6")  # a key kept: no conflict
        # the delete sends only the primary key: the email it frees cannot be told
        c.execute("DELETE FROM users WHERE id = 1")
        c.execute("INSERT INTO users VALUES (3, 'a@x')")
        c.execute("INSERT INTO orders (qty) VALUES (7)")  # id 20001 too
    res, st = _stuck(run_cli, name)
    assert res.exit_code == 1
    assert st["lag_seconds"] is None  # the heartbeat is stuck behind the conflict
    found = st["conflict"]
    assert isinstance(found, dict)
    lsn = found["finish_lsn"]
    assert found == {
        "table": "public.orders",
        "finish_lsn": lsn,
        "key": "(id)=(20001)",
        "index": "orders_pkey",
    }
    said = (
        "apply is stuck on public.orders: the target already has the row with key (id)=(20001)"
        f" that the source's transaction finishing at {lsn} adds; delete that row on the"
        " target and apply resumes by itself, or drop that source transaction's changes on the"
        f" target with ALTER SUBSCRIPTION pgferry_clash2 SKIP (lsn = '{lsn}')"
    )
    assert st["warnings"] == [said]
    res = run_cli("replica", "status", "--name", name)
    assert res.exit_code == 1
    assert res.stderr.strip() == f"warning: {said}"
    assert f"  apply stuck on    public.orders key (id)=(20001) (at {lsn})" in res.stdout
    res = run_cli("replica", "promote", "--name", name)
    assert res.exit_code == 1
    assert res.stderr.strip() == f"error: promote refused: {said}"
    with psycopg.connect(src, autocommit=True) as c:  # refused before blocking writes
        c.execute("UPDATE orders SET qty = 1 WHERE id = 1")

    # the LSN named is the one SKIP takes: the whole transaction is dropped
    with psycopg.connect(tgt, autocommit=True) as c:
        c.execute(f"ALTER SUBSCRIPTION pgferry_clash2 SKIP (lsn = '{lsn}')")
    wait_caught_up(run_cli, name, timeout=90)
    assert rows(tgt, "SELECT id, qty, note FROM orders WHERE id IN (5, 6, 20001) ORDER BY id") == [
        (5, 5, "order 5"),
        (6, 6, "order 6"),
        (20001, 0, "by hand"),
    ]
    assert rows(tgt, "SELECT qty FROM orders WHERE id = 1") == [(1,)]

    with psycopg.connect(src, autocommit=True) as c:
        c.execute("INSERT INTO orders (qty) VALUES (8)")  # id 20002, held on the target
    _, st = _stuck(run_cli, name)
    assert st["conflict"]["key"] == "(id)=(20002)"  # type: ignore[index]
    with psycopg.connect(tgt, autocommit=True) as c:
        c.execute("DELETE FROM orders WHERE id = 20002")
    st = wait_caught_up(run_cli, name, timeout=90)
    assert st["conflict"] is None and st["warnings"] == []  # past errors: no warning
    assert st["subscription"]["apply_error_count"] >= 2  # type: ignore[index]
    assert st["subscription"]["conflicts"]["insert_exists"] >= 2  # type: ignore[index]
    assert st["subscription"]["conflicts"]["update_missing"] == 0  # type: ignore[index]
    assert rows(tgt, "SELECT qty, note FROM orders WHERE id = 20002") == [(8, None)]

    # stuck on something else than a key: only the transaction is named
    with psycopg.connect(tgt, autocommit=True) as c:
        c.execute("ALTER TABLE orders ADD CONSTRAINT small CHECK (qty < 1000)")
    with psycopg.connect(src, autocommit=True) as c:
        c.execute("INSERT INTO orders (qty) VALUES (5000)")
    _, st = _stuck(run_cli, name)
    lsn = st["conflict"]["finish_lsn"]  # type: ignore[index]
    assert st["warnings"] == [
        f"apply is stuck on the source's transaction finishing at {lsn} (first change on"
        " public.orders); no duplicate key was found on the target; the target's server log"
        " names the failing constraint or column: fix the target and apply resumes by itself,"
        " or drop that source transaction's changes on the target with ALTER SUBSCRIPTION"
        f" pgferry_clash2 SKIP (lsn = '{lsn}')"
    ]
    with psycopg.connect(tgt, autocommit=True) as c:
        c.execute("ALTER TABLE orders DROP CONSTRAINT small")
    wait_caught_up(run_cli, name, timeout=90)

    # a row missing on the target: apply skips the source's update, 18 counts it
    with psycopg.connect(tgt, autocommit=True) as c:
        c.execute("DELETE FROM orders WHERE id = 10")
    with psycopg.connect(src, autocommit=True) as c:
        c.execute("UPDATE orders SET qty = -1 WHERE id = 10")
    deadline = time.monotonic() + 30
    while not (st := wait_caught_up(run_cli, name))["warnings"]:  # stats are flushed lazily
        assert time.monotonic() < deadline, st
        time.sleep(0.2)
    assert st["warnings"] == [
        "the target lacked 1 row(s) the source updated or deleted (apply skips such changes,"
        " so the target has diverged): run 'pgferry verify' to find them and copy them from"
        " the source; the count stays until pg_stat_reset_subscription_stats"
    ]
    res = run_cli("replica", "status", "--name", name)
    assert res.exit_code == 1
    assert "  conflicts         insert_exists " in res.stdout
    assert res.stdout.rstrip().endswith(", update_missing 1")
    res = run_cli("replica", "drop", "--name", name)
    assert res.exit_code == 0, res.output
    assert_source_clean(src, name)
    drop_database(src_server, src)
    drop_database(tgt_server, tgt)


@pytest.mark.slow
def test_source_and_target_crash_while_streaming(
    logical: dict[str, LocalServer], run_cli: Run
) -> None:
    src_server, tgt_server = logical["15"], logical["18"]
    src = make_source(src_server)
    tgt = new_database(tgt_server, "rdst")
    name = "crash"
    res = run_cli(
        "replica",
        "create",
        "--source",
        src,
        "--target",
        tgt,
        "--name",
        name,
        "--replica-identity-full",
        "--quiet",
    )
    assert res.exit_code == 0, res.output
    writer = Writer(src)
    writer.start()
    try:
        wait_caught_up(run_cli, name)
        while writer.writes < 50:
            time.sleep(0.05)
        # SIGKILL the WAL sender: the source server crashes and recovers
        sender = rows(
            src,
            "SELECT pid FROM pg_stat_replication WHERE application_name = %s",
            f"pgferry_{name}",
        )
        assert len(sender) == 1
        probe = psycopg.connect(src, autocommit=True)
        os.kill(sender[0][0], signal.SIGKILL)
        deadline = time.monotonic() + 60
        try:  # the crash ends every session
            while True:
                probe.execute("SELECT 1")
                assert time.monotonic() < deadline, "the source did not crash"
                time.sleep(0.05)
        except psycopg.OperationalError:
            pass
        finally:
            probe.close()
        while _count(src, "SELECT 1") != 1:
            assert time.monotonic() < deadline, "the source did not come back"
            time.sleep(0.1)
        seen = writer.writes
        while writer.writes < seen + 50:  # the load goes on after the crash
            assert writer.is_alive() and time.monotonic() < deadline
            time.sleep(0.05)
        wait_caught_up(run_cli, name)
        # SIGKILL the target's apply worker: the target crashes and recovers,
        # and apply restarts from its origin (no row applied twice: events
        # has no key, a double insert would show in verify)
        worker = rows(
            tgt,
            "SELECT pid FROM pg_stat_subscription WHERE subname = %s AND relid IS NULL",
            f"pgferry_{name}",
        )
        assert len(worker) == 1 and worker[0][0] is not None
        probe = psycopg.connect(tgt, autocommit=True)
        os.kill(worker[0][0], signal.SIGKILL)
        deadline = time.monotonic() + 60
        try:  # the postmaster ends every session, then recovers
            while True:
                probe.execute("SELECT 1")
                assert time.monotonic() < deadline, "the target did not crash"
                time.sleep(0.05)
        except psycopg.OperationalError:
            pass
        finally:
            probe.close()
        while _count(tgt, "SELECT 1") != 1:
            assert time.monotonic() < deadline, "the target did not come back"
            time.sleep(0.1)
        seen = writer.writes
        while writer.writes < seen + 50:
            assert writer.is_alive() and time.monotonic() < deadline
            time.sleep(0.05)
        wait_caught_up(run_cli, name)
        res = run_cli("replica", "promote", "--name", name)
        assert res.exit_code == 0, res.output
        writer.join(30)
    finally:
        writer.stop.set()
        writer.join(30)
    res = run_cli("verify", "--source", src, "--target", tgt)
    assert res.exit_code == 0, res.output
    res = run_cli("replica", "drop", "--name", name)
    assert res.exit_code == 0, res.output
    assert_source_clean(src, name)
    drop_database(src_server, src)
    drop_database(tgt_server, tgt)


@pytest.mark.slow
def test_realistic_database(logical: dict[str, LocalServer], run_cli: Run) -> None:
    """The realistic database (partitions, identity and generated columns,
    enums, domains, odd names, large objects, a trigger, a materialized
    view), 15 -> 18, written to while it replicates: verify finds nothing."""
    src_server, tgt_server = logical["15"], logical["18"]
    src = new_database(src_server, "rreal")
    generate(src, 20_000)
    tgt = new_database(tgt_server, "rdst")
    name = "real"
    res = run_cli(
        "replica",
        "create",
        "--source",
        src,
        "--target",
        tgt,
        "--name",
        name,
        "--replica-identity-full",
        "--quiet",
    )
    assert res.exit_code == 0, res.output
    with psycopg.connect(src, autocommit=True) as c:
        for i in range(200):
            with c.transaction():
                c.execute(
                    "INSERT INTO app.events VALUES (%s, 1, 'new', now(), %s, NULL)",
                    [1_000_000 + i, i],
                )
                c.execute("UPDATE app.events SET amount = -amount WHERE id = %s", [i + 1])
                c.execute("DELETE FROM app.events WHERE id = %s", [10_000 + i])
                c.execute(
                    "UPDATE app.orders SET note = NULL, status = 'paid' WHERE id = %s", [i + 1]
                )
                c.execute(
                    "INSERT INTO app.orders (user_id, total, placed_at) VALUES (1, %s, now())", [i]
                )
                c.execute("INSERT INTO sales.log VALUES ('streamed', now(), 1)")
                c.execute("DELETE FROM sales.log WHERE ctid = (SELECT min(ctid) FROM sales.log)")
                c.execute(
                    'UPDATE "Mixed Case"."Odd ""Table""" SET "select" = %s WHERE "Col A" = 1',
                    [str(i)],
                )
        c.execute("SELECT lo_from_bytea(0, 'written while streaming')")
        c.execute("SELECT nextval('app.invoice_no')")
    wait_caught_up(run_cli, name)
    res = run_cli("replica", "promote", "--name", name, "--verify", "full")
    assert res.exit_code == 0, res.output
    res = run_cli("verify", "--source", src, "--target", tgt)
    assert res.exit_code == 0, res.output
    res = run_cli("replica", "drop", "--name", name)
    assert res.exit_code == 0, res.output
    assert_source_clean(src, name)
    drop_database(src_server, src)
    drop_database(tgt_server, tgt)


def test_promote_without_blocking(logical: dict[str, LocalServer], run_cli: Run) -> None:
    server = logical["15"]
    src = make_source(server)
    tgt = new_database(server, "rdst")
    name = "noblock"
    res = run_cli(
        "replica",
        "create",
        "--source",
        src,
        "--target",
        tgt,
        "--name",
        name,
        "--exclude",
        "events",
        "--quiet",
    )
    assert res.exit_code == 0, res.output
    with psycopg.connect(src, autocommit=True) as c:
        c.execute("INSERT INTO orders (qty) SELECT g FROM generate_series(1, 100) g")
    with psycopg.connect(tgt, autocommit=True) as c:  # used on the target: kept
        c.execute("SELECT setval('tickets', 1000000)")
    res = run_cli("replica", "promote", "--name", name, "--no-block-writes", "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["write_unavailable_seconds"] is None and out["sessions_ended"] == 0
    assert [s[0] for s in out["steps"]] == [
        "wait for the target to apply",
        "sequences, large objects, materialized views",
        "verify row counts",
        "drop subscription, slot, publication, heartbeat",
    ]
    assert out["counts"]["public.orders"] == 20100
    assert rows(tgt, "SELECT last_value FROM tickets") == [(1000000,)]
    assert rows(tgt, "SELECT last_value FROM orders_id_seq") == [(20100,)]
    with psycopg.connect(src, autocommit=True) as c:  # never read-only
        c.execute("INSERT INTO orders (qty) VALUES (1)")
    assert rows(src, "SELECT count(*) FROM pg_replication_slots") == [(0,)]
    res = run_cli("replica", "drop", "--name", name)
    assert res.exit_code == 0, res.output
    assert "unblocked" not in res.stdout
    assert_source_clean(src, name)
    drop_database(server, src)
    drop_database(server, tgt)


def test_ctrl_c_during_promote_unblocks(logical: dict[str, LocalServer], run_cli: Run) -> None:
    server = logical["15"]
    src = make_source(server)
    tgt = new_database(server, "rdst")
    name = "sigint"
    res = run_cli(
        "replica",
        "create",
        "--source",
        src,
        "--target",
        tgt,
        "--name",
        name,
        "--exclude",
        "events",
        "--quiet",
    )
    assert res.exit_code == 0, res.output
    with psycopg.connect(tgt, autocommit=True) as c:  # promote will wait for apply
        c.execute("ALTER SUBSCRIPTION pgferry_sigint DISABLE")
    proc = _promote_proc(name)
    deadline = time.monotonic() + 60
    try:
        while _count(src, "SELECT n FROM pgferry_replica.heartbeat") < 1:  # blocked, waiting
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline
            time.sleep(0.01)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130
    assert err.decode().strip() == "error: interrupted"
    with psycopg.connect(src, autocommit=True) as c:  # writes unblocked on the way out
        c.execute("INSERT INTO orders (qty) VALUES (1)")
    with psycopg.connect(tgt, autocommit=True) as c:
        c.execute("ALTER SUBSCRIPTION pgferry_sigint ENABLE")
    st = wait_caught_up(run_cli, name)  # still a working replica
    assert st["stage"] == "streaming" and st["writes_blocked"] is False
    res = run_cli("replica", "drop", "--name", name)
    assert res.exit_code == 0, res.output
    assert_source_clean(src, name)
    drop_database(server, src)
    drop_database(server, tgt)


def test_verify_ignores_replica_publications(logical: dict[str, LocalServer], run_cli: Run) -> None:
    """A live replica's publication (on its source) and the way back's (on the
    new primary after promote --reverse) are pgferry's plumbing, known by the
    slot of the same name: never a difference.  A publication only named like
    one, or whose slot is gone, is still compared."""
    server = logical["15"]
    src, dst = new_database(server, "vpsrc"), new_database(server, "vpdst")
    slots = []
    try:
        for url in (src, dst):
            rows(url, "CREATE TABLE t (id int PRIMARY KEY)")
        rows(src, "CREATE PUBLICATION pgferry_r1 FOR TABLE t")
        rows(dst, "CREATE PUBLICATION pgferry_r1_back FOR TABLE t")
        for url, slot in ((src, "pgferry_r1"), (dst, "pgferry_r1_back")):
            rows(url, f"SELECT pg_create_logical_replication_slot('{slot}', 'pgoutput')")
            slots.append((url, slot))
        res = run_cli("verify", "--source", src, "--target", dst)
        assert (res.exit_code, res.stdout) == (0, "ok: 8 objects identical\n")
        rows(dst, "CREATE PUBLICATION pgferry_ghost_back FOR TABLE t")
        rows(src, "SELECT pg_drop_replication_slot('pgferry_r1')")
        slots.pop(0)
        res = run_cli("verify", "--source", src, "--target", dst)
        assert res.exit_code == 1
        missing = "-".rjust(12) * 2 + "  missing on "
        assert res.stdout.splitlines()[1:] == [
            "publication pgferry_ghost_back".ljust(44) + missing + "source",
            "publication pgferry_r1".ljust(44) + missing + "target",
            "2 of 10 objects differ",
        ]
    finally:
        for url, slot in slots:
            rows(url, f"SELECT pg_drop_replication_slot('{slot}')")
        drop_database(server, src)
        drop_database(server, dst)


def test_check_names_unreadable_tables(logical: dict[str, LocalServer], run_cli: Run) -> None:
    """A source role with REPLICATION that cannot read a table: a blocker
    naming it, before any slot or publication exists."""
    server = logical["15"]
    src, tgt = new_database(server, "rsrc"), new_database(server, "rdst")
    rows(
        src,
        "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'rp_reader')"
        " THEN CREATE ROLE rp_reader LOGIN REPLICATION; END IF; END $$;"
        ' CREATE TABLE open_t (id int PRIMARY KEY); CREATE TABLE "Hidden T" (id int PRIMARY KEY);'
        " GRANT SELECT ON open_t TO rp_reader;"
        " CREATE TABLE tenants (id int PRIMARY KEY, t text); GRANT SELECT ON tenants TO rp_reader;"
        " ALTER TABLE tenants ENABLE ROW LEVEL SECURITY;"
        " CREATE POLICY mine ON tenants USING (t = current_user)",
    )
    dbname = src.rsplit("/", 1)[1].split("?", 1)[0]
    reader = server.conninfo(dbname, user="rp_reader")
    try:
        res = run_cli("replica", "create", "--source", reader, "--target", tgt, "--check")
        assert res.exit_code == 1
        assert (
            "blocker: the source role cannot read 1 table(s): public.Hidden T; GRANT SELECT on"
            " them, or leave them out with --exclude"
        ) in res.stdout
        assert (
            "blocker: row-level security policies would hide rows of 1 table(s) from the source"
            " role: public.tenants; read the source as a superuser or a role with BYPASSRLS,"
            " or leave them out with --exclude"
        ) in res.stdout
        assert rows(src, "SELECT count(*) FROM pg_replication_slots") == [(0,)]
        assert rows(src, "SELECT count(*) FROM pg_publication") == [(0,)]
    finally:
        drop_database(server, src)
        drop_database(server, tgt)


def test_check_refuses_an_older_target(logical: dict[str, LocalServer], run_cli: Run) -> None:
    src, tgt = new_database(logical["18"], "rsrc"), new_database(logical["15"], "rdst")
    try:
        rows(src, "CREATE TABLE t (id int PRIMARY KEY)")
        res = run_cli("replica", "create", "--source", src, "--target", tgt, "--check")
        assert res.exit_code == 1
        assert (
            "blocker: the target runs PostgreSQL 15, older than the source (18): a schema"
            " cannot be restored into an older major version"
        ) in res.stdout
        assert rows(src, "SELECT count(*) FROM pg_replication_slots") == [(0,)]
    finally:
        drop_database(logical["18"], src)
        drop_database(logical["15"], tgt)


def test_a_table_without_columns_is_not_drift(
    logical: dict[str, LocalServer], run_cli: Run
) -> None:
    """A zero-column table looked dropped on the source (its columns were
    how the drift check saw a table), so status exited 1 on a healthy replica."""
    server = logical["15"]
    src, tgt = new_database(server, "rsrc"), new_database(server, "rdst")
    name = "nocols"
    try:
        rows(src, 'CREATE TABLE t (id int PRIMARY KEY); CREATE TABLE "no cols" ()')
        rows(src, 'INSERT INTO t VALUES (1); INSERT INTO "no cols" DEFAULT VALUES')
        res = run_cli(
            "replica", "create", "--source", src, "--target", tgt, "--name", name,
            "--replica-identity-full", "--quiet",
        )  # fmt: skip
        assert res.exit_code == 0, res.output
        st = wait_caught_up(run_cli, name)
        assert st["drift"] == []
        res = run_cli("replica", "status", "--name", name)
        assert res.exit_code == 0, res.output
        assert rows(tgt, 'SELECT count(*) FROM "no cols"') == [(1,)]
    finally:
        run_cli("replica", "drop", "--name", name)
        drop_database(server, src)
        drop_database(server, tgt)
