"""``aioaccess serve CONFIG.toml``: read and fully validate the config before anything binds.

The format (every key but ``kind``, ``port`` and the kind's SOURCE/TARGET is optional)::

    [server]                      # applies to every service of the process
    idle_timeout = 300.0          # seconds; 0 = never
    max_frame_size = 67108864     # bytes: largest request frame
    max_buffered_bytes = 1073741824   # bytes of unfinished request frames of all connections
                                      # together; >= max_frame_size
    max_reply_size = 1073741824   # fetch services: a reply of several Communications over
                                  # this many bytes is a ServicesException; 1..2147483647
                                  # (relays pass the upstream's replies on unchanged)
    max_connections = 10000
    graceful_timeout = 30.0       # seconds SIGTERM waits for in-flight calls
    backlog = 2048                # listen backlog
    loop = "auto"                 # auto | asyncio | uvloop
    workers = 1                   # processes sharing every port (SO_REUSEPORT)
    metrics_port = 9100           # Prometheus text format on /metrics; omit: off
    metrics_host = "127.0.0.1"

    [backend]                     # defaults for every service's backend options
    backend_timeout = 10.0        # (the --redis-key, --prefix-len, --endpoint-url,
                                  #  --max-file-size, ... flags of fetch-server, with _)

    [[services]]
    name = "corpus"               # label in logs and metrics; default: KIND-INDEX
    kind = "fetch"                # fetch | store | relay | http
    host = "127.0.0.1"            # default 127.0.0.1
    port = 9090
    source = "/data/comms"        # anything fetch-server takes as SOURCE

    [[services]]
    kind = "store"
    port = 9091
    target = "/data/incoming"     # anything store-server takes as TARGET
    fsync = true                  # directory targets

    [[services]]
    kind = "relay"
    port = 9092
    upstream = "fetch.example.org:9090"   # pool: backend_concurrency; timeout: backend_timeout

    [[services]]
    kind = "http"                 # HTTP/TJSON endpoint (access-http-server)
    port = 8080
    fetch = "corpus"              # name of a fetch/relay service above, or source = "..."
    store = "store-1"             # name of a store service above, or target = "..."
    static = "/srv/www"           # optional static files
    cors = false                  # deprecated: the same as cors_origins = ["*"] (fetch only)
    cors_origins = ["https://app.example.org"]   # origins whose pages may call fetch
    cors_store = false            # ...and store
    header_timeout = 30.0         # seconds for a request head, from its first byte; 0 = never
    keepalive_timeout = 75.0      # seconds without a request before closing; 0 = never
    body_timeout = 60.0           # seconds for a request body, from its head (408); 0 = never
    max_connections = 10000       # default: [server] max_connections; at the cap the connection
                                  # idle longest is closed, or 503 when all are busy

Backend keys (``redis_key``, ``endpoint_url``, ...) may also appear in a
service's own table, overriding ``[backend]``.

Every service may also have ``tls_cert``, ``tls_key`` and ``tls_client_ca`` (the
server flags ``--tls-cert``...: TLS, mutual TLS); ``upstream_tls``,
``upstream_tls_ca``, ``upstream_tls_cert`` and ``upstream_tls_key`` are backend keys
(a relay's upstream, ``fetch://`` sources); ``[server]`` takes ``tls_handshake_timeout``
(seconds, default 10).
"""

from __future__ import annotations

import tomllib
from dataclasses import asdict
from typing import Any

from ..app.config import AppConfig, BackendOptions, ServiceSpec
from ..server.config import ServerConfig
from ..server.supervisor import is_worker
from ..wire.messages import DEFAULT_MAX_REPLY_SIZE
from .config_services import ConfigError, check_backend_key, check_type, service_spec
from .options import check_buffered_bytes, check_reply_size

__all__ = ["ConfigError", "ServeConfig", "ServiceSpec", "load_config", "parse_config"]

#: A checked CONFIG.toml is an AppConfig (``path`` set).
ServeConfig = AppConfig

_SERVER_KEYS: dict[str, tuple[type | tuple[type, ...], Any]] = {
    "idle_timeout": ((int, float), 300.0),
    "max_frame_size": (int, ServerConfig.max_frame_size),
    "max_buffered_bytes": (int, ServerConfig.max_buffered_bytes),
    "max_reply_size": (int, DEFAULT_MAX_REPLY_SIZE),
    "max_connections": (int, 10_000),
    "graceful_timeout": ((int, float), 30.0),
    "backlog": (int, 2048),
    "loop": (str, "auto"),
    "workers": (int, 1),
    "metrics_port": (int, None),
    "metrics_host": (str, "127.0.0.1"),
    "tls_handshake_timeout": ((int, float), 10.0),
}

def load_config(path: str) -> ServeConfig:
    """Read and check ``path``; ConfigError (one line) on any problem."""
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    return parse_config(data, path)


def parse_config(data: dict[str, Any], path: str = "CONFIG.toml") -> ServeConfig:
    """Check a parsed TOML document; ConfigError naming the first problem."""
    unknown = set(data) - {"server", "backend", "services"}
    if unknown:
        raise ConfigError(f"{path}: unknown table {sorted(unknown)[0]!r} (expected [server], [backend], [[services]])")
    server = data.get("server", {})
    if not isinstance(server, dict):
        raise ConfigError(f"{path}: [server] must be a table")
    settings: dict[str, Any] = {}
    for key, value in server.items():
        if key not in _SERVER_KEYS:
            raise ConfigError(f"{path}: [server]: unknown key {key!r} (expected one of {', '.join(_SERVER_KEYS)})")
        check_type(f"{path}: [server]", key, value, _SERVER_KEYS[key][0])
        settings[key] = value
    opts = {k: settings.get(k, default) for k, (_, default) in _SERVER_KEYS.items()}
    if opts["loop"] not in ("auto", "asyncio", "uvloop"):
        raise ConfigError(f"{path}: [server]: loop must be auto, asyncio or uvloop, not {opts['loop']!r}")
    if opts["workers"] < 1:
        raise ConfigError(f"{path}: [server]: workers must be >= 1, not {opts['workers']}")
    problem = (check_buffered_bytes(opts["max_buffered_bytes"], opts["max_frame_size"], "max_buffered_bytes",
                                    "max_frame_size")
               or check_reply_size(opts["max_reply_size"], "max_reply_size"))
    if problem is not None:
        raise ConfigError(f"{path}: [server]: {problem}")
    config = ServerConfig(max_frame_size=opts["max_frame_size"], max_buffered_bytes=opts["max_buffered_bytes"],
                          idle_timeout=float(opts["idle_timeout"]) or None,
                          max_connections=opts["max_connections"], graceful_timeout=float(opts["graceful_timeout"]),
                          backlog=opts["backlog"], reuse_port=is_worker(),
                          tls_handshake_timeout=float(opts["tls_handshake_timeout"]))
    try:
        config.validate()
    except ValueError as exc:
        raise ConfigError(f"{path}: [server]: {exc}") from exc

    backend_defaults = {k: v for k, v in asdict(BackendOptions()).items() if k in BackendOptions.keys()}
    backend = data.get("backend", {})
    if not isinstance(backend, dict):
        raise ConfigError(f"{path}: [backend] must be a table")
    for key, value in backend.items():
        check_backend_key(f"{path}: [backend]", key, value, backend_defaults)

    services = data.get("services")
    if not isinstance(services, list) or not services or not all(isinstance(s, dict) for s in services):
        raise ConfigError(f"{path}: needs at least one [[services]] table")
    out = AppConfig([], config, opts["loop"], opts["workers"], opts["metrics_host"], opts["metrics_port"],
                    max_reply_size=opts["max_reply_size"], path=path)
    for index, table in enumerate(services):
        out.services.append(service_spec(path, index, table, backend, backend_defaults))
    _check_cross(out)
    return out


def _check_cross(config: AppConfig) -> None:
    names: dict[str, ServiceSpec] = {}
    binds: dict[tuple[str, int], str] = {}
    if config.metrics_port is not None:
        binds[(config.metrics_host, config.metrics_port)] = "[server] metrics_port"
    for spec in config.services:
        where = f"{config.path}: service {spec.name!r}"
        if spec.name in names:
            raise ConfigError(f"{where}: the name is used twice")
        names[spec.name] = spec
        if spec.port == 0 and config.workers > 1:
            raise ConfigError(f"{where}: port 0 cannot be shared by workers; give a port")
        if spec.port and (spec.host, spec.port) in binds:
            raise ConfigError(f"{where}: {spec.host}:{spec.port} is also used by {binds[(spec.host, spec.port)]}")
        binds[(spec.host, spec.port)] = f"service {spec.name!r}"
    for spec in config.services:
        if spec.kind != "http":
            continue
        for key, kinds in (("fetch", ("fetch", "relay")), ("store", ("store",))):
            ref = spec.options.get(key)
            if ref is None:
                continue
            target = names.get(ref)
            if target is None or target.kind not in kinds:
                raise ConfigError(f"{config.path}: service {spec.name!r}: {key} = {ref!r} names no "
                                  f"{' or '.join(kinds)} service in this file")
