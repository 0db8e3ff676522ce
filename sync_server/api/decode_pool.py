"""A few threads for the CPU-heavy part of a push, with a short queue in front of them.

Decoding a batch holds the interpreter for long stretches (the JSON parser does not let go
while it runs), so pushes decoded on the shared thread pool, many at once, would leave the
event loop waiting: health checks and every other gateway too. Here at most ``workers``
batches decode at once and ``queue`` more wait; a push beyond that is answered 503 with
``Retry-After`` at once, and the agent comes back later, as it does for any 503.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

from sync_server.errors import Unavailable

__all__ = ["DecodePool"]

_T = TypeVar("_T")


class DecodePool:
    """Runs functions on ``workers`` threads; Unavailable when ``queue`` more already wait."""

    def __init__(self, workers: int = 2, queue: int = 16, *, retry_after_s: int = 1) -> None:
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix="decode")
        # Released when the work ends, not when its caller stops waiting: a client that
        # hangs up does not free a slot its batch still occupies.
        self._slots = threading.BoundedSemaphore(workers + queue)
        self.retry_after_s = retry_after_s
        #: Pushes refused because the pool was full, since the process started (/metrics).
        self.refused = 0

    async def run(self, work: Callable[[], _T]) -> _T:
        """``work()`` on a pool thread; Unavailable at once if the pool is full."""
        if not self._slots.acquire(blocking=False):
            self.refused += 1
            raise Unavailable("the hub is decoding as many batches as it can; retry shortly",
                              retry_after_s=self.retry_after_s)
        future: Future[_T] = self._executor.submit(work)
        future.add_done_callback(lambda _: self._slots.release())
        return await asyncio.wrap_future(future)
