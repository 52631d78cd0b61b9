"""The directory container's index: id -> path of every Communication file under the tree, built once."""

from __future__ import annotations

import logging
import os

from .base import IdIndexed

__all__ = ["DirectoryIndex"]

logger = logging.getLogger("aioaccess.backends.directory")


class DirectoryIndex(IdIndexed):
    """Mixin of DirectoryBackedCommunicationContainer: the index and the container methods answered from it.

    As in concrete-python, the id is the file name without its extension.
    """

    directory_path: str
    comm_extensions: tuple[str, ...]

    def _build_index(self) -> None:
        self.comm_id_to_comm_path: dict[str, str] = {}
        self._file_dirs: set[str] = set()  # directories (as os.walk spells them) holding indexed files
        for root, _dirs, files in os.walk(self.directory_path):
            for basename in files:
                comm_id, extension = os.path.splitext(basename)
                if extension in self.comm_extensions:
                    self.comm_id_to_comm_path[comm_id] = os.path.join(root, basename)
                    self._file_dirs.add(root)
        logger.info("Indexed %d Communication files under %s", len(self.comm_id_to_comm_path), self.directory_path)

    @property
    def id_index(self) -> dict[str, str]:
        return self.comm_id_to_comm_path
