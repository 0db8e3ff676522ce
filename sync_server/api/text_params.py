"""Text the stores cannot hold is refused at the door, in the path and the query of every route.

PostgreSQL's ``text`` cannot hold NUL, and neither store can hold a lone surrogate: a filter
such as ``?kind=a%00`` reached the database and failed there with a 500. Starlette decodes
percent escapes leniently (invalid UTF-8 becomes U+FFFD, so a filter would silently match
other text), so this reads the raw bytes instead: after percent-decoding, the path and the
query must be valid UTF-8 (which excludes encoded surrogates) without NUL. One check before
routing covers every parameter of every route, present and future, on both stores.
"""

from __future__ import annotations

from urllib.parse import unquote_to_bytes

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["StorableText", "unstorable"]


def unstorable(raw: bytes) -> bool:
    """Whether percent-encoded ``raw`` decodes to text a store cannot hold."""
    decoded = unquote_to_bytes(raw.replace(b"+", b" "))
    if b"\x00" in decoded:
        return True
    try:
        decoded.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


class StorableText:
    """ASGI middleware: 400 ``invalid_request`` for a path or query the stores cannot hold."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path = scope.get("raw_path") or scope["path"].encode("utf-8", "surrogatepass")
            for part, raw in (("path", path), ("query", scope.get("query_string", b""))):
                if unstorable(raw):
                    detail = (f"the {part} must be UTF-8 text without NUL characters "
                              "(percent-decoded)")
                    await JSONResponse({"error": "invalid_request", "detail": detail},
                                       status_code=400)(scope, receive, send)
                    return
        await self.app(scope, receive, send)
