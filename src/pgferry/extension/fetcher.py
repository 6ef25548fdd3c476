"""The program the aws_s3 extension runs with COPY ... FROM/TO PROGRAM.

    python -I -m pgferry.extension.fetcher {prepare|options|import|export} ID

It runs as the database server's OS user, in the data directory (COPY's
working directory). The command line holds only the mode and a random hex
id: the request itself (bucket, key, region, options, keys) is in
`pgferry_aws_s3/ID.req`, written by the extension's definer function and
deleted here as soon as it is read. An import's request holds the caller's
keys, so it is written only while this program waits for it: we announce
`ID.wait` (once per id: a fetch runs once), and delete the request when it
is read, or when our stdout pipe closes because the statement failed first
(COPY waits for us to exit, so that always happens before it returns).
The result goes to `ID.status` (JSON), which the definer function reads
back: `{"size": ...}` / `{"files": ...}`, or `{"error": "<one line>"}` so
the caller gets the same error text the client-side import prints, not just
"program failed".

Imports use `pgferry.fetch.open_decoded` and `checked`, the client import's
own fetch and decode path (it refuses a zip or xz object with the client's
one-line error and drops a UTF-8 BOM), and stream to stdout: nothing is
written to disk. Nothing here prints a secret: stderr ends up in the server
log.
"""

from __future__ import annotations

import json
import logging
import os
import re
import select
import signal
import sys
import time
from pathlib import Path
from typing import Any, BinaryIO

from pgferry.errors import (
    AccessDenied,
    BucketNotFound,
    CopyOptionsError,
    CredentialsError,
    DecodeError,
    ObjectNotFound,
    PgferryError,
    UsageError,
)

SPOOL = Path("pgferry_aws_s3")
STALE_SECONDS = 900  # leftovers of calls that died between write and read
WAIT_SECONDS = 60  # an import's program waits this long for its request
GRACE_SECONDS = 1.0
_ID = re.compile(r"[0-9a-f]{32}")
_BUCKET = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{1,253}[A-Za-z0-9]")
_REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-[0-9]{1,2}")
log = logging.getLogger("pgferry.aws_s3")

# SQLSTATEs for the ERROR the definer function raises
_STATES: tuple[tuple[type[PgferryError], str], ...] = (
    (CopyOptionsError, "22023"),
    (UsageError, "22023"),
    (ObjectNotFound, "58P01"),
    (BucketNotFound, "58P01"),
    (AccessDenied, "42501"),
    (CredentialsError, "28000"),
    (DecodeError, "22P04"),
)


def sqlstate(err: PgferryError) -> str:
    for cls, state in _STATES:
        if isinstance(err, cls):
            return state
    return "58030"  # io_error: the store failed


def read_request(req_id: str) -> dict[str, Any]:
    path = SPOOL / f"{req_id}.req"
    try:
        text = path.read_text().strip()
    finally:
        path.unlink(missing_ok=True)
    data = json.loads(bytes.fromhex(text).decode("utf-8"))
    if not isinstance(data, dict):
        raise UsageError("malformed aws_s3 request")
    return data


class PipeClosed(Exception):
    """The statement that started us ended before sending the request."""


def _complete(path: Path) -> str | None:
    """The request once fully written (COPY ends it with a newline)."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    return text if text.endswith("\n") else None


def await_request(req_id: str, out_fd: int) -> dict[str, Any]:
    """Announce that we wait (`ID.wait`), wait for the gate to write the
    request, read and delete it. A fetch id runs once (`ID.used`): a second
    scan of the same foreign table is refused. If `out_fd` (our stdout pipe)
    closes first, or nothing comes within WAIT_SECONDS, delete whatever was
    or is still being written, and stop."""
    try:
        os.close(os.open(SPOOL / f"{req_id}.used", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        raise PipeClosed from None
    waiting, path = SPOOL / f"{req_id}.wait", SPOOL / f"{req_id}.req"
    os.close(os.open(waiting, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    poller = select.poll()
    poller.register(out_fd, 0)  # reports POLLERR once the reader has gone
    deadline = time.monotonic() + WAIT_SECONDS
    text = None
    try:
        while (text := _complete(path)) is None:
            if poller.poll(10):
                raise PipeClosed
            if time.monotonic() > deadline:
                raise UsageError(
                    f"aws_s3: the import's request did not come within {WAIT_SECONDS} s "
                    "(a BEFORE STATEMENT trigger on the table may be too slow)"
                )
    finally:
        waiting.unlink(missing_ok=True)
        path.unlink(missing_ok=True)
        if text is None:
            # the gate may have seen ID.wait just before it went: catch its write
            end = time.monotonic() + GRACE_SECONDS
            while time.monotonic() < end:
                time.sleep(0.01)
                path.unlink(missing_ok=True)
    data = json.loads(bytes.fromhex(text.strip()).decode("utf-8"))
    if not isinstance(data, dict):
        raise UsageError("malformed aws_s3 request")
    return data


_CREDENTIAL = re.compile(r"[!-~]*")


def check_credentials(req: dict[str, Any]) -> None:
    """As the SQL side checks: keys go into an HTTP header, so printable
    ASCII only; the message names the field, never the value."""
    for name in ("access_key", "secret_key", "session_token"):
        value = req.get(name)
        if value is not None and not (isinstance(value, str) and _CREDENTIAL.fullmatch(value)):
            raise UsageError(f"invalid AWS {name.replace('_', ' ')}: use printable ASCII")


def secrets_of(req: dict[str, Any] | None) -> list[str]:
    if not req:
        return []
    values = (req.get(n) for n in ("access_key", "secret_key", "session_token"))
    return [v for v in values if isinstance(v, str) and v]


def safe_message(err: BaseException, secrets: list[str]) -> str:
    """A one-line message for the caller and the server log: pgferry's own
    text, with any library exception's text (an HTTP client may quote a
    header, keys included) replaced by its class name, and any of the
    call's keys blanked."""
    if isinstance(err, PgferryError):
        msg = err.message
        # every exception behind it (botocore's wraps urllib3's, and so on),
        # longest text first since outer texts quote inner ones
        chain: list[BaseException] = []
        todo = [err.__cause__, err.__context__]
        while todo:
            inner = todo.pop()
            if inner is None or inner in chain or len(chain) > 20:
                continue
            chain.append(inner)
            todo += [inner.__cause__, inner.__context__]
        for inner in sorted(chain, key=lambda e: -len(str(e))):
            if not isinstance(inner, PgferryError) and str(inner):
                msg = msg.replace(str(inner), type(inner).__name__)
    else:
        msg = f"failed: {type(err).__name__}"
    for secret in secrets:
        msg = msg.replace(secret, "[redacted]")
    return " ".join(msg.split())


def write_status(req_id: str, status: dict[str, Any]) -> None:
    tmp = SPOOL / f"{req_id}.status.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(status, f)
    tmp.replace(SPOOL / f"{req_id}.status")


def sweep(now: float | None = None) -> None:
    now = time.time() if now is None else now
    for entry in SPOOL.iterdir():
        try:
            if now - entry.stat().st_mtime > STALE_SECONDS:
                entry.unlink()
        except OSError:
            pass


def object_of(req: dict[str, Any]) -> tuple[str, str, str | None]:
    """Bucket, key, region, checked again here (the SQL side checks first):
    with a custom endpoint the bucket is a path segment, on AWS a host label,
    so only these characters can never steer a request to another host."""
    bucket, key, region = req.get("bucket"), req.get("key"), req.get("region")
    if not isinstance(bucket, str) or not _BUCKET.fullmatch(bucket):
        raise UsageError(f"invalid S3 bucket name {bucket!r}")
    if not isinstance(key, str) or not key or len(key.encode()) > 1024:
        raise UsageError(f"invalid S3 file_path {key!r}")
    if region is not None and (not isinstance(region, str) or not _REGION.fullmatch(region)):
        raise UsageError(f"invalid AWS region {region!r}")
    return bucket, key, region


def s3_config(req: dict[str, Any], region: str | None) -> Any:
    """Keys from the call, else the server's default chain. Never an endpoint:
    that comes only from the server's environment / AWS config."""
    from pgferry.stores.s3 import S3Config

    check_credentials(req)

    def opt(name: str) -> str | None:
        value = req.get(name)
        return value if isinstance(value, str) and value else None

    return S3Config(
        region=region,
        access_key=opt("access_key"),
        secret_key=opt("secret_key"),
        session_token=opt("session_token"),
    )


def do_options(req: dict[str, Any]) -> dict[str, Any]:
    from pgferry.extension.options import options_for

    return {"options": options_for(str(req.get("options") or ""), str(req.get("direction")))}


def do_import(req: dict[str, Any], out: BinaryIO) -> dict[str, Any]:
    from pgferry.extension.options import parse_for
    from pgferry.fetch import checked, is_utf8, open_decoded
    from pgferry.stores import ObjectRef

    bucket, key, region = object_of(req)
    ref = ObjectRef(key=key, bucket=bucket, region=region)
    assert not ref.is_local  # a request can never name a server-side file
    options = parse_for(str(req.get("options") or ""), "import")
    # without an encoding option COPY reads the bytes in the client encoding
    client = req.get("client_encoding")
    encoding = options.encoding or (client if isinstance(client, str) else None)
    with open_decoded(ref, s3_config(req, region)) as obj:
        _, stream = checked(
            obj.stream(),
            ref,
            codec=obj.codec,
            requested="auto",
            fmt=options.format,
            utf8=is_utf8(encoding),
        )
        for chunk in stream:
            out.write(chunk)
        out.flush()
        return {"size": obj.size, "codec": obj.codec}


def do_export(req: dict[str, Any], source: BinaryIO) -> dict[str, Any]:
    from pgferry.extension.upload import upload_parts

    bucket, key, region = object_of(req)
    kms = req.get("kms_key")
    files, size = upload_parts(
        source,
        bucket=bucket,
        key=key,
        config=s3_config(req, region),
        options=str(req.get("options") or ""),
        part_size=req.get("part_size"),
        kms_key=kms if isinstance(kms, str) and kms else None,
    )
    return {"files": files, "bytes": size}


def main(argv: list[str]) -> int:
    logging.basicConfig(
        stream=sys.stderr, level=logging.WARNING, format="pgferry aws_s3: %(message)s"
    )
    if len(argv) < 1 or argv[0] not in ("prepare", "options", "import", "export"):
        print("usage: fetcher {prepare|options|import|export} ID", file=sys.stderr)
        return 2
    mode = argv[0]
    # statement_timeout and pg_cancel_backend signal the backend's whole
    # process group, us included. An import lets the backend handle the
    # cancel (it stops reading and closes our pipe) rather than dying
    # mid-row, which would make the scan fail first and the cancel arrive
    # outside the import's error handler. An export must die: after a cancel
    # its input simply ends, and it would upload the partial output.
    # SIGTERM (pg_terminate_backend) ends us through the `finally` clean-ups.
    if mode != "export":
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _exit_on_term)
    if mode == "prepare":
        SPOOL.mkdir(mode=0o700, exist_ok=True)
        SPOOL.chmod(0o700)
        sys.stdin.buffer.read()
        return 0
    if len(argv) != 2 or not _ID.fullmatch(argv[1]):
        print("fetcher: bad request id", file=sys.stderr)
        return 2
    req_id = argv[1]
    req: dict[str, Any] | None = None
    try:
        req = await_request(req_id, sys.stdout.fileno()) if mode == "import" else None
        req = req if req is not None else read_request(req_id)
        sweep()
        if mode == "options":
            sys.stdin.buffer.read()
            status = do_options(req)
        elif mode == "import":
            status = do_import(req, sys.stdout.buffer)
        else:
            status = do_export(req, sys.stdin.buffer)
    except KeyboardInterrupt:
        log.warning("aws_s3 %s cancelled", mode)
        return 1
    except PipeClosed:
        log.warning("import %s ended before it was sent its request", req_id)
        return 1
    except BrokenPipeError:
        # COPY stopped reading (it rejected a row): its error is the one to show
        _quiet_stdout()
        return 1
    except PgferryError as e:
        msg = safe_message(e, secrets_of(req))
        write_status(req_id, {"error": msg, "sqlstate": sqlstate(e)})
        log.warning("%s", msg)
        return 0 if mode == "options" else 1
    except Exception as e:  # anything else still gets a clear one-line ERROR
        msg = f"aws_s3 {mode} {safe_message(e, [])}"
        write_status(req_id, {"error": msg, "sqlstate": "58030"})
        log.warning("%s", msg)
        return 1
    write_status(req_id, status)
    return 0


def _exit_on_term(signum: int, frame: object) -> None:
    raise SystemExit(1)


def _quiet_stdout() -> None:
    """Stop Python complaining about the closed pipe at exit."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
