"""Forked children must not share a parent's inotify queue: each watching container stops in the child."""

from __future__ import annotations

import os
import weakref
from typing import Protocol

__all__ = ["forget_watching", "note_watching"]


class _Watcher(Protocol):
    def _watch_off(self, *, forked: bool = False) -> None: ...


_WATCHING: weakref.WeakSet[_Watcher] = weakref.WeakSet()


def note_watching(container: _Watcher) -> None:
    """``container`` watches from this process: a forked child stops it."""
    _WATCHING.add(container)


def forget_watching(container: _Watcher) -> None:
    _WATCHING.discard(container)


def _after_fork_in_child() -> None:
    for container in list(_WATCHING):
        container._watch_off(forked=True)  # the child starts again on its first read


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
