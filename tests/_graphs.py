"""Object graphs of Communications with references, comparable across aioaccess and concrete-python."""

from __future__ import annotations

from typing import Any

__all__ = ["outcome", "reference_graph"]


def _fields(obj: Any) -> list[str]:
    spec = obj.thrift_spec
    if isinstance(spec, dict):  # thriftpy2: {fid: (ttype, name, ...)}
        return [f[1] for f in spec.values()]
    return [f[2] for f in spec if f]  # Apache Thrift: ((fid, ttype, name, ...), ...)


def _paths(root: Any) -> dict[int, str]:
    """id -> path of every struct and list reachable through schema fields only."""
    out: dict[int, str] = {}

    def walk(obj: Any, path: str) -> None:
        out[id(obj)] = path
        if isinstance(obj, list):
            for i, item in enumerate(obj):
                if hasattr(item, "thrift_spec") or isinstance(item, list):
                    walk(item, f"{path}[{i}]")
            return
        for name in _fields(obj):
            value = getattr(obj, name)
            if hasattr(value, "thrift_spec") or isinstance(value, list):
                walk(value, f"{path}.{name}")

    walk(root, "comm")
    return out


def _ref(value: Any, paths: dict[int, str]) -> Any:
    """A reference attribute as paths: the referenced objects must be the tree's own objects."""
    if value is None:
        return None
    if isinstance(value, list):
        return [_ref(v, paths) for v in value]
    if isinstance(value, dict):
        return {k: _ref(v, paths) for k, v in value.items()}
    return paths[id(value)]  # KeyError: a copy, not the object inside the Communication


def reference_graph(comm: Any) -> dict[str, dict[str, Any]]:
    """path -> {added attribute: referenced path(s)} for every struct of ``comm``."""
    paths = _paths(comm)
    objs = {}

    def collect(obj: Any) -> None:
        if isinstance(obj, list):
            for item in obj:
                if hasattr(item, "thrift_spec") or isinstance(item, list):
                    collect(item)
            return
        objs[paths[id(obj)]] = obj
        for name in _fields(obj):
            value = getattr(obj, name)
            if hasattr(value, "thrift_spec") or isinstance(value, list):
                collect(value)

    collect(comm)
    graph = {}
    for path, obj in objs.items():
        extra = [k for k in vars(obj) if k not in set(_fields(obj))]
        if extra:
            graph[path] = {k: _ref(getattr(obj, k), paths) for k in extra}
    return graph


def outcome(read: Any, raw: bytes) -> Any:
    """The reference graph, or the KeyError that reading with references raised."""
    try:
        return reference_graph(read(raw))
    except KeyError as exc:
        return ("KeyError", exc.args)
