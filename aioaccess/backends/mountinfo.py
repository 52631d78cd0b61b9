"""Which file system a directory is on, from ``/proc/self/mountinfo``; and which ones inotify can follow."""

from __future__ import annotations

import os
from collections.abc import Sequence

__all__ = ["LOCAL_FILESYSTEMS", "filesystem_type", "foreign_filesystems", "parse_mountinfo", "read_mountinfo"]

#: File systems whose every change goes through this kernel, so inotify sees it.
#: Network and FUSE file systems (nfs, cifs, ceph, fuse.*, 9p, ...) are not here:
#: changes made by another host or a user-space daemon raise no event.
LOCAL_FILESYSTEMS = frozenset({
    "bcachefs", "btrfs", "erofs", "exfat", "ext2", "ext3", "ext4", "f2fs", "hfsplus", "iso9660", "jfs",
    "nilfs2", "ntfs3", "overlay", "ramfs", "reiserfs", "squashfs", "tmpfs", "vfat", "xfs", "zfs",
})


def read_mountinfo() -> str:
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


def foreign_filesystems(directory: str, mountinfo: str) -> list[str]:
    """Types of the file systems under ``directory`` (and mounted inside it) not in LOCAL_FILESYSTEMS."""
    mounts = parse_mountinfo(mountinfo)
    real = os.path.realpath(directory)
    found = {filesystem_type(real, mounts) or "unknown"}
    # mounts inside the tree (os.walk goes into them)
    found.update(fstype for point, fstype in mounts if point.startswith(real.rstrip("/") + "/"))
    return sorted(found - LOCAL_FILESYSTEMS)
