"""The dashboard as its own ASGI application, mounted under ``/ui`` by the hub's app.

Mounted rather than merged, so its errors are HTML pages while the JSON API keeps its own
handlers and error shape untouched. Static assets (htmx, its SSE extension, the style
sheet) are served from the package: no CDN, no build step.
"""

from __future__ import annotations

import logging
from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from sync_server.api.context import HubState
from sync_server.errors import HubError, RequestTimeout, TooManyRequests
from sync_server.ui.headers import SecurityHeaders
from sync_server.ui.pages import PAGES
from sync_server.ui.web import NavEntry, SignInRequired, UiState, render, to_page, ui_path

__all__ = ["create_ui"]

log = logging.getLogger("sync_server.ui")


def create_ui(hub: HubState) -> FastAPI:
    """The dashboard application over the hub's state."""
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    nav: list[NavEntry] = [page.NAV for page in PAGES if hasattr(page, "NAV")]
    app.state.ui = UiState(hub, tuple(nav))
    app.state.hub = hub  # the pages' DoorRoute bounds bodies by the hub's settings
    for page in PAGES:
        app.include_router(page.router)
    static = Path(str(files("sync_server.ui") / "static"))
    app.mount("/static", StaticFiles(directory=static), name="static")
    app.add_middleware(SecurityHeaders)
    app.add_exception_handler(SignInRequired, _sign_in)
    app.add_exception_handler(HubError, _hub_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
    return app


async def _sign_in(request: Request, _: Exception) -> Response:
    """To the sign-in page; htmx requests and live streams are told to go there instead."""
    target = ui_path(request, "/signin")
    if request.headers.get("hx-request") or "text/event-stream" in request.headers.get(
            "accept", ""):
        return Response(status_code=401, headers={"HX-Redirect": target})
    return to_page(request, "/signin")


def _error_page(request: Request, status: int, code: str, detail: str,
                **headers: str) -> Response:
    response = render(request, "error.html", None, status=status, status_code=status,
                      code=code, detail=detail)
    response.headers.update(headers)
    return response


async def _hub_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HubError)
    headers = ({"Retry-After": str(exc.retry_after_s)} if isinstance(exc, TooManyRequests)
               else {"Connection": "close"} if isinstance(exc, RequestTimeout) else {})
    return _error_page(request, exc.status, exc.code, exc.detail, **headers)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "invalid_request")
    return _error_page(request, exc.status_code, code, str(exc.detail))


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.error("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
    return _error_page(request, 500, "internal", f"internal error ({type(exc).__name__}); "
                       "see the hub's log")
