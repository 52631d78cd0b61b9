"""Optional dependencies: which ``pip install 'aioaccess[EXTRA]'`` brings each, and the one message naming it.

The base install serves a directory, zip, tar.gz or in-memory corpus over compact Thrift. Redis, S3,
HTTP/TJSON and Prometheus metrics need an extra; importing them without it raises :class:`MissingExtra`.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from types import ModuleType, TracebackType
from typing import Any

__all__ = ["EXTRAS", "MissingExtra", "import_module", "lazy_attributes", "missing_extra"]

#: extra -> (what needs it, the modules it installs)
EXTRAS: dict[str, tuple[str, tuple[str, ...]]] = {
    "redis": ("redis://", ("redis", "hiredis")),
    "s3": ("s3://", ("obstore", "aiobotocore", "botocore")),
    "http": ("HTTP/TJSON (http-server, the HTTP clients)", ("aiohttp",)),
    "metrics": ("--metrics", ("prometheus_client",)),
}

#: Our modules that need an extra, by name prefix (what was being imported decides, not which module was missing:
#: the S3 backend lacking aiohttp still needs the 's3' extra).
_NEEDS: tuple[tuple[str, str], ...] = (
    ("aioaccess.backends.redis", "redis"),
    ("aioaccess.handlers.redis_store", "redis"),
    ("aioaccess.redis_io", "redis"),
    ("aioaccess.backends.s3", "s3"),
    ("aioaccess.handlers.s3_store", "s3"),
    ("aioaccess.bench.s3", "s3"),
    ("aioaccess.http", "http"),
    ("aioaccess.client.http", "http"),
    ("aioaccess.metrics", "metrics"),
)

_BY_MODULE = {module: extra for extra, (_, modules) in EXTRAS.items() for module in modules}


class MissingExtra(ModuleNotFoundError):
    """An optional dependency is not installed; the message names the extra that installs it."""

    def __init__(self, extra: str, missing: str | None = None) -> None:
        what = EXTRAS[extra][0]
        super().__init__(f"{what} needs the {extra!r} extra: pip install 'aioaccess[{extra}]'", name=missing)
        self.extra = extra


def _importer(tb: TracebackType | None) -> str | None:
    """The innermost aioaccess module on the traceback that needs an extra."""
    found = None
    while tb is not None:
        name = tb.tb_frame.f_globals.get("__name__", "")
        for prefix, extra in _NEEDS:
            if name == prefix or name.startswith(prefix + "_") or name.startswith(prefix + "."):
                found = extra
        tb = tb.tb_next
    return found


def missing_extra(exc: BaseException, module: str | None = None) -> MissingExtra | None:
    """The :class:`MissingExtra` an import failure stands for, or None when it is not an optional dependency.

    ``module``: the aioaccess module that was being imported, when the traceback may not show it.
    """
    if isinstance(exc, MissingExtra):
        return exc
    if not isinstance(exc, ModuleNotFoundError) or not exc.name:
        return None
    top = exc.name.partition(".")[0]
    if top not in _BY_MODULE:
        return None
    extra = _importer(exc.__traceback__)
    if extra is None and module is not None:
        extra = next((e for prefix, e in _NEEDS if module.startswith(prefix)), None)
    return MissingExtra(extra or _BY_MODULE[top], exc.name)


def import_module(name: str, package: str | None = None) -> ModuleType:
    """``importlib.import_module``, raising :class:`MissingExtra` when an optional dependency is missing."""
    try:
        return importlib.import_module(name, package)
    except ModuleNotFoundError as exc:
        missing = missing_extra(exc, importlib.util.resolve_name(name, package) if package else name)
        if missing is None:
            raise
        raise missing from exc


def lazy_attributes(namespace: dict[str, Any], table: dict[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` (PEP 562) importing ``table[name]`` (relative to the module), or the submodule
    ``name``, on first use."""
    package = namespace["__name__"]

    def __getattr__(name: str) -> Any:
        module = table.get(name)
        if module is not None:
            value = getattr(import_module(module, package), name)
        elif not name.startswith("__") and importlib.util.find_spec(f"{package}.{name}") is not None:
            value = import_module(f".{name}", package)  # a submodule, as when the package imported it eagerly
        else:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        namespace[name] = value
        return value

    return __getattr__
