"""Headers every dashboard response carries: what the browser may load, and no framing.

Every asset is the hub's own, so the content security policy allows nothing else: no
inline script, no other origin, and no page of another site may frame the dashboard (a
framed acknowledgement button is a clickjacking target). Pages hold a territory's data,
so no cache keeps them; static assets may be cached briefly.
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["SecurityHeaders"]

_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
           "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")


class SecurityHeaders:
    """ASGI middleware adding the dashboard's security and cache headers."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # Mounted, the path still starts with the mount's root path (``/ui``).
        path = str(scope["path"]).removeprefix(str(scope.get("root_path", "")))
        static = path.startswith("/static/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["Content-Security-Policy"] = _POLICY
                headers["X-Frame-Options"] = "DENY"
                headers["X-Content-Type-Options"] = "nosniff"
                headers["Referrer-Policy"] = "same-origin"
                headers.setdefault("Cache-Control", "max-age=300" if static else "no-store")
            await send(message)

        await self.app(scope, receive, send_with_headers)
