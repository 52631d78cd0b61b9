"""The directory writer: each Communication in ``[ID].comm``, made durable (fsync + rename) before it counts.

The reader of the same tree is :class:`~aioaccess.backends.directory.DirectoryBackedCommunicationContainer`;
the StoreCommunicationService handler over this writer is :class:`~aioaccess.handlers.DirectoryBackedStoreHandler`.
"""

from __future__ import annotations

import logging
import os
import re
import stat
import tempfile
import time

from ..exceptions import InvalidCommId

__all__ = ["DEFAULT_TEMP_MAX_AGE", "DirectoryWriter", "is_temp_name"]

logger = logging.getLogger("aioaccess.handlers.store")

#: Seconds after which a DirectoryBackedStoreHandler's temporary file counts as a crash's leftover.
DEFAULT_TEMP_MAX_AGE = 3600.0

_TEMP_PREFIX, _TEMP_SUFFIX = ".tmp-", ".part"
# tempfile.mkstemp(prefix, suffix) names: 8 characters of tempfile's [a-z0-9_] between them.
_TEMP_NAME = re.compile(re.escape(_TEMP_PREFIX) + r"[a-z0-9_]{8}" + re.escape(_TEMP_SUFFIX))


def is_temp_name(name: str) -> bool:
    """Whether ``name`` is one DirectoryBackedStoreHandler gives its temporary files."""
    return _TEMP_NAME.fullmatch(name) is not None


class DirectoryWriter:
    """Writes ``[ID].comm`` files into ``store_path`` atomically: temporary file, fsync, rename, fsync the directory.

    Blocking: run :meth:`_write` in a worker thread.  Leftover temporary files older than ``temp_max_age``
    seconds are removed on construction (see :class:`~aioaccess.handlers.DirectoryBackedStoreHandler`).
    """

    def __init__(self, store_path: str | os.PathLike[str], *, fsync: bool = True,
                 temp_max_age: float | None = DEFAULT_TEMP_MAX_AGE) -> None:
        self.store_path = os.path.realpath(os.fspath(store_path))
        if not os.path.isdir(self.store_path):
            raise FileNotFoundError(f"no such directory: {self.store_path}")
        if temp_max_age is not None and not temp_max_age >= 0:
            raise ValueError(f"temp_max_age must be >= 0 or None, not {temp_max_age}")
        self.fsync = fsync
        umask = os.umask(0)
        os.umask(umask)
        self.file_mode = 0o666 & ~umask
        try:
            self.name_max = os.pathconf(self.store_path, "PC_NAME_MAX")
        except (OSError, ValueError):
            self.name_max = 255
        if temp_max_age is not None:
            self.remove_stale_temp_files(temp_max_age)

    def remove_stale_temp_files(self, max_age: float = DEFAULT_TEMP_MAX_AGE) -> int:
        """Remove this handler's temporary files not modified for ``max_age`` seconds; return how many.

        Only regular files directly in ``store_path`` whose names match the temporary-file
        pattern exactly are removed (not symlinks, directories or look-alike names).
        """
        cutoff = time.time() - max_age
        removed = 0
        try:
            with os.scandir(self.store_path) as entries:
                for entry in entries:
                    if is_temp_name(entry.name) and self._remove_if_stale(entry, cutoff):
                        removed += 1
        except OSError as exc:
            logger.warning("Cannot list %s for leftover temporary files: %s", self.store_path, exc.strerror or exc)
        if removed:
            logger.info("Removed %d leftover temporary files older than %g s from %s", removed, max_age,
                        self.store_path)
        else:
            logger.debug("No leftover temporary files older than %g s in %s", max_age, self.store_path)
        return removed

    @staticmethod
    def _remove_if_stale(entry: os.DirEntry[str], cutoff: float) -> bool:
        try:
            st = entry.stat(follow_symlinks=False)
            if not stat.S_ISREG(st.st_mode) or st.st_mtime > cutoff:
                return False
            os.unlink(entry.path)
        except FileNotFoundError:  # renamed into place, or removed by a sibling process
            return False
        except OSError as exc:
            logger.warning("Cannot remove leftover temporary file %s: %s", entry.path, exc.strerror or exc)
            return False
        return True

    def path_for(self, comm_id: str) -> str:
        """The file an id is stored in; refuses anything outside ``store_path``."""
        path = os.path.realpath(os.path.join(self.store_path, comm_id + ".comm"))
        if os.path.commonpath([path, self.store_path]) != self.store_path or os.path.dirname(path) != self.store_path:
            raise InvalidCommId(comm_id, "id resolves outside the store directory")
        return path

    def _write(self, path: str, raw: bytes) -> None:
        fd, tmp = tempfile.mkstemp(prefix=_TEMP_PREFIX, suffix=_TEMP_SUFFIX, dir=self.store_path)
        try:
            os.fchmod(fd, self.file_mode)
            with os.fdopen(fd, "wb") as f:
                f.write(raw)
                if self.fsync:
                    f.flush()
                    os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise
        if self.fsync:
            dfd = os.open(self.store_path, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
