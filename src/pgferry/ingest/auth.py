"""Who may talk to the HTTP endpoints a watcher opens (--notify-listen,
--metrics): whoever holds the token set in the environment.

The token comes from an environment variable, never argv (visible in ps).
A request carries it as `Authorization: Bearer TOKEN` (SeaweedFS's webhook
`bearer_token`, Prometheus's `authorization` / `bearer_token`) or as the
password of HTTP Basic authentication (an SNS subscription URL
`https://pgferry:TOKEN@host/`; Prometheus's `basic_auth`).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import os

from pgferry.errors import UsageError

NOTIFY_TOKEN_VAR = "PGFERRY_NOTIFY_TOKEN"  # noqa: S105 (a variable name)
METRICS_TOKEN_VAR = "PGFERRY_METRICS_TOKEN"  # noqa: S105 (a variable name)
MIN_LENGTH = 16


def required_token(variable: str, flag: str) -> str:
    """The token in `variable`; a usage error when it is missing or short."""
    token = os.environ.get(variable, "")
    if len(token) < MIN_LENGTH:
        raise UsageError(
            f"{flag} needs a token of at least {MIN_LENGTH} characters in {variable}",
            hint=f"export {variable}=$(openssl rand -hex 24) and give the same token to "
            "the sender (see 'Endpoints and tokens' in the README)",
        )
    return token


def authorized(header: str | None, token: str) -> bool:
    """Whether an Authorization header carries `token` (compared in
    constant time: a timing difference would leak it byte by byte)."""
    scheme, _, value = (header or "").partition(" ")
    presented = ""
    if scheme.lower() == "bearer":
        presented = value.strip()
    elif scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return False
        presented = decoded.partition(":")[2]
    return hmac.compare_digest(presented.encode(), token.encode())
