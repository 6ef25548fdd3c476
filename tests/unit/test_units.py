import bz2
import gzip

import pytest
import zstandard
from botocore.stub import Stubber

from pgferry.decode.compression import choose_codec, decompress, sniff
from pgferry.errors import DecodeError, UsageError
from pgferry.imports import ImportResult
from pgferry.stores import parse_source
from pgferry.target import mask_password, resolve_target

DATA = b"1,alpha\n2,beta\n" * 1000


@pytest.mark.parametrize(
    ("codec", "blob"),
    [
        ("gzip", gzip.compress(DATA)),
        ("zstd", zstandard.ZstdCompressor().compress(DATA)),
        ("bzip2", bz2.compress(DATA)),
    ],
)
def test_codecs_roundtrip_and_truncation(codec: str, blob: bytes) -> None:
    assert sniff(blob[:16]) == codec
    pieces = [blob[i : i + 7] for i in range(0, len(blob), 7)]
    assert b"".join(decompress(iter(pieces), codec, where="s3://b/k")) == DATA
    with pytest.raises(DecodeError) as err:
        b"".join(decompress(iter([blob[: len(blob) // 2]]), codec, where="s3://b/k"))
    assert str(err.value).startswith(f"truncated {codec} data in s3://b/k")


def test_concatenated_gzip_members() -> None:
    blob = gzip.compress(b"a\n") + gzip.compress(b"b\n")
    assert b"".join(decompress(iter([blob]), "gzip", where="x")) == b"a\nb\n"


def test_codec_choice() -> None:
    gz = gzip.compress(b"x")
    assert choose_codec("auto", "gzip", b"plain") == "gzip"  # the aws_s3 rule
    assert choose_codec("auto", None, gz) == "gzip"  # magic bytes
    assert choose_codec("auto", None, b"BZh9 is just text") is None
    assert choose_codec("none", "gzip", gz) is None
    assert choose_codec("zstd", None, b"") == "zstd"
    with pytest.raises(UsageError):
        choose_codec("lz4", None, b"")


def test_sources() -> None:
    ref = parse_source("s3://bkt/dir/a b.csv", "eu-west-1")
    assert (ref.bucket, ref.key, ref.region) == ("bkt", "dir/a b.csv", "eu-west-1")
    assert parse_source("file:///tmp/x%20y.csv").key == "/tmp/x y.csv"
    assert parse_source("data/x.csv").bucket is None
    for bad, msg in [
        ("s3://bkt", "is not a full S3 object URI"),
        ("gs://b/k", "unsupported scheme 'gs'"),
        ("file://host/x", "names a remote host"),
    ]:
        with pytest.raises(UsageError, match=msg):
            parse_source(bad)


def test_message_is_aws_s3s() -> None:
    r = ImportResult(rows=4, bytes=120, bucket="b", key="dir/f.csv", table="t1")
    assert str(r) == '4 rows imported into relation "t1" from file dir/f.csv of 120 bytes'
    assert r.to_dict()["message"] == str(r)


def test_mask_password() -> None:
    assert mask_password("postgresql://u:s3cret@h:5433/db") == "postgresql://u:****@h:5433/db"
    assert "s3cret" not in mask_password("host=h password=s3cret dbname=d")
    assert mask_password("postgresql://u@h/db") == "postgresql://u@h/db"


def test_target_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("PGFERRY_TARGET", "DATABASE_URL", "PGHOST", "PGSERVICE", "PGDATABASE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("DATABASE_URL", "postgresql://d/db")
    assert resolve_target().origin == "DATABASE_URL"
    monkeypatch.setenv("PGFERRY_TARGET", "postgresql://p/db")
    assert resolve_target().conninfo == "postgresql://p/db"
    assert resolve_target("postgresql://f/db").origin == "flag"
    monkeypatch.delenv("PGFERRY_TARGET")
    monkeypatch.delenv("DATABASE_URL")
    monkeypatch.setenv("PGHOST", "/var/run/postgresql")
    assert resolve_target().origin == "libpq environment"


def test_region_mismatch_is_followed(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """SeaweedFS has no regions, so this one uses botocore's Stubber (a unit test)."""
    from pgferry.stores import ObjectRef
    from pgferry.stores import s3 as s3mod

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "k")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s")
    made: list[str | None] = []
    real = s3mod.make_client

    def make(config: s3mod.S3Config, region: str | None = None, **kw: object) -> object:
        client = real(config, region)
        made.append(client.meta.region_name)
        stub = Stubber(client)
        if len(made) == 1:
            stub.add_response("head_bucket", {"BucketRegion": "eu-west-3"}, {"Bucket": "bkt"})
        else:
            stub.add_response(
                "head_object", {"ContentLength": 0, "ETag": '"x"'}, {"Bucket": "bkt", "Key": "k"}
            )
        stub.activate()
        return client

    monkeypatch.setattr(s3mod, "make_client", make)
    reader = s3mod.S3Reader(ObjectRef(key="k", bucket="bkt", region="us-east-1"), s3mod.S3Config())
    assert made == ["us-east-1", "eu-west-3"]
    assert reader.size == 0
    assert "bucket bkt is in region eu-west-3, not us-east-1: following it" in caplog.text
