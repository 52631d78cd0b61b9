"""``aioaccess`` entry point: global flags, then one sub-command.

Only the module of the command being run is imported (``aioaccess fetch-client --help``
loads no server, backend or HTTP code); ``aioaccess --help`` and an unknown command load all.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from .. import __version__
from .._extras import missing_extra
from . import extras
from .errors import UsageError

__all__ = ["build_parser", "main"]

#: Each command's module (which registers it), in the order ``aioaccess --help`` lists them.
COMMANDS = {
    "fetch-server": "commands", "store-server": "commands", "fetch-client": "fetch_client", "bench": "bench",
    "relay-server": "http_commands", "http-server": "http_commands", "store-client": "ops_commands",
    "wait-service": "ops_commands", "serve": "ops_commands", "copy": "copy_commands",
    "redis-index": "copy_commands", "s3": "s3_commands",
}
#: Global flags that take a value.
_VALUE_FLAGS = ("-l", "--loglevel", "--log-level")


class _Parser(argparse.ArgumentParser):
    """Reports bad flags in one line (no usage dump), exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def command_of(argv: Sequence[str]) -> str | None:
    """The sub-command ``argv`` names, or None."""
    args = iter(argv)
    for arg in args:
        if arg in _VALUE_FLAGS:
            next(args, None)
        elif not arg.startswith("-"):
            return arg if arg in COMMANDS else None
    return None


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser of every command, or only of ``command`` (and those its module registers)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-l", "--loglevel", "--log-level", default="INFO",
                        type=str.upper, choices=("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"),
                        help="log level (default: INFO)")
    common.add_argument("--version", action="version", version=f"aioaccess {__version__}")
    parser = _Parser(prog="aioaccess", parents=[common],
                     description="Concrete fetch and store services on one asyncio event loop.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    original_add = sub.add_parser

    def add_parser(name: str, **kwargs: object) -> argparse.ArgumentParser:
        kwargs.setdefault("parents", [common])
        return original_add(name, **kwargs)  # type: ignore[arg-type]

    sub.add_parser = add_parser  # type: ignore[method-assign]
    modules = [COMMANDS[command]] if command in COMMANDS else list(dict.fromkeys(COMMANDS.values()))
    for name in modules:
        if name in extras.OPTIONAL:  # its module needs an extra: without it, a stub names the extra
            extras.register(sub, name)
        else:
            importlib.import_module(f".{name}", __package__).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(argv) if argv is not None else sys.argv[1:]
    parser = build_parser(command_of(argv))
    args = parser.parse_args(argv)
    args.argv = argv  # re-run by --workers
    logging.basicConfig(level=args.loglevel, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if os.environ.get("AIOACCESS_WORKER"):  # started by a --workers supervisor (server.supervisor.WORKER_ENV)
        from ..server.supervisor import prepare_worker

        prepare_worker()
    try:
        return int(args.func(args) or 0)
    except UsageError as exc:
        print(f"aioaccess {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as exc:  # a backend client that is an extra
        missing = missing_extra(exc)
        if missing is None:
            raise
        print(f"aioaccess {args.command}: error: {missing}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
