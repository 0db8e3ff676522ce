"""What every dashboard page shares: its state, the signed-in viewer, forms and rendering.

Identity comes from the session cookie only, and the territory from the session: a page
never takes a territory from its URL. Every POST form carries the session's CSRF token
(``{{ csrf_field() }}`` in templates); ``checked_form`` refuses a form without it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup
from starlette.datastructures import FormData

from edge_agent.records import now_ms
from sync_server.api.context import HubState
from sync_server.errors import BadRequest, Forbidden
from sync_server.ui.i18n import DEFAULT_LANGUAGE, LANGUAGES, Formats, translations
from sync_server.ui.sessions import Viewer, find_session

__all__ = [
    "LANGUAGE_COOKIE",
    "SESSION_COOKIE",
    "NavEntry",
    "SignInRequired",
    "Signed",
    "UiState",
    "checked_form",
    "in_territory",
    "language_of",
    "render",
    "requires",
    "template_module",
    "to_page",
    "ui_path",
    "ui_state",
]

SESSION_COOKIE = "ponton_session"
LANGUAGE_COOKIE = "ponton_lang"


@dataclass(frozen=True, slots=True)
class NavEntry:
    """A page in the menu: its label (an English msgid), path and the roles that see it."""

    label: str
    path: str
    roles: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class UiState:
    """Built once by ``create_ui``; pages only read it."""

    hub: HubState
    nav: tuple[NavEntry, ...] = field(default=())


class SignInRequired(Exception):
    """No live session: the handler sends the browser to the sign-in page."""


def ui_path(request: Request, path: str) -> str:
    """``path`` (``/alarms``) as the browser reaches it, under the dashboard's mount."""
    return f"{request.scope.get('root_path', '')}{path}"


def to_page(request: Request, path: str) -> RedirectResponse:
    """Send the browser to dashboard page ``path`` after a form (303: GET it)."""
    return RedirectResponse(ui_path(request, path), status_code=303)


def ui_state(request: Request) -> UiState:
    """The dashboard's state, stored on its application by ``create_ui``."""
    state = request.app.state.ui
    assert isinstance(state, UiState)
    return state


def current_viewer(request: Request) -> Viewer:
    """The session's viewer; SignInRequired without a live session."""
    secret = request.cookies.get(SESSION_COOKIE)
    if not secret:
        raise SignInRequired
    state = ui_state(request)
    viewer = find_session(state.hub.engine, secret, state.hub.settings.ui_idle_timeout_s)
    if viewer is None:
        raise SignInRequired
    return viewer


Signed = Annotated[Viewer, Depends(current_viewer)]


def requires(*roles: str) -> Callable[[Viewer], Viewer]:
    """A dependency giving the viewer if their role is one of ``roles``, else Forbidden."""

    def allowed(viewer: Signed) -> Viewer:
        if viewer.role not in roles:
            raise Forbidden(f"this page is not open to the {viewer.role} role")
        return viewer

    return allowed


def in_territory(*roles: str) -> Callable[[Viewer], Viewer]:
    """Like ``requires``, and the session must be looking at one territory: an admin
    chooses one on the overview first (names are unique only within a territory)."""
    allowed = requires(*roles)

    def scoped(viewer: Signed) -> Viewer:
        allowed(viewer)
        if viewer.territory_id is None:
            raise BadRequest("choose a territory on the overview first",
                             code="territory_required")
        return viewer

    return scoped


async def checked_form(request: Request, viewer: Signed) -> FormData:
    """The request's form, if it carries the session's CSRF token; Forbidden otherwise."""
    form = await request.form()
    if form.get("csrf") != viewer.csrf:
        raise Forbidden("this form has no valid security token (it may come from another "
                        "site, or from a page opened before you signed in again): reload "
                        "the page and send it again", code="csrf")
    return form


def language_of(request: Request) -> str:
    """The viewer's language: their choice (a cookie), French otherwise."""
    chosen = request.cookies.get(LANGUAGE_COOKIE, DEFAULT_LANGUAGE)
    return chosen if chosen in LANGUAGES else DEFAULT_LANGUAGE


@cache
def _environment(language: str) -> Environment:
    environment = Environment(loader=PackageLoader("sync_server.ui", "templates"),
                              autoescape=select_autoescape(default=True),
                              undefined=StrictUndefined, extensions=["jinja2.ext.i18n"],
                              trim_blocks=True, lstrip_blocks=True)
    environment.install_gettext_translations(  # type: ignore[attr-defined]
        translations(language), newstyle=True)
    return environment


def render(request: Request, template: str, viewer: Viewer | None, *, status: int = 200,
           **context: Any) -> HTMLResponse:
    """``template`` in the viewer's language, with what the layout needs."""
    language = language_of(request)
    html = _environment(language).get_template(template).render(
        _context(request, viewer, language, context))
    return HTMLResponse(html, status_code=status)


def template_module(request: Request, template: str, viewer: Viewer | None,
                    **context: Any) -> Any:
    """``template``'s macros, bound to the context ``render`` would give it: a live stream
    renders one row of a table with them."""
    language = language_of(request)
    return _environment(language).get_template(template).make_module(
        _context(request, viewer, language, context))


def _context(request: Request, viewer: Viewer | None, language: str,
             context: dict[str, Any]) -> dict[str, Any]:
    nav = [] if viewer is None else [entry for entry in ui_state(request).nav
                                     if viewer.role in entry.roles]

    def csrf_field() -> Markup:
        token = "" if viewer is None else viewer.csrf
        return Markup('<input type="hidden" name="csrf" value="{}">').format(token)

    return dict(request=request, viewer=viewer, nav=nav, language=language,
                languages=LANGUAGES, fmt=Formats(language), now_ms=now_ms(),
                csrf_field=csrf_field, url=lambda path: ui_path(request, path), **context)
