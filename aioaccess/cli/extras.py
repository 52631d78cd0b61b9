"""Sub-commands whose module needs an extra: without it they are still listed, and say which extra to install."""

from __future__ import annotations

import argparse
import importlib
from functools import partial

from .._extras import MissingExtra, missing_extra
from .errors import UsageError

__all__ = ["register"]

#: CLI module -> the sub-commands it registers (shown as stubs when its extra is missing)
OPTIONAL: dict[str, tuple[str, ...]] = {
    "s3_commands": ("s3",),
}


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], module_name: str) -> None:
    """``aioaccess.cli.<module_name>.register(sub)``, or stubs failing with :class:`MissingExtra`'s message."""
    try:
        module = importlib.import_module(f"{__package__}.{module_name}")
    except ModuleNotFoundError as exc:
        missing = missing_extra(exc)
        if missing is None:
            raise
        for name in OPTIONAL[module_name]:
            # no option prefix: every argument is accepted, so the run reports the extra, not a flag
            p = sub.add_parser(name, help=f"(needs the {missing.extra!r} extra)", add_help=False, parents=[],
                               prefix_chars="\0")
            p.add_argument("args", nargs="*")
            p.set_defaults(func=partial(_needs, missing))
    else:
        module.register(sub)


def _needs(missing: MissingExtra, args: argparse.Namespace) -> int:
    raise UsageError(str(missing))
