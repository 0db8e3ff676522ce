"""Commands for the running agent over a Unix socket: staff open a gate from a shell.

The agent owns the relay boards' lines, so ``edge-agent gate open`` cannot drive a relay
itself: it asks the running agent through ``<data_dir>/control.sock`` (mode 0600: whoever
may read the data directory may open the gates). One JSON object per line each way; a
request is at most 4 KiB and gets one answer: ``{"ok": true, ...}`` or
``{"ok": false, "error": "..."}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from edge_agent.errors import ControlError, EdgeError

__all__ = ["CONTROL_SOCKET", "Handler", "send_command", "serve_control"]

log = logging.getLogger("edge_agent.access")

CONTROL_SOCKET = "control.sock"
_MAX_REQUEST = 4096
_READ_TIMEOUT_S = 5.0

#: Answers one request (a JSON object) with the fields of an ``ok`` reply.
Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


async def serve_control(data_dir: Path, handler: Handler, ready: asyncio.Event | None = None
                        ) -> None:
    """Answer commands on ``<data_dir>/control.sock`` until cancelled, then remove it."""
    path = data_dir / CONTROL_SOCKET
    with contextlib.suppress(FileNotFoundError):
        path.unlink()  # left by a crashed agent: the data directory lock says we are alone

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            reply = await _handle(reader, handler)
            writer.write(json.dumps(reply).encode() + b"\n")
            await writer.drain()
        except (ConnectionError, TimeoutError):
            pass
        finally:
            writer.close()

    old_umask = os.umask(0o177)
    try:
        server = await asyncio.start_unix_server(answer, path=str(path), limit=_MAX_REQUEST)
    finally:
        os.umask(old_umask)
    if ready is not None:
        ready.set()
    try:
        async with server:
            await server.serve_forever()
    finally:
        with contextlib.suppress(OSError):
            path.unlink()


async def _handle(reader: asyncio.StreamReader, handler: Handler) -> dict[str, Any]:
    try:
        line = await asyncio.wait_for(reader.readline(), _READ_TIMEOUT_S)
    except (ValueError, asyncio.LimitOverrunError):
        return {"ok": False, "error": f"request longer than {_MAX_REQUEST} bytes"}
    try:
        request = json.loads(line)
    except ValueError:
        return {"ok": False, "error": "request is not one JSON object on one line"}
    if not isinstance(request, dict):
        return {"ok": False, "error": "request is not a JSON object"}
    try:
        return {"ok": True, **await handler(request)}
    except EdgeError as exc:
        return {"ok": False, "error": str(exc)}
    except Exception as exc:  # a bug must answer the caller and keep the agent running
        log.exception("control command %r failed", request.get("command"))
        return {"ok": False, "error": f"internal error: {exc!r}"}


async def send_command(data_dir: Path, request: dict[str, Any], *, timeout_s: float = 10.0
                       ) -> dict[str, Any]:
    """Send ``request`` to the agent running with ``data_dir``; ControlError if it refuses."""
    path = data_dir / CONTROL_SOCKET
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_unix_connection(str(path)), timeout_s)
    except (FileNotFoundError, ConnectionRefusedError):
        raise ControlError(f"no agent is running with {data_dir} (no {path}); start it with "
                           "`edge-agent run`") from None
    except PermissionError:
        raise ControlError(f"permission denied on {path}: run as the agent's user") from None
    except TimeoutError:
        raise ControlError(f"the agent did not accept a command within {timeout_s:g} s"
                           ) from None
    try:
        writer.write(json.dumps(request).encode() + b"\n")
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), timeout_s)
    except (ConnectionError, TimeoutError) as exc:
        raise ControlError(f"the agent did not answer: {exc or 'timeout'}") from None
    finally:
        writer.close()
    try:
        reply = json.loads(line)
    except ValueError:
        raise ControlError("the agent's answer is not JSON") from None
    if not isinstance(reply, dict):
        raise ControlError("the agent's answer is not a JSON object")
    if not reply.get("ok"):
        raise ControlError(str(reply.get("error", "refused")))
    return reply
