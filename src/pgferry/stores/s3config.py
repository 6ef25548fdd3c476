"""How to reach S3 (`S3Config`) and the checks made before any client
exists: apart from pgferry.stores.s3 so that parsing options, a local-file
import and `--help` never import botocore."""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import urlsplit

from pgferry.errors import UsageError


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


def check_config(config: S3Config) -> None:
    """Mistakes boto3 would report as a bare ValueError or TypeError."""
    if config.session_token and not (config.access_key and config.secret_key):
        raise UsageError(
            "a session token was given without its access key and secret key",
            hint="pass --access-key and --secret-key with --session-token, "
            "or set all three in the AWS environment variables",
        )
    for origin, url in (
        ("--endpoint-url", config.endpoint_url),
        ("AWS_ENDPOINT_URL_S3", os.environ.get("AWS_ENDPOINT_URL_S3")),
        ("AWS_ENDPOINT_URL", os.environ.get("AWS_ENDPOINT_URL")),
    ):
        if url:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise UsageError(
                    f"{origin} {url!r} is not an http:// or https:// URL",
                    hint=f"write it with its scheme, e.g. http://{parts.netloc or url}",
                )
            # the explicit flag wins: the environment is not consulted then
            return
