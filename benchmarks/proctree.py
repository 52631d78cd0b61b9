"""CPU time of a server and every process it started (worker pools), read from /proc."""

from __future__ import annotations

import os

from aioaccess.bench.stats import proc_cpu_seconds

__all__ = ["alive", "descendants", "tree_cpu_seconds"]


def _parent_of(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def alive(pid: int) -> bool:
    """True while process ``pid`` runs (not exited, not a zombie waiting to be reaped)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return False


def descendants(pid: int) -> list[int]:
    """The live children of ``pid``, their children, and so on."""
    parents = {p: _parent_of(p) for p in (int(name) for name in os.listdir("/proc") if name.isdigit())}
    found: list[int] = []
    frontier = {pid}
    while frontier:
        children = [p for p, parent in parents.items() if parent in frontier]
        found += children
        frontier = set(children)
    return found


def tree_cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of ``pid`` and its live descendants; None if ``pid`` is unreadable."""
    own = proc_cpu_seconds(pid)
    if own is None:
        return None
    return own + sum(proc_cpu_seconds(p) or 0.0 for p in descendants(pid))
