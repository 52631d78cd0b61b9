"""TLS contexts from file names: a server's (``tls_cert``...), a client's or an upstream's (``tls_ca``...)."""

from __future__ import annotations

import ssl
from typing import Any

from ..tls import TLSConfigError, client_context, server_context
from .errors import SetupError

__all__ = ["client_tls", "server_tls_from"]

_SERVER_FLAGS = ("--tls-cert", "--tls-key", "--tls-client-ca")


def server_tls_from(cert: str | None, key: str | None, client_ca: str | None,
                    names: tuple[str, str, str] = _SERVER_FLAGS) -> ssl.SSLContext | None:
    """The server context of these files (None without ``cert``); SetupError naming the flag or key at fault."""
    if cert is None:
        given = [name for name, value in zip(names[1:], (key, client_ca), strict=True) if value is not None]
        if given:
            raise SetupError(f"{' and '.join(given)} need {names[0]}")
        return None
    try:
        return server_context(cert, key, client_ca=client_ca)
    except TLSConfigError as exc:
        raise SetupError(str(exc)) from exc


def client_tls(args: Any, *, upstream: bool = False) -> ssl.SSLContext | None:
    """The client context of ``args.tls``, ``tls_ca``, ``tls_cert``, ``tls_key`` (``upstream_tls...``
    with ``upstream``), or None (plaintext)."""
    dest = "upstream_tls" if upstream else "tls"
    ca, cert, key = (getattr(args, f"{dest}_{name}", None) for name in ("ca", "cert", "key"))
    if not (getattr(args, dest, False) or ca or cert or key):
        return None
    try:
        return client_context(ca, cert, key)
    except TLSConfigError as exc:
        raise SetupError(str(exc)) from exc
