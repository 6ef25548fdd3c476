"""Notifications: hints that an object landed, to load it before the next listing.

`--notify-listen HOST:PORT` serves an HTTP endpoint taking POSTed JSON in
three shapes: an SNS message wrapping an S3 event (AWS's bucket notification
through an SNS HTTP subscription), a bare S3 event (`{"Records": [...]}`),
and a SeaweedFS filer webhook (`{"event_type": "create", "key":
"/buckets/<bucket>/<key>", "message": {"new_entry": ..., "new_parent_path":
...}}`, checked against SeaweedFS 4.48). A notification only names a key: the
watcher HEADs it and records the version it finds, so a duplicate changes
nothing and a lost one is found by the next listing.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import unquote_plus

from pgferry.errors import UsageError
from pgferry.ingest.auth import authorized

log = logging.getLogger("pgferry.watch")

#: the filer folder under which SeaweedFS keeps its S3 buckets
SEAWEED_BUCKETS = "/buckets/"
#: the bucket folder holding multipart uploads in progress: its parts are
#: filer files that HEAD and GET serve, but never objects to load
SEAWEED_UPLOADS = ".uploads/"
#: in a versioned bucket each version of `<key>` is the filer file
#: `<key>.versions/v_<id>` (HEAD and GET serve it too); no event names `<key>`
SEAWEED_VERSIONS = ".versions/v_"
MAX_BODY = 1 << 20

Hint = tuple[str, str]  # (bucket, key)


def parse_listen(text: str, option: str = "--notify-listen") -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(
            f"{option} {text!r} is not HOST:PORT", hint=f"e.g. {option} 127.0.0.1:8085"
        )
    return host.strip("[]"), int(port)


def hints_from(doc: Any) -> list[Hint]:
    """The (bucket, key) pairs a notification names; [] for anything else."""
    if not isinstance(doc, dict):
        return []
    if doc.get("Type") == "SubscriptionConfirmation":
        # confirming means fetching a URL from an unauthenticated request: left to the operator
        log.warning(
            "SNS subscription confirmation received for topic %s: confirm it with "
            "'aws sns confirm-subscription' (token in the message), pgferry does not fetch URLs",
            doc.get("TopicArn"),
        )
        return []
    if doc.get("Type") == "Notification" and isinstance(doc.get("Message"), str):
        try:
            return hints_from(json.loads(doc["Message"]))
        except ValueError:
            return []
    if isinstance(doc.get("Records"), list):
        found = []
        for rec in doc["Records"]:
            if not isinstance(rec, dict) or not str(rec.get("eventName", "")).startswith(
                "ObjectCreated"
            ):
                continue
            s3 = rec.get("s3") or {}
            bucket = (s3.get("bucket") or {}).get("name")
            key = (s3.get("object") or {}).get("key")
            if isinstance(bucket, str) and isinstance(key, str):
                found.append((bucket, unquote_plus(key)))  # S3 events form-encode keys
        return found
    if "event_type" in doc:
        return _filer_hints(doc)
    return []


def _filer_hints(doc: dict[str, Any]) -> list[Hint]:
    """A SeaweedFS filer webhook: `key` is the entry's path, except for a
    rename, where it is the old path and the entry now lives under
    `message.new_parent_path`. Folders, deletes, the buckets' own metadata and
    multipart parts name no object; a version file names its object."""
    event, path = doc.get("event_type"), doc.get("key")
    message: dict[str, Any] = doc["message"] if isinstance(doc.get("message"), dict) else {}
    entry: dict[str, Any] = (
        message["new_entry"] if isinstance(message.get("new_entry"), dict) else {}
    )
    if entry.get("is_directory"):
        return []
    if event == "rename":
        parent, name = message.get("new_parent_path"), entry.get("name")
        if not (isinstance(parent, str) and isinstance(name, str)):
            return []
        path = f"{parent.rstrip('/')}/{name}"
    elif event not in ("create", "update"):
        return []
    if not isinstance(path, str) or not path.startswith(SEAWEED_BUCKETS):
        return []
    bucket, _, key = path[len(SEAWEED_BUCKETS) :].partition("/")
    # a bucket name never starts with ".": /buckets/.system is the filer's own
    if not bucket or bucket.startswith(".") or not key or key.startswith(SEAWEED_UPLOADS):
        return []
    folder, sep, version = key.rpartition(SEAWEED_VERSIONS)
    if sep and folder and "/" not in version:
        key = folder  # the object whose version this is: HEAD gives its current one
    return [(bucket, key)]


class Sink(Protocol):
    def put(self, item: Hint | None) -> None: ...


class NotifyServer:
    """The HTTP endpoint; hints go to `sink` (the discovery loop's queue)."""

    def __init__(
        self, listen: tuple[str, int], sink: Sink | queue.Queue[Hint | None], token: str
    ) -> None:
        self.sink = sink
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                if not authorized(self.headers.get("Authorization"), token):
                    # the challenge makes SNS send the URL's basic-auth credentials
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", 'Basic realm="pgferry"')
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                size = int(self.headers.get("Content-Length") or 0)
                if size > MAX_BODY:
                    self._reply(413)
                    return
                try:
                    doc = json.loads(self.rfile.read(size) or b"null")
                except ValueError:
                    self._reply(400)
                    return
                for hint in hints_from(doc):
                    owner.sink.put(hint)
                self._reply(200)

            def _reply(self, code: int) -> None:
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass  # one line per request would drown the watcher's own

        try:
            self.httpd = ThreadingHTTPServer(listen, Handler)
        except OSError as e:
            raise UsageError(
                f"cannot listen on {listen[0]}:{listen[1]} for notifications: {e.strerror}",
                hint="choose another --notify-listen address",
            ) from None
        self.httpd.daemon_threads = True
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    def __enter__(self) -> NotifyServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
