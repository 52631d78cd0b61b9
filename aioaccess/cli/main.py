"""``aioaccess`` entry point: global flags, then one sub-command."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import NoReturn

from .. import __version__
from .._extras import missing_extra
from ..server.supervisor import is_worker, prepare_worker
from . import bench, commands, copy_commands, extras, ops_commands
from .errors import UsageError

__all__ = ["build_parser", "main"]


class _Parser(argparse.ArgumentParser):
    """Reports bad flags in one line (no usage dump), exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
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
    commands.register(sub)
    bench.register(sub)
    extras.register(sub, "http_commands")
    ops_commands.register(sub)
    copy_commands.register(sub)
    extras.register(sub, "s3_commands")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(argv) if argv is not None else sys.argv[1:]  # re-run by --workers
    logging.basicConfig(level=args.loglevel, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if is_worker():  # started by a --workers supervisor
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
