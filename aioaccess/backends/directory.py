"""Communications stored one per file under a directory tree.

On Linux the tree is watched with inotify while an event loop reads from it,
so a cached file is trusted until the kernel reports a change to it, instead
of being confirmed with a ``stat`` on every read.  The parts live beside this
module: the index (``directory_index``), the byte cache (``directory_cache``),
reads that do not block (``directory_reads``), the inotify watch (``directory_watch``,
``directory_fork``), the file system check (``mountinfo``) and the writer
(``directory_writer``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Callable, Iterable, Sequence

from .base import CommunicationContainer
from .directory_cache import DEFAULT_CACHE_BYTES, ByteCache
from .directory_index import DirectoryIndex
from .directory_reads import gunzip, read_blocking, read_file_nowait, read_versioned_nowait
from .directory_watch import DirectoryWatch, inotify_simple
from .mountinfo import LOCAL_FILESYSTEMS, filesystem_type, foreign_filesystems, parse_mountinfo
from .mountinfo import read_mountinfo as _read_mountinfo

__all__ = [
    "DEFAULT_CACHE_BYTES",
    "LOCAL_FILESYSTEMS",
    "DirectoryBackedCommunicationContainer",
    "filesystem_type",
    "parse_mountinfo",
    "read_file_nowait",
]

logger = logging.getLogger("aioaccess.backends.directory")


class DirectoryBackedCommunicationContainer(DirectoryIndex, DirectoryWatch, ByteCache, CommunicationContainer):
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
    _read_blocking = staticmethod(read_blocking)  # in a worker thread

    def __init__(self, directory_path: str | os.PathLike[str],
                 comm_extensions: Iterable[str] = (".comm", ".concrete", ".gz"), add_references: bool = True,
                 cache_bytes: int = DEFAULT_CACHE_BYTES, watch: bool | None = None) -> None:
        self.add_references = add_references
        self._init_cache(cache_bytes)
        self.directory_path = os.fspath(directory_path)
        if not os.path.isdir(self.directory_path):
            raise FileNotFoundError(f"no such directory: {self.directory_path}")
        self.comm_extensions = tuple(comm_extensions)
        self._build_index()
        self._init_watch()
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
        got = read_versioned_nowait(path)
        if got is None:
            return None
        data, st = got
        if path.endswith(".gz"):
            if len(data) > 65536:
                return None  # leave big decompressions to the thread
            data = gunzip(comm_id, path, data)
        return self._accept(comm_id, path, st, data, True)

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
            return foreign_filesystems(self.directory_path, _read_mountinfo())
        except OSError as exc:
            return [f"an unknown file system ({exc})"]

    async def aclose(self) -> None:
        """Stop watching the tree (a later read starts again)."""
        self._watch_off()
