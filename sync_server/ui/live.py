"""Server-Sent Events for the dashboard's live parts.

The hub is stateless between requests (several processes may serve one database), so a
live stream does not wait on an in-process signal: it asks the database every
``every_s`` seconds what its fragment looks like now and sends it only when it changed.
The session is checked on every round, so signing out (or idle expiry, or a revoked token)
ends the stream too. htmx's SSE extension swaps each event's HTML into the page.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

from fastapi import Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from sync_server.ui.sessions import find_session
from sync_server.ui.web import SESSION_COOKIE, ui_state

__all__ = ["Fragments", "event_stream", "sse_event"]

#: A comment line this often keeps proxies from closing a quiet stream.
_KEEPALIVE_S = 15.0

#: What a stream sends: ``{event name: HTML}`` as the page should show it now.
Fragments = Callable[[], dict[str, str]]


def sse_event(name: str, html: str) -> str:
    """One SSE message: every line of ``html`` as a ``data:`` line."""
    data = "\n".join(f"data: {line}" for line in html.splitlines() or [""])
    return f"event: {name}\n{data}\n\n"


def event_stream(request: Request, fragments: Fragments, every_s: float = 1.0
                 ) -> StreamingResponse:
    """A ``text/event-stream`` sending each fragment again whenever it changes."""
    state = ui_state(request)
    secret = request.cookies.get(SESSION_COOKIE, "")

    async def events() -> AsyncIterator[str]:
        sent: dict[str, str] = {}
        quiet_since = time.monotonic()
        yield "retry: 2000\n\n"
        while not await request.is_disconnected():
            viewer = await run_in_threadpool(
                lambda: find_session(state.hub.engine, secret,
                                     state.hub.settings.ui_idle_timeout_s, touch=False))
            if viewer is None:
                yield sse_event("signed-out", "")
                return
            for name, html in (await run_in_threadpool(fragments)).items():
                if sent.get(name) != html:
                    sent[name] = html
                    quiet_since = time.monotonic()
                    yield sse_event(name, html)
            if time.monotonic() - quiet_since > _KEEPALIVE_S:
                quiet_since = time.monotonic()
                yield ": keep-alive\n\n"
            await asyncio.sleep(every_s)

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
