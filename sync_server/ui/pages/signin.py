"""Signing in (an account's password, or an operator token), one-time links, signing out,
and the language switch.

The sign-in form has no session yet, so its CSRF token is a random cookie repeated in the
form (a page of another site can neither read nor set it). Failed sign-ins count against
the client's address; past SIGNIN_MAX_FAILURES in the window, it must wait.
"""

from __future__ import annotations

import secrets
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData

from sync_server.api.limits import DoorRoute
from sync_server.credentials import OPERATOR_TOKEN_PREFIX, digest
from sync_server.db.schema import operator_tokens
from sync_server.errors import Forbidden, TooManyRequests
from sync_server.ui.accounts import check_password, redeem_signin_link
from sync_server.ui.i18n import LANGUAGES
from sync_server.ui.sessions import (
    SIGNIN_MAX_FAILURES,
    SIGNIN_WINDOW_S,
    close_session,
    open_session,
    recent_failures,
    record_failure,
)
from sync_server.ui.web import (
    LANGUAGE_COOKIE,
    SESSION_COOKIE,
    checked_form,
    render,
    to_page,
    ui_path,
    ui_state,
)

__all__ = ["router"]

router = APIRouter(route_class=DoorRoute)

_SIGNIN_CSRF_COOKIE = "ponton_signin"
_YEAR_S = 365 * 86_400


def _signed_in(request: Request, secret: str) -> Response:
    """Back to the dashboard with the session cookie (Secure when the hub is reached by TLS)."""
    response = to_page(request, "/")
    response.set_cookie(SESSION_COOKIE, secret, httponly=True, samesite="strict",
                        secure=request.url.scheme == "https", path=ui_path(request, "/"))
    response.delete_cookie(_SIGNIN_CSRF_COOKIE, path=ui_path(request, "/"))
    return response


@router.get("/signin", response_class=HTMLResponse)
def signin_page(request: Request) -> Response:
    """The sign-in form, with a fresh CSRF cookie."""
    return _form(request, error=None, status=200)


def _form(request: Request, error: str | None, status: int) -> Response:
    token = secrets.token_urlsafe(32)
    response = render(request, "signin.html", None, status=status, signin_csrf=token,
                      error=error)
    response.set_cookie(_SIGNIN_CSRF_COOKIE, token, httponly=True, samesite="strict",
                        secure=request.url.scheme == "https", path=ui_path(request, "/"))
    return response


@router.post("/signin")
async def signin(request: Request) -> Response:
    """Check a name and password, or an operator token; a session on success.

    Off the event loop: an argon2 verification takes a fifth of a second of CPU here, and
    the hub's other requests (gateways pushing) must not wait for it.
    """
    form = await request.form()
    return await run_in_threadpool(_signin, request, form)


def _signin(request: Request, form: FormData) -> Response:
    expected = request.cookies.get(_SIGNIN_CSRF_COOKIE)
    if not expected or form.get("csrf") != expected:
        raise Forbidden("this form has no valid security token: reload the page and sign in "
                        "again", code="csrf")
    engine = ui_state(request).hub.engine
    client = request.client.host if request.client else "unknown"
    if recent_failures(engine, client) >= SIGNIN_MAX_FAILURES:
        raise TooManyRequests("too many failed sign-ins from this address; wait and try "
                              "again", retry_after_s=SIGNIN_WINDOW_S)
    secret = _authenticate(request, form)
    if secret is None:
        record_failure(engine, client)
        return _form(request, error="wrong", status=401)
    return _signed_in(request, secret)


def _authenticate(request: Request, form: FormData) -> str | None:
    """A new session's secret for the form's credentials, or None."""
    engine = ui_state(request).hub.engine
    token = str(form.get("token") or "").strip()
    if token:
        if not token.startswith(OPERATOR_TOKEN_PREFIX):
            return None
        with engine.connect() as conn:
            token_id = conn.execute(select(operator_tokens.c.id).where(
                operator_tokens.c.token_hash == digest(token),
                operator_tokens.c.revoked_ms.is_(None))).scalar()
        return None if token_id is None else open_session(engine, token_id=int(token_id))
    user_id = check_password(engine, str(form.get("name") or ""),
                             str(form.get("password") or ""))
    return None if user_id is None else open_session(engine, user_id=user_id)


@router.get("/signin/link/{code}")
def signin_link(request: Request, code: str) -> Response:
    """A one-time link (``sync-server user link``, the demo): a session, once."""
    engine = ui_state(request).hub.engine
    user_id = redeem_signin_link(engine, code[:100])
    if user_id is None:
        return _form(request, error="link", status=401)
    return _signed_in(request, open_session(engine, user_id=user_id))


@router.post("/signout")
def signout(request: Request, _: Annotated[FormData, Depends(checked_form)]) -> Response:
    """End the session: its row is deleted, so the cookie is worthless from now on."""
    close_session(ui_state(request).hub.engine, request.cookies.get(SESSION_COOKIE, ""))
    response = to_page(request, "/signin")
    response.delete_cookie(SESSION_COOKIE, path=ui_path(request, "/"))
    return response


@router.get("/language/{language}")
def choose_language(request: Request, language: str, back: str = "/") -> Response:
    """Remember the viewer's language and go back (only to a page of the dashboard)."""
    target = back if back.startswith("/") and not urlsplit(back).netloc else "/"
    response = to_page(request, target)
    if language in LANGUAGES:
        response.set_cookie(LANGUAGE_COOKIE, language, max_age=_YEAR_S, samesite="lax",
                            path=ui_path(request, "/"))
    return response
