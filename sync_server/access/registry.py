"""The badge registry: add, import, revoke and list a territory's badges.

Every change runs in one transaction with the territory locked (policy.changing) and ends by
publishing the policy once, so an import of ten thousand lines makes one new version. An
import is all-or-nothing unless asked otherwise: any problem and nothing is stored. A badge
already registered with the same fields is left as it is (re-importing a file is harmless);
with other fields it is updated. A revoked badge is never re-activated by an add or an
import: an old file must not bring back a stolen card.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, select, update

from edge_agent.codecs.pseudonyms import pseudonym, pseudonym_from_text, pseudonym_text
from edge_agent.records import now_ms
from sync_server.access.badge_csv import Problem, decode_csv, read_badge_csv
from sync_server.access.badge_input import BadgeFields, BadgeText, card_bytes, resolve_badge
from sync_server.access.policy import PolicySigner, TerritoryAccess, changing, publish_policy_in
from sync_server.db.schema import badges
from sync_server.errors import BadRequest, Conflict, InvalidField, InvalidRows, NotFound

__all__ = [
    "MAX_LISTED",
    "MAX_REPORTED",
    "BadgeChange",
    "BadgeRef",
    "add_badge",
    "badge_rows",
    "import_badges",
    "parse_pseudonym",
    "revoke_badge",
]

#: Problems an import reports at most (the detail gives the total).
MAX_REPORTED = 1000
#: Badges one list answer holds at most; page with ``offset``.
MAX_LISTED = 10_000
_STORED = ("category", "valid_from_s", "valid_until_s", "master", "label")


@dataclass(frozen=True, slots=True)
class BadgeRef:
    """A registered badge named by its printed number or by its pseudonym (32 hex digits)."""

    number: str | None = None
    form: str = "hex"
    pseudonym: str | None = None
    length: str = ""

    def resolve(self, key: bytes) -> bytes:
        """The pseudonym this reference names in the territory whose badge key is ``key``."""
        if (self.number is None) == (self.pseudonym is None):
            raise BadRequest("name the badge by its number or by its pseudonym (one of them)")
        if self.pseudonym is not None:
            return parse_pseudonym(self.pseudonym)
        assert self.number is not None
        return pseudonym(key, card_bytes(self.number, self.form, self.length))


@dataclass(frozen=True, slots=True)
class BadgeChange:
    """What an operation did; ``policy_version`` is None when nothing changed."""

    added: int = 0
    updated: int = 0
    unchanged: int = 0
    revoked: int = 0
    policy_version: int | None = None
    #: The badge added or revoked, by pseudonym (hex); an import leaves it empty.
    pseudonyms: list[str] = field(default_factory=list)
    #: Lines left out of a partial import.
    problems: list[Problem] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """The answer of the API and of ``--json``."""
        return {"added": self.added, "updated": self.updated, "unchanged": self.unchanged,
                "revoked": self.revoked, "policy_version": self.policy_version,
                "pseudonyms": self.pseudonyms,
                "problems": [problem.as_dict() for problem in self.problems]}


def parse_pseudonym(text: str) -> bytes:
    """A pseudonym from its 32 hex digits; InvalidField otherwise."""
    try:
        return pseudonym_from_text(text.strip().lower())
    except ValueError as exc:
        raise InvalidField("pseudonym", str(exc)) from None


def add_badge(engine: Engine, signer: PolicySigner, territory: int | str,
              text: BadgeText) -> BadgeChange:
    """Register (or update) one badge and publish; InvalidField names the wrong field."""
    with changing(engine, territory) as (conn, access):
        fields = _resolve(access, text)
        existing = _existing(conn, access.id)
        kept = existing.get(fields.pseudonym)
        if kept is not None and kept["revoked_ms"] is not None:
            raise Conflict(_revoked_reason(kept["revoked_ms"]), code="revoked")
        return _apply(conn, signer, access, [fields], existing)


def import_badges(engine: Engine, signer: PolicySigner, territory: int | str, data: bytes,
                  *, partial: bool = False) -> BadgeChange:
    """Register every badge of a CSV file (badge_csv) and publish once.

    InvalidRows lists ``(line, field, reason)`` and nothing is stored, unless ``partial``:
    then the good lines are stored and the problems come back with the result (a file
    with no good line at all is still refused).
    """
    rows, problems = read_badge_csv(decode_csv(data))
    with changing(engine, territory) as (conn, access):
        access.require_rules()
        existing = _existing(conn, access.id)
        first_line: dict[bytes, int] = {}
        accepted: list[BadgeFields] = []
        for line, text in rows:
            try:
                fields = _resolve(access, text)
            except InvalidField as exc:
                problems.append(Problem(line, exc.field, exc.reason))
                continue
            if fields.pseudonym in first_line:
                problems.append(Problem(line, "number",
                                        f"the same card as line {first_line[fields.pseudonym]}"))
                continue
            first_line[fields.pseudonym] = line
            kept = existing.get(fields.pseudonym)
            if kept is not None and kept["revoked_ms"] is not None:
                problems.append(Problem(line, "number", _revoked_reason(kept["revoked_ms"])))
                continue
            accepted.append(fields)
        problems.sort(key=lambda problem: problem.line)
        if problems and not (partial and accepted):
            raise InvalidRows(
                f"{len(problems)} problem(s) in the file, nothing was imported"
                + (f" (the first {MAX_REPORTED} are listed)" if len(problems) > MAX_REPORTED
                   else ""),
                problems=[problem.as_dict() for problem in problems[:MAX_REPORTED]])
        change = _apply(conn, signer, access, accepted, existing)
    return BadgeChange(change.added, change.updated, change.unchanged, 0,
                       change.policy_version, [], problems[:MAX_REPORTED])


def revoke_badge(engine: Engine, signer: PolicySigner, territory: int | str,
                 ref: BadgeRef) -> BadgeChange:
    """Revoke a badge and publish; revoking it again changes nothing."""
    with changing(engine, territory) as (conn, access):
        wanted = ref.resolve(access.badge_key)
        row = conn.execute(select(badges.c.id, badges.c.revoked_ms).where(
            badges.c.territory_id == access.id, badges.c.pseudonym == wanted)).first()
        if row is None:
            raise NotFound("no badge with that number or pseudonym in this territory")
        if row.revoked_ms is not None:
            return BadgeChange(unchanged=1, pseudonyms=[pseudonym_text(wanted)])
        now = now_ms()
        conn.execute(update(badges).where(badges.c.id == row.id)
                     .values(revoked_ms=now, updated_ms=now))
        version = publish_policy_in(conn, signer, access)
    return BadgeChange(revoked=1, policy_version=version, pseudonyms=[pseudonym_text(wanted)])


def badge_rows(
    conn: Connection, territory: int, *, pseudonym_hex: str | None = None,
    category: str | None = None, revoked: bool | None = None, limit: int = MAX_LISTED,
    offset: int = 0,
) -> list[dict[str, Any]]:
    """The territory's badges, by pseudonym: never a number, which the hub does not have."""
    if not 1 <= limit <= MAX_LISTED or offset < 0:
        raise BadRequest(f"limit must be 1 to {MAX_LISTED} and offset at least 0")
    query = (select(badges.c.pseudonym, badges.c.category, badges.c.valid_from_s,
                    badges.c.valid_until_s, badges.c.revoked_ms, badges.c.master,
                    badges.c.label, badges.c.created_ms, badges.c.updated_ms)
             .where(badges.c.territory_id == territory)
             .order_by(badges.c.pseudonym).limit(limit).offset(offset))
    if pseudonym_hex is not None:
        query = query.where(badges.c.pseudonym == parse_pseudonym(pseudonym_hex))
    if category is not None:
        query = query.where(badges.c.category == category)
    if revoked is not None:
        query = query.where(badges.c.revoked_ms.is_not(None) if revoked
                            else badges.c.revoked_ms.is_(None))
    return [{**row._mapping, "pseudonym": pseudonym_text(bytes(row.pseudonym)),
             "master": bool(row.master)} for row in conn.execute(query)]


def _resolve(access: TerritoryAccess, text: BadgeText) -> BadgeFields:
    return resolve_badge(text, key=access.badge_key, categories=access.categories,
                         timezone=access.timezone)


def _existing(conn: Connection, territory: int) -> dict[bytes, dict[str, Any]]:
    query = select(badges.c.id, badges.c.pseudonym, badges.c.revoked_ms,
                   *(badges.c[name] for name in _STORED)).where(
        badges.c.territory_id == territory)
    return {bytes(row.pseudonym): dict(row._mapping) for row in conn.execute(query)}


def _apply(conn: Connection, signer: PolicySigner, access: TerritoryAccess,
           accepted: list[BadgeFields], existing: dict[bytes, dict[str, Any]]) -> BadgeChange:
    """Insert the new badges, update the changed ones, publish if anything changed."""
    now = now_ms()
    inserts: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    for fields in accepted:
        values = {name: getattr(fields, name) for name in _STORED}
        kept = existing.get(fields.pseudonym)
        if kept is None:
            inserts.append({"territory_id": access.id, "pseudonym": fields.pseudonym,
                            "created_ms": now, "updated_ms": now, **values})
        elif any(kept[name] != value for name, value in values.items()):
            updates.append({"badge_id": kept["id"], "updated_ms": now, **values})
    if inserts:
        conn.execute(badges.insert(), inserts)
    if updates:
        conn.execute(update(badges).where(badges.c.id == bindparam("badge_id"))
                     .values({name: bindparam(f"new_{name}")
                              for name in (*_STORED, "updated_ms")}),
                     [{"badge_id": row.pop("badge_id"),
                       **{f"new_{name}": value for name, value in row.items()}}
                      for row in updates])
    version = publish_policy_in(conn, signer, access) if inserts or updates else None
    return BadgeChange(len(inserts), len(updates), len(accepted) - len(inserts) - len(updates),
                       0, version, [pseudonym_text(fields.pseudonym) for fields in accepted])


def _revoked_reason(revoked_ms: int) -> str:
    day = datetime.fromtimestamp(revoked_ms / 1000, UTC).strftime("%Y-%m-%d")
    return f"this card was revoked on {day}; a revoked card cannot be registered again"
