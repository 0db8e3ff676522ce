"""Server-Sent Events for the dashboard's live parts.

The hub is stateless between requests (several processes may serve one database), so a
live stream does not wait on an in-process signal: it asks the database every
``every_s`` seconds what its fragment looks like now and sends it only when it changed.
Signing out (or idle expiry, or a revoked token) ends the stream too: the sessions of all
the streams of a process are checked together, in one read every ``SESSION_CHECK_S``
(200 open dashboards were 200 session reads a second). htmx's SSE extension swaps each
event's HTML into the page.

Many dashboards watch the same thing (a territory's overview, a gateway's devices), so
streams name what they show (``shared``): one read of the database per key and round
serves every stream of the process with that key, instead of one per stream (200 open
overviews were 100 reads a second). It is a cache of the database's answer for half a
round, not a state: each process reads for itself, and the database stays the truth.
"""

from __future__ import annotations

import asyncio
import threading
import time
import weakref
from collections import Counter
from collections.abc import AsyncIterator, Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import TypeVar, cast

from fastapi import Request
from fastapi.responses import StreamingResponse
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool

from sync_server.ui.sessions import live_sessions
from sync_server.ui.web import SESSION_COOKIE, ui_state

__all__ = ["LIVE_EVERY_S", "SESSION_CHECK_S", "Fragments", "Rows", "changes", "event_stream",
           "shared", "sse_event"]

#: How often a live part asks for its fragments: a shared answer is at most half as old,
#: so an update shows within 1.5 s plus the read (issue 10 asks 2 s).
LIVE_EVERY_S = 1.0
#: How often the sessions of the open streams are checked: a stream outlives its session
#: by at most this and a round.
SESSION_CHECK_S = 2.0
#: A comment line this often keeps proxies from closing a quiet stream.
_KEEPALIVE_S = 15.0

_Answer = TypeVar("_Answer")

@dataclass(frozen=True, slots=True)
class Rows:
    """A part made of rows (the overview's 500 gateways): sent whole when rows come, go or
    move, otherwise only the rows that changed, each as its own event (its ``sse-swap``)."""

    whole: str
    #: Each row's event name and HTML, in the page's order.
    rows: dict[str, str]


#: What a stream sends: ``{event name: HTML or Rows}`` as the page should show it now.
Fragments = Callable[[], Mapping[str, str | Rows]]


def changes(name: str, part: str | Rows, sent: dict[str, str | Rows]
            ) -> list[tuple[str, str]]:
    """The events that bring a page showing ``sent[name]`` to ``part``; ``sent`` updated."""
    before = sent.get(name)
    sent[name] = part
    if isinstance(part, str):
        return [] if before == part else [(name, part)]
    if not isinstance(before, Rows) or list(before.rows) != list(part.rows):
        return [(name, part.whole)]
    return [(event, html) for event, html in part.rows.items() if before.rows[event] != html]


def sse_event(name: str, html: str) -> str:
    """One SSE message: every line of ``html`` as a ``data:`` line."""
    data = "\n".join(f"data: {line}" for line in html.splitlines() or [""])
    return f"event: {name}\n{data}\n\n"


class _Shared:
    """The newest answer per key, and a lock per key so one thread reads while the others
    of the same key wait for its answer."""

    def __init__(self) -> None:
        self.guard = threading.Lock()
        self.locks: dict[Hashable, threading.Lock] = {}
        self.answers: dict[Hashable, tuple[float, object]] = {}

    def lock(self, key: Hashable) -> threading.Lock:
        with self.guard:
            return self.locks.setdefault(key, threading.Lock())

    def forget_older_than(self, moment: float) -> None:
        """Drop the answers of keys nobody asked for lately (pages closed)."""
        with self.guard:
            for key in [key for key, (at, _) in self.answers.items() if at < moment]:
                del self.answers[key]
                self.locks.pop(key, None)


_SHARED = _Shared()


def shared(key: Hashable, read_now: Callable[[], _Answer], max_age_s: float
           ) -> Callable[[], _Answer]:
    """``read_now``, called at most once per ``max_age_s`` for every stream of this process
    asking with an equal ``key`` (which must name all its answer depends on: the page, the
    territory, the role, the language)."""
    def read() -> _Answer:
        with _SHARED.lock(key):
            found = _SHARED.answers.get(key)
            if found is not None and time.monotonic() - found[0] < max_age_s:
                return cast(_Answer, found[1])
            fresh = read_now()
            now = time.monotonic()
            _SHARED.answers[key] = (now, fresh)
        _SHARED.forget_older_than(now - 60 * max_age_s)
        return fresh

    return read


class _SessionChecks:
    """The sessions of one hub's open streams, checked together once per ``SESSION_CHECK_S``.

    A stream joins with the session its request was just let in with (alive by then) and
    leaves when it ends; whoever asks once the last check is too old runs the next one for
    all, the others wait for its answer.
    """

    def __init__(self, idle_s: int) -> None:
        self.idle_s = idle_s
        self.lock = threading.Lock()
        self.watched: Counter[str] = Counter()
        self.live: set[str] = set()
        self.checked_at = time.monotonic()

    def join(self, secret: str) -> None:
        with self.lock:
            self.watched[secret] += 1
            self.live.add(secret)

    def leave(self, secret: str) -> None:
        with self.lock:
            self.watched[secret] -= 1
            if self.watched[secret] <= 0:
                del self.watched[secret]
                self.live.discard(secret)

    def signed_in(self, engine: Engine, secret: str) -> bool:
        """Whether ``secret``'s session was alive at the last check (run now if due)."""
        with self.lock:
            if time.monotonic() - self.checked_at >= SESSION_CHECK_S:
                self.live = live_sessions(engine, list(self.watched), self.idle_s)
                self.checked_at = time.monotonic()
            return secret in self.live


#: Per hub, by its engine (a test process may run several hubs, one after the other).
_CHECKS: weakref.WeakKeyDictionary[Engine, _SessionChecks] = weakref.WeakKeyDictionary()
_CHECKS_GUARD = threading.Lock()


def _checks_of(engine: Engine, idle_s: int) -> _SessionChecks:
    """The checks of the hub that owns ``engine``."""
    with _CHECKS_GUARD:
        found = _CHECKS.get(engine)
        if found is None:
            found = _CHECKS[engine] = _SessionChecks(idle_s)
        return found


def event_stream(request: Request, fragments: Fragments, every_s: float = 1.0
                 ) -> StreamingResponse:
    """A ``text/event-stream`` sending each fragment again whenever it changes."""
    state = ui_state(request)
    secret = request.cookies.get(SESSION_COOKIE, "")
    engine = state.hub.engine
    checks = _checks_of(engine, state.hub.settings.ui_idle_timeout_s)

    async def events() -> AsyncIterator[str]:
        sent: dict[str, str | Rows] = {}
        quiet_since = time.monotonic()
        checks.join(secret)
        try:
            yield "retry: 2000\n\n"
            while not await request.is_disconnected():
                if not await run_in_threadpool(checks.signed_in, engine, secret):
                    yield sse_event("signed-out", "")
                    return
                for name, part in (await run_in_threadpool(fragments)).items():
                    for event, html in changes(name, part, sent):
                        quiet_since = time.monotonic()
                        yield sse_event(event, html)
                if time.monotonic() - quiet_since > _KEEPALIVE_S:
                    quiet_since = time.monotonic()
                    yield ": keep-alive\n\n"
                await asyncio.sleep(every_s)
        finally:
            checks.leave(secret)

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
