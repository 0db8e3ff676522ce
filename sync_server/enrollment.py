"""Trading a one-time enrollment code for a gateway's identity and token.

A wrong, used and expired code all get the same answer, so probing tells nothing; failures
are counted per client address in the database (so every hub process shares the count) and
too many within the window lock that address out until it passes.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

from sqlalchemy import Engine, delete, func, select, update

from edge_agent.records import now_ms
from sync_server.credentials import GATEWAY_TOKEN_PREFIX, digest, new_token, normalise_code
from sync_server.db.schema import enroll_failures, enrollment_codes, gateways, sites, territories
from sync_server.errors import TooManyRequests, Unauthorized
from sync_server.keys import SigningKey, open_badge_key

__all__ = ["EnrollmentPolicy", "redeem_code"]

_INVALID = "enrollment code is not valid (unknown, already used or expired)"


@dataclass(frozen=True, slots=True)
class EnrollmentPolicy:
    """How many failed attempts a client may make within a window before it must wait."""

    max_failures: int
    window_s: int


def redeem_code(
    engine: Engine, code: str, *, client: str, policy: EnrollmentPolicy, key: SigningKey
) -> dict[str, object]:
    """The enrollment answer of docs/sync-protocol.md; the code is spent on success."""
    now = now_ms()
    since = now - policy.window_s * 1000
    with engine.begin() as conn:
        failures = conn.execute(
            select(func.count()).select_from(enroll_failures)
            .where(enroll_failures.c.client == client, enroll_failures.c.at_ms > since)
        ).scalar_one()
    if failures >= policy.max_failures:
        raise TooManyRequests(
            f"too many failed enrollment attempts from {client}; wait and check the code",
            retry_after_s=policy.window_s)
    token = new_token(GATEWAY_TOKEN_PREFIX)
    with engine.begin() as conn:
        row = conn.execute(
            select(enrollment_codes.c.id, gateways.c.id.label("gateway_id"),
                   gateways.c.name.label("gateway"), sites.c.name.label("site"),
                   territories.c.name.label("territory"), territories.c.badge_key)
            .join_from(enrollment_codes, gateways,
                       enrollment_codes.c.gateway_id == gateways.c.id)
            .join(sites, gateways.c.site_id == sites.c.id)
            .join(territories, gateways.c.territory_id == territories.c.id)
            .where(enrollment_codes.c.code_hash == digest(normalise_code(code)),
                   enrollment_codes.c.used_ms.is_(None),
                   enrollment_codes.c.expires_ms > now)
        ).first()
        spent = row is not None and conn.execute(
            update(enrollment_codes)
            .where(enrollment_codes.c.id == row.id, enrollment_codes.c.used_ms.is_(None))
            .values(used_ms=now)
        ).rowcount == 1
        if row is not None and spent:
            conn.execute(update(gateways).where(gateways.c.id == row.gateway_id)
                         .values(token_hash=digest(token), enrolled_ms=now))
    if row is None or not spent:
        _record_failure(engine, client, now, since)
        raise Unauthorized(_INVALID, code="invalid_code")
    return {
        "gateway": row.gateway,
        "territory": row.territory,
        "site": row.site,
        "token": token,
        "signing_public_key": base64.b64encode(key.public_bytes).decode("ascii"),
        "signing_key_id": key.key_id,
        "badge_key": base64.b64encode(open_badge_key(engine, row.territory, row.badge_key)
                                      ).decode("ascii"),
        "hub_time_ms": now,
    }


def _record_failure(engine: Engine, client: str, now: int, since: int) -> None:
    with engine.begin() as conn:
        conn.execute(delete(enroll_failures).where(enroll_failures.c.at_ms <= since))
        conn.execute(enroll_failures.insert().values(client=client[:64], at_ms=now))
