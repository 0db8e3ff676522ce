"""HTTP caching of open data: a strong ETag of the body, ``If-None-Match`` answered 304, and
``Cache-Control`` by how fast a dataset changes.

Every answer is computed from the store when asked (the hub keeps no copy between requests),
so what a client or a shared cache holds is at most ``max-age`` older than the store: 30 s
for live data (its goal: at most 60 s old), an hour for files that change monthly or when an
operator edits them.
"""

from __future__ import annotations

import hashlib

from fastapi import Request, Response

__all__ = ["LIVE_MAX_AGE_S", "STATIC_MAX_AGE_S", "cached"]

LIVE_MAX_AGE_S = 30
STATIC_MAX_AGE_S = 3600


def cached(request: Request, body: bytes, media_type: str, *, max_age_s: int,
           vary: str = "Accept", headers: dict[str, str] | None = None) -> Response:
    """``body`` with its ETag and caching headers, or 304 if the client holds it already."""
    etag = f'"{hashlib.sha256(body).hexdigest()[:32]}"'
    common = {"ETag": etag, "Cache-Control": f"public, max-age={max_age_s}", "Vary": vary,
              **(headers or {})}
    if _matches(request.headers.get("if-none-match", ""), etag):
        return Response(status_code=304, headers=common)
    return Response(body, media_type=media_type, headers=common)


def _matches(header: str, etag: str) -> bool:
    """RFC 9110's weak comparison, as If-None-Match uses: ``W/`` is ignored, ``*`` matches."""
    tags = [tag.strip().removeprefix("W/") for tag in header.split(",")]
    return "*" in tags or etag in tags
