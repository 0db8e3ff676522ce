"""Badges: the territory's badges by pseudonym, and the desk's three acts on them: add one,
revoke one, import a CSV file with its line/field/reason report.

Each act goes through the registry (sync_server/access/registry.py), exactly as the JSON
API and the CLI do, so the rules are the same everywhere: the number becomes a pseudonym
and is dropped, a revoked card is never brought back, an import is all or nothing unless
asked, and every change publishes the policy once. A pseudonym of another territory
answers "not found", like one that does not exist.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile

from sync_server.access.badge_input import BadgeText
from sync_server.access.policy import PolicySigner, rules_summary
from sync_server.access.registry import (
    BadgeRef,
    add_badge,
    badge_rows,
    import_badges,
    revoke_badge,
)
from sync_server.api.limits import DoorRoute
from sync_server.db.engine import reading
from sync_server.errors import BadRequest, Conflict, InvalidRows
from sync_server.ui.i18n import N_
from sync_server.ui.pages.marina import own_territory
from sync_server.ui.sessions import Viewer
from sync_server.ui.web import NavEntry, checked_form, render, requires, ui_state

__all__ = ["LISTED", "NAV", "router"]

NAV = NavEntry(N_("Badges"), "/badges", ("staff", "operator", "admin"))
#: Badges one page lists; the filters narrow it.
LISTED = 500

router = APIRouter(route_class=DoorRoute)
Desk = Annotated[Viewer, Depends(requires("staff", "operator", "admin"))]
Form = Annotated[FormData, Depends(checked_form)]


def _page(request: Request, viewer: Viewer, *, status: int = 200, category: str = "",
          state: str = "", **outcome: Any) -> Response:
    territory = own_territory(viewer)
    revoked = {"active": False, "revoked": True}.get(state)
    with reading(ui_state(request).hub.engine) as conn:
        summary = rules_summary(conn, territory)
        listed = badge_rows(conn, territory, category=category or None, revoked=revoked,
                            limit=LISTED)
    context: dict[str, Any] = {"change": None, "error": None, "problems": [], **outcome}
    return render(request, "badges.html", viewer, status=status, badges=listed,
                  categories=(summary["rules"] or {}).get("categories", []),
                  counts=(summary["badges"], summary["revoked"]), category=category,
                  state=state, limit=LISTED, **context)


def _signer(request: Request) -> PolicySigner:
    hub = ui_state(request).hub
    return PolicySigner(hub.key, hub.settings.policy_lifetime_s)


@router.get("/badges", response_class=HTMLResponse)
def badges_page(request: Request, viewer: Desk, category: str = "", state: str = ""
                ) -> Response:
    """The badges (``state`` active or revoked; ``category``), and the forms."""
    return _page(request, viewer, category=category, state=state)


@router.post("/badges", response_class=HTMLResponse)
def add(request: Request, viewer: Desk, form: Form) -> Response:
    """Register one badge; a wrong field is shown on the page, nothing stored."""
    text = BadgeText(**{name: _field(form, name) for name in (
        "number", "category", "form", "valid_from", "valid_until", "label", "length")},
        master="yes" if form.get("master") else "no")
    try:
        change = add_badge(ui_state(request).hub.engine, _signer(request),
                           own_territory(viewer), text)
    except (BadRequest, Conflict) as exc:
        return _page(request, viewer, status=exc.status, error=exc.detail)
    return _page(request, viewer, change=change)


@router.post("/badges/revoke", response_class=HTMLResponse)
def revoke(request: Request, viewer: Desk, form: Form) -> Response:
    """Revoke a badge by pseudonym or by number; another territory's is "not found"."""
    pseudonym = _field(form, "pseudonym") or None
    number = None if pseudonym else _field(form, "number") or None
    ref = BadgeRef(number, _field(form, "form") or "hex", pseudonym, _field(form, "length"))
    territory = own_territory(viewer)
    change = revoke_badge(ui_state(request).hub.engine, _signer(request), territory, ref)
    return _page(request, viewer, change=change)


@router.post("/badges/import", response_class=HTMLResponse)
async def import_file(request: Request, viewer: Desk, form: Form) -> Response:
    """Import a CSV file; its problems come back as a (line, field, reason) table."""
    upload = form.get("file")
    data = await upload.read() if isinstance(upload, UploadFile) else b""
    territory = own_territory(viewer)
    partial = bool(form.get("partial"))
    try:
        change = await run_in_threadpool(import_badges, ui_state(request).hub.engine,
                                         _signer(request), territory, data, partial=partial)
    except InvalidRows as exc:
        return _page(request, viewer, status=400, error=exc.detail, problems=exc.problems)
    except (BadRequest, Conflict) as exc:
        return _page(request, viewer, status=exc.status, error=exc.detail)
    return _page(request, viewer, change=change,
                 problems=[problem.as_dict() for problem in change.problems])


def _field(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip()[:256] if isinstance(value, str) else ""
