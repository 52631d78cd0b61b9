"""Watching the directory tree with inotify, so cached bytes are trusted until the kernel reports a change."""

from __future__ import annotations

import asyncio
import logging
import os
import select
import weakref
from collections.abc import Iterable
from typing import Any

from .directory_fork import forget_watching, note_watching

try:
    import inotify_simple
except ImportError:  # not Linux, or not installed: every cached read is confirmed with stat
    inotify_simple = None

__all__ = ["DirectoryWatch", "inotify_simple"]

logger = logging.getLogger("aioaccess.backends.directory")

# inotify(7) event bits (kernel ABI)
_IN_MODIFY = 0x2
_IN_ATTRIB = 0x4
_IN_CLOSE_WRITE = 0x8
_IN_MOVED_FROM = 0x40
_IN_MOVED_TO = 0x80
_IN_CREATE = 0x100
_IN_DELETE = 0x200
_IN_DELETE_SELF = 0x400
_IN_MOVE_SELF = 0x800
_IN_UNMOUNT = 0x2000
_IN_Q_OVERFLOW = 0x4000
_IN_IGNORED = 0x8000
_IN_ONLYDIR = 0x01000000
_IN_MASK_ADD = 0x20000000

_NAME_EVENTS = _IN_MOVED_FROM | _IN_MOVED_TO | _IN_CREATE | _IN_DELETE
_SELF_EVENTS = _IN_DELETE_SELF | _IN_MOVE_SELF
#: Watched on each directory of the tree: anything that may change a file's bytes or what its name points to.
_TREE_MASK = _IN_MODIFY | _IN_ATTRIB | _IN_CLOSE_WRITE | _NAME_EVENTS | _SELF_EVENTS
#: Events after which the watch no longer covers the tree (the kernel always sends the last three).
_STOP_EVENTS = _SELF_EVENTS | _IN_UNMOUNT | _IN_Q_OVERFLOW | _IN_IGNORED


class DirectoryWatch:
    """Mixin of DirectoryBackedCommunicationContainer: the inotify watch of its tree, on one event loop.

    An event naming an indexed file drops its cached bytes (``_forget``) and bumps ``_generation``; anything the
    watch cannot follow (queue overflow, a watched directory moved, deleted or unmounted) stops it for good.
    """

    directory_path: str
    comm_id_to_comm_path: dict[str, str]
    _file_dirs: set[str]
    _checked: dict[str, Any]
    _wants_watch: bool
    # and ByteCache's _forget(comm_id) and _forget_all()

    def _init_watch(self) -> None:
        # watch state: the loop whose reader drains the inotify fd, or None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._fd: int | None = None
        self._poll: Any = None  # an epoll set holding just the inotify fd, while watching
        self._close_fd: weakref.finalize[Any, Any] | None = None
        self._wd_dirs: dict[int, list[str]] = {}  # watch descriptor -> tree directories it covers
        self._wd_links: dict[int, set[str]] = {}  # watch descriptor -> symlink names the root's path goes through
        self._generation = 0  # bumped by every change that may make an in-flight threaded read stale

    def _watch_plan(self) -> list[tuple[str, int, str | None, str | None]]:
        """(directory, mask, tree directory it stands for, symlink name in it the root's path goes through)."""
        plan: list[tuple[str, int, str | None, str | None]] = [(d, _TREE_MASK, d, None) for d in self._file_dirs]
        top = os.path.normpath(self.directory_path)
        between = {top}  # directories from the root down to the ones holding files: a rename there moves files
        for d in self._file_dirs:
            d = os.path.normpath(d)
            while len(d) > len(top) and d not in between:
                between.add(d)
                d = os.path.dirname(d)
        plan += [(d, _TREE_MASK, None, None) for d in between - {os.path.normpath(d) for d in self._file_dirs}]
        # Above the root: a directory moved, or a symlink on the way re-pointed, changes what every path names.
        for start in {os.path.abspath(self.directory_path), os.path.realpath(self.directory_path)}:
            child, parent = start, os.path.dirname(start)
            while parent != child:
                link = os.path.basename(child) if os.path.islink(child) else None
                plan.append((parent, _SELF_EVENTS | (_NAME_EVENTS if link else 0), None, link))
                child, parent = parent, os.path.dirname(parent)
        return plan

    def _add_watches(self) -> tuple[int, dict[int, list[str]], dict[int, set[str]]]:
        """A new non-blocking inotify fd watching the plan; OSError (e.g. ENOSPC, EACCES, EMFILE) if it cannot."""
        assert inotify_simple is not None
        inotify = inotify_simple.INotify(nonblocking=True, closefd=False)  # the fd is closed by us, not by GC
        fd = inotify.fileno()
        wd_dirs: dict[int, list[str]] = {}
        wd_links: dict[int, set[str]] = {}
        try:
            for path, mask, tree_dir, link in self._watch_plan():
                # MASK_ADD: one inode reached by two paths keeps the union of both masks
                wd = inotify.add_watch(path, mask | _IN_MASK_ADD | _IN_ONLYDIR)
                if tree_dir is not None:
                    wd_dirs.setdefault(wd, []).append(tree_dir)
                if link is not None:
                    wd_links.setdefault(wd, set()).add(link)
        except BaseException:
            inotify.close()
            os.close(fd)
            raise
        inotify.close()
        return fd, wd_dirs, wd_links

    def _watch_on(self, loop: asyncio.AbstractEventLoop) -> None:
        """Watch the tree from ``loop`` (leaving any other loop); the cache starts empty."""
        self._watch_off()
        try:
            fd, self._wd_dirs, self._wd_links = self._add_watches()
        except OSError as exc:
            self._give_up(f"cannot watch it: {exc}")
            return
        self._fd = fd
        self._close_fd = weakref.finalize(self, os.close, fd)
        try:
            self._poll = select.epoll()
            self._poll.register(fd, select.EPOLLIN)
            loop.add_reader(fd, self._on_events)
        except (NotImplementedError, OSError) as exc:  # a loop without add_reader
            self._give_up(f"{type(loop).__name__} cannot wait on its inotify fd: {exc!r}")
            return
        self._loop = loop
        note_watching(self)
        logger.debug("Watching %d directories for %s", len(self._wd_dirs), self.directory_path)

    def _watch_off(self, *, forked: bool = False) -> None:
        """Stop watching (if watching) and empty the cache; a later read may start again.

        ``forked``: in a forked child, whose inotify queue and epoll set are shared with the
        parent, only our copy of the fd is closed (no ``remove_reader``).
        """
        loop, fd, self._loop, self._fd = self._loop, self._fd, None, None
        if self._poll is not None:
            self._poll.close()  # in a forked child: only our copy, the parent's set is untouched
            self._poll = None
        if fd is not None:
            if loop is not None and not loop.is_closed() and not forked:
                loop.remove_reader(fd)
            assert self._close_fd is not None
            self._close_fd()
        forget_watching(self)
        self._wd_dirs, self._wd_links = {}, {}
        self._generation += 1
        self._forget_all()

    def _give_up(self, reason: str) -> None:
        """Stop watching for good: from now on every cached read is confirmed with stat."""
        self._watch_off()
        if self._wants_watch:
            self._wants_watch = False
            logger.warning("Stopped watching %s: %s; every cached read is now confirmed with stat",
                           self.directory_path, reason)

    def _on_events(self) -> None:
        """Drop the cached entry of every file an event names; give up on anything the watch cannot follow."""
        fd = self._fd
        if fd is None:
            return
        chunks = []
        try:
            while True:
                chunk = os.read(fd, 65536)
                if not chunk:
                    break
                chunks.append(chunk)
        except BlockingIOError:
            pass
        except OSError as exc:
            self._give_up(f"reading inotify events failed: {exc}")
            return
        assert inotify_simple is not None
        self._handle_events(inotify_simple.parse_events(b"".join(chunks)))

    def _handle_events(self, events: Iterable[tuple[int, int, int, str]]) -> None:
        index = self.comm_id_to_comm_path
        join = os.path.join
        for wd, mask, _cookie, name in events:
            if mask & _STOP_EVENTS:
                self._give_up(_stop_reason(mask))
                return
            links = self._wd_links.get(wd)
            if links and name in links:
                self._give_up(f"the symlink {name!r} on its path changed")
                return
            dirs = self._wd_dirs.get(wd)
            if not dirs or not name:
                continue
            comm_id = os.path.splitext(name)[0]
            path = index.get(comm_id)
            if path is not None and any(path == join(d, name) for d in dirs):
                self._forget(comm_id)
                self._checked.pop(comm_id, None)  # a same-size rewrite within one timestamp tick is checked again
                self._generation += 1


def _stop_reason(mask: int) -> str:
    if mask & _IN_Q_OVERFLOW:
        return "the kernel dropped inotify events (queue overflow)"
    if mask & _IN_UNMOUNT:
        return "its file system was unmounted"
    if mask & _SELF_EVENTS:
        return "a watched directory was moved or deleted"
    return "the kernel removed a watch"
