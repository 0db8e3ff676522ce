"""Trading a one-time enrollment code for a gateway's identity and token.

A wrong, used and expired code all get the same answer, so probing tells nothing; failures
are counted per client address (IPv6: per /64) in the database, so every hub process shares
the count, and too many within the window lock that address out until it passes.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, Row, delete, func, select, update

from edge_agent.records import now_ms
from sync_server.credentials import GATEWAY_TOKEN_PREFIX, digest, new_token, normalise_code
from sync_server.db.schema import enroll_failures, enrollment_codes, gateways, sites, territories
from sync_server.errors import TooManyRequests, Unauthorized
from sync_server.keys import SigningKey, open_badge_key

__all__ = ["EnrollmentPolicy", "client_key", "redeem_code"]

_INVALID = "enrollment code is not valid (unknown, already used or expired)"


@dataclass(frozen=True, slots=True)
class EnrollmentPolicy:
    """How many failed attempts a client may make within a window before it must wait."""

    max_failures: int
    window_s: int


def client_key(address: str) -> str:
    """What the limit counts failures under: an IPv6 client by its /64, since one subscriber
    holds a whole /64 and could otherwise try from 2**64 addresses; IPv4 as it is."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address[:64]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


def redeem_code(
    engine: Engine, code: str, *, client: str, policy: EnrollmentPolicy, key: SigningKey
) -> dict[str, object]:
    """The enrollment answer of docs/sync-protocol.md; the code is spent on success.

    Counting, trying the code and recording a failure are one transaction that holds the
    client's lock, so a burst of parallel attempts gets exactly ``max_failures`` tries.
    """
    now = now_ms()
    client = client_key(client)
    token = new_token(GATEWAY_TOKEN_PREFIX)
    with engine.begin() as conn:
        _hold(conn, client)
        failures = conn.execute(
            select(func.count()).select_from(enroll_failures)
            .where(enroll_failures.c.client == client,
                   enroll_failures.c.at_ms > now - policy.window_s * 1000)
        ).scalar_one()
        if failures >= policy.max_failures:
            raise TooManyRequests(
                f"too many failed enrollment attempts from {client}; wait and check the code",
                retry_after_s=policy.window_s)
        row = _spend(conn, code, now, token)
        if row is None:
            conn.execute(delete(enroll_failures)
                         .where(enroll_failures.c.at_ms <= now - policy.window_s * 1000))
            conn.execute(enroll_failures.insert().values(client=client, at_ms=now))
    if row is None:
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


def _hold(conn: Connection, client: str) -> None:
    """Serialise the client's attempts until the transaction ends. SQLite's writing
    transactions already hold the database's write lock (``BEGIN IMMEDIATE``); PostgreSQL
    takes an advisory lock on the client's hash, so other clients never wait."""
    if conn.dialect.name == "postgresql":
        lock = int.from_bytes(hashlib.sha256(client.encode()).digest()[:8], "big", signed=True)
        conn.execute(select(func.pg_advisory_xact_lock(lock)))


def _spend(conn: Connection, code: str, now: int, token: str) -> Row[Any] | None:
    """The code's gateway, enrolled with ``token``; None if the code is not valid now."""
    row = conn.execute(
        select(enrollment_codes.c.id, gateways.c.id.label("gateway_id"),
               gateways.c.name.label("gateway"), sites.c.name.label("site"),
               territories.c.name.label("territory"), territories.c.badge_key)
        .join_from(enrollment_codes, gateways, enrollment_codes.c.gateway_id == gateways.c.id)
        .join(sites, gateways.c.site_id == sites.c.id)
        .join(territories, gateways.c.territory_id == territories.c.id)
        .where(enrollment_codes.c.code_hash == digest(normalise_code(code)),
               enrollment_codes.c.used_ms.is_(None),
               enrollment_codes.c.expires_ms > now)
    ).first()
    if row is None or conn.execute(
        update(enrollment_codes)
        .where(enrollment_codes.c.id == row.id, enrollment_codes.c.used_ms.is_(None))
        .values(used_ms=now)
    ).rowcount != 1:
        return None
    conn.execute(update(gateways).where(gateways.c.id == row.gateway_id)
                 .values(token_hash=digest(token), enrolled_ms=now))
    return row
