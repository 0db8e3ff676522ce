"""Dashboard accounts: staff, operators and admins who sign in with a password.

Passwords are kept as argon2id hashes (argon2-cffi's defaults: memory-hard, salted, the
parameters inside the hash so they can be raised later). A sign-in for a name that does not
exist still spends one hash verification, so timing does not tell which names exist.
One-time sign-in links (``sync-server user link``, the demo) are 256-bit secrets kept as
SHA-256, like tokens: single use, short-lived.
"""

from __future__ import annotations

import secrets
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Engine, delete, select, update

from edge_agent.records import now_ms
from sync_server.admin import check_slug, territory_id
from sync_server.credentials import digest
from sync_server.db.schema import territories, ui_sessions, ui_signin_links, ui_users
from sync_server.errors import BadRequest, Conflict, NotFound
from sync_server.ui.i18n import N_

__all__ = [
    "MIN_PASSWORD",
    "ROLES",
    "add_user",
    "check_password",
    "new_signin_link",
    "redeem_signin_link",
    "remove_user",
    "user_list",
]

#: Who sees what (docs/dashboard.md): staff < operator (a territory) < admin (every one).
ROLES = (N_("staff"), N_("operator"), N_("admin"))
MIN_PASSWORD = 10
MAX_PASSWORD = 1024
_HASHER = PasswordHasher()
#: Verified when the name is unknown, so a wrong name costs what a wrong password costs.
_DUMMY_HASH = _HASHER.hash(secrets.token_urlsafe(16))


def add_user(engine: Engine, name: str, role: str, territory: str | None,
             password: str) -> None:
    """Create an account; an admin has no territory, the other roles exactly one."""
    check_slug("user", name)
    if role not in ROLES:
        raise BadRequest(f"role must be one of {', '.join(ROLES)}, got {role!r}")
    if (role == "admin") != (territory is None):
        raise BadRequest("an admin has no --territory; staff and operators need one")
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise BadRequest(f"a password needs {MIN_PASSWORD} to {MAX_PASSWORD} characters, "
                         f"got {len(password)}")
    hashed = _HASHER.hash(password)
    with engine.begin() as conn:
        tid = None if territory is None else territory_id(conn, territory)
        if conn.execute(select(ui_users.c.id).where(ui_users.c.name == name)).first():
            raise Conflict(f"user {name!r} already exists", code="already_exists")
        conn.execute(ui_users.insert().values(territory_id=tid, name=name, role=role,
                                              password_hash=hashed, created_ms=now_ms()))


def user_list(engine: Engine) -> list[dict[str, Any]]:
    """Every account: name, role, territory (None for admins), created (never the hash)."""
    query = (select(ui_users.c.name, ui_users.c.role, territories.c.name.label("territory"),
                    ui_users.c.created_ms)
             .join_from(ui_users, territories, ui_users.c.territory_id == territories.c.id,
                        isouter=True)
             .order_by(ui_users.c.name))
    with engine.connect() as conn:
        return [dict(row._mapping) for row in conn.execute(query)]


def remove_user(engine: Engine, name: str) -> None:
    """Delete an account with its sessions and links: signed out at once."""
    with engine.begin() as conn:
        uid = conn.execute(select(ui_users.c.id).where(ui_users.c.name == name)).scalar()
        if uid is None:
            raise NotFound(f"no user {name!r}")
        conn.execute(delete(ui_sessions).where(ui_sessions.c.user_id == uid))
        conn.execute(delete(ui_signin_links).where(ui_signin_links.c.user_id == uid))
        conn.execute(delete(ui_users).where(ui_users.c.id == uid))


def check_password(engine: Engine, name: str, password: str) -> int | None:
    """The account's id if ``password`` is its password, else None (same cost either way)."""
    with engine.connect() as conn:
        row = conn.execute(select(ui_users.c.id, ui_users.c.password_hash)
                           .where(ui_users.c.name == name)).first()
    stored = _DUMMY_HASH if row is None else str(row.password_hash)
    try:
        _HASHER.verify(stored, password[:MAX_PASSWORD])
    except (VerificationError, InvalidHashError):
        return None
    return None if row is None else int(row.id)


def new_signin_link(engine: Engine, name: str, lifetime_s: int) -> str:
    """A one-time secret that signs ``name`` in once within ``lifetime_s``."""
    if lifetime_s <= 0:
        raise BadRequest(f"a link's lifetime must be positive, got {lifetime_s} s")
    code = secrets.token_urlsafe(32)
    with engine.begin() as conn:
        uid = conn.execute(select(ui_users.c.id).where(ui_users.c.name == name)).scalar()
        if uid is None:
            raise NotFound(f"no user {name!r}")
        conn.execute(ui_signin_links.insert().values(
            user_id=uid, code_hash=digest(code), expires_ms=now_ms() + lifetime_s * 1000))
    return code


def redeem_signin_link(engine: Engine, code: str) -> int | None:
    """The account a valid, unused link names, spending it; None otherwise."""
    now = now_ms()
    with engine.begin() as conn:
        row = conn.execute(select(ui_signin_links.c.id, ui_signin_links.c.user_id).where(
            ui_signin_links.c.code_hash == digest(code), ui_signin_links.c.used_ms.is_(None),
            ui_signin_links.c.expires_ms > now)).first()
        if row is None:
            return None
        spent = conn.execute(update(ui_signin_links).where(
            ui_signin_links.c.id == row.id, ui_signin_links.c.used_ms.is_(None))
            .values(used_ms=now)).rowcount
    return int(row.user_id) if spent == 1 else None
