"""Typed error attributes on real import failures: every error carries
bucket, key, table, line, column and sqlstate (None where they do not apply)."""

from __future__ import annotations

import gzip
import inspect
import zipfile
from pathlib import Path
from typing import Any

import psycopg
import pytest

import pgferry
from pgferry import errors, imports
from pgferry.embedded import free_port
from pgferry.stores.s3 import S3Config

ATTRS = ("bucket", "key", "table", "line", "column", "sqlstate")


def attrs(e: errors.PgferryError) -> dict[str, Any]:
    return {name: getattr(e, name) for name in ATTRS}


def expect(**given: Any) -> dict[str, Any]:
    return {name: given.get(name) for name in ATTRS}


def test_every_error_class_declares_the_attributes() -> None:
    classes = [
        c
        for c in vars(errors).values()
        if inspect.isclass(c) and issubclass(c, errors.PgferryError)
    ]
    assert len(classes) > 20
    for cls in classes:
        e = cls("what happened")
        assert attrs(e) == expect(), cls
        assert str(e) == "what happened"


@pytest.fixture()
def files(tmp_path: Path) -> dict[str, Path]:
    out = {
        "rows": b"1,a\n2,b\nthree,c\n",
        "cut.gz": gzip.compress(b"1,a\n" * 20_000)[:60],
        "empty.csv": b"",
    }
    paths = {}
    for name, data in out.items():
        paths[name] = tmp_path / name
        paths[name].write_bytes(data)
    with zipfile.ZipFile(tmp_path / "a.zip", "w") as z:
        z.writestr("a.csv", b"1,a\n")
    paths["zip"] = tmp_path / "a.zip"
    return paths


def fail(cls: type[errors.PgferryError], table: str, source: str, **kw: Any) -> errors.PgferryError:
    with pytest.raises(cls) as err:
        imports.import_from_s3(table, source, **kw)
    assert "\n" not in str(err.value)
    return err.value


@pytest.mark.usefixtures("s3env")
def test_store_failures(db, bucket, tmp_path: Path) -> None:
    e = fail(errors.ObjectNotFound, "t", f"s3://{bucket}/dir/k.csv", target=db)
    assert attrs(e) == expect(bucket=bucket, key="dir/k.csv")
    e = fail(errors.BucketNotFound, "t", "s3://no-such-bucket-q/k.csv", target=db)
    assert attrs(e) == expect(bucket="no-such-bucket-q", key="k.csv")
    missing = str(tmp_path / "nope.csv")
    e = fail(errors.ObjectNotFound, "t", missing, target=db)
    assert attrs(e) == expect(key=missing)
    e = fail(
        errors.StoreUnreachable,
        "t",
        f"s3://{bucket}/k.csv",
        endpoint_url=f"http://127.0.0.1:{free_port()}",
        target=db,
    )
    assert attrs(e) == expect(bucket=bucket, key="k.csv")


def test_target_failures(conn: psycopg.Connection[Any], db, files) -> None:
    conn.execute("CREATE TABLE t (id int, v text)")
    rows = str(files["rows"])
    e = fail(errors.TableNotFound, "nosuch", rows, options="(format csv)", target=db)
    assert attrs(e) == expect(table="nosuch", sqlstate="42P01", key=rows)
    e = fail(errors.ColumnNotFound, "t", rows, columns="id,nope", target=db)
    assert attrs(e) == expect(table="t", sqlstate="42703", key=rows)
    e = fail(errors.DataError, "t", rows, options="(format csv)", target=db)
    assert attrs(e) == expect(table="t", line=3, column="id", sqlstate="22P02", key=rows)
    e = fail(
        errors.CopyOptionsError,
        "t",
        rows,
        options="(format csv, delimiter '|', quote '|')",
        target=db,
    )
    assert attrs(e) == expect(table="t", sqlstate="22023", key=rows)
    e = fail(
        errors.TargetUnreachable, "t", rows, target=f"postgresql://u@127.0.0.1:{free_port()}/d"
    )
    assert attrs(e) == expect()


def test_decode_and_inference_failures(conn: psycopg.Connection[Any], db, files) -> None:
    conn.execute("CREATE TABLE t (id int, v text)")
    cut, zipped, empty = str(files["cut.gz"]), str(files["zip"]), str(files["empty.csv"])
    e = fail(errors.DecodeError, "t", cut, options="(format csv)", target=db)
    assert attrs(e) == expect(key=cut)
    e = fail(errors.UnsupportedFormat, "t", zipped, target=db)
    assert attrs(e) == expect(key=zipped)
    e = fail(errors.UsageError, "fresh", empty, create_table=True, target=db)
    assert str(e) == (
        f'cannot create table "fresh" from the empty file {empty}; '
        "create the table first, then import"
    )
    assert attrs(e) == expect(table="fresh", key=empty)
    e = fail(
        errors.UsageError,
        "fresh",
        str(files["rows"]),
        create_table=True,
        column_types={"column2": "text;"},
        target=db,
    )
    assert attrs(e) == expect(column="column2")


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        (
            {"session_token": "tok"},
            "a session token was given without its access key and secret key; pass "
            "--access-key and --secret-key with --session-token, or set all three in the AWS "
            "environment variables",
        ),
        (
            {"endpoint_url": "127.0.0.1:9"},
            "--endpoint-url '127.0.0.1:9' is not an http:// or https:// URL; "
            "write it with its scheme, e.g. http://127.0.0.1:9",
        ),
        (
            {"s3": S3Config(), "profile": "p"},
            "give the S3 settings either one by one or as s3=S3Config(...), not both; "
            "move them into the S3Config",
        ),
    ],
)
def test_s3_settings_mistakes_before_connecting(kw: dict[str, Any], message: str) -> None:
    dead = f"postgresql://u@127.0.0.1:{free_port()}/d"
    e = fail(errors.UsageError, "t", "s3://bkt/k.csv", target=dead, **kw)
    assert str(e) == message
    assert e.exit_code == 2


def test_public_api() -> None:
    for name in pgferry.__all__:
        assert getattr(pgferry, name) is not None, name
    params = inspect.signature(pgferry.import_from_s3).parameters
    assert not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    for name in ("endpoint_url", "profile", "access_key", "secret_key", "session_token", "s3"):
        assert params[name].kind is inspect.Parameter.KEYWORD_ONLY, name


def test_endpoint_without_scheme_in_the_aws_config(
    db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    config = tmp_path / "config"
    config.write_text("[default]\nendpoint_url = 127.0.0.1:9\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    with pytest.raises(errors.UsageError) as err:
        imports.import_from_s3("t", "s3://bkt/k.csv", target=db)
    assert str(err.value) == (
        "invalid S3 client settings: Invalid endpoint: 127.0.0.1:9; "
        "check endpoint_url and region in the AWS config and environment"
    )


# the snapshot feature's errors: not MigrateErrors (they are store and usage
# errors) but part of what `pgferry snapshot` raises, so migrate code imports
# them from the same place
SNAPSHOT_ERRORS = (
    "BadSnapshotName",
    "NotASnapshot",
    "SelectionNotRestorable",
    "SnapshotCorrupt",
    "SnapshotExists",
    "SnapshotLost",
    "UnsupportedSnapshot",
)


def test_migrate_errors_re_exports_every_migrate_error() -> None:
    from pgferry.migrate import errors as migrate_errors

    wanted = {
        name
        for name, c in vars(errors).items()
        if inspect.isclass(c) and issubclass(c, errors.MigrateError)
    } | set(SNAPSHOT_ERRORS)
    assert {"MigrateError", "ReplicaError", "VerifyIncomplete"} <= wanted
    missing = sorted(n for n in wanted if getattr(migrate_errors, n, None) is not vars(errors)[n])
    assert missing == []
    assert sorted(wanted - set(migrate_errors.__all__)) == []
