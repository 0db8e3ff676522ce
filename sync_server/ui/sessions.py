"""Signed-in sessions, kept in the database so every hub process shares them.

The cookie holds a 256-bit secret; the table holds its SHA-256, so a database dump signs
nobody in. A session belongs to an account or to an operator token (revoking the token or
removing the account ends it at once) and expires after ``idle_s`` without a request. The
CSRF token of a session is derived from its secret, so forms need no extra column and a
page from another site, which cannot read the cookie, cannot forge it. Failed sign-ins are
counted per client address in the database, like failed enrollments.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Collection
from dataclasses import dataclass

from sqlalchemy import Engine, delete, func, select, update

from edge_agent.records import now_ms
from sync_server.credentials import digest
from sync_server.db.engine import reading
from sync_server.db.schema import (
    operator_tokens,
    territories,
    ui_sessions,
    ui_signin_failures,
    ui_users,
)
from sync_server.queries import Scope

__all__ = [
    "SIGNIN_MAX_FAILURES",
    "SIGNIN_WINDOW_S",
    "Viewer",
    "choose_territory",
    "close_session",
    "csrf_token",
    "find_session",
    "live_sessions",
    "open_session",
    "recent_failures",
    "record_failure",
]

#: Failed sign-ins from one address within the window before it must wait.
SIGNIN_MAX_FAILURES = 10
SIGNIN_WINDOW_S = 900
#: ``seen_ms`` is written at most this often: a page view is not worth a write each time.
_TOUCH_EVERY_MS = 60_000


@dataclass(frozen=True, slots=True)
class Viewer:
    """Who is signed in, with what role, looking at which territory."""

    session_id: str
    name: str
    role: str
    #: The session's territory: the account's or token's own, or an admin's choice.
    territory_id: int | None
    territory: str | None
    csrf: str
    #: The operator token the session stands for (acknowledgements name it), if any.
    token_id: int | None = None

    @property
    def is_admin(self) -> bool:
        """An admin may choose any territory to look at."""
        return self.role == "admin"

    @property
    def scope(self) -> Scope:
        """What the queries may read: one territory, every one only for an admin who has
        not chosen yet."""
        return Scope(self.territory_id)


def csrf_token(secret: str) -> str:
    """The CSRF token of the session whose cookie holds ``secret``."""
    return hmac.new(secret.encode("utf-8"), b"ponton-csrf", hashlib.sha256).hexdigest()


def open_session(engine: Engine, *, user_id: int | None = None,
                 token_id: int | None = None) -> str:
    """A new session for an account or an operator token; the cookie's secret."""
    assert (user_id is None) != (token_id is None)
    secret = secrets.token_urlsafe(32)
    now = now_ms()
    with engine.begin() as conn:
        conn.execute(ui_sessions.insert().values(id=digest(secret), user_id=user_id,
                                                 token_id=token_id, created_ms=now,
                                                 seen_ms=now))
    return secret


def find_session(engine: Engine, secret: str, idle_s: int, *,
                 touch: bool = True) -> Viewer | None:
    """The live session of ``secret``, its idle clock restarted (with ``touch``: a live
    stream is not the viewer's activity); None if gone or idle.

    An idle session is deleted here, so a stolen cookie of yesterday stays dead.
    """
    session_id = digest(secret)
    now = now_ms()
    chosen = territories.alias("chosen")
    own_territory = func.coalesce(ui_users.c.territory_id, operator_tokens.c.territory_id)
    query = (
        select(ui_sessions.c.seen_ms, ui_sessions.c.token_id,
               ui_sessions.c.territory_id.label("chosen_id"), chosen.c.name.label("chosen"),
               ui_users.c.name.label("user"), ui_users.c.role, operator_tokens.c.name.label(
                   "token"), operator_tokens.c.revoked_ms, own_territory.label("own_id"),
               territories.c.name.label("own"))
        .select_from(ui_sessions)
        .outerjoin(ui_users, ui_sessions.c.user_id == ui_users.c.id)
        .outerjoin(operator_tokens, ui_sessions.c.token_id == operator_tokens.c.id)
        .outerjoin(territories, territories.c.id == own_territory)
        .outerjoin(chosen, chosen.c.id == ui_sessions.c.territory_id)
        .where(ui_sessions.c.id == session_id)
    )
    with reading(engine) as conn:
        row = conn.execute(query).first()
    if row is None:
        return None
    if _ended(row.user, row.token, row.revoked_ms, row.seen_ms, now, idle_s):
        close_session(engine, secret)
        return None
    if touch and now - int(row.seen_ms) > _TOUCH_EVERY_MS:
        with engine.begin() as conn:
            conn.execute(update(ui_sessions).where(ui_sessions.c.id == session_id)
                         .values(seen_ms=now))
    if row.user is not None:
        name, role = str(row.user), str(row.role)
    else:  # an operator token: a territory's operator, or an admin token
        name, role = str(row.token), "operator" if row.own_id is not None else "admin"
    territory_id, territory = row.own_id, row.own
    if role == "admin":
        territory_id, territory = row.chosen_id, row.chosen
    return Viewer(session_id, name, role, territory_id, territory, csrf_token(secret),
                  row.token_id)


def _ended(user: object, token: object, revoked_ms: object, seen_ms: int, now: int,
           idle_s: int) -> bool:
    """Whether a session row is over: its account or token gone or revoked, or idle."""
    gone = (user is None and token is None) or revoked_ms is not None
    return gone or now - int(seen_ms) > idle_s * 1000


def live_sessions(engine: Engine, secrets_: Collection[str], idle_s: int) -> set[str]:
    """Which of ``secrets_`` still hold a live session, by ``find_session``'s rule, in one
    read (the live streams of a process check theirs together); the ended ones are closed."""
    by_id = {digest(secret): secret for secret in secrets_}
    query = (
        select(ui_sessions.c.id, ui_sessions.c.seen_ms, ui_users.c.name.label("user"),
               operator_tokens.c.name.label("token"), operator_tokens.c.revoked_ms)
        .select_from(ui_sessions)
        .outerjoin(ui_users, ui_sessions.c.user_id == ui_users.c.id)
        .outerjoin(operator_tokens, ui_sessions.c.token_id == operator_tokens.c.id)
        .where(ui_sessions.c.id.in_(list(by_id)))
    )
    now = now_ms()
    with reading(engine) as conn:  # every live stream waits on this check: no write lock
        rows = conn.execute(query).all()
    live = {by_id[row.id] for row in rows
            if not _ended(row.user, row.token, row.revoked_ms, row.seen_ms, now, idle_s)}
    for secret in set(by_id.values()) - live:
        close_session(engine, secret)
    return live


def close_session(engine: Engine, secret: str) -> None:
    """End the session of ``secret`` (signing out, or expiry)."""
    with engine.begin() as conn:
        conn.execute(delete(ui_sessions).where(ui_sessions.c.id == digest(secret)))


def choose_territory(engine: Engine, viewer: Viewer, territory_id: int | None) -> None:
    """An admin's session looks at ``territory_id`` from now on (None: every territory)."""
    assert viewer.is_admin
    with engine.begin() as conn:
        conn.execute(update(ui_sessions).where(ui_sessions.c.id == viewer.session_id)
                     .values(territory_id=territory_id))


def recent_failures(engine: Engine, client: str) -> int:
    """Failed sign-ins from ``client`` within the window."""
    since = now_ms() - SIGNIN_WINDOW_S * 1000
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(ui_signin_failures).where(
            ui_signin_failures.c.client == client, ui_signin_failures.c.at_ms > since))
            .scalar_one())


def record_failure(engine: Engine, client: str) -> None:
    """Count a failed sign-in from ``client``; failures older than the window are dropped."""
    now = now_ms()
    with engine.begin() as conn:
        conn.execute(ui_signin_failures.insert().values(client=client[:64], at_ms=now))
        conn.execute(delete(ui_signin_failures).where(
            ui_signin_failures.c.at_ms <= now - SIGNIN_WINDOW_S * 1000))
