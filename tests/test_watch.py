"""`pgferry watch` and `pgferry files` against real SeaweedFS and PostgreSQL."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

PGFERRY = str(Path(sys.executable).parent / "pgferry")
CSV = ["--options", "(format csv)"]
# the endpoints' token (ingest/auth.py), as a sender and a scraper present it
TOKEN = "watch-test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture()
def env(s3: Any, db: str) -> dict[str, str]:
    """The test S3 and target, and nothing else from the AWS or libpq environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "PG", "DATABASE_URL"))}
    env.update(
        s3.env(),
        AWS_CONFIG_FILE="/nonexistent",
        AWS_SHARED_CREDENTIALS_FILE="/nonexistent",
        AWS_EC2_METADATA_DISABLED="true",
        PGFERRY_TARGET=db,
        PGFERRY_NOTIFY_TOKEN=TOKEN,
        PGFERRY_METRICS_TOKEN=TOKEN,
    )
    return env


def run(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PGFERRY, *args], capture_output=True, text=True, env=env, timeout=timeout
    )


def start(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [PGFERRY, *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def put(s3client: Any, bucket: str, key: str, lines: list[str]) -> str:
    """Upload and return the object's ETag (without quotes)."""
    resp = s3client.put_object(Bucket=bucket, Key=key, Body="".join(x + "\n" for x in lines))
    return str(resp["ETag"]).strip('"')


def rows_for(key: str, n: int, tag: str = "v1") -> list[str]:
    return [f"{key},{tag},{i}" for i in range(n)]


def ledger(conn: psycopg.Connection[Any]) -> dict[tuple[str, str], tuple[str, int | None]]:
    got = conn.execute("SELECT key, etag, status, row_count FROM pgferry.watch_files").fetchall()
    return {(k, e): (s, r) for k, e, s, r in got}


def wait_for(check: Callable[[], bool], timeout: float = 60, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


@pytest.mark.parametrize("batch", ["1", "5"])
def test_once_loads_each_object_once(conn, env, s3client, bucket, batch: str) -> None:
    conn.execute("CREATE TABLE t (obj text, tag text, n int)")
    for i in range(20):
        put(s3client, bucket, f"in/{i:03}.csv", rows_for(f"in/{i:03}.csv", i + 1))
    put(s3client, bucket, "in/skip.txt", ["not,a,match"])  # --pattern leaves it out
    put(s3client, bucket, "in/sub/", [])  # a folder marker
    put(s3client, bucket, "other/x.csv", ["out,side,1"])  # outside the prefix
    args = ["watch", f"s3://{bucket}/in/", "--table", "t", "--pattern", "*.csv", *CSV]
    p = run(env, *args, "--once", "--workers", "3", "--batch", batch)
    assert p.returncode == 0, p.stderr
    assert p.stderr.strip().splitlines()[-1] == "20 objects loaded (210 rows), 0 failed"
    assert conn.execute("SELECT count(*), count(DISTINCT (obj, n)) FROM t").fetchone() == (
        210,
        210,
    )
    assert conn.execute("SELECT count(DISTINCT obj) FROM t WHERE obj LIKE 'in/%'").fetchone() == (
        20,
    )
    entries = ledger(conn)
    assert len(entries) == 20
    assert {s for s, _ in entries.values()} == {"loaded"}
    # a second run finds nothing new
    p = run(env, *args, "--once")
    assert p.returncode == 0, p.stderr
    assert p.stderr.strip().splitlines()[-1] == "0 objects loaded (0 rows), 0 failed"
    assert conn.execute("SELECT count(*) FROM t").fetchone() == (210,)


@pytest.mark.parametrize(
    ("on_change", "status", "rows"),
    [("reload", "loaded", 5), ("skip", "skipped", 2), ("error", "failed", 2)],
)
def test_overwrite_handled_per_on_change(
    conn, env, s3client, bucket, on_change: str, status: str, rows: int
) -> None:
    conn.execute("CREATE TABLE t (obj text, tag text, n int)")
    first = put(s3client, bucket, "a.csv", rows_for("a", 2, "v1"))
    args = ["watch", f"s3://{bucket}/", "-t", "t", *CSV, "--once", "--on-change", on_change]
    assert run(env, *args).returncode == 0
    second = put(s3client, bucket, "a.csv", rows_for("a", 3, "v2"))
    p = run(env, *args)
    assert p.returncode == (1 if on_change == "error" else 0), p.stderr
    assert ledger(conn) == {
        ("a.csv", first): ("loaded", 2),
        ("a.csv", second): (status, 3 if status == "loaded" else None),
    }
    assert conn.execute("SELECT count(*) FROM t").fetchone() == (rows,)
    if on_change != "reload":
        # the operator decides: retry loads the new version
        p = run(env, "files", "retry", f"s3://{bucket}/a.csv")
        assert p.returncode == 0, p.stderr
        assert p.stdout == f"pending: s3://{bucket}/a.csv (t)\n"
        assert run(env, *args).returncode == 0
        assert conn.execute("SELECT count(*) FROM t WHERE tag = 'v2'").fetchone() == (3,)


def test_version_replaced_before_load_is_superseded(conn, env, s3client, bucket) -> None:
    """A listed version that is overwritten before it is read is never loaded
    (If-Match on the listed ETag); the new version is."""
    from pgferry.ingest import ledger as led
    from pgferry.ingest.discover import Prefix, list_objects

    conn.execute("CREATE TABLE t (obj text, tag text, n int)")
    old = put(s3client, bucket, "a.csv", rows_for("a", 2, "old"))
    with psycopg.connect(env["PGFERRY_TARGET"], autocommit=True) as c:
        led.ensure(c)
        led.record(c, "t", bucket, list_objects(s3client, Prefix(bucket, ""), None), "reload")
    new = put(s3client, bucket, "a.csv", rows_for("a", 4, "new"))
    p = run(env, "watch", f"s3://{bucket}/", "-t", "t", *CSV, "--once")
    assert p.returncode == 0, p.stderr
    assert ledger(conn) == {("a.csv", old): ("superseded", None), ("a.csv", new): ("loaded", 4)}
    assert conn.execute("SELECT tag, count(*) FROM t GROUP BY tag").fetchall() == [("new", 4)]


def test_failed_object_then_retry_after_fix(conn, env, s3client, bucket) -> None:
    conn.execute("CREATE TABLE t (obj text, tag text)")  # one column short for b.csv
    put(s3client, bucket, "a.csv", ["a,x"])
    etag = put(s3client, bucket, "b.csv", ["b,x,1", "b,x,2"])
    put(s3client, bucket, "c.csv", ["c,x"])
    args = ["watch", f"s3://{bucket}/", "-t", "t", *CSV, "--once"]
    p = run(env, *args)
    assert p.returncode == 1
    assert p.stderr.strip().splitlines()[-1] == "2 objects loaded (2 rows), 1 failed"
    p = run(env, "files", "list", "--status", "failed", "--json")
    assert p.returncode == 0, p.stderr
    (entry,) = json.loads(p.stdout)["files"]
    assert (entry["key"], entry["etag"], entry["status"], entry["attempts"]) == (
        "b.csv",
        etag,
        "failed",
        1,
    )
    assert "extra data after last expected column" in entry["last_error"]
    p = run(env, "files", "retry", "nope.csv")
    assert p.returncode == 1
    assert p.stderr == (
        "error: no failed or skipped version of 'nope.csv' in the watch ledger; "
        "see pgferry files list (keys are written without s3://bucket/)\n"
    )
    conn.execute("ALTER TABLE t ADD COLUMN n int")
    p = run(env, "files", "retry", "b.csv")
    assert (p.returncode, p.stdout) == (0, f"pending: s3://{bucket}/b.csv (t)\n")
    p = run(env, *args)
    assert p.returncode == 0, p.stderr
    assert conn.execute("SELECT obj, n FROM t WHERE n IS NOT NULL ORDER BY n").fetchall() == [
        ("b", 1),
        ("b", 2),
    ]
    assert ledger(conn)[("b.csv", etag)] == ("loaded", 2)
    status = json.loads(run(env, "watch", "status", "--json").stdout)["pipelines"]
    assert [(s["pipeline"], s["loaded"], s["failed"], s["pending"]) for s in status] == [
        ("t", 3, 0, 0)
    ]


def test_batch_without_savepoints_isolates_a_failing_object(conn, env, s3client, bucket) -> None:
    """A batch is first loaded with no savepoint per object; a bad row
    aborts it, and the batch is redone one savepoint per object: the good
    objects load once, the bad one fails after one counted attempt, an object
    refused before its COPY (a zip, sorting first) and a version replaced
    before it was read are recorded and counted once, not once per pass."""
    from pgferry.ingest import ledger as led
    from pgferry.ingest.discover import Prefix, list_objects

    conn.execute("CREATE TABLE t (obj text, tag text, n int)")
    for i in range(12):
        put(s3client, bucket, f"{i:02}.csv", rows_for(f"{i:02}", i + 1))
    zipped = s3client.put_object(Bucket=bucket, Key="03z.csv", Body=b"PK\x03\x04" + b"\0" * 64)
    bad = put(s3client, bucket, "05b.csv", ["05b,x,notanumber"])
    old = put(s3client, bucket, "07b.csv", rows_for("07b", 3, "old"))
    with psycopg.connect(env["PGFERRY_TARGET"], autocommit=True) as c:
        led.ensure(c)
        led.record(c, "t", bucket, list_objects(s3client, Prefix(bucket, ""), None), "reload")
    new = put(s3client, bucket, "07b.csv", rows_for("07b", 4, "new"))
    p = run(env, "watch", f"s3://{bucket}/", "-t", "t", *CSV, "--once", "--batch", "20")
    assert p.returncode == 1, p.stderr
    assert p.stderr.strip().splitlines()[-1] == "13 objects loaded (82 rows), 2 failed"
    assert p.stderr.count("failed after 1 attempt(s)") == 2
    assert conn.execute("SELECT count(*), count(DISTINCT (obj, n)) FROM t").fetchone() == (82, 82)
    got = conn.execute(
        "SELECT key, etag, status, attempts FROM pgferry.watch_files WHERE key ~ '[bz][.]csv'"
        " ORDER BY key, status"
    ).fetchall()
    assert got == [
        ("03z.csv", zipped["ETag"].strip('"'), "failed", 1),
        ("05b.csv", bad, "failed", 1),
        ("07b.csv", new, "loaded", 1),
        ("07b.csv", old, "superseded", 1),
    ]
    assert conn.execute(
        "SELECT count(*) FROM pgferry.watch_files WHERE status = 'loaded' AND attempts = 1"
    ).fetchone() == (13,)


def test_full_sweeps_are_spaced_by_their_own_cost(s3client, bucket) -> None:
    """A full listing is not repeated sooner than ten times what it took
    (bounded listing cost on a large prefix), and between sweeps a listing
    starts after the highest key: nothing new costs one empty request."""
    from pgferry.ingest.discover import SWEEP_SHARE, Lister, Prefix

    for i in range(30):
        put(s3client, bucket, f"{i:03}.csv", ["x"])
    lister = Lister(s3client, Prefix(bucket, ""), None, full_sweep=0.0)
    assert len(lister.listing()) == 30
    assert lister.last_full_seconds > 0
    assert lister.full_every == SWEEP_SHARE * lister.last_full_seconds
    assert not lister.due_full()  # --full-sweep 0 alone would sweep every time
    assert lister.listing() == []  # StartAfter the highest key: nothing new
    put(s3client, bucket, "030.csv", ["x"])
    put(s3client, bucket, "000-late.csv", ["x"])  # sorts first: only a sweep finds it
    assert [o.key for o in lister.listing()] == ["030.csv"]
    assert [o.key for o in lister.listing(full=True)][:2] == ["000-late.csv", "000.csv"]


def test_compressed_small_objects_fetched_ahead_are_decompressed(
    conn, env, s3client, bucket
) -> None:
    """Small objects read with one GET ahead of their load are decompressed
    like any import: by their magic bytes, or by their Content-Encoding."""
    import gzip

    conn.execute("CREATE TABLE t (obj text, tag text, n int)")
    body = "".join(x + "\n" for x in rows_for("a", 3)).encode()
    s3client.put_object(Bucket=bucket, Key="a.csv.gz", Body=gzip.compress(body))
    body = "".join(x + "\n" for x in rows_for("b", 4)).encode()
    s3client.put_object(
        Bucket=bucket, Key="b.csv", Body=gzip.compress(body), ContentEncoding="gzip"
    )
    put(s3client, bucket, "c.csv", rows_for("c", 5))
    p = run(env, "watch", f"s3://{bucket}/", "-t", "t", *CSV, "--once")
    assert p.returncode == 0, p.stderr
    assert p.stderr.strip().splitlines()[-1] == "3 objects loaded (12 rows), 0 failed"
    assert conn.execute("SELECT obj, count(*) FROM t GROUP BY obj ORDER BY obj").fetchall() == [
        ("a", 3),
        ("b", 4),
        ("c", 5),
    ]


def test_files_skip(conn, env, s3client, bucket) -> None:
    conn.execute("CREATE TABLE t (obj text, tag text, n int)")
    put(s3client, bucket, "bad.csv", ["x,y,notanumber"])
    args = ["watch", f"s3://{bucket}/", "-t", "t", *CSV, "--once"]
    assert run(env, *args).returncode == 1
    p = run(env, "files", "skip", "bad.csv")
    assert (p.returncode, p.stdout) == (0, f"skipped: s3://{bucket}/bad.csv (t)\n")
    assert run(env, *args).returncode == 0
    assert [s for s, _ in ledger(conn).values()] == ["skipped"]


def test_late_key_sorting_first_is_found(conn, env, s3client, bucket) -> None:
    """Listings between full sweeps start after the highest key seen; the
    full sweep still finds a key that lands late and sorts first."""
    conn.execute("CREATE TABLE t (obj text, tag text, n int)")
    put(s3client, bucket, "2024/05.csv", rows_for("05", 1))
    w = start(env, "watch", f"s3://{bucket}/", "-t", "t", *CSV, "--interval", "100ms",
              "--full-sweep", "1s")  # fmt: skip
    try:
        wait_for(lambda: _count(conn) == 1, what="the first object")
        put(s3client, bucket, "2024/09.csv", rows_for("09", 2))
        wait_for(lambda: _count(conn) == 3, what="a key sorting last")
        put(s3client, bucket, "2024/01.csv", rows_for("01", 4))
        wait_for(lambda: _count(conn) == 7, what="a late key sorting first")
    finally:
        w.send_signal(signal.SIGTERM)
        _, err = w.communicate(timeout=30)
    assert w.returncode == 0, err
    assert {s for s, _ in ledger(conn).values()} == {"loaded"}


def test_sigterm_mid_object_commits_it_and_exits_0(conn, env, s3client, bucket) -> None:
    conn.execute("CREATE TABLE t (obj text, tag text, n int)")
    big = 600_000
    put(s3client, bucket, "a-big.csv", rows_for("big", big))
    put(s3client, bucket, "b-small.csv", rows_for("small", 3))
    w = start(env, "watch", f"s3://{bucket}/", "-t", "t", *CSV, "--interval", "100ms")

    def copying() -> bool:
        got = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'COPY%%' "
            "AND datname = current_database()"
        ).fetchone()
        return bool(got and got[0])

    wait_for(copying, what="the COPY of the big object")
    from pgferry.ingest import ledger as led

    (status,) = led.status(conn)  # in-process: the CLI may start after the load
    assert {k: status[k] for k in ("pipeline", "pending", "loading", "loaded", "failed")} == {
        "pipeline": "t",
        "pending": 1,
        "loading": 1,
        "loaded": 0,
        "failed": 0,
    }
    assert status["oldest_pending_seconds"] >= 0
    w.send_signal(signal.SIGTERM)
    _, err = w.communicate(timeout=60)
    assert w.returncode == 0, err
    assert "stopping after the objects in flight" in err
    entries = ledger(conn)
    # the object in flight committed whole, with its ledger row; nothing else started
    assert entries[next(k for k in entries if k[0] == "a-big.csv")] == ("loaded", big)
    assert entries[next(k for k in entries if k[0] == "b-small.csv")] == ("pending", None)
    assert _count(conn) == big
    text = run(env, "watch", "status").stdout
    assert text.startswith(
        "t: 1 pending, 0 loading, 1 loaded, 0 failed, 0 skipped; oldest pending "
    )


def test_usage_errors(env, bucket) -> None:
    p = run(env, "watch", "/tmp/x", "-t", "t", "--once")
    assert (p.returncode, p.stderr) == (
        2,
        "error: '/tmp/x' is not an S3 prefix; write it as s3://bucket/prefix/ (or s3://bucket/)\n",
    )
    p = run(env, "watch", f"s3://{bucket}/", "-t", "t", "--interval", "soon")
    assert (p.returncode, p.stderr) == (
        2,
        "error: cannot read --interval 'soon'; write it like 500ms, 5s, 2m or 1h\n",
    )
    p = run(env, "files", "retry")
    assert p.returncode == 2
    assert p.stderr.startswith("error: give a KEY or --all-failed (one of them)")


def _count(conn: psycopg.Connection[Any]) -> int:
    got = conn.execute("SELECT count(*) FROM t").fetchone()
    return int(got[0]) if got else 0


@pytest.mark.slow
@pytest.mark.parametrize("pgserver", ["15"], indirect=True)
def test_kill_9_of_three_watchers_loads_every_version_exactly_once(
    conn, env, s3client, bucket
) -> None:
    """Three watchers share one prefix while objects land, some are
    overwritten and some late keys sort before loaded ones; notifications are
    sent for most objects (some twice, to different watchers; some dropped);
    watchers are killed with SIGKILL at random moments and restarted. In the end every
    object version is loaded at most once, each key's last version exactly
    once, and the table holds exactly the rows of the loaded versions."""
    import random

    from pgferry.embedded import free_port

    rng = random.Random(10)
    ports = [free_port() for _ in range(3)]
    delivered: list[str] = []
    objects, kills = 1000, 20
    conn.execute("CREATE TABLE t (obj text, tag text, n int)")
    versions: dict[tuple[str, str], tuple[str, int]] = {}  # (key, etag) -> (tag, rows)
    latest: dict[str, str] = {}

    def upload(key: str) -> None:
        tag = f"v{len(versions)}"
        n = rng.randint(1, 30)
        etag = put(s3client, bucket, key, rows_for(key, n, tag))
        versions[(key, etag)] = (tag, n)
        latest[key] = etag
        chance = rng.random()  # < 0.2: the notification is lost; > 0.6: it comes twice
        for _ in range(0 if chance < 0.2 else 1 if chance < 0.6 else 2):
            hook = {"event_type": "create", "key": f"/buckets/{bucket}/{key}"}
            with contextlib.suppress(OSError):  # that watcher is restarting: lost too
                _post(ports[rng.randrange(3)], hook)
                delivered.append(key)

    args = ["watch", f"s3://{bucket}/", "-t", "t", *CSV, "--workers", "2",
            "--interval", "500ms", "--full-sweep", "1s", "--retry-delay", "100ms",
            "--batch", "4"]  # fmt: skip

    def launch(i: int) -> subprocess.Popen[str]:
        return start(env, *args, "--notify-listen", f"127.0.0.1:{ports[i]}")

    watchers = [launch(i) for i in range(3)]
    done_kills = 0
    next_kill = time.monotonic() + rng.uniform(0.3, 1.5)
    keys = [f"m/{i:05}.csv" for i in range(100, 100 + objects)]
    rng.shuffle(keys)
    try:
        for i, key in enumerate(keys):
            upload(key)
            if i % 40 == 0:  # an overwrite of an earlier key, and a late key sorting first
                upload(rng.choice(list(latest)))
                upload(f"m/{i // 40:05}.csv")
            if time.monotonic() >= next_kill and done_kills < kills:
                victim = rng.randrange(3)
                watchers[victim].kill()
                watchers[victim].communicate()
                watchers[victim] = launch(victim)
                done_kills += 1
                next_kill = time.monotonic() + rng.uniform(0.3, 1.5)
        while done_kills < kills:  # the rest of the kills while the backlog drains
            time.sleep(rng.uniform(0.3, 1.5))
            victim = rng.randrange(3)
            watchers[victim].kill()
            watchers[victim].communicate()
            watchers[victim] = launch(victim)
            done_kills += 1

        def drained() -> bool:
            got = ledger(conn)
            return all(got.get((k, e), ("", None))[0] == "loaded" for k, e in latest.items())

        wait_for(drained, timeout=600, what="every last version loaded")
    finally:
        for port, w in zip(ports, watchers, strict=True):
            # one restarted a moment ago takes SIGTERM as a clean stop only once its
            # handler is set, which is before its endpoint listens
            with contextlib.suppress(AssertionError):
                wait_for(lambda w=w, port=port: w.poll() is not None or _listening(port), 30)
            w.send_signal(signal.SIGTERM)
        codes = [w.wait(60) for w in watchers]
        for w in watchers:
            w.communicate()
    assert codes == [0, 0, 0]
    got = ledger(conn)
    loaded = {v: got[v][1] for v in got if got[v][0] == "loaded"}
    assert set(got) <= set(versions)
    assert {s for s, _ in got.values()} <= {"loaded", "superseded"}
    for v, n in loaded.items():
        assert n == versions[v][1], v
    in_table = dict(
        ((k, tag), int(c))
        for k, tag, c in conn.execute("SELECT obj, tag, count(*) FROM t GROUP BY 1, 2")
    )
    expected = {(k, versions[(k, e)][0]): n for (k, e), n in loaded.items()}
    assert in_table == expected
    assert conn.execute("SELECT count(*) = count(DISTINCT (obj, tag, n)) FROM t").fetchone() == (
        True,
    )
    assert len(latest) == objects + len(keys[::40])
    # notifications did arrive (many are refused by watchers restarting), duplicates among them
    assert len(delivered) > objects // 4
    assert len(delivered) - len(set(delivered)) > 10


@pytest.mark.slow
@pytest.mark.parametrize("pgserver", ["15"], indirect=True)  # its own server, once
def test_target_restart_mid_run_loses_nothing_and_loads_nothing_twice(
    env, s3client, bucket
) -> None:
    """An immediate (crash) stop of PostgreSQL while two workers load: the
    watcher reconnects and every object is loaded exactly once."""
    from tests.services import FAST, postgres

    server = postgres("15")
    try:
        target = server.conninfo()
        env = dict(env, PGFERRY_TARGET=target)
        with psycopg.connect(target, autocommit=True) as c:
            c.execute("CREATE TABLE t (obj text, tag text, n int)")
        for i in range(150):
            put(s3client, bucket, f"{i:04}.csv", rows_for(f"{i:04}", 50))
        w = start(env, "watch", f"s3://{bucket}/", "-t", "t", *CSV, "--workers", "2",
                  "--interval", "100ms")  # fmt: skip

        def loaded(at_least: int) -> Callable[[], bool]:
            def check() -> bool:
                try:
                    with psycopg.connect(target, autocommit=True) as c:
                        got = c.execute(
                            "SELECT count(*) FROM pgferry.watch_files WHERE status = 'loaded'"
                        ).fetchone()
                        return bool(got and got[0] >= at_least)
                except psycopg.Error:
                    return False

            return check

        try:
            wait_for(loaded(10), what="the first objects")
            server.stop("immediate")
            time.sleep(1)  # the watcher notices while the server is down
            server.start(FAST)
            for i in range(150, 200):
                put(s3client, bucket, f"{i:04}.csv", rows_for(f"{i:04}", 50))
            wait_for(loaded(200), timeout=120, what="every object after the restart")
        finally:
            w.send_signal(signal.SIGTERM)
            _, err = w.communicate(timeout=60)
        assert w.returncode == 0, err
        assert "target connection lost, reconnecting" in err
        with psycopg.connect(target, autocommit=True) as c:
            assert c.execute("SELECT count(*), count(DISTINCT (obj, n)) FROM t").fetchone() == (
                10_000,
                10_000,
            )
            assert ledger(c) and {s for s, _ in ledger(c).values()} == {"loaded"}
    finally:
        server.destroy()


@pytest.mark.slow
@pytest.mark.parametrize("pgserver", ["15"], indirect=True)
def test_s3_restart_mid_run_loses_nothing_and_loads_nothing_twice(conn, env) -> None:
    """SeaweedFS killed (SIGKILL) while the watcher runs, with versions
    pending, down for longer than --max-attempts would allow an object, then
    started again on its data: the watcher says it is waiting, keeps running,
    counts no attempt against the objects, and loads every one exactly once.
    A private S3 server: the session's is shared by other tests."""
    from pgferry.ingest import ledger as led
    from tests.services import SeaweedS3

    s3 = SeaweedS3().start()
    try:
        client = s3.client()
        client.create_bucket(Bucket="restart")
        env = dict(env, **s3.env())
        conn.execute("CREATE TABLE t (obj text, tag text, n int)")
        for i in range(100):
            put(client, "restart", f"{i:04}.csv", rows_for(f"{i:04}", 50))
        w = start(env, "watch", "s3://restart/", "-t", "t", *CSV, "--pattern", "*.csv",
                  "--workers", "2", "--batch", "5", "--interval", "200ms",
                  "--retry-delay", "200ms", "--max-attempts", "2")  # fmt: skip

        def loaded(at_least: int) -> Callable[[], bool]:
            def check() -> bool:
                got = conn.execute(
                    "SELECT count(*) FROM pgferry.watch_files WHERE status = 'loaded'"
                ).fetchone()
                return bool(got and got[0] >= at_least)

            return check

        try:
            wait_for(lambda: _ledger_exists(conn) and loaded(100)(), what="the first objects")
            # versions the listing never shows (*.dat), recorded once S3 is down:
            # the workers are sure to meet the outage with work in hand
            late = [
                led.Listed(f"{i:04}.dat", put(client, "restart", f"{i:04}.dat", rows), len(body))
                for i in range(100, 150)
                for rows in [rows_for(f"{i:04}", 50)]
                for body in ["".join(x + "\n" for x in rows).encode()]
            ]
            s3.crash()
            led.record(conn, "t", "restart", late, "reload")
            time.sleep(3)  # listings and GETs fail meanwhile
            assert w.poll() is None, "the watcher must keep running while S3 is down"
            assert conn.execute(
                "SELECT count(*), max(attempts) FROM pgferry.watch_files WHERE status = 'pending'"
            ).fetchone() == (50, 0)
            s3.start()
            wait_for(loaded(150), timeout=120, what="every object after the restart")
        finally:
            w.send_signal(signal.SIGTERM)
            _, err = w.communicate(timeout=60)
        assert w.returncode == 0, err
        assert "listing s3://restart/ failed, retrying: " in err
        assert "warning: S3 unreachable, trying again in " in err
        assert conn.execute("SELECT count(*), count(DISTINCT (obj, n)) FROM t").fetchone() == (
            7_500,
            7_500,
        )
        assert {s for s, _ in ledger(conn).values()} == {"loaded"}
        assert len(ledger(conn)) == 150
        assert conn.execute("SELECT max(attempts) FROM pgferry.watch_files").fetchone() == (1,)
    finally:
        s3.stop()


def _post(port: int, doc: Any, auth: dict[str, str] = AUTH) -> int:
    import urllib.request

    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/",
        data=json.dumps(doc).encode(),
        headers={"Content-Type": "application/json", **auth},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 (loopback test)
        return int(resp.status)


def _scrape(port: int) -> urllib.request.Request:
    return urllib.request.Request(f"http://127.0.0.1:{port}/metrics", headers=AUTH)


def test_notifications_load_before_the_next_listing(conn, env, s3client, bucket) -> None:
    """Listings every hour: only the notifications (SNS-wrapped S3 events and
    SeaweedFS filer webhooks) bring the objects in; duplicates change nothing,
    keys outside the prefix or gone are ignored."""
    from pgferry.embedded import free_port

    conn.execute("CREATE TABLE t (obj text, tag text, n int)")
    port = free_port()
    w = start(env, "watch", f"s3://{bucket}/in/", "-t", "t", *CSV, "--interval", "1h",
              "--notify-listen", f"127.0.0.1:{port}")  # fmt: skip
    try:
        wait_for(lambda: _listening(port), what="the notification endpoint")
        wait_for(lambda: _ledger_exists(conn), what="the first listing")
        put(s3client, bucket, "in/a b.csv", rows_for("a", 2))
        obj = {"bucket": {"name": bucket}, "object": {"key": "in/a+b.csv"}}
        event = {"Records": [{"eventName": "ObjectCreated:Put", "s3": obj}]}
        sns = {"Type": "Notification", "Message": json.dumps(event)}
        assert _post(port, sns) == 200
        wait_for(lambda: _count(conn) == 2, timeout=20, what="the SNS-notified object")
        assert _post(port, sns) == 200  # a duplicate
        put(s3client, bucket, "in/c.csv", rows_for("c", 3))
        put(s3client, bucket, "out/d.csv", rows_for("d", 5))
        for key in ("in/c.csv", "out/d.csv", "in/never.csv"):
            hook = {"event_type": "create", "key": f"/buckets/{bucket}/{key}", "new_entry": {}}
            assert _post(port, hook) == 200
        wait_for(lambda: _count(conn) == 5, timeout=20, what="the webhook-notified object")
        time.sleep(0.5)  # time for a wrongly recorded key to show up
    finally:
        w.send_signal(signal.SIGTERM)
        _, err = w.communicate(timeout=30)
    assert w.returncode == 0, err
    assert sorted((k, s, r) for (k, _), (s, r) in ledger(conn).items()) == [
        ("in/a b.csv", "loaded", 2),
        ("in/c.csv", "loaded", 3),
    ]


def _listening(port: int) -> bool:
    import socket

    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _ledger_exists(conn: psycopg.Connection[Any]) -> bool:
    got = conn.execute("SELECT to_regclass('pgferry.watch_files') IS NOT NULL").fetchone()
    return bool(got and got[0])


def test_transient_failure_retried_then_failed_then_retried(conn, env, s3client, bucket) -> None:
    """A COPY canceled by statement_timeout (the table is locked) is transient:
    retried with backoff, `failed` after --max-attempts, loaded after
    `files retry` once the lock is gone."""
    conn.execute("CREATE TABLE t (obj text, tag text, n int)")
    etag = put(s3client, bucket, "a.csv", rows_for("a", 4))
    args = ["watch", f"s3://{bucket}/", "-t", "t", *CSV, "--once", "--retry-delay", "100ms"]
    slow = dict(env, PGOPTIONS="-c statement_timeout=500ms")
    with psycopg.connect(env["PGFERRY_TARGET"]) as holder:
        holder.execute("LOCK TABLE t IN ACCESS EXCLUSIVE MODE")
        p = run(slow, *args, "--max-attempts", "3")
        assert p.returncode == 1, p.stderr
        assert "a.csv: attempt 1 failed, retrying in" in p.stderr
        assert "a.csv: attempt 2 failed, retrying in" in p.stderr
        assert p.stderr.strip().splitlines()[-1] == "0 objects loaded (0 rows), 1 failed"
        got = conn.execute("SELECT status, attempts, last_error FROM pgferry.watch_files")
        ((status, attempts, error),) = got.fetchall()
        assert (status, attempts) == ("failed", 3)
        assert "canceling statement due to statement timeout" in error
        p = run(env, "files", "retry", "--all-failed")
        assert (p.returncode, p.stdout) == (0, f"pending: s3://{bucket}/a.csv (t)\n")
        holder.rollback()
    p = run(slow, *args)
    assert p.returncode == 0, p.stderr
    assert ledger(conn) == {("a.csv", etag): ("loaded", 4)}
    assert conn.execute("SELECT attempts FROM pgferry.watch_files").fetchone() == (1,)


def test_metrics(conn, env, s3client, bucket) -> None:
    import urllib.request

    from pgferry.embedded import free_port

    conn.execute("CREATE TABLE t (obj text, tag text, n int)")
    put(s3client, bucket, "a.csv", rows_for("a", 2))
    put(s3client, bucket, "b.csv", rows_for("b", 3))
    put(s3client, bucket, "c.csv", ["c,x,notanumber"])
    port = free_port()
    w = start(env, "watch", f"s3://{bucket}/", "-t", "t", *CSV, "--interval", "100ms",
              "--metrics", f"127.0.0.1:{port}")  # fmt: skip
    try:
        wait_for(lambda: _count(conn) == 5, what="the good objects")
        wait_for(lambda: "failed" in {s for s, _ in ledger(conn).values()}, what="the bad one")
        with urllib.request.urlopen(_scrape(port), timeout=10) as resp:  # noqa: S310 (loopback)
            text = resp.read().decode()
    finally:
        w.send_signal(signal.SIGTERM)
        _, err = w.communicate(timeout=30)
    assert w.returncode == 0, err
    lines = set(text.splitlines())
    for expected in (
        'pgferry_watch_objects_total{outcome="loaded",pipeline="t"} 2.0',
        'pgferry_watch_objects_total{outcome="failed",pipeline="t"} 1.0',
        'pgferry_watch_rows_total{pipeline="t"} 5.0',
        'pgferry_watch_load_seconds_count{pipeline="t"} 2.0',
        'pgferry_watch_ledger_objects{pipeline="t",status="loaded"} 2.0',
        'pgferry_watch_ledger_objects{pipeline="t",status="failed"} 1.0',
        'pgferry_watch_backlog_objects{pipeline="t"} 0.0',
        'pgferry_watch_oldest_pending_seconds{pipeline="t"} 0.0',
    ):
        assert expected in lines, (expected, text)


def test_multipart_upload_in_progress_is_not_read(conn, env, s3client, bucket) -> None:
    conn.execute("CREATE TABLE t (obj text, tag text, n int)")
    part = "".join(x + "\n" for x in rows_for("big", 500_000)).encode()  # > 5 MiB: a real part
    up = s3client.create_multipart_upload(Bucket=bucket, Key="big.csv")
    first = s3client.upload_part(
        Bucket=bucket, Key="big.csv", UploadId=up["UploadId"], PartNumber=1, Body=part
    )
    last = s3client.upload_part(
        Bucket=bucket,
        Key="big.csv",
        UploadId=up["UploadId"],
        PartNumber=2,
        Body="".join(x + "\n" for x in rows_for("big-end", 5)).encode(),
    )
    args = ["watch", f"s3://{bucket}/", "-t", "t", *CSV, "--once"]
    p = run(env, *args)
    assert (p.returncode, p.stderr) == (0, "0 objects loaded (0 rows), 0 failed\n")
    assert ledger(conn) == {}
    s3client.complete_multipart_upload(
        Bucket=bucket,
        Key="big.csv",
        UploadId=up["UploadId"],
        MultipartUpload={
            "Parts": [
                {"PartNumber": 1, "ETag": first["ETag"]},
                {"PartNumber": 2, "ETag": last["ETag"]},
            ]
        },
    )
    p = run(env, *args)
    assert (p.returncode, p.stderr) == (0, "1 objects loaded (500005 rows), 0 failed\n")
    ((key, etag),) = ledger(conn)
    assert key == "big.csv" and etag.endswith("-2")  # the multipart ETag, md5-N


def test_config_runs_several_pipelines(conn, env, s3client, bucket, tmp_path: Path) -> None:
    conn.execute("CREATE TABLE orders (obj text, tag text, n int)")
    for i in range(3):
        put(s3client, bucket, f"orders/{i}.csv", rows_for(f"o{i}", 2))
    put(s3client, bucket, "events/e.tsv", ["id\tname", "1\tann", "2\tbo"])
    cfg = tmp_path / "pipelines.toml"
    cfg.write_text(
        f"""
[defaults]
options = "(format csv)"
interval = "1s"

[[pipeline]]
source = "s3://{bucket}/orders/"
table = "orders"
workers = 2

[[pipeline]]
name = "ev"
source = "s3://{bucket}/events/"
table = "events"
options = "(format csv, delimiter '\\t', header true)"
create_table = true
"""
    )
    p = run(env, "watch", "--config", str(cfg), "--once")
    assert p.returncode == 0, p.stderr
    assert p.stderr.splitlines()[-2:] == [
        "orders: 3 objects loaded (6 rows), 0 failed",
        "ev: 1 objects loaded (2 rows), 0 failed",
    ]
    assert conn.execute("SELECT id, name FROM events ORDER BY id").fetchall() == [
        (1, "ann"),
        (2, "bo"),
    ]
    got = conn.execute("SELECT pipeline, count(*) FROM pgferry.watch_files GROUP BY 1 ORDER BY 1")
    assert got.fetchall() == [("ev", 1), ("orders", 3)]
    cfg.write_text(f'[[pipeline]]\nsource = "s3://{bucket}/"\ntable = "t"\nwokers = 2\n')
    p = run(env, "watch", "--config", str(cfg), "--once")
    assert p.returncode == 2
    assert p.stderr == (
        f"error: --config {cfg}, pipeline 1: unknown key 'wokers'; known keys: batch, "
        "column_types, columns, content_encoding, create_table, full_sweep, interval, "
        "max_attempts, name, on_change, on_error, options, pattern, ready_marker, ready_suffix, "
        "retry_delay, sample_rows, settle, source, table, workers\n"
    )
    p = run(env, "watch", "--config", str(cfg), f"s3://{bucket}/", "--once")
    assert p.returncode == 2
    assert p.stderr.startswith(
        "error: --config names the sources and tables: drop SOURCE and --table"
    )


def test_bad_copy_options_are_a_usage_error_before_any_work(env, bucket) -> None:
    p = run(env, "watch", f"s3://{bucket}/", "-t", "t", "--options", "(delimiter E'\\t')")
    assert (p.returncode, p.stderr) == (
        2,
        "error: escape-string constants are not supported in COPY options: E'\\t'; "
        "use a plain quoted string, e.g. DELIMITER '|'\n",
    )


def test_log_format_json(conn, env, s3client, bucket) -> None:
    conn.execute("CREATE TABLE t (obj text, tag text, n int)")
    put(s3client, bucket, "a.csv", rows_for("a", 2))
    put(s3client, bucket, "b.csv", ["b,x,oops"])
    p = run(env, "watch", f"s3://{bucket}/", "-t", "t", *CSV, "--once", "--log-format", "json")
    assert p.returncode == 1
    docs = [json.loads(line) for line in p.stderr.splitlines()]
    assert [(d["level"], d["logger"]) for d in docs] == [
        ("error", "pgferry.watch"),
        ("info", "pgferry.watch"),
    ]
    assert docs[0]["message"].startswith(f"s3://{bucket}/b.csv failed after 1 attempt(s): ")
    assert {k: docs[1][k] for k in ("pipeline", "loaded", "rows", "failed")} == {
        "pipeline": "t",
        "loaded": 1,
        "rows": 2,
        "failed": 1,
    }


def test_ready_suffix_and_ready_marker(conn, env, s3client, bucket) -> None:
    conn.execute("CREATE TABLE t (obj text, tag text, n int)")
    put(s3client, bucket, "s/a.csv", rows_for("a", 1))
    put(s3client, bucket, "s/b.csv", rows_for("b", 2))
    put(s3client, bucket, "s/b.csv.ready", [])
    args = ["watch", f"s3://{bucket}/s/", "-t", "t", *CSV, "--once", "--pattern", "*.csv"]
    p = run(env, *args, "--ready-suffix", ".ready")
    assert (p.returncode, p.stderr) == (0, "1 objects loaded (2 rows), 0 failed\n")
    put(s3client, bucket, "s/a.csv.ready", [])
    p = run(env, *args, "--ready-suffix", ".ready")
    assert (p.returncode, p.stderr) == (0, "1 objects loaded (1 rows), 0 failed\n")
    assert sorted(k for k, _ in ledger(conn)) == ["s/a.csv", "s/b.csv"]

    for folder, done in (("d1", True), ("d2", False)):
        put(s3client, bucket, f"f/{folder}/part-0.csv", rows_for(folder, 3))
        put(s3client, bucket, f"f/{folder}/part-1.csv", rows_for(folder + "x", 4))
        if done:
            put(s3client, bucket, f"f/{folder}/_SUCCESS", [])
    p = run(env, "watch", f"s3://{bucket}/f/", "-t", "t", *CSV, "--once",
            "--ready-marker", "_SUCCESS", "--pipeline", "folders")  # fmt: skip
    assert (p.returncode, p.stderr) == (0, "2 objects loaded (7 rows), 0 failed\n")
    got = conn.execute("SELECT key FROM pgferry.watch_files WHERE pipeline = 'folders'")
    assert sorted(k for (k,) in got) == ["f/d1/part-0.csv", "f/d1/part-1.csv"]


def test_settle_loads_only_the_version_that_stopped_changing(conn, env, s3client, bucket) -> None:
    conn.execute("CREATE TABLE t (obj text, tag text, n int)")
    w = start(env, "watch", f"s3://{bucket}/", "-t", "t", *CSV, "--interval", "100ms",
              "--settle", "2s")  # fmt: skip
    try:
        wait_for(lambda: _ledger_exists(conn), what="the first listing")
        put(s3client, bucket, "x.csv", rows_for("x", 1, "part"))
        time.sleep(0.5)  # the writer rewrites it before it settles
        final = put(s3client, bucket, "x.csv", rows_for("x", 3, "whole"))
        wait_for(lambda: _count(conn) == 3, what="the settled version")
    finally:
        w.send_signal(signal.SIGTERM)
        _, err = w.communicate(timeout=30)
    assert w.returncode == 0, err
    assert ledger(conn) == {("x.csv", final): ("loaded", 3)}
    started = time.monotonic()
    put(s3client, bucket, "y.csv", rows_for("y", 2))
    p = run(env, "watch", f"s3://{bucket}/", "-t", "t", *CSV, "--once", "--settle", "1s")
    assert (p.returncode, p.stderr) == (0, "1 objects loaded (2 rows), 0 failed\n")
    assert time.monotonic() - started >= 1


def test_config_shares_one_notify_endpoint_and_metrics(
    conn, env, s3client, bucket, tmp_path: Path
) -> None:
    import urllib.request

    from pgferry.embedded import free_port

    conn.execute("CREATE TABLE a (obj text, tag text, n int)")
    conn.execute("CREATE TABLE b (obj text, tag text, n int)")
    cfg = tmp_path / "p.toml"
    cfg.write_text(
        '[defaults]\noptions = "(format csv)"\ninterval = "1h"\n'
        f'[[pipeline]]\nsource = "s3://{bucket}/a/"\ntable = "a"\n'
        f'[[pipeline]]\nsource = "s3://{bucket}/b/"\ntable = "b"\n'
    )
    notify, metrics = free_port(), free_port()
    w = start(env, "watch", "--config", str(cfg), "--notify-listen", f"127.0.0.1:{notify}",
              "--metrics", f"127.0.0.1:{metrics}")  # fmt: skip
    try:
        wait_for(lambda: _listening(notify) and _ledger_exists(conn), what="the watchers")
        time.sleep(0.5)  # both first listings done (an hour until the next)
        put(s3client, bucket, "a/1.csv", rows_for("a1", 2))
        put(s3client, bucket, "b/1.csv", rows_for("b1", 3))
        for key in ("a/1.csv", "b/1.csv"):
            assert _post(notify, {"event_type": "create", "key": f"/buckets/{bucket}/{key}"}) == 200

        def loaded() -> bool:
            got = conn.execute(
                "SELECT count(*) FROM pgferry.watch_files WHERE status = 'loaded'"
            ).fetchone()
            return got == (2,)

        wait_for(loaded, timeout=20, what="both notified objects")
        with urllib.request.urlopen(_scrape(metrics), timeout=10) as resp:  # noqa: S310 (loopback)
            text = resp.read().decode()
    finally:
        w.send_signal(signal.SIGTERM)
        _, err = w.communicate(timeout=30)
    assert w.returncode == 0, err
    assert conn.execute("SELECT (SELECT count(*) FROM a), (SELECT count(*) FROM b)").fetchone() == (
        2,
        3,
    )
    lines = set(text.splitlines())
    assert 'pgferry_watch_rows_total{pipeline="a"} 2.0' in lines, text
    assert 'pgferry_watch_rows_total{pipeline="b"} 3.0' in lines, text
    assert 'pgferry_watch_ledger_objects{pipeline="b",status="loaded"} 1.0' in lines, text


def test_on_error_skip_rows_keeps_rejects(conn, env, s3client, bucket) -> None:
    conn.execute("CREATE TABLE t (obj text, tag text, n int)")
    lines = ["obj,tag,n", "a,v,1", "a,v,2", "a,v,three", "a,v,4", "a,v,5,extra", "a,v,6"]
    etag = put(s3client, bucket, "a.csv", lines)
    put(s3client, bucket, "b.csv", ["obj,tag,n", "b,v,1"])
    args = ["watch", f"s3://{bucket}/", "-t", "t", "--options", "(format csv, header true)"]
    p = run(env, *args, "--once", "--on-error", "skip-rows")
    assert p.returncode == 0, p.stderr
    assert p.stderr.splitlines() == [
        f"warning: s3://{bucket}/a.csv: 2 rows rejected (see pgferry.watch_rejects)",
        "2 objects loaded (5 rows), 0 failed",
    ]
    assert conn.execute("SELECT obj, n FROM t ORDER BY obj, n").fetchall() == [
        ("a", 1),
        ("a", 2),
        ("a", 4),
        ("a", 6),
        ("b", 1),
    ]
    got = conn.execute(
        "SELECT key, etag, line, raw, error FROM pgferry.watch_rejects ORDER BY line"
    ).fetchall()
    assert got == [
        ("a.csv", etag, 4, "a,v,three", 'invalid input syntax for type integer: "three"'),
        ("a.csv", etag, 6, "a,v,5,extra", "extra data after last expected column"),
    ]
    assert conn.execute(
        "SELECT status, row_count, rejected_rows FROM pgferry.watch_files WHERE key = 'a.csv'"
    ).fetchone() == ("loaded", 4, 2)


def test_endpoints_need_their_token(conn, env, s3client, bucket) -> None:
    """A notification or a scrape without the token gets 401 and changes
    nothing; a wrong token too; Basic authentication with the token as the
    password (an SNS subscription URL) is let in."""
    import base64
    import urllib.error

    from pgferry.embedded import free_port

    conn.execute("CREATE TABLE t (obj text, tag text, n int)")
    notify, metrics = free_port(), free_port()
    w = start(env, "watch", f"s3://{bucket}/in/", "-t", "t", *CSV, "--interval", "1h",
              "--notify-listen", f"127.0.0.1:{notify}",
              "--metrics", f"127.0.0.1:{metrics}")  # fmt: skip
    try:
        wait_for(lambda: _listening(notify), what="the notification endpoint")
        wait_for(lambda: _listening(metrics), what="the metrics endpoint")
        wait_for(lambda: _ledger_exists(conn), what="the first listing")
        put(s3client, bucket, "in/a.csv", rows_for("a", 2))
        hook = {"event_type": "create", "key": f"/buckets/{bucket}/in/a.csv"}
        for auth in ({}, {"Authorization": "Bearer not-the-token-at-all-00"}):
            with pytest.raises(urllib.error.HTTPError) as e:
                _post(notify, hook, auth)
            assert e.value.code == 401
            assert e.value.headers["WWW-Authenticate"] == 'Basic realm="pgferry"'
        for req in (
            f"http://127.0.0.1:{metrics}/metrics",
            urllib.request.Request(
                f"http://127.0.0.1:{metrics}/metrics", headers={"Authorization": "Bearer x"}
            ),
        ):
            with pytest.raises(urllib.error.HTTPError) as e:
                urllib.request.urlopen(req, timeout=10)  # noqa: S310 (loopback test)
            assert e.value.code == 401
        time.sleep(1)  # time for a wrongly accepted hint to be recorded
        assert _count(conn) == 0
        assert ledger(conn) == {}
        basic = base64.b64encode(f"pgferry:{TOKEN}".encode()).decode()
        assert _post(notify, hook, {"Authorization": f"Basic {basic}"}) == 200
        wait_for(lambda: _count(conn) == 2, timeout=20, what="the notified object")
        with urllib.request.urlopen(_scrape(metrics), timeout=10) as resp:  # noqa: S310
            assert resp.status == 200
    finally:
        w.send_signal(signal.SIGTERM)
        _, err = w.communicate(timeout=30)
    assert w.returncode == 0, err


@pytest.mark.parametrize(
    ("flag", "variable"),
    [("--notify-listen", "PGFERRY_NOTIFY_TOKEN"), ("--metrics", "PGFERRY_METRICS_TOKEN")],
)
def test_endpoint_without_a_token_is_a_usage_error(
    conn, env, bucket, flag: str, variable: str
) -> None:
    conn.execute("CREATE TABLE t (obj text, tag text, n int)")
    for value in (None, "short"):
        e = {k: v for k, v in env.items() if k != variable}
        if value is not None:
            e[variable] = value
        p = run(e, "watch", f"s3://{bucket}/in/", "-t", "t", *CSV, flag, "127.0.0.1:1")
        assert (p.returncode, p.stdout) == (2, "")
        assert p.stderr == (
            f"error: {flag} needs a token of at least 16 characters in {variable}; "
            f"export {variable}=$(openssl rand -hex 24) and give the same token to the "
            "sender (see 'Endpoints and tokens' in the README)\n"
        )
    assert not _ledger_exists(conn)
