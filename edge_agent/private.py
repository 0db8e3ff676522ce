"""The data directory is the agent's alone: directories 0700, files 0600, whatever the umask.

It holds the gateway's token, the territory's badge key, the records waiting for the hub
and the agent's state. A umask of 022, the usual default, would make every file created
with default modes readable by every account on the box, so modes are set explicitly
where each file is created, and tightened on files an older agent left readable.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

__all__ = ["PRIVATE_DIR_MODE", "PRIVATE_FILE_MODE", "make_private_dir", "open_private",
           "private_sqlite_file"]

PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600
#: Files SQLite keeps beside a database; it gives new ones the database file's mode.
_SQLITE_SIDECARS = ("-wal", "-shm", "-journal")


def make_private_dir(path: Path) -> None:
    """Create ``path`` (and missing parents) with mode 0700; an existing one is left as is."""
    try:
        path.mkdir(mode=PRIVATE_DIR_MODE, parents=True)
    except FileExistsError:
        return
    os.chmod(path, PRIVATE_DIR_MODE)  # mkdir's mode went through the umask


def open_private(path: Path, flags: int = os.O_RDWR) -> int:
    """A descriptor on ``path``, created 0600 if missing and tightened to 0600 if not."""
    descriptor = os.open(path, flags | os.O_CREAT, PRIVATE_FILE_MODE)
    try:
        os.fchmod(descriptor, PRIVATE_FILE_MODE)
    except BaseException:
        os.close(descriptor)
        raise
    return descriptor


def private_sqlite_file(path: Path) -> None:
    """Create or tighten an SQLite database file and its sidecars to 0600 before opening it.

    SQLite creates a new database 0644 minus the umask, but creates its ``-wal`` and ``-shm``
    files with the mode of the database file: a database created 0600 keeps them 0600.
    """
    os.close(open_private(path, os.O_RDONLY))
    for suffix in _SQLITE_SIDECARS:
        with contextlib.suppress(FileNotFoundError):
            os.chmod(path.with_name(path.name + suffix), PRIVATE_FILE_MODE)
