"""TLS flags: ``--tls-cert/--tls-key/--tls-client-ca`` on servers, ``--tls/--tls-ca/--tls-cert/--tls-key`` on
clients, ``--upstream-tls...`` for a relay's or a ``fetch://`` source's upstream; and the contexts they build."""

from __future__ import annotations

import argparse
import ssl

from ..app.tls import client_tls, server_tls_from

__all__ = ["add_client_tls_options", "add_server_tls_options", "client_tls", "server_tls", "server_tls_from"]


def add_server_tls_options(parser: argparse.ArgumentParser, *, handshake_timeout: bool = True) -> None:
    """``--tls-cert``, ``--tls-key``, ``--tls-client-ca`` (and ``--tls-handshake-timeout`` for Thrift servers)."""
    group = parser.add_argument_group("TLS (default: plaintext, as concrete-python)")
    group.add_argument("--tls-cert", metavar="PEM", help="serve over TLS with this certificate (chain)")
    group.add_argument("--tls-key", metavar="PEM", help="its private key, when not in the --tls-cert file")
    group.add_argument("--tls-client-ca", metavar="PEM",
                       help="mutual TLS: only clients presenting a certificate signed by these CAs may connect "
                       "(on a store server: who may store)")
    if handshake_timeout:
        group.add_argument("--tls-handshake-timeout", type=float, default=10.0, metavar="S",
                           help="close a connection whose TLS handshake takes longer (default: 10)")


def server_tls(args: argparse.Namespace) -> ssl.SSLContext | None:
    """The server context of a server command's TLS flags, or None (plaintext)."""
    return server_tls_from(args.tls_cert, args.tls_key, args.tls_client_ca)


def add_client_tls_options(parser: argparse.ArgumentParser, *, upstream: bool = False) -> None:
    """``--tls``, ``--tls-ca``, ``--tls-cert``, ``--tls-key`` (``--upstream-tls...`` with ``upstream``)."""
    flag = "--upstream-tls" if upstream else "--tls"
    whom = "the upstream" if upstream else "the server"
    group = parser.add_argument_group(f"TLS to {whom} (default: plaintext)")
    group.add_argument(flag, action="store_true", help=f"connect to {whom} over TLS, verified against the "
                       f"system's CAs (implied by the other {flag}-* flags)")
    group.add_argument(f"{flag}-ca", metavar="PEM", help=f"verify {whom}'s certificate against these CAs")
    group.add_argument(f"{flag}-cert", metavar="PEM", help="present this client certificate (mutual TLS)")
    group.add_argument(f"{flag}-key", metavar="PEM", help="its private key, when not in the certificate file")
