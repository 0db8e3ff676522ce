"""Files replaced whole and durably: a power cut leaves the old content or the new, never half.

Gateways lose power without warning; the signed bundles and the rules' state must survive
that. The temporary file is created 0600 (``mkstemp``) beside its target, fsync'd, renamed
over it, and the directory is fsync'd so the rename itself is on disk.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any, TypeVar

import msgspec

__all__ = ["load_saved_states", "read_state_document", "replace_atomically", "replace_durably"]

_T = TypeVar("_T")


def replace_durably(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` (mode 0600); OSError when the disk refuses."""
    _replace(path, data, sync=True)


def replace_atomically(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` (mode 0600) without waiting for the disk.

    For files rewritten every few seconds whose loss costs nothing (``status.json``): an
    fsync each time would wear an SD card.
    """
    _replace(path, data, sync=False)


def _replace(path: Path, data: bytes, *, sync: bool) -> None:
    # mkstemp creates the file 0600, whatever the umask.
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.",
                                             suffix=".tmp")
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(data)
            if sync:
                file.flush()
                os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    if not sync:
        return
    directory = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def read_state_document(path: Path, version: int, key: str, log: logging.Logger,
                        consequence: str) -> dict[str, Any]:
    """The ``{"version": version, key: {...}}`` document in ``path``; {} when there is none.

    A damaged file is logged with ``consequence`` and set aside as ``NAME.damaged``: state
    that cannot be read must never keep the gateway from starting.
    """
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        why = str(exc)
    else:
        if isinstance(document, dict) and document.get("version") == version and \
                isinstance(document.get(key), dict):
            return document
        why = f"expected {{\"version\": {version}, \"{key}\": {{...}}}}"
    aside = path.with_name(path.name + ".damaged")
    with contextlib.suppress(OSError):
        os.replace(path, aside)
    log.error("%s is damaged (%s): set aside as %s; %s", path, why, aside.name, consequence)
    return {}


def load_saved_states(path: Path, version: int, key: str, kind: type[_T],
                         log: logging.Logger, what: str, consequence: str) -> dict[str, _T]:
    """The saved states by name under ``key`` (see :func:`read_state_document`).

    One unreadable entry is logged and left out (``what`` names its kind: "rule"); the
    others are kept.
    """
    saved: dict[str, _T] = {}
    document = read_state_document(path, version, key, log, consequence)
    for name, item in document.get(key, {}).items():
        try:
            saved[name] = msgspec.convert(item, kind)
        except msgspec.ValidationError as exc:
            log.error("%s: state of %s %s is unreadable (%s); it starts afresh",
                      path, what, name, exc)
    return saved
