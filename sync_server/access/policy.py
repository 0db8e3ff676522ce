"""Each territory's policy rules, and the signed policy built from them and its badges.

The policy bundle is ``policy_payload(rules, packed badges)`` (edge_agent/codecs/
access_policy.py). It is rebuilt and signed inside the transaction that changes the rules or
the badges, with the territory locked, so every version matches what was stored when it was
signed and an operation publishes once, however many badges it touched. A policy expires
(``HubSettings.policy_lifetime_s``) so a gateway cut off from its hub stops trusting a list
that may miss revocations; when a gateway fetches a policy past half its life, the hub signs
a fresh one, so an unchanged policy never expires while gateways keep in touch.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from datetime import time as day_time
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Engine, func, or_, select

from edge_agent.codecs.access_policy import (
    NO_END,
    BadgeRecord,
    pack_badges,
    parse_rules,
    policy_payload,
)
from edge_agent.codecs.bundle import canonical_json
from edge_agent.errors import BundleError, PolicyError
from edge_agent.records import now_ms
from sync_server.admin import territory_id
from sync_server.bundles import lock_territory, publish_locked
from sync_server.db.engine import reading
from sync_server.db.schema import badges, bundles, policy_rules, territories
from sync_server.errors import BadRequest, Conflict
from sync_server.keys import SigningKey, open_badge_key

__all__ = [
    "DEFAULT_TIMEZONE",
    "PolicySigner",
    "TerritoryAccess",
    "changing",
    "parse_rules_file",
    "publish_policy",
    "publish_policy_in",
    "refresh_policy",
    "rules_summary",
    "set_rules",
    "territory_timezone",
]

DEFAULT_TIMEZONE = "Europe/Paris"


@dataclass(frozen=True, slots=True)
class PolicySigner:
    """What signing a policy takes: the hub's key and how long a policy stays valid."""

    key: SigningKey
    lifetime_s: int


@dataclass(frozen=True, slots=True)
class TerritoryAccess:
    """A territory as an access change sees it, inside the transaction that locked it."""

    id: int
    name: str
    badge_key: bytes
    #: The current rules document, None until an operator sets one.
    rules: dict[str, Any] | None

    def require_rules(self) -> dict[str, Any]:
        """The rules; Conflict until they are set, since badges need their categories."""
        if self.rules is None:
            raise Conflict(f"territory {self.name} has no policy rules yet: set them first "
                           "(`sync-server policy set`, PUT /v1/policy/rules)",
                           code="no_policy_rules")
        return self.rules

    @property
    def categories(self) -> tuple[str, ...]:
        """The holder categories of the rules, in their order (a badge stores the name)."""
        return tuple(self.require_rules().get("categories", []))

    @property
    def timezone(self) -> ZoneInfo:
        """The rules' time zone: dates typed without an offset are read in it."""
        return ZoneInfo((self.rules or {}).get("timezone", DEFAULT_TIMEZONE))


@contextmanager
def changing(engine: Engine, territory: int | str) -> Iterator[tuple[Connection, TerritoryAccess]]:
    """A transaction holding ``territory``'s lock (by id or name), with its access state."""
    with engine.begin() as conn:
        tid = territory if isinstance(territory, int) else territory_id(conn, territory)
        lock_territory(conn, tid)
        row = conn.execute(
            select(territories.c.name, territories.c.badge_key, policy_rules.c.rules)
            .join_from(territories, policy_rules,
                       policy_rules.c.territory_id == territories.c.id, isouter=True)
            .where(territories.c.id == tid)).one()
        rules = None if row.rules is None else json.loads(row.rules)
        yield conn, TerritoryAccess(tid, str(row.name),
                                    open_badge_key(conn, str(row.name), row.badge_key), rules)


def territory_timezone(conn: Connection, territory: int) -> ZoneInfo:
    """The time zone of ``territory``'s rules (Europe/Paris until rules are set)."""
    text = conn.execute(select(policy_rules.c.rules)
                        .where(policy_rules.c.territory_id == territory)).scalar()
    rules = {} if text is None else json.loads(text)
    return ZoneInfo(rules.get("timezone", DEFAULT_TIMEZONE))


def parse_rules_file(data: bytes, name: str) -> dict[str, Any]:
    """A rules document from a ``.toml`` file or, otherwise, a JSON one."""
    try:
        text = data.decode("utf-8-sig")
        document = tomllib.loads(text) if name.lower().endswith(".toml") else json.loads(text)
    except (UnicodeDecodeError, tomllib.TOMLDecodeError, ValueError) as exc:
        raise BadRequest(f"cannot read the rules in {name}: {exc}") from None
    if not isinstance(document, dict):
        raise BadRequest(f"{name} must hold one rules object")
    return document


def set_rules(engine: Engine, signer: PolicySigner, territory: int | str,
              rules: Mapping[str, Any]) -> int:
    """Check and store ``territory``'s rules, then publish; return the policy's version.

    Refused with the gateways' own message when ``parse_rules`` refuses them, and when a
    category still held by an active badge disappears (revoked badges do not hold one back).
    """
    document = _json_ready(rules)
    try:
        parsed = parse_rules(document)
        digest = hashlib.sha256(canonical_json(document)).hexdigest()
    except (PolicyError, BundleError) as exc:
        raise BadRequest(f"policy rules refused: {exc}", code="invalid_policy") from None
    with changing(engine, territory) as (conn, access):
        held = conn.execute(
            select(badges.c.category, func.count()).where(
                badges.c.territory_id == access.id, _not_expired(now_ms() // 1000),
                badges.c.revoked_ms.is_(None), badges.c.category.not_in(parsed.categories))
            .group_by(badges.c.category).order_by(badges.c.category)).all()
        if held:
            still = ", ".join(f"{category} ({count} badges)" for category, count in held)
            raise BadRequest(f"policy rules refused: categories still held by badges: {still}; "
                             "move or revoke those badges first", code="invalid_policy")
        stored = {"rules": json.dumps(document, sort_keys=True, ensure_ascii=False),
                  "digest": digest, "updated_ms": now_ms()}
        if access.rules is None:
            conn.execute(policy_rules.insert().values(territory_id=access.id, **stored))
        else:
            conn.execute(policy_rules.update()
                         .where(policy_rules.c.territory_id == access.id).values(**stored))
        return publish_policy_in(conn, signer, TerritoryAccess(
            access.id, access.name, access.badge_key, document))


def publish_policy(engine: Engine, signer: PolicySigner, territory: int | str) -> int:
    """Sign the territory's current rules and badges as a new version (e.g. after a key
    rotation, or to push fresh validity at once)."""
    with changing(engine, territory) as (conn, access):
        return publish_policy_in(conn, signer, access)


def publish_policy_in(conn: Connection, signer: PolicySigner, access: TerritoryAccess) -> int:
    """Sign the rules and every badge whose validity has not ended; return the version.

    Revoked badges stay in the policy until their validity ends, so a gate answers
    "revoked" rather than "unknown"; badges whose validity ended are left out, and so are
    revoked badges of a category the rules dropped (set_rules keeps active ones from
    losing theirs): a gate denies them as unknown.
    """
    rules = access.require_rules()
    index = {name: number for number, name in enumerate(access.categories)}
    query = (select(badges.c.pseudonym, badges.c.category, badges.c.valid_from_s,
                    badges.c.valid_until_s, badges.c.revoked_ms, badges.c.master)
             .where(badges.c.territory_id == access.id, _not_expired(now_ms() // 1000)))
    records = [BadgeRecord(bytes(row.pseudonym), index[row.category], row.valid_from_s or 0,
                           NO_END if row.valid_until_s is None else row.valid_until_s,
                           row.revoked_ms is not None, bool(row.master))
               for row in conn.execute(query) if row.category in index]
    payload = policy_payload(rules, pack_badges(records))
    return publish_locked(conn, signer.key, access.id, access.name, "policy", payload,
                          expires_in_s=signer.lifetime_s)


def refresh_policy(engine: Engine, signer: PolicySigner, territory: int) -> bool:
    """Sign a fresh policy when the newest is past half its life; whether one was signed.

    Called when a gateway fetches its policy, so a policy nobody changed is renewed long
    before it expires. Territories without rules (policies published by hand) are left
    alone. Checked once without the lock (the common case is "still fresh") and again
    under it, so gateways fetching together sign one new version, not one each.
    """
    with reading(engine) as conn:
        if not _stale(conn, territory):
            return False
    with changing(engine, territory) as (conn, access):
        if not _stale(conn, territory):
            return False
        publish_policy_in(conn, signer, access)
        return True


def rules_summary(conn: Connection, territory: int) -> dict[str, Any]:
    """The current rules with their digest and date, the newest policy, the badge counts."""
    row = conn.execute(select(policy_rules).where(
        policy_rules.c.territory_id == territory)).first()
    newest = conn.execute(
        select(bundles.c.version, bundles.c.issued_ms, bundles.c.expires_ms)
        .where(bundles.c.territory_id == territory, bundles.c.kind == "policy")
        .order_by(bundles.c.version.desc()).limit(1)).first()
    counts = conn.execute(
        select(func.count(), func.count(badges.c.revoked_ms))
        .where(badges.c.territory_id == territory)).one()
    return {
        "rules": None if row is None else json.loads(row.rules),
        "digest": None if row is None else row.digest,
        "updated_ms": None if row is None else row.updated_ms,
        "policy": None if newest is None else dict(newest._mapping),
        "badges": int(counts[0]),
        "revoked": int(counts[1]),
    }


def _stale(conn: Connection, territory: int) -> bool:
    """Whether the territory has rules and its newest policy is past half its life."""
    if conn.execute(select(policy_rules.c.territory_id)
                    .where(policy_rules.c.territory_id == territory)).first() is None:
        return False
    newest = conn.execute(
        select(bundles.c.issued_ms, bundles.c.expires_ms)
        .where(bundles.c.territory_id == territory, bundles.c.kind == "policy")
        .order_by(bundles.c.version.desc()).limit(1)).first()
    if newest is None:
        return True
    issued, expires = int(newest.issued_ms), int(newest.expires_ms)
    return now_ms() >= issued + (expires - issued) // 2


def _not_expired(now_s: int) -> Any:
    return or_(badges.c.valid_until_s.is_(None), badges.c.valid_until_s > now_s)


def _json_ready(value: Any) -> Any:
    """``value`` with TOML's dates and times as ISO strings, as a JSON document holds them."""
    if isinstance(value, Mapping):
        return {key: _json_ready(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_json_ready(item) for item in value]
    if isinstance(value, date | datetime | day_time):
        return value.isoformat()
    return value
