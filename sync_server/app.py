"""The hub's FastAPI application factory.

Stateless between requests: everything lives in the database, so several hub processes can
serve one PostgreSQL. Every error leaves as ``{"error": code, "detail": text}``.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from sync_server import __version__
from sync_server.api import access, field, gateway, observe, opendata, operator, public
from sync_server.api.context import HubState
from sync_server.api.openapi import install_openapi
from sync_server.api.push_pool import PushPool
from sync_server.api.text_params import StorableText
from sync_server.db.engine import open_hub_engine
from sync_server.db.migrate import require_head
from sync_server.errors import (
    HubError,
    InvalidRows,
    RequestTimeout,
    TooManyRequests,
    Unavailable,
)
from sync_server.keys import load_badge_seal, load_signing_key, with_badge_seal
from sync_server.settings import HubSettings
from sync_server.ui import create_ui

__all__ = ["create_app"]

log = logging.getLogger("sync_server")


def create_app(settings: HubSettings) -> FastAPI:
    """An app serving ``settings``' database; SettingsError if it cannot serve safely."""
    engine = open_hub_engine(settings.resolved_database_url)
    require_head(engine)
    key = load_signing_key(settings.resolved_signing_key_file, demo=settings.demo)
    engine = with_badge_seal(engine, load_badge_seal(settings.badge_seal_file,
                                                     demo=settings.demo))
    app = FastAPI(title="Ponton sync hub", version=__version__,
                  description="Enrollment, exactly-once batch sync, signed bundles, "
                              "territory-scoped queries. See docs/sync-protocol.md.")
    app.state.hub = HubState(settings, engine, key,
                             PushPool(settings.push_threads, settings.push_queue))
    app.include_router(public.router)
    app.include_router(gateway.router)
    app.include_router(operator.router)
    app.include_router(access.router)
    app.include_router(field.router)
    app.include_router(opendata.router)
    app.include_router(observe.router)
    app.mount("/ui", create_ui(app.state.hub))  # the dashboard: HTML errors of its own
    app.add_middleware(StorableText)
    app.add_middleware(observe.RouteTimer)  # outermost: counts refusals too
    install_openapi(app)
    app.add_exception_handler(HubError, _hub_error)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
    return app


def _error(status: int, code: str, detail: str, **headers: str) -> JSONResponse:
    return JSONResponse({"error": code, "detail": detail}, status_code=status, headers=headers)


async def _hub_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HubError)
    if isinstance(exc, InvalidRows):  # the same shape, plus what is wrong on which line
        return JSONResponse({"error": exc.code, "detail": exc.detail, "problems": exc.problems},
                            status_code=exc.status)
    if isinstance(exc, TooManyRequests | Unavailable):
        return _error(exc.status, exc.code, exc.detail, **{"Retry-After": str(exc.retry_after_s)})
    if isinstance(exc, RequestTimeout):  # the rest of the body may still come: not on this
        return _error(exc.status, exc.code, exc.detail, Connection="close")
    return _error(exc.status, exc.code, exc.detail)


async def _invalid_request(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = "; ".join(
        f"{'.'.join(str(p) for p in error['loc'])}: {error['msg']}" for error in exc.errors())
    return _error(400, "invalid_request", problems)


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    """Routing and body-parsing errors (no such path, wrong method, JSON too deep to parse)
    in the protocol's error shape too."""
    assert isinstance(exc, StarletteHTTPException)
    codes = {400: "invalid_request", 404: "not_found", 405: "method_not_allowed"}
    code = codes.get(exc.status_code, f"http_{exc.status_code}")
    return _error(exc.status_code, code, str(exc.detail), **(exc.headers or {}))


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return _error(500, "internal", f"internal error ({type(exc).__name__}); see the hub's log")
