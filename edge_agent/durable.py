"""Files replaced whole and durably: a power cut leaves the old content or the new, never half.

Gateways lose power without warning; the signed bundles and the rules' state must survive
that. The temporary file is created 0600 (``mkstemp``) beside its target, fsync'd, renamed
over it, and the directory is fsync'd so the rename itself is on disk.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

__all__ = ["replace_durably"]


def replace_durably(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` (mode 0600); OSError when the disk refuses."""
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.",
                                             suffix=".tmp")
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    directory = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
