"""What to serve, as typed dataclasses: built by the CLI from flags, from a ``serve`` file, or in Python.

An :class:`AppConfig` lists services (:class:`ServiceSpec`); each names its kind
(fetch, store, relay, http), its address, its kind's options (SOURCE, TARGET,
upstream, ...), its backend options (:class:`BackendOptions`) and its TLS
context.  :class:`~aioaccess.app.App` serves one.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from ssl import SSLContext
from typing import Any, Literal

from ..server.config import ServerConfig
from ..wire.messages import DEFAULT_MAX_REPLY_SIZE

__all__ = ["AppConfig", "BackendOptions", "Kind", "RelayOptions", "ServiceSpec", "default_redis_client"]

Kind = Literal["fetch", "store", "relay", "http"]

#: Length of the hex MD5 prefix of S3 keys (concrete-python's).
DEFAULT_PREFIX_LEN = 4


def default_redis_client() -> str:
    """``pipe`` unless ``$AIOACCESS_REDIS_CLIENT`` says otherwise."""
    return os.environ.get("AIOACCESS_REDIS_CLIENT") or "pipe"


def _default_s3_client() -> str:
    from ..backends.s3_url import DEFAULT_S3_CLIENT

    return DEFAULT_S3_CLIENT


@dataclass
class BackendOptions:
    """How a SOURCE or TARGET is opened: the backend flags of fetch-server, ``[backend]`` keys of ``serve``."""

    redis_key: str | None = None
    prefix_len: int = DEFAULT_PREFIX_LEN
    endpoint_url: str | None = None
    max_file_size: int = 1 << 30
    backend_timeout: float = 10.0
    backend_concurrency: int = 64
    #: Redis buckets; -1: one hash on redis://, 64 on redis+cluster://.
    shards: int = -1
    redis_wait_replicas: int = 0
    redis_client: str = field(default_factory=default_redis_client)
    s3_client: str = field(default_factory=_default_s3_client)
    s3_list_ttl: float = 5.0
    #: TLS to a relay's upstream or a ``fetch://`` source (``--upstream-tls...``).
    upstream_tls: bool = False
    upstream_tls_ca: str | None = None
    upstream_tls_cert: str | None = None
    upstream_tls_key: str | None = None
    #: Directory targets: fsync before acknowledging (a service setting, not a ``[backend]`` key).
    fsync: bool = True

    @classmethod
    def keys(cls) -> tuple[str, ...]:
        """The ``[backend]`` keys of a ``serve`` file (every field but ``fsync``)."""
        return tuple(f.name for f in fields(cls) if f.name != "fsync")

    @classmethod
    def from_args(cls, args: Any, **overrides: Any) -> BackendOptions:
        """The options an object with these attributes (parsed flags) holds; missing ones keep their defaults."""
        values = {name: getattr(args, name) for name in cls.keys() if hasattr(args, name)}
        if hasattr(args, "no_fsync"):
            values["fsync"] = not args.no_fsync
        return cls(**{**values, **overrides})


@dataclass
class RelayOptions:
    """The upstream pool of a relay (relay-server, or http-server's ``fetch://`` source)."""

    connections: int = 64
    #: Seconds a relayed call may take; None: the relay's default (``handlers.relay.DEFAULT_RELAY_TIMEOUT``).
    timeout: float | None = None
    pipelined: bool = True
    #: Ask the upstream alive() at startup and log the answer (the relay starts either way).
    check: bool = True


@dataclass
class ServiceSpec:
    """One service: ``kind`` on ``host:port``.

    ``options`` holds the kind's keys, as in a ``serve`` file: ``source`` (fetch), ``target``
    (store), ``upstream`` = "HOST:PORT" (relay); for http ``fetch``/``store`` (names of
    services above) or ``source``/``target``, ``static``, ``cors_origins``, ``cors_store``,
    ``client_max_size`` and the limits ``header_timeout``, ``keepalive_timeout``,
    ``body_timeout``, ``max_connections``.
    """

    name: str
    kind: Kind
    host: str = "127.0.0.1"
    port: int = 9090
    options: dict[str, Any] = field(default_factory=dict)
    backend: BackendOptions = field(default_factory=BackendOptions)
    #: Serve over TLS with this context (:func:`aioaccess.tls.server_context`); None: plaintext.
    ssl: SSLContext | None = None
    #: The upstream pool of a relay, or of an http service whose ``source`` is ``fetch://``
    #: (None: a relay gets ``backend_concurrency``/``backend_timeout``, an http source a fetch:// container).
    relay: RelayOptions | None = None


@dataclass
class AppConfig:
    """Every service of one process, the limits they share, metrics and workers."""

    services: list[ServiceSpec] = field(default_factory=list)
    server: ServerConfig = field(default_factory=ServerConfig)
    loop: Literal["auto", "asyncio", "uvloop"] = "auto"
    #: Processes sharing every port (SO_REUSEPORT); > 1 needs a command line to re-run (see ``run_app``).
    workers: int = 1
    metrics_host: str = "127.0.0.1"
    #: Serve Prometheus metrics on http://METRICS_HOST:PORT/metrics; None: off.
    metrics_port: int | None = None
    #: ``max_reply_size`` of every fetch service's Processor.
    max_reply_size: int = DEFAULT_MAX_REPLY_SIZE
    #: The ``serve`` file this came from (named in errors), or None.
    path: str | None = None

    def service(self, name: str) -> ServiceSpec:
        return next(s for s in self.services if s.name == name)
