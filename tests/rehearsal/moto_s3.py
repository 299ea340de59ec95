"""A real S3 API on this machine: moto's server mode as a subprocess, for everything production points at s3://.

`moto_server()` starts `python -m moto.server` on a free port, waits until it answers, creates a bucket and yields a
`MotoS3` with the endpoint and the environment a cluster would give a pod (AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_S3,
AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION). Code under test reaches it through s3fs/botocore,
which read those variables themselves; nothing here patches the code under test.

`host="0.0.0.0"` listens on every interface so Docker containers can reach it as `host.docker.internal:<port>`
(`MotoS3.env_for_host("host.docker.internal")` gives their environment). The fixtures `moto_s3` (function scope,
a fresh bucket per test on one server per module) and `moto_s3_env` (also sets the variables in `os.environ`)
are importable into a test module or conftest.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

ACCESS_KEY_ID = "valley-rehearsal"
SECRET_ACCESS_KEY = "valley-rehearsal-secret"
REGION = "us-east-1"


@dataclass
class MotoS3:
    host: str
    port: int
    bucket: str
    process: subprocess.Popen = field(repr=False)

    @property
    def endpoint_url(self) -> str:
        """The endpoint as seen from this machine."""
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"http://{host}:{self.port}"

    def env_for_host(self, host: str) -> dict[str, str]:
        """The S3 environment for a client that reaches the server as `host` (e.g. host.docker.internal)."""
        endpoint = f"http://{host}:{self.port}"
        return {
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ENDPOINT_URL_S3": endpoint,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
            "AWS_DEFAULT_REGION": REGION,
        }

    @property
    def env(self) -> dict[str, str]:
        return self.env_for_host("127.0.0.1" if self.host in ("0.0.0.0", "") else self.host)

    def uri(self, *parts: str) -> str:
        return "/".join([f"s3://{self.bucket}", *parts])

    def create_bucket(self, name: str | None = None) -> str:
        """A new empty bucket on this server (its name)."""
        import boto3

        name = name or f"valley-{uuid.uuid4().hex[:12]}"
        client = boto3.client("s3", endpoint_url=self.endpoint_url, aws_access_key_id=ACCESS_KEY_ID,
                              aws_secret_access_key=SECRET_ACCESS_KEY, region_name=REGION)
        client.create_bucket(Bucket=name)
        return name


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _wait_until_up(url: str, process: subprocess.Popen, log, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log.seek(0)
            err = log.read().decode(errors="replace")
            raise RuntimeError(f"moto server exited with {process.returncode} before answering: {err[-2000:]}")
        try:
            with urllib.request.urlopen(f"{url}/moto-api/", timeout=1):
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.1)
    raise TimeoutError(f"moto server at {url} did not answer within {timeout_s} s")


@contextlib.contextmanager
def moto_server(host: str = "127.0.0.1", *, bucket: str = "valley", timeout_s: float = 30.0) -> Iterator[MotoS3]:
    """Start moto's S3 server on a free port of `host`, create `bucket`, yield a MotoS3, stop the server."""
    port = _free_port("127.0.0.1" if host in ("0.0.0.0", "") else host)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    # The server logs every request to stderr: into a file, never a pipe nobody drains (a full pipe blocks the
    # server mid-request, and every client then times out).
    log = tempfile.TemporaryFile()
    process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", host, "-p", str(port)],
                               stdout=subprocess.DEVNULL, stderr=log, env=env)
    try:
        server = MotoS3(host=host, port=port, bucket=bucket, process=process)
        _wait_until_up(server.endpoint_url, process, log, timeout_s)
        server.create_bucket(bucket)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def clear_s3_client_cache() -> None:
    """s3fs caches filesystem instances by their arguments, not by the environment: forget them when the
    environment (endpoint, credentials) changes, as a fresh pod would start without any."""
    try:
        import s3fs
    except ImportError:
        return
    s3fs.S3FileSystem.clear_instance_cache()


@pytest.fixture(scope="module")
def moto_s3_server() -> Iterator[MotoS3]:
    with moto_server() as server:
        yield server


@pytest.fixture
def moto_s3(moto_s3_server: MotoS3) -> MotoS3:
    """A fresh bucket per test on the module's server."""
    return MotoS3(host=moto_s3_server.host, port=moto_s3_server.port,
                  bucket=moto_s3_server.create_bucket(), process=moto_s3_server.process)


@pytest.fixture
def moto_s3_env(moto_s3: MotoS3, monkeypatch: pytest.MonkeyPatch) -> MotoS3:
    """`moto_s3` with its AWS_* variables set in this process, as a pod's environment would be."""
    for key in [k for k in os.environ if k.startswith("AWS_")]:
        monkeypatch.delenv(key)
    for key, value in moto_s3.env.items():
        monkeypatch.setenv(key, value)
    clear_s3_client_cache()
    yield moto_s3
    clear_s3_client_cache()
