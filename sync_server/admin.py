"""Operator actions on the registry: territories, sites, gateways, tokens.

The CLI calls these (``sync-server territory add`` …) and so do tests and the demo; each is
one transaction. Names are short slugs so they read well in paths, logs and CSV exports.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, func, select, update

from edge_agent.records import now_ms
from sync_server.credentials import (
    OPERATOR_TOKEN_PREFIX,
    digest,
    new_enrollment_code,
    new_token,
    normalise_code,
)
from sync_server.db.schema import (
    enrollment_codes,
    gateways,
    operator_tokens,
    sites,
    territories,
)
from sync_server.errors import BadRequest, Conflict, NotFound
from sync_server.keys import seal_badge_key

__all__ = [
    "Enrollment",
    "add_gateway",
    "add_operator_token",
    "add_site",
    "add_territory",
    "check_slug",
    "operator_token_list",
    "revoke_operator_token",
    "site_list",
    "territory_id",
    "territory_list",
]

_SLUG = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")


@dataclass(frozen=True, slots=True)
class Enrollment:
    """A one-time code an installer types into ``edge-agent provision``."""

    territory: str
    site: str
    gateway: str
    code: str
    expires_ms: int


def check_slug(what: str, name: str) -> str:
    """``name`` if it is a valid slug; BadRequest saying what a ``what`` name may hold."""
    if not _SLUG.fullmatch(name):
        raise BadRequest(
            f"{what} name {name!r} is not valid: use 1 to 64 lower-case letters, digits, "
            "'.', '_' or '-', starting with a letter or digit"
        )
    return name


def territory_id(conn: Connection, name: str) -> int:
    """The id of territory ``name``; NotFound lists what exists, for the operator's CLI."""
    found = conn.execute(select(territories.c.id).where(territories.c.name == name)).scalar()
    if found is None:
        known = ", ".join(conn.execute(select(territories.c.name).order_by("name")).scalars())
        raise NotFound(f"no territory {name!r}; known: {known or 'none yet'}")
    return int(found)


def add_territory(engine: Engine, name: str) -> None:
    """Create a territory with a fresh badge pseudonymisation key, sealed at rest."""
    with engine.begin() as conn:
        check_slug("territory", name)
        if conn.execute(select(territories.c.id).where(territories.c.name == name)).first():
            raise Conflict(f"territory {name!r} already exists", code="already_exists")
        conn.execute(territories.insert().values(
            name=name, badge_key=seal_badge_key(conn, name, secrets.token_bytes(32)),
            created_ms=now_ms()))


def add_site(engine: Engine, territory: str, name: str) -> None:
    """Create site ``name`` in ``territory``."""
    with engine.begin() as conn:
        tid = territory_id(conn, territory)
        check_slug("site", name)
        if _site_id(conn, tid, name) is not None:
            raise Conflict(f"site {name!r} already exists in {territory}", code="already_exists")
        conn.execute(sites.insert().values(territory_id=tid, name=name, created_ms=now_ms()))


def add_gateway(
    engine: Engine,
    territory: str,
    site: str,
    name: str | None = None,
    *,
    expires_in_s: int = 86_400,
    reissue: bool = False,
) -> Enrollment:
    """Register a gateway (or, with ``reissue``, revoke its token) and mint its one-time code.

    Without a name the gateway is called ``<site>-gw<N>``. Re-issuing also voids the
    gateway's unused codes: a box being replaced must not be able to enroll twice.
    """
    if expires_in_s <= 0:
        raise BadRequest(f"the code's lifetime must be positive, got {expires_in_s} s")
    created = now_ms()
    with engine.begin() as conn:
        tid = territory_id(conn, territory)
        sid = _site_id(conn, tid, site)
        if sid is None:
            raise NotFound(f"no site {site!r} in territory {territory}")
        if name is None:
            count = conn.execute(select(func.count()).select_from(gateways)
                                 .where(gateways.c.site_id == sid)).scalar_one()
            name = f"{site}-gw{count + 1}"
        check_slug("gateway", name)
        gid = conn.execute(select(gateways.c.id).where(
            gateways.c.territory_id == tid, gateways.c.name == name)).scalar()
        if gid is not None and not reissue:
            raise Conflict(
                f"gateway {name!r} already exists in {territory}; use --reissue to revoke its "
                "token and print a new enrollment code", code="already_exists")
        if gid is None:
            gid = conn.execute(gateways.insert().values(
                territory_id=tid, site_id=sid, name=name, created_ms=created
            ).returning(gateways.c.id)).scalar_one()
        else:
            # The replacement box numbers its records from 1 again: its streams start anew,
            # and the old box's records stay stored under the previous incarnation.
            conn.execute(update(gateways).where(gateways.c.id == gid)
                         .values(token_hash=None, enrolled_ms=None,
                                 incarnation=gateways.c.incarnation + 1))
            conn.execute(update(enrollment_codes)
                         .where(enrollment_codes.c.gateway_id == gid,
                                enrollment_codes.c.used_ms.is_(None))
                         .values(used_ms=created))
        code = new_enrollment_code()
        expires = created + expires_in_s * 1000
        conn.execute(enrollment_codes.insert().values(
            gateway_id=gid, code_hash=digest(normalise_code(code)), created_ms=created,
            expires_ms=expires))
    return Enrollment(territory, site, name, code, expires)


def add_operator_token(engine: Engine, territory: str | None, name: str) -> str:
    """A bearer token reading ``territory`` (or every territory when None: an admin token)."""
    with engine.begin() as conn:
        tid = None if territory is None else territory_id(conn, territory)
        token = new_token(OPERATOR_TOKEN_PREFIX)
        conn.execute(operator_tokens.insert().values(
            territory_id=tid, name=check_slug("token", name), token_hash=digest(token),
            created_ms=now_ms()))
    return token


def revoke_operator_token(engine: Engine, token_id: int) -> None:
    """Revoke operator token ``token_id`` (ids from ``operator_tokens``); at once, for good."""
    with engine.begin() as conn:
        done = conn.execute(update(operator_tokens).where(
            operator_tokens.c.id == token_id, operator_tokens.c.revoked_ms.is_(None))
            .values(revoked_ms=now_ms())).rowcount
    if done != 1:
        raise NotFound(f"no active operator token with id {token_id}")


def operator_token_list(engine: Engine) -> list[dict[str, Any]]:
    """Every operator token: id, name, territory (None for admin), created, revoked."""
    query = (select(operator_tokens.c.id, operator_tokens.c.name,
                    territories.c.name.label("territory"), operator_tokens.c.created_ms,
                    operator_tokens.c.revoked_ms)
             .join_from(operator_tokens, territories,
                        operator_tokens.c.territory_id == territories.c.id, isouter=True)
             .order_by(operator_tokens.c.id))
    with engine.connect() as conn:
        return [dict(row._mapping) for row in conn.execute(query)]


def territory_list(conn: Connection) -> list[dict[str, Any]]:
    """Every territory by name, with how many sites and gateways it has and when it began."""
    site_count = (select(func.count()).where(sites.c.territory_id == territories.c.id)
                  .correlate(territories).scalar_subquery())
    gateway_count = (select(func.count()).where(gateways.c.territory_id == territories.c.id)
                     .correlate(territories).scalar_subquery())
    query = select(territories.c.name.label("territory"), site_count.label("sites"),
                   gateway_count.label("gateways"), territories.c.created_ms
                   ).order_by(territories.c.name)
    return [dict(row._mapping) for row in conn.execute(query)]


def site_list(conn: Connection, territory: int | None) -> list[dict[str, Any]]:
    """Sites of ``territory`` (every one when None), with how many gateways each has."""
    gateway_count = (select(func.count()).where(gateways.c.site_id == sites.c.id)
                     .correlate(sites).scalar_subquery())
    query = (select(territories.c.name.label("territory"), sites.c.name.label("site"),
                    gateway_count.label("gateways"), sites.c.created_ms)
             .join_from(sites, territories, sites.c.territory_id == territories.c.id)
             .order_by(territories.c.name, sites.c.name))
    if territory is not None:
        query = query.where(sites.c.territory_id == territory)
    return [dict(row._mapping) for row in conn.execute(query)]


def _site_id(conn: Connection, territory: int, name: str) -> int | None:
    found = conn.execute(select(sites.c.id).where(sites.c.territory_id == territory,
                                                  sites.c.name == name)).scalar()
    return None if found is None else int(found)
