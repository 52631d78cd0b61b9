"""Communications stored one per file under a directory tree.

On Linux the tree is watched with inotify while an event loop reads from it,
so a cached file is trusted until the kernel reports a change to it, instead
of being confirmed with a ``stat`` on every read.
"""

from __future__ import annotations

import asyncio
import gzip
import logging
import os
import select
import sys
import time
import weakref
import zlib
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from typing import Any

from ..exceptions import CorruptCommunication
from .base import CommunicationContainer, check_raw

try:
    import inotify_simple
except ImportError:  # not Linux, or not installed: every cached read is confirmed with stat
    inotify_simple = None

__all__ = [
    "LOCAL_FILESYSTEMS",
    "DirectoryBackedCommunicationContainer",
    "filesystem_type",
    "parse_mountinfo",
    "read_file_nowait",
]

logger = logging.getLogger("aioaccess.backends.directory")

_RWF_NOWAIT = getattr(os, "RWF_NOWAIT", None)


#: What identifies one version of a file: inode, size, mtime and ctime (ns).
_Version = tuple[int, int, int, int]

#: A version whose ctime (or mtime) is this recent is not kept while reads are confirmed with stat: a rewrite
#: within the file system's timestamp granularity (a clock tick; 2 s on FAT) could keep the same version.
_RACY_NS = 2_000_000_000

#: Bytes of file contents a directory container keeps by default.
DEFAULT_CACHE_BYTES = 128 << 20

#: File systems whose every change goes through this kernel, so inotify sees it.
#: Network and FUSE file systems (nfs, cifs, ceph, fuse.*, 9p, ...) are not here:
#: changes made by another host or a user-space daemon raise no event.
LOCAL_FILESYSTEMS = frozenset({
    "bcachefs", "btrfs", "erofs", "exfat", "ext2", "ext3", "ext4", "f2fs", "hfsplus", "iso9660", "jfs",
    "nilfs2", "ntfs3", "overlay", "ramfs", "reiserfs", "squashfs", "tmpfs", "vfat", "xfs", "zfs",
})

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


def _version(st: os.stat_result) -> _Version:
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _read_versioned_nowait(path: str) -> tuple[bytes, os.stat_result] | None:
    if _RWF_NOWAIT is None:
        return None
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        buf = bytearray(st.st_size)
        try:
            n = os.preadv(fd, [buf], 0, _RWF_NOWAIT)
        except (BlockingIOError, OSError):
            return None
        return (bytes(buf), st) if n == st.st_size else None
    finally:
        os.close(fd)


def read_file_nowait(path: str) -> bytes | None:
    """Read a whole file only if it is already in the page cache; None when it is not.

    Uses ``preadv(RWF_NOWAIT)`` so the event loop never waits on the disk;
    callers fall back to a thread for anything this cannot answer.
    """
    got = _read_versioned_nowait(path)
    return None if got is None else got[0]


def _read_file(path: str) -> tuple[bytes, os.stat_result]:
    with open(path, "rb") as f:
        st = os.fstat(f.fileno())
        return f.read(), st


def _gunzip(comm_id: str, path: str, data: bytes) -> bytes:
    try:
        return gzip.decompress(data)
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise CorruptCommunication(comm_id, f"{path} does not gunzip: {exc}") from exc


# -- which file system a directory is on ---------------------------------------
def _read_mountinfo() -> str:
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
        return f.read()


def _unescape(field: str) -> str:
    # mountinfo writes space, tab, newline and backslash as \040, \011, \012, \134
    if "\\" not in field:
        return field
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and field[i + 1:i + 4].isdigit():
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def parse_mountinfo(text: str) -> list[tuple[str, str]]:
    """(mount point, file system type) of each line of ``/proc/<pid>/mountinfo``, in order."""
    mounts = []
    for line in text.splitlines():
        fields = line.split(" ")
        try:
            sep = fields.index("-", 6)
            mounts.append((_unescape(fields[4]), fields[sep + 1]))
        except (ValueError, IndexError):
            continue  # not a mountinfo line
    return mounts


def filesystem_type(path: str, mounts: Sequence[tuple[str, str]]) -> str | None:
    """Type of the file system holding the real, absolute ``path``: the longest mount point above it wins
    (the last one listed when several are stacked on it)."""
    best, best_len = None, -1
    for point, fstype in mounts:
        base = point.rstrip("/")
        if (path == point or path.startswith(base + "/")) and len(base) >= best_len:
            best, best_len = fstype, len(base)
    return best


# -- forked children must not share a parent's inotify queue -----------------
_WATCHING: weakref.WeakSet[DirectoryBackedCommunicationContainer] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for container in list(_WATCHING):
        container._watch_off(forked=True)  # the child starts again on its first read


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class DirectoryBackedCommunicationContainer(CommunicationContainer):
    """Maps ids to files found (recursively) under ``directory_path``.

    As in concrete-python, the id is the file name without its extension,
    the index is built once at start, and ``.gz`` files are gunzipped.
    Reads never block the event loop: a file already in the page cache is
    read in place, anything else in a worker thread.

    Each version of a file (inode, size, mtime, ctime) is checked once, and up
    to ``cache_bytes`` of contents are kept (0 turns the cache off).  A read of a
    cached file costs one ``stat`` confirming the file is unchanged, except while
    the tree is watched: then the cached bytes of a plain file (no symlink, one
    hard link) are trusted until inotify reports a change to it, and are served
    from :attr:`raw_table` without any system call.

    ``watch``: None watches on Linux when ``inotify_simple`` is installed and the
    tree is on a local file system (see :data:`LOCAL_FILESYSTEMS`); False never
    watches; True requires inotify (RuntimeError/OSError at once if it is missing or
    the tree cannot be watched) and skips the file system check.  Watching starts
    on the first read in an event loop and moves to a new loop with an empty
    cache.  If the kernel drops events (queue overflow), or a watched directory
    is moved, deleted or unmounted, the container stops watching for good and
    confirms every read with ``stat`` again.  A change inotify cannot see (a
    write through a hard link made after the file was cached, through a shared
    ``mmap``, or under a directory mounted over later) is not noticed.
    """

    NAME = "directory"
    VALIDATE_ON_READ = False  # checked once per file version, in _accept
    INLINE_SAFE = True

    def __init__(self, directory_path: str | os.PathLike[str],
                 comm_extensions: Iterable[str] = (".comm", ".concrete", ".gz"), add_references: bool = True,
                 cache_bytes: int = DEFAULT_CACHE_BYTES, watch: bool | None = None) -> None:
        self.add_references = add_references
        self.cache_bytes = cache_bytes
        self._max_entry = cache_bytes // 4
        self._cache: dict[str, tuple[_Version, bytes]] = {}  # id -> contents, oldest first
        self._cached_bytes = 0
        self._checked: dict[str, _Version] = {}
        #: id -> checked bytes of each cached file the watch covers; empty while not watching.
        self.raw_table: dict[str, bytes] = {}
        self.directory_path = os.fspath(directory_path)
        if not os.path.isdir(self.directory_path):
            raise FileNotFoundError(f"no such directory: {self.directory_path}")
        self.comm_extensions = tuple(comm_extensions)
        self.comm_id_to_comm_path: dict[str, str] = {}
        self._file_dirs: set[str] = set()  # directories (as os.walk spells them) holding indexed files
        for root, _dirs, files in os.walk(self.directory_path):
            for basename in files:
                comm_id, extension = os.path.splitext(basename)
                if extension in self.comm_extensions:
                    self.comm_id_to_comm_path[comm_id] = os.path.join(root, basename)
                    self._file_dirs.add(root)
        logger.info("Indexed %d Communication files under %s", len(self.comm_id_to_comm_path), self.directory_path)
        # watch state: the loop whose reader drains the inotify fd, or None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._fd: int | None = None
        self._poll: Any = None  # an epoll set holding just the inotify fd, while watching
        self._close_fd: weakref.finalize[Any, Any] | None = None
        self._wd_dirs: dict[int, list[str]] = {}  # watch descriptor -> tree directories it covers
        self._wd_links: dict[int, set[str]] = {}  # watch descriptor -> symlink names the root's path goes through
        self._generation = 0  # bumped by every change that may make an in-flight threaded read stale
        self._wants_watch = self._decide_watch(watch)

    # -- reads -------------------------------------------------------------
    def current_raw_table(self) -> dict[str, bytes]:
        """:attr:`raw_table`, emptied and watched from the running loop if it was watched from another."""
        if self._wants_watch:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return self.raw_table
            if self._loop is not loop:
                self._watch_on(loop)
        return self.raw_table

    def raw_table_guard(self) -> Callable[[], None] | None:
        """Call before each use of :attr:`raw_table`: applies the inotify events already queued, so a read that
        arrives after a change finished never gets the older bytes."""
        return self._drain if self._wants_watch else None

    def _drain(self) -> None:
        """Handle the inotify events the kernel has queued (one ``epoll_wait`` that does not wait when there are none:
        ~0.3 us, cheaper than ``poll`` or a failing ``read``)."""
        poll = self._poll
        if poll is not None and poll.poll(0, 1):
            self._on_events()

    async def _get_raw_many(self, ids: Sequence[str]) -> dict[str, bytes]:
        if self._wants_watch and self._loop is not asyncio.get_running_loop():
            self._watch_on(asyncio.get_running_loop())
        self._drain()
        table = self.raw_table
        index = self.comm_id_to_comm_path
        cache = self._cache
        found: dict[str, bytes] = {}
        slow: list[tuple[str, str]] = []
        for comm_id in ids:
            data = table.get(comm_id)
            if data is None:
                path = index.get(comm_id)
                if path is None:
                    continue
                entry = cache.get(comm_id)
                if entry is not None:  # not covered by the watch: confirm with stat
                    try:
                        st = os.stat(path)
                    except FileNotFoundError:
                        st = None
                    if st is not None and (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns) == entry[0]:
                        found[comm_id] = entry[1]
                        continue
                    self._forget(comm_id)
                try:
                    data = self._read_now(comm_id, path)
                except FileNotFoundError:
                    logger.error("Communication file %s has gone", path)
                    continue
                if data is None:
                    slow.append((comm_id, path))
                    continue
            found[comm_id] = data
        if slow:
            generation = self._generation
            read = await asyncio.get_running_loop().run_in_executor(None, self._read_blocking, slow)
            # An event handled while the thread read means the bytes may predate a change: serve, don't keep.
            fresh = generation == self._generation
            for comm_id, path in slow:
                if comm_id in read:
                    data, st = read[comm_id]
                    found[comm_id] = self._accept(comm_id, path, st, data, fresh)
            found = {i: found[i] for i in ids if i in found}
        return found

    def _read_now(self, comm_id: str, path: str) -> bytes | None:
        """The file read in place if it is in the page cache; None: leave it to the thread."""
        got = _read_versioned_nowait(path)
        if got is None:
            return None
        data, st = got
        if path.endswith(".gz"):
            if len(data) > 65536:
                return None  # leave big decompressions to the thread
            data = _gunzip(comm_id, path, data)
        return self._accept(comm_id, path, st, data, True)

    def _accept(self, comm_id: str, path: str, st: os.stat_result, data: bytes, fresh: bool) -> bytes:
        """Check ``data`` unless this version of the file was checked before; cache it if ``fresh`` and it fits."""
        version = _version(st)
        # Only a plain file's changes all reach the watch on its directory.
        watched = self._loop is not None and st.st_nlink == 1 and not os.path.islink(path)
        if not watched and time.time_ns() - max(st.st_mtime_ns, st.st_ctime_ns) < _RACY_NS:
            fresh = False  # confirmed with stat, where a rewrite this soon could look unchanged
        if self._checked.get(comm_id) != version:
            check_raw(comm_id, data)
            if fresh:
                self._checked[comm_id] = version
        if fresh and len(data) <= self._max_entry:
            self._forget(comm_id)
            while self._cached_bytes + len(data) > self.cache_bytes:
                self._forget(next(iter(self._cache)))  # oldest first
            self._cache[comm_id] = (version, data)
            self._cached_bytes += len(data)
            if watched:
                self.raw_table[comm_id] = data
        return data

    def _forget(self, comm_id: str) -> None:
        entry = self._cache.pop(comm_id, None)
        if entry is not None:
            self._cached_bytes -= len(entry[1])
            self.raw_table.pop(comm_id, None)

    def _forget_all(self) -> None:
        self.raw_table.clear()
        self._cache.clear()
        self._cached_bytes = 0
        self._checked.clear()

    @staticmethod
    def _read_blocking(paths: list[tuple[str, str]]) -> dict[str, tuple[bytes, os.stat_result]]:
        found = {}
        for comm_id, path in paths:
            try:
                data, st = _read_file(path)
            except FileNotFoundError:
                logger.error("Communication file %s has gone", path)
                continue
            found[comm_id] = (_gunzip(comm_id, path, data) if path.endswith(".gz") else data, st)
        return found

    # -- watching ----------------------------------------------------------
    def _decide_watch(self, watch: bool | None) -> bool:
        if watch is False:
            return False
        if not sys.platform.startswith("linux"):
            reason = "inotify is Linux-only"
        elif inotify_simple is None:
            reason = "inotify_simple is not installed"
        else:
            reason = None
        if reason is not None:
            if watch:
                raise RuntimeError(f"cannot watch {self.directory_path}: {reason}")
            logger.info("Not watching %s (%s): every cached read is confirmed with stat", self.directory_path, reason)
            return False
        if watch is None and self.cache_bytes <= 0:
            return False  # nothing cached, nothing to keep current
        foreign = self._foreign_filesystems()
        if foreign:
            if watch:
                logger.warning("Watching %s on %s: inotify misses changes made by other hosts",
                               self.directory_path, ", ".join(foreign))
            else:
                logger.info("Not watching %s: on %s, where inotify misses changes made by other hosts; "
                            "every cached read is confirmed with stat", self.directory_path, ", ".join(foreign))
                return False
        if watch:
            os.close(self._add_watches()[0])  # OSError now rather than at the first read
        return True

    def _foreign_filesystems(self) -> list[str]:
        """Types of the file systems under the tree that are not in LOCAL_FILESYSTEMS."""
        try:
            mounts = parse_mountinfo(_read_mountinfo())
        except OSError as exc:
            return [f"an unknown file system ({exc})"]
        real = os.path.realpath(self.directory_path)
        found = {filesystem_type(real, mounts) or "unknown"}
        # mounts inside the tree (os.walk goes into them)
        found.update(fstype for point, fstype in mounts if point.startswith(real.rstrip("/") + "/"))
        return sorted(found - LOCAL_FILESYSTEMS)

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
        _WATCHING.add(self)
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
        _WATCHING.discard(self)
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

    async def aclose(self) -> None:
        """Stop watching the tree (a later read starts again)."""
        self._watch_off()

    # -- the index ---------------------------------------------------------
    async def _iter_ids(self) -> AsyncIterator[str]:
        for comm_id in list(self.comm_id_to_comm_path):
            yield comm_id

    async def _count(self) -> int:
        return len(self.comm_id_to_comm_path)

    async def _contains(self, comm_id: str) -> bool:
        return comm_id in self.comm_id_to_comm_path

    async def _ids(self, offset: int, count: int | None) -> list[str]:
        return list(self.comm_id_to_comm_path)[offset:][:count]


def _stop_reason(mask: int) -> str:
    if mask & _IN_Q_OVERFLOW:
        return "the kernel dropped inotify events (queue overflow)"
    if mask & _IN_UNMOUNT:
        return "its file system was unmounted"
    if mask & _SELF_EVENTS:
        return "a watched directory was moved or deleted"
    return "the kernel removed a watch"
