"""One malloc arena for the gateway process: threads share the main heap.

glibc gives each thread that allocates its own arena, up to eight per core; the agent's
worker threads (outbox writes, status files through ``asyncio.to_thread``) each keep one
around, with its free pages, for the life of the process. A gateway allocates little and
rarely from two threads at once, so one arena costs no measurable time and saves about
1 MiB of resident memory (docs/benchmarks.md, "Footprint"). Elsewhere than glibc this
does nothing.
"""

from __future__ import annotations

import ctypes
import logging

__all__ = ["single_arena"]

log = logging.getLogger("edge_agent.memory")

_M_ARENA_MAX = -8  # glibc's malloc.h


def single_arena() -> bool:
    """Ask glibc's malloc for one arena; whether it agreed. Call before threads start."""
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the C library the interpreter is linked to
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    agreed: bool = mallopt(_M_ARENA_MAX, 1) == 1
    if not agreed:
        log.debug("malloc kept its arenas (mallopt refused M_ARENA_MAX)")
    return agreed
