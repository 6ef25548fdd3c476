"""S3 (and S3-compatible) object access: clients, errors, pinned reads.

Credentials come from the AWS SDK default chain (environment, shared config
and profiles, SSO, web identity, instance metadata) unless given explicitly;
AWS_ENDPOINT_URL / endpoint_url point at S3-compatible stores.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import botocore.exceptions
import botocore.loaders
import botocore.session
from botocore.config import Config

from pgferry import background
from pgferry.errors import (
    AccessDenied,
    BucketNotFound,
    CredentialsError,
    ObjectChanged,
    ObjectNotFound,
    StoreError,
    StoreUnreachable,
    TransientStoreError,
    UsageError,
)
from pgferry.stores import ObjectRef

# re-exported: S3Config lives apart so that its users need not import botocore
from pgferry.stores.s3config import S3Config as S3Config
from pgferry.stores.s3config import check_config as check_config

log = logging.getLogger("pgferry.s3")

_DENIED = {
    "AccessDenied",
    "403",
    "Forbidden",
    "AllAccessDisabled",
    "AccountProblem",
}
_BAD_CREDENTIALS = {
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "InvalidToken",
    "TokenRefreshRequired",
    "InvalidClientTokenId",
    "UnrecognizedClientException",
}
_TRANSIENT = {
    "SlowDown",
    "InternalError",
    "ServiceUnavailable",
    "RequestTimeout",
    "503",
    "500",
    "RequestTimeTooSkewed",
}


_reuse = threading.local()


@contextmanager
def reuse_clients() -> Iterator[None]:
    """In this thread, until the block ends, make_client hands out one client
    per settings instead of a new one each call: creating a boto3 client costs
    ~0.1 s of CPU, more than loading a small object (used by `pgferry watch`).
    A bucket's existence and region are checked once per block, too."""
    if getattr(_reuse, "clients", None) is not None:
        yield
        return
    _reuse.clients, _reuse.regions = {}, {}
    try:
        yield
    finally:
        _reuse.clients = _reuse.regions = None


def make_client(config: S3Config, region: str | None = None, *, pool: int = 16) -> Any:
    """An S3 client (botocore's: boto3 adds only import time on top).
    `region` overrides the configured one (used when following a bucket
    that lives elsewhere)."""
    cache: dict[tuple[S3Config, str | None, int], Any] | None = getattr(_reuse, "clients", None)
    if cache is None:
        return _new_client(config, region, pool)
    if (config, region, pool) not in cache:
        cache[(config, region, pool)] = _new_client(config, region, pool)
    return cache[(config, region, pool)]


def _new_client(config: S3Config, region: str | None, pool: int) -> Any:
    check_config(config)
    # a session per client: credentials and settings come from the
    # environment as it is now; the parsed models are shared (_data_loader)
    session = botocore.session.Session(profile=config.profile or None)
    try:
        session.register_component("data_loader", _data_loader(session))
        configured_region = session.get_config_variable("region")
    except botocore.exceptions.ProfileNotFound as e:
        raise CredentialsError(
            f"AWS profile {config.profile!r} not found",
            hint="check --profile / AWS_PROFILE against ~/.aws/config",
        ) from e
    endpoint = config.endpoint_url or None
    botocfg = Config(
        retries={"mode": "standard", "max_attempts": 5},
        max_pool_connections=pool,
        connect_timeout=10,
        read_timeout=60,
        # custom endpoints (SeaweedFS, MinIO, R2) rarely do virtual hosts
        s3={"addressing_style": "path"} if endpoint or _env_endpoint(session) else {},
    )
    try:
        with _CLIENT_LOCK:  # the shared loader's caches are not thread-safe
            return session.create_client(
                "s3",
                region_name=region or config.region or configured_region or "us-east-1",
                endpoint_url=endpoint,
                config=botocfg,
                aws_access_key_id=config.access_key or None,
                aws_secret_access_key=config.secret_key or None,
                aws_session_token=config.session_token or None,
            )
    except ValueError as e:  # e.g. an endpoint_url in ~/.aws/config without a scheme
        raise UsageError(
            f"invalid S3 client settings: {e}",
            hint="check endpoint_url and region in the AWS config and environment",
        ) from None


_CLIENT_LOCK = threading.Lock()
_LOADERS: dict[str | None, botocore.loaders.Loader] = {}


class _LeanLoader(botocore.loaders.Loader):
    """botocore's loader, minus a scan: to check that "s3" is a known service
    it lists every service's directory (about 900 listdir calls, tens of ms
    of a one-row import); checking the one directory asked for suffices."""

    def list_available_services(self, type_name: str) -> Any:
        return _KnownServices(self, type_name)


class _JSONFiles(botocore.loaders.JSONFileLoader):
    """botocore's model files, parsed into plain dicts: its OrderedDict hook
    doubles the parse time of the S3 model and the endpoints (about 10 ms
    of CPU per client), and dicts keep the order it wanted."""

    def _load_file(self, full_path: str, open_method: Any) -> Any:
        if not os.path.isfile(full_path):
            return None
        with open_method(full_path, "rb") as fp:
            return json.loads(fp.read().decode("utf-8"))


class _KnownServices:
    def __init__(self, loader: _LeanLoader, type_name: str) -> None:
        self.loader, self.type_name = loader, type_name

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        try:
            return bool(self.loader.list_api_versions(name, self.type_name))
        except botocore.exceptions.DataNotFoundError:
            return False

    def __iter__(self) -> Iterator[str]:  # only for botocore's "unknown service" message
        return iter(botocore.loaders.Loader.list_available_services(self.loader, self.type_name))


def _data_loader(session: Any) -> botocore.loaders.Loader:
    """One loader per process (per AWS_DATA_PATH): it caches the parsed models."""
    data_path = session.get_config_variable("data_path")
    with _CLIENT_LOCK:
        if data_path not in _LOADERS:
            extra = (
                [os.path.expanduser(os.path.expandvars(p)) for p in data_path.split(os.pathsep)]
                if data_path
                else None
            )
            _LOADERS[data_path] = _LeanLoader(extra_search_paths=extra, file_loader=_JSONFiles())
        return _LOADERS[data_path]


def _env_endpoint(session: Any) -> bool:
    return bool(os.environ.get("AWS_ENDPOINT_URL") or os.environ.get("AWS_ENDPOINT_URL_S3"))


def describe(bucket: str | None, key: str | None) -> str:
    if bucket and key is not None:
        return f"s3://{bucket}/{key}"
    return f"s3://{bucket}" if bucket else "S3"


def map_error(exc: BaseException, bucket: str | None, key: str | None) -> StoreError:
    """Turn a botocore exception into a pgferry error naming the object."""
    where = describe(bucket, key)
    if isinstance(
        exc, botocore.exceptions.NoCredentialsError | botocore.exceptions.PartialCredentialsError
    ):
        return CredentialsError(
            f"no AWS credentials found for {where}",
            hint="set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, a profile (--profile), "
            "or pass --access-key/--secret-key",
            bucket=bucket,
            key=key,
        )
    if isinstance(
        exc, botocore.exceptions.EndpointConnectionError | botocore.exceptions.ConnectTimeoutError
    ):
        url = getattr(exc, "kwargs", {}).get("endpoint_url", "")
        return StoreUnreachable(
            f"cannot reach the S3 endpoint {url} for {where}".replace("  ", " "),
            hint="check --endpoint-url / AWS_ENDPOINT_URL and that the store is running",
            bucket=bucket,
            key=key,
        )
    if isinstance(exc, botocore.exceptions.ClientError):
        err = exc.response.get("Error", {})
        code = str(err.get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in ("NoSuchBucket",):
            return BucketNotFound(
                f"bucket {bucket!r} does not exist ({where})",
                hint="check the bucket name and the endpoint/region",
                bucket=bucket,
                key=key,
            )
        if code in ("NoSuchKey", "404", "NotFound"):
            folder = (key or "").rpartition("/")[0]
            listing = f"s3://{bucket}/{folder}/" if folder else f"s3://{bucket}/"
            return ObjectNotFound(
                f"object {where} does not exist",
                hint=f"check the key; list the prefix with 'aws s3 ls {listing}'",
                bucket=bucket,
                key=key,
            )
        if code in ("PreconditionFailed", "412"):
            return ObjectChanged(
                f"object {where} was replaced while it was being read",
                hint="nothing was loaded; retry once the writer has finished",
                bucket=bucket,
                key=key,
            )
        if code in _BAD_CREDENTIALS:
            return CredentialsError(
                f"S3 rejected the credentials for {where} ({code})",
                hint="check the access key, secret key and session token (or the profile)",
                bucket=bucket,
                key=key,
            )
        if code in _DENIED or status == 403:
            return AccessDenied(
                f"access denied to {where}",
                hint="grant s3:GetObject (and s3:ListBucket) on it to these credentials",
                bucket=bucket,
                key=key,
            )
        if code in ("PermanentRedirect", "301", "AuthorizationHeaderMalformed"):
            region = bucket_region_of(exc)
            return StoreError(
                f"bucket {bucket!r} is in another region ({region or 'unknown'})",
                hint="pass --region " + (region or "<the bucket's region>"),
                bucket=bucket,
                key=key,
            )
        if code in _TRANSIENT or (status is not None and status >= 500):
            return TransientStoreError(
                f"S3 failed on {where} ({code or status}); it may succeed if retried",
                bucket=bucket,
                key=key,
            )
        return StoreError(
            f"S3 error on {where}: {code} {err.get('Message', '')}".strip(), bucket=bucket, key=key
        )
    if isinstance(exc, botocore.exceptions.BotoCoreError | OSError):
        return TransientStoreError(
            f"reading {where} failed: {exc}",
            hint="retry; if it persists check the network and the endpoint",
            bucket=bucket,
            key=key,
        )
    return StoreError(f"S3 error on {where}: {exc}", bucket=bucket, key=key)


def bucket_region_of(exc: botocore.exceptions.ClientError) -> str | None:
    headers = exc.response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
    region = headers.get("x-amz-bucket-region") or exc.response.get("Error", {}).get("Region")
    return str(region) if region else None


# --- reading one object ------------------------------------------------------

PIECE = 1 << 20  # bytes handed downstream at a time
RANGE = 64 << 20  # bytes per ranged GET: few requests, bounded retry cost
ATTEMPTS = 5


class S3Reader:
    """Streams one object through ranged GETs pinned to the ETag seen at open.

    A background thread keeps at most `depth` pieces ahead of the consumer, so
    memory stays bounded whatever the object size. Each range is fetched with
    If-Match: if the object is replaced mid-read the next range fails with
    412 and we raise ObjectChanged instead of splicing two versions.
    """

    def __init__(self, ref: ObjectRef, config: S3Config, *, depth: int = 16) -> None:
        assert ref.bucket is not None
        self.ref = ref
        self.config = config
        self.depth = depth
        self.client = make_client(config, ref.region)
        # the object's HEAD goes out with the bucket's: one round trip, not two
        # (the region check decides first, as if they ran one after the other)
        first = self.client
        early = background.start(
            first.head_object, name="pgferry-head", Bucket=ref.bucket, Key=ref.key
        )
        try:
            self._follow_region()
        finally:
            early_error = early.exception()
        try:
            if self.client is not first:  # another region: ask there
                head = self.client.head_object(Bucket=ref.bucket, Key=ref.key)
            elif early_error is not None:
                raise early_error
            else:
                head = early.result()
        except Exception as e:  # botocore raises several unrelated classes
            raise self._explain(e) from None
        self.size: int = int(head["ContentLength"])
        self.etag: str = str(head["ETag"])
        if ref.etag is not None and self.etag.strip('"') != ref.etag.strip('"'):
            # the listed version is gone: reading the new one would load what was not asked
            raise ObjectChanged(
                f"object {ref.uri} is no longer the version listed (ETag {ref.etag})",
                hint="nothing was loaded; the new version is loaded when it is listed",
                bucket=ref.bucket,
                key=ref.key,
            )
        self.content_encoding: str | None = head.get("ContentEncoding") or None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _explain(self, exc: Exception) -> StoreError:
        """A HEAD error has no body, so a 403 can't tell bad credentials from
        a missing grant; a one-byte GET returns the real error code."""
        err = map_error(exc, self.ref.bucket, self.ref.key)
        if isinstance(err, AccessDenied):
            try:
                self.client.get_object(Bucket=self.ref.bucket, Key=self.ref.key, Range="bytes=0-0")
            except Exception as e:
                return map_error(e, self.ref.bucket, self.ref.key)
        return err

    def _follow_region(self) -> None:
        """Find the bucket's region and re-point the client if it differs.

        aws_s3 fails opaquely on a region mismatch; we follow it with a warning.
        HeadBucket needs s3:ListBucket, so a 403 here is not fatal: the object
        HEAD that follows decides.
        """
        bucket = self.ref.bucket
        asked = self.client.meta.region_name
        known: dict[tuple[str | None, str | None], str | None] | None = getattr(
            _reuse, "regions", None
        )
        if known is not None and (bucket, asked) in known:
            # reused clients: the bucket was found (and its region told) once already
            actual = known[(bucket, asked)]
            if actual and actual != asked:
                self.client = make_client(self.config, actual)
            return
        try:
            resp = self.client.head_bucket(Bucket=bucket)
            headers = resp.get("ResponseMetadata", {}).get("HTTPHeaders", {})
            actual = resp.get("BucketRegion") or headers.get("x-amz-bucket-region")
        except botocore.exceptions.ClientError as e:
            code = str(e.response.get("Error", {}).get("Code", ""))
            if code in ("404", "NoSuchBucket", "NotFound"):
                raise BucketNotFound(
                    f"bucket {bucket!r} does not exist ({describe(bucket, self.ref.key)})",
                    hint="check the bucket name and the endpoint/region",
                    bucket=bucket,
                    key=self.ref.key,
                ) from None
            actual = bucket_region_of(e)
            if not actual:
                if code in _BAD_CREDENTIALS:
                    raise map_error(e, bucket, self.ref.key) from None
                return
        except Exception as e:
            raise map_error(e, bucket, self.ref.key) from None
        if known is not None:
            known[(bucket, asked)] = actual
        if actual and actual != asked:
            log.warning(
                "bucket %s is in region %s, not %s: following it (pass --region %s to skip this)",
                bucket,
                actual,
                asked,
                actual,
            )
            self.client = make_client(self.config, actual)

    def first_bytes(self, n: int) -> bytes:
        """The object's first `n` bytes (all of a smaller one), in one ranged
        GET pinned to the version seen at open: a look at the head without
        the read-ahead of `chunks`, which fetches megabytes before the first
        piece is taken."""
        if self.size == 0 or n <= 0:
            return b""
        pieces: queue.Queue[bytes | BaseException | None] = queue.Queue()
        self._fetch_range(0, min(n, self.size) - 1, pieces)
        out = []
        while not pieces.empty():
            item = pieces.get_nowait()
            assert isinstance(item, bytes)
            out.append(item)
        return b"".join(out)

    def chunks(self) -> Iterator[bytes]:
        if self.size == 0:
            return
        pieces: queue.Queue[bytes | BaseException | None] = queue.Queue(self.depth)
        self._thread = threading.Thread(target=self._produce, args=(pieces,), daemon=True)
        self._thread.start()
        while True:
            item = pieces.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def _put(
        self, pieces: queue.Queue[bytes | BaseException | None], item: bytes | BaseException | None
    ) -> bool:
        while not self._stop.is_set():
            try:
                pieces.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def _produce(self, pieces: queue.Queue[bytes | BaseException | None]) -> None:
        offset = 0
        try:
            while offset < self.size and not self._stop.is_set():
                end = min(offset + RANGE, self.size) - 1
                offset = self._fetch_range(offset, end, pieces)
            self._put(pieces, None)
        except BaseException as e:  # hand every failure to the consumer
            self._put(pieces, e)

    def _fetch_range(
        self, start: int, end: int, pieces: queue.Queue[bytes | BaseException | None]
    ) -> int:
        """Fetch [start, end]; on a dropped connection resume from where it broke."""
        bucket, key = self.ref.bucket, self.ref.key
        for attempt in range(1, ATTEMPTS + 1):
            try:
                resp = self.client.get_object(
                    Bucket=bucket, Key=key, Range=f"bytes={start}-{end}", IfMatch=self.etag
                )
                body = resp["Body"]
                try:
                    while start <= end:
                        piece = body.read(min(PIECE, end - start + 1))
                        if not piece:
                            raise TransientStoreError(
                                f"S3 closed the stream of {describe(bucket, key)} early",
                                bucket=bucket,
                                key=key,
                            )
                        start += len(piece)
                        if not self._put(pieces, piece):
                            return end + 1
                finally:
                    body.close()
                return start
            except Exception as e:
                err = e if isinstance(e, StoreError) else map_error(e, bucket, key)
                if not err.transient or isinstance(err, ObjectChanged) or attempt == ATTEMPTS:
                    raise err from None
                log.info("retrying %s from byte %d after: %s", describe(bucket, key), start, err)
                time.sleep(min(0.2 * 2**attempt, 5))
        raise AssertionError("unreachable")

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
