"""S3 (and S3-compatible) object access: clients, errors, pinned reads.

Credentials come from the AWS SDK default chain (environment, shared config
and profiles, SSO, web identity, instance metadata) unless given explicitly;
AWS_ENDPOINT_URL / endpoint_url point at S3-compatible stores.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import boto3
import botocore.exceptions
from botocore.config import Config

from pgferry.errors import (
    AccessDenied,
    BucketNotFound,
    CredentialsError,
    ObjectChanged,
    ObjectNotFound,
    StoreError,
    StoreUnreachable,
    TransientStoreError,
)

log = logging.getLogger("pgferry.s3")

_DENIED = {
    "AccessDenied", "403", "Forbidden", "AllAccessDisabled", "AccountProblem",
}
_BAD_CREDENTIALS = {
    "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken",
    "TokenRefreshRequired", "InvalidClientTokenId", "UnrecognizedClientException",
}
_TRANSIENT = {
    "SlowDown", "InternalError", "ServiceUnavailable", "RequestTimeout", "503", "500",
    "RequestTimeTooSkewed",
}


@dataclass(frozen=True)
class S3Config:
    """How to reach S3. Every field is optional: None means the SDK default."""

    region: str | None = None
    endpoint_url: str | None = None
    access_key: str | None = None
    secret_key: str | None = None
    session_token: str | None = None
    profile: str | None = None

    def __repr__(self) -> str:  # never show secrets
        return (
            f"S3Config(region={self.region!r}, endpoint_url={self.endpoint_url!r}, "
            f"profile={self.profile!r}, explicit_keys={self.access_key is not None})"
        )


def make_client(config: S3Config, region: str | None = None, *, pool: int = 16) -> Any:
    """A boto3 S3 client. `region` overrides the configured one (used when
    following a bucket that lives elsewhere)."""
    try:
        session = boto3.session.Session(
            aws_access_key_id=config.access_key or None,
            aws_secret_access_key=config.secret_key or None,
            aws_session_token=config.session_token or None,
            profile_name=config.profile or None,
        )
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
    return session.client(
        "s3",
        region_name=region or config.region or session.region_name or "us-east-1",
        endpoint_url=endpoint,
        config=botocfg,
    )


def _env_endpoint(session: Any) -> bool:
    import os

    return bool(os.environ.get("AWS_ENDPOINT_URL") or os.environ.get("AWS_ENDPOINT_URL_S3"))


def describe(bucket: str | None, key: str | None) -> str:
    if bucket and key is not None:
        return f"s3://{bucket}/{key}"
    return f"s3://{bucket}" if bucket else "S3"


def map_error(exc: BaseException, bucket: str | None, key: str | None) -> StoreError:
    """Turn a botocore exception into a pgferry error naming the object."""
    where = describe(bucket, key)
    ctx = {"bucket": bucket, "key": key}
    if isinstance(exc, botocore.exceptions.NoCredentialsError | botocore.exceptions.PartialCredentialsError):
        return CredentialsError(
            f"no AWS credentials found for {where}",
            hint="set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, a profile (--profile), "
            "or pass --access-key/--secret-key",
            **ctx,
        )
    if isinstance(exc, botocore.exceptions.EndpointConnectionError | botocore.exceptions.ConnectTimeoutError):
        url = getattr(exc, "kwargs", {}).get("endpoint_url", "")
        return StoreUnreachable(
            f"cannot reach the S3 endpoint {url} for {where}".replace("  ", " "),
            hint="check --endpoint-url / AWS_ENDPOINT_URL and that the store is running",
            **ctx,
        )
    if isinstance(exc, botocore.exceptions.ClientError):
        err = exc.response.get("Error", {})
        code = str(err.get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in ("NoSuchBucket",):
            return BucketNotFound(
                f"bucket {bucket!r} does not exist ({where})",
                hint="check the bucket name and the endpoint/region",
                **ctx,
            )
        if code in ("NoSuchKey", "404", "NotFound"):
            return ObjectNotFound(
                f"object {where} does not exist",
                hint=f"check the key; list the prefix with 'aws s3 ls s3://{bucket}/'",
                **ctx,
            )
        if code in ("PreconditionFailed", "412"):
            return ObjectChanged(
                f"object {where} was replaced while it was being read",
                hint="nothing was loaded; retry once the writer has finished",
                **ctx,
            )
        if code in _BAD_CREDENTIALS:
            return CredentialsError(
                f"S3 rejected the credentials for {where} ({code})",
                hint="check the access key, secret key and session token (or the profile)",
                **ctx,
            )
        if code in _DENIED or status == 403:
            return AccessDenied(
                f"access denied to {where}",
                hint="grant s3:GetObject (and s3:ListBucket) on it to these credentials",
                **ctx,
            )
        if code in ("PermanentRedirect", "301", "AuthorizationHeaderMalformed"):
            region = bucket_region_of(exc)
            return StoreError(
                f"bucket {bucket!r} is in another region ({region or 'unknown'})",
                hint="pass --region " + (region or "<the bucket's region>"),
                **ctx,
            )
        if code in _TRANSIENT or (status is not None and status >= 500):
            return TransientStoreError(
                f"S3 failed on {where} ({code or status}); it may succeed if retried",
                **ctx,
            )
        return StoreError(f"S3 error on {where}: {code} {err.get('Message', '')}".strip(), **ctx)
    if isinstance(exc, botocore.exceptions.BotoCoreError | OSError):
        return TransientStoreError(
            f"reading {where} failed: {exc}",
            hint="retry; if it persists check the network and the endpoint",
            **ctx,
        )
    return StoreError(f"S3 error on {where}: {exc}", **ctx)


def bucket_region_of(exc: botocore.exceptions.ClientError) -> str | None:
    headers = exc.response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
    region = headers.get("x-amz-bucket-region") or exc.response.get("Error", {}).get("Region")
    return str(region) if region else None
