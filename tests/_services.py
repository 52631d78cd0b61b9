"""Real backend services for tests: a redis-server and moto's S3 server, as subprocesses.

``tests/conftest.py`` imports everything in ``__all__``, so any test may ask for:

``redis_server`` (session)
    URL (``redis://127.0.0.1:PORT/0``) of a ``redis-server`` started for the
    session (no persistence).  Tests share it: use ``redis_client`` (which
    flushes the database) or a uuid key.
``redis_client`` (function, async)
    A ``redis.asyncio.Redis`` on ``redis_server`` (``decode_responses=False``),
    database flushed before the test, ``aclose()``d after.
``redis_key`` (function)
    A fresh uuid hash key.
``RedisServerProcess(port)``
    Start/stop your own redis-server (``.start()``, ``.stop()``, ``.url``), e.g.
    to kill Redis under a running server and bring it back on the same port.
``MotoServerProcess(port)``
    The same for your own ``moto_server`` (``.url`` is the endpoint URL); call
    ``set_dummy_aws_env()`` first if no ``s3_server`` fixture ran.
``s3_server`` (session)
    Endpoint URL (``http://127.0.0.1:PORT``) of ``moto_server`` started for the
    session.  Dummy AWS credentials and region are put in ``os.environ``
    (``setdefault``) so aiobotocore, boto3, boto and subprocesses find them.
``s3_client`` (function, async)
    An aiobotocore S3 client on ``s3_server`` made by ``aioaccess``'s ``make_s3_client``.
``s3_bucket`` (function, async)
    Name of a new, empty uuid bucket on ``s3_server``.

A missing ``redis-server`` or ``moto_server`` fails the tests that need it
with a message saying so: nothing is skipped silently.  Mark such tests
``redis`` / ``s3`` so they can be deselected with ``-m``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import IO, Any

import pytest

__all__ = [
    "MotoServerProcess",
    "RedisServerProcess",
    "ServiceProcess",
    "redis_client",
    "redis_key",
    "redis_server",
    "s3_bucket",
    "s3_client",
    "s3_server",
    "set_dummy_aws_env",
]

#: Seconds a service may take to answer after it was started.
START_TIMEOUT = 30.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def set_dummy_aws_env() -> None:
    """Dummy credentials and region for moto (kept if already set)."""
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    os.environ.setdefault("AWS_CONFIG_FILE", os.devnull)
    os.environ.setdefault("AWS_SHARED_CREDENTIALS_FILE", os.devnull)


class ServiceProcess:
    """A service subprocess whose output goes to a log file (no pipes to leak)."""

    name = "service"

    def __init__(self, argv: list[str], port: int) -> None:
        self.argv = argv
        self.port = port
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self.log_path = os.path.join(tempfile.gettempdir(), f"aioaccess-{self.name}-{port}-{os.getpid()}.log")

    def ready(self) -> bool:
        raise NotImplementedError

    def start(self) -> None:
        """Start the process and wait until it answers."""
        if shutil.which(self.argv[0]) is None:
            pytest.fail(f"{self.argv[0]} is not on PATH: install it to run the {self.name} tests "
                        "(tests/run.sh does), or deselect them with -m 'not redis and not s3'", pytrace=False)
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT
        while not self.ready():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                with open(self.log_path, "rb") as f:
                    tail = f.read()[-2000:].decode("utf-8", "replace")
                pytest.fail(f"{self.argv[0]} did not start on port {self.port}:\n{tail}", pytrace=False)
            time.sleep(0.05)

    def stop(self) -> None:
        """Terminate the process and wait for it."""
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
            self.proc = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> ServiceProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class RedisServerProcess(ServiceProcess):
    """``redis-server`` on 127.0.0.1:``port`` without persistence."""

    name = "redis"

    def __init__(self, port: int | None = None) -> None:
        port = port or _free_port()
        super().__init__(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                          "--appendonly", "no"], port)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def ready(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False


class MotoServerProcess(ServiceProcess):
    """moto's S3 (and more) HTTP server on 127.0.0.1:``port``."""

    name = "moto"

    def __init__(self, port: int | None = None) -> None:
        port = port or _free_port()
        super().__init__(["moto_server", "-H", "127.0.0.1", "-p", str(port)], port)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/moto-api/", timeout=1) as response:
                response.read()
            return True
        except urllib.error.HTTPError:
            return True  # it answered
        except OSError:
            return False


@pytest.fixture(scope="session")
def redis_server() -> Iterator[str]:
    """URL of a redis-server started for the session."""
    with RedisServerProcess() as server:
        yield server.url  # type: ignore[attr-defined]


@pytest.fixture
async def redis_client(redis_server: str) -> AsyncIterator[Any]:
    """``redis.asyncio.Redis`` on the session server; database flushed first."""
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(redis_server)
    await client.flushdb()
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
def redis_key() -> str:
    return f"comms-{uuid.uuid4().hex}"


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """Endpoint URL of moto's server started for the session."""
    set_dummy_aws_env()
    with MotoServerProcess() as server:
        yield server.url  # type: ignore[attr-defined]


@pytest.fixture
async def s3_client(s3_server: str) -> AsyncIterator[Any]:
    """An aiobotocore S3 client on ``s3_server``."""
    from aioaccess.backends.s3 import make_s3_client

    async with make_s3_client(s3_server) as client:
        yield client


@pytest.fixture
async def s3_bucket(s3_client: Any) -> str:
    """A new, empty bucket on ``s3_server``."""
    name = f"test-{uuid.uuid4().hex}"
    await s3_client.create_bucket(Bucket=name)
    return name
