"""The ``ssl.SSLContext``s of servers and clients, from certificate and key files.

A server with ``client_ca`` asks every client for a certificate signed by it
(mutual TLS) and refuses the handshake without one: on a store server that is
the way to say who may store.  Plaintext stays the default everywhere, so
concrete-python's clients, which speak no TLS, still connect.
"""

from __future__ import annotations

import os
import ssl

__all__ = ["TLSConfigError", "client_context", "server_context"]


class TLSConfigError(ValueError):
    """A certificate, key or CA file that cannot be used; the message names it."""


def _load(what: str, path: str | os.PathLike[str], load: object, *args: object) -> None:
    try:
        load(*args)  # type: ignore[operator]
    except FileNotFoundError as exc:
        raise TLSConfigError(f"{what} {os.fspath(path)}: no such file") from exc
    except (ssl.SSLError, OSError, ValueError) as exc:
        raise TLSConfigError(f"{what} {os.fspath(path)} cannot be used: {exc}") from exc


def server_context(cert: str | os.PathLike[str], key: str | os.PathLike[str] | None = None, *,
                   client_ca: str | os.PathLike[str] | None = None) -> ssl.SSLContext:
    """A server context presenting ``cert`` (PEM chain; ``key`` when the key is not in it).

    ``client_ca``: PEM file of the CAs whose client certificates are accepted; every client must then
    present one (``CERT_REQUIRED``).
    """
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    _load("TLS certificate", cert, context.load_cert_chain, cert, key)
    if client_ca is not None:
        _load("TLS client CA file", client_ca, context.load_verify_locations, client_ca)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def client_context(ca: str | os.PathLike[str] | None = None, cert: str | os.PathLike[str] | None = None,
                   key: str | os.PathLike[str] | None = None) -> ssl.SSLContext:
    """A client context that verifies the server against ``ca`` (PEM; None: the system's CAs) and its host
    name, presenting the client certificate ``cert`` (with ``key``) when given."""
    if key is not None and cert is None:
        raise TLSConfigError("a TLS client key needs its certificate too")
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if ca is not None:
        _load("TLS CA file", ca, context.load_verify_locations, ca)
    if cert is not None:
        _load("TLS client certificate", cert, context.load_cert_chain, cert, key)
    return context
