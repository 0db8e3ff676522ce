"""A TCP server on 127.0.0.1 for scripted peers (a hub, a Modbus device) that never outlives
its test: on exit it stops listening and cancels every connection's handler still running."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def local_server(handle: Handler) -> AsyncIterator[int]:
    """Serve ``handle`` per connection; the port."""
    handlers: set[asyncio.Task[None]] = set()

    async def tracked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        handlers.add(task)
        try:
            await handle(reader, writer)
        finally:
            handlers.discard(task)

    server = await asyncio.start_server(tracked, "127.0.0.1", 0)
    try:
        yield int(server.sockets[0].getsockname()[1])
    finally:
        server.close()
        await server.wait_closed()
        for task in set(handlers):
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)
