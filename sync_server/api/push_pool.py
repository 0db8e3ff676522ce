"""Admission control for pushes: a few threads decode and store them, a short queue waits.

A push is CPU work (decoding holds the interpreter) and then a database transaction. Taken
all at once, 500 gateways coming back after an outage would each get a thread, a
connection and a slice of two cores: every push slow, the event loop starved, health checks
late. Here at most ``threads`` pushes run at once and ``queue`` more wait their turn; a push
beyond that is answered 503 with ``Retry-After`` at once, before any of its work is done,
and the agent sends it again later, as it does for any 503 (its outbox keeps the records,
so nothing is lost). What is admitted is then served in about (threads + queue) x the time
of one push, whatever the load.

The slot is taken at the door (sync_server/api/limits.py), before the token is looked up or
the body read, so that a refused push costs no query and no parsing, and at most ``threads
+ queue`` pushes are inside a process at all: the route's ``run`` then uses that slot.

A slot is held while the body arrives too (bounded by ``--body-timeout``), so once its token
passed, the door names the gateway holding it (``claim``), and a gateway holding
``PER_GATEWAY`` slots already is answered 503 as well: an agent pushes one batch at a time
(a second covers a retry while the hub still stores the first), and one gateway, a stolen
box among them, must not hold every slot by opening connections and sending slowly.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

from sync_server.errors import Unavailable

__all__ = ["PER_GATEWAY", "PushPool"]

_T = TypeVar("_T")

#: Slots one gateway may hold at once in a process.
PER_GATEWAY = 2


class PushPool:
    """Runs pushes on ``threads`` threads; Unavailable when ``queue`` more already wait."""

    def __init__(self, threads: int, queue: int, *, retry_after_s: int = 1) -> None:
        self._executor = ThreadPoolExecutor(threads, thread_name_prefix="push")
        # A slot is given back when the work ends, not when its caller stops waiting: a
        # client that hangs up does not free a slot its batch still occupies.
        self._slots = threads + queue
        self._taken = 0
        #: Slots held by each gateway that holds any, as ``claim`` named them.
        self._held: dict[int, int] = {}
        self._lock = threading.Lock()
        self.retry_after_s = retry_after_s
        #: Pushes answered 503 because every slot was taken, since the process started.
        self.busy = 0

    @contextlib.contextmanager
    def admitted(self) -> Iterator[None]:
        """Hold a slot for the request being served (Unavailable if none is free); ``run``
        in it uses that slot, which is given back when its work ends, or at exit if no work
        was run (the token refused, a bad body)."""
        self._take()
        slot = _Slot(self)
        token = _SLOT.set(slot)
        try:
            yield
        finally:
            _SLOT.reset(token)
            if not slot.used:
                self._give_back(slot)

    def claim(self, gateway: int) -> None:
        """Name ``gateway`` as the holder of the slot ``admitted`` holds; Unavailable, the
        slot given back at its exit, if that gateway already holds ``PER_GATEWAY``."""
        slot = _SLOT.get()
        if slot is None or slot.pool is not self or slot.gateway is not None:
            return
        with self._lock:
            held = self._held.get(gateway, 0)
            if held >= PER_GATEWAY:
                self._refuse(f"this gateway already has {held} pushes in progress here; "
                             "retry shortly")
            self._held[gateway] = held + 1
        slot.gateway = gateway

    async def run(self, work: Callable[[], _T]) -> _T:
        """``work()`` on a pool thread, in the slot ``admitted`` holds or in a free one;
        Unavailable at once if every slot is taken."""
        slot = _SLOT.get()
        if slot is not None and slot.pool is self and not slot.used:
            slot.used = True
        else:
            self._take()
            slot = None
        future: Future[_T] = self._executor.submit(work)
        future.add_done_callback(lambda _: self._give_back(slot))
        return await asyncio.wrap_future(future)

    def _take(self) -> None:
        with self._lock:
            if self._taken >= self._slots:
                self._refuse("the hub is storing as many batches as it can; retry shortly")
            self._taken += 1

    def _give_back(self, slot: _Slot | None) -> None:
        with self._lock:
            self._taken -= 1
            gateway = None if slot is None else slot.gateway
            if gateway is not None:
                if self._held[gateway] > 1:
                    self._held[gateway] -= 1
                else:
                    del self._held[gateway]

    def _refuse(self, why: str) -> None:
        """Called holding ``_lock``."""
        self.busy += 1
        raise Unavailable(why, retry_after_s=self.retry_after_s)


class _Slot:
    """A slot the door took for the request in this context; ``used`` once ``run`` has it."""

    def __init__(self, pool: PushPool) -> None:
        self.pool = pool
        self.used = False
        #: The gateway holding it, once ``claim`` named it.
        self.gateway: int | None = None


_SLOT: contextvars.ContextVar[_Slot | None] = contextvars.ContextVar("push_slot", default=None)
