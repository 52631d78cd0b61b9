"""The ``[[services]]`` tables and ``[backend]`` keys of a ``serve`` CONFIG.toml, checked into ServiceSpecs."""

from __future__ import annotations

import os
from typing import Any

from ..app.config import BackendOptions, ServiceSpec
from ..app.http_limits import CONFIG_KEYS as HTTP_LIMIT_KEYS
from ..app.http_limits import http_limits
from ..app.tls import server_tls_from
from ..backends.s3_url import S3_CLIENTS
from ..http.settings import cors_origins
from .errors import UsageError

__all__ = ["KINDS", "ConfigError", "check_backend_key", "check_type", "service_spec"]

KINDS = ("fetch", "store", "relay", "http")

_COMMON_KEYS = {"name": str, "kind": str, "host": str, "port": int, "tls_cert": str, "tls_key": str,
                "tls_client_ca": str}
_KIND_KEYS: dict[str, dict[str, type | tuple[type, ...]]] = {
    "fetch": {"source": str},
    "store": {"target": str, "fsync": bool},
    "relay": {"upstream": str},
    "http": {"fetch": str, "store": str, "source": str, "target": str, "static": str, "cors": bool,
             "client_max_size": int, "fsync": bool, "cors_origins": list, "cors_store": bool, **HTTP_LIMIT_KEYS},
}
_REQUIRED = {"fetch": ("source",), "store": ("target",), "relay": ("upstream",), "http": ()}


_TYPE_NAMES = {int: "integer", float: "number", str: "string", bool: "boolean"}


class ConfigError(UsageError):
    """A CONFIG.toml that cannot be served; the message names the file and the key."""


def check_type(where: str, key: str, value: Any, expected: type | tuple[type, ...]) -> None:
    types = expected if isinstance(expected, tuple) else (expected,)
    if isinstance(value, bool) and bool not in types or not isinstance(value, types):
        names = " or ".join(_TYPE_NAMES.get(t, t.__name__) for t in types if not (t is int and float in types))
        raise ConfigError(f"{where}: {key} must be {'an' if names[0] in 'aeiou' else 'a'} {names}, not {value!r}")


def check_backend_key(where: str, key: str, value: Any, defaults: dict[str, Any]) -> None:
    if key not in defaults:
        raise ConfigError(f"{where}: unknown key {key!r} (backend keys: {', '.join(sorted(defaults))})")
    default = defaults[key]
    if key == "s3_client" and value not in S3_CLIENTS:
        raise ConfigError(f"{where}: unknown S3 client {value!r} (s3_client: choose {' or '.join(S3_CLIENTS)})")
    if default is not None:
        check_type(where, key, value, (int, float) if isinstance(default, float) else type(default))
    elif not isinstance(value, str):
        raise ConfigError(f"{where}: {key} must be a string, not {value!r}")


def service_spec(path: str, index: int, table: dict[str, Any], backend: dict[str, Any],
             backend_defaults: dict[str, Any]) -> ServiceSpec:
    where = f"{path}: services[{index}]"
    kind = table.get("kind")
    if kind not in KINDS:
        raise ConfigError(f"{where}: kind must be one of {', '.join(KINDS)}, not {kind!r}")
    where = f"{path}: services[{index}] ({kind})"
    allowed = {**_COMMON_KEYS, **_KIND_KEYS[kind]}
    options: dict[str, Any] = {}
    own_backend: dict[str, Any] = {}
    for key, value in table.items():
        if key in allowed:
            check_type(where, key, value, allowed[key])
            options[key] = value
        elif key in backend_defaults:
            check_backend_key(where, key, value, backend_defaults)
            own_backend[key] = value
        else:
            raise ConfigError(f"{where}: unknown key {key!r} (expected one of {', '.join(allowed)} or a backend key)")
    for key in ("port", *_REQUIRED[kind]):
        if key not in options:
            raise ConfigError(f"{where}: missing {key!r}")
    port = options.pop("port")
    if not 0 <= port <= 65535:
        raise ConfigError(f"{where}: port must be 0..65535, not {port}")
    if kind == "relay":
        host, sep, upstream_port = options["upstream"].rpartition(":")
        if not sep or not host or not upstream_port.isdigit():
            raise ConfigError(f"{where}: upstream must be HOST:PORT, not {options['upstream']!r}")
    if kind == "http":
        if "fetch" in options and "source" in options or "store" in options and "target" in options:
            raise ConfigError(f"{where}: give fetch or source, store or target, not both")
        if not any(k in options for k in ("fetch", "store", "source", "target", "static")):
            raise ConfigError(f"{where}: needs fetch, store, source, target or static")
        if "static" in options and not os.path.isdir(options["static"]):
            raise ConfigError(f"{where}: static {options['static']!r} is not a directory")
        try:
            http_limits(options)
        except ValueError as exc:
            raise ConfigError(f"{where}: {exc}") from exc
        if not all(isinstance(o, str) for o in options.get("cors_origins", ())):
            raise ConfigError(f"{where}: cors_origins must be a list of strings")
        try:
            cors_origins([*options.get("cors_origins", ()), *(["*"] if options.get("cors") else [])],
                         options.get("cors_store", False))
        except ValueError as exc:
            raise ConfigError(f"{where}: {exc}") from None
    name = options.pop("name", f"{kind}-{index}")
    host = options.pop("host", "127.0.0.1")
    del options["kind"]
    opts = BackendOptions(**{**backend_defaults, **backend, **own_backend}, fsync=options.get("fsync", True))
    try:
        tls = server_tls_from(*(options.pop(k, None) for k in ("tls_cert", "tls_key", "tls_client_ca")),
                              names=("tls_cert", "tls_key", "tls_client_ca"))
    except UsageError as exc:
        raise ConfigError(f"{where}: {exc}") from exc
    return ServiceSpec(name, kind, host, port, options, opts, tls)


