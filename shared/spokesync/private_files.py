"""The data directory is private: the folder mode 0700, every file in it 0600.

It holds the hub database (calendar contents) and its `-wal`/`-shm` journals,
the encrypted secret file and its key, the admin and task tokens. Files are
created private (`create_private`); `secure_data_dir` runs on every start
and tightens anything looser, with a warning that names the file (a folder
copied from a backup, or a database created by an older spokesync, keeps
the mode the umask gave it, usually 0644).
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

log = logging.getLogger("spokesync.files")

DIR_MODE = 0o700
FILE_MODE = 0o600


def _tighten(path: Path, wanted: int) -> bool:
    """chmod `path` to `wanted` when group or others have any access; True when it was changed."""
    try:
        info = path.lstat()
    except FileNotFoundError:
        return False
    if stat.S_ISLNK(info.st_mode):
        return False  # never follow a link out of the folder
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o077 == 0:
        return False
    os.chmod(path, wanted)
    log.warning("%s was readable by other users of this machine (mode %o); it is now private (mode %o)",
                path, mode, wanted)
    return True


def secure_data_dir(data_dir: str | Path) -> list[Path]:
    """Create the data directory 0700 if needed, then make it and everything in it private.
    Returns the paths whose mode was tightened."""
    root = Path(data_dir)
    root.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
    changed = [root] if _tighten(root, DIR_MODE) else []
    for folder, dirs, files in os.walk(root):
        for name in dirs:
            if _tighten(Path(folder) / name, DIR_MODE):
                changed.append(Path(folder) / name)
        for name in files:
            if _tighten(Path(folder) / name, FILE_MODE):
                changed.append(Path(folder) / name)
    return changed


def secure_file(path: str | Path) -> None:
    """One file (and its SQLite journals, when present) private."""
    for candidate in (Path(path), Path(f"{path}-wal"), Path(f"{path}-shm"), Path(f"{path}-journal")):
        _tighten(candidate, FILE_MODE)


def create_private(path: str | Path) -> None:
    """Make sure `path` exists as a 0600 file in a 0700 folder (SQLite gives its journals the database
    file's mode, so a database created this way keeps -wal and -shm private too)."""
    target = Path(path)
    if not target.parent.exists():
        target.parent.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT, FILE_MODE)
    os.close(fd)
    secure_file(target)
