"""The hub's files are its own: data directories 0700, database and key files 0600.

``hub.db`` holds every territory's badge key and every gateway's records, and its ``-wal``
holds the latest of them in clear. Modes are set explicitly, never left to the umask (022
would make the database world-readable), and a store an older hub left readable is
tightened when it is opened. The hub imports only the agent's pure codecs, so this is the
hub's own copy of the rule that ``edge_agent/private.py`` applies to gateways.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

__all__ = ["private_directory", "private_sqlite_database"]

_DIRECTORY_MODE = 0o700
_FILE_MODE = 0o600
#: SQLite gives the files it keeps beside a database the database file's own mode.
_SIDECARS = ("-wal", "-shm", "-journal")


def private_directory(path: Path) -> None:
    """Create ``path`` (with missing parents) 0700; OSError when the disk refuses."""
    try:
        path.mkdir(mode=_DIRECTORY_MODE, parents=True)
    except FileExistsError:
        return
    os.chmod(path, _DIRECTORY_MODE)  # mkdir's mode went through the umask


def private_sqlite_database(path: Path) -> None:
    """Create ``path`` empty and 0600 if missing, else tighten it and its sidecars to 0600.

    SQLite creates a missing database 0644 minus the umask, and its ``-wal`` and ``-shm``
    with the mode of the database file: created here first, all three stay 0600. OSError
    when the disk refuses.
    """
    descriptor = os.open(path, os.O_RDONLY | os.O_CREAT, _FILE_MODE)
    try:
        os.fchmod(descriptor, _FILE_MODE)
    finally:
        os.close(descriptor)
    for suffix in _SIDECARS:
        with contextlib.suppress(FileNotFoundError):
            os.chmod(path.with_name(path.name + suffix), _FILE_MODE)
