"""The access decision: one pure function, a fixed order of checks, stable reason codes.

The order is the one trusted offline controllers use (docs/access-control.md): the gate
first (unknown, locked, free), then the policy's freshness (an expired policy puts the gate
in its fail mode), then the credential (unknown, revoked, not yet valid, expired), then the
entitlement of the badge's category to the gate's zone or service, then its schedule, then
anti-passback. No policy at all means deny. Reason codes are part of the event format: the
hub, dashboards and staff read them, so they never change meaning.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, datetime

from edge_agent.codecs.access_policy import AccessPolicy, BadgeRecord, Gate
from edge_agent.codecs.pseudonyms import pseudonym_text
from edge_agent.records import Event

__all__ = ["Decision", "Presence", "Reason", "decide"]


class Reason(enum.StrEnum):
    """Why a badge was let through or not."""

    GRANTED = "granted"
    #: A staff master badge: any gate in normal mode, and fail-secure gates while expired.
    MASTER = "master"
    #: The gate is in free-access mode: every badge opens it.
    GATE_OPEN = "gate_open"
    #: The policy expired and the gate fails open.
    FAIL_OPEN = "fail_open"
    #: Opened by staff with ``edge-agent gate open``.
    MANUAL = "manual"
    NO_POLICY = "no_policy"
    UNKNOWN_GATE = "unknown_gate"
    GATE_LOCKED = "gate_locked"
    #: The policy expired and the gate fails secure: master badges only.
    POLICY_EXPIRED = "policy_expired"
    UNKNOWN_BADGE = "unknown_badge"
    REVOKED = "revoked"
    NOT_YET_VALID = "not_yet_valid"
    BADGE_EXPIRED = "badge_expired"
    NOT_ENTITLED = "not_entitled"
    OUTSIDE_SCHEDULE = "outside_schedule"
    ANTIPASSBACK = "antipassback"
    #: A pedestal outlet already in a session of another badge.
    PEDESTAL_BUSY = "pedestal_busy"
    #: Allowed, but the outlet or its meter did not answer: no unbilled service.
    SERVICE_UNAVAILABLE = "service_unavailable"


_GRANTS = frozenset({Reason.GRANTED, Reason.MASTER, Reason.GATE_OPEN, Reason.FAIL_OPEN,
                     Reason.MANUAL})


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer for one badge at one gate, and what the event about it says."""

    gate: str
    reason: Reason
    #: None for a manual opening.
    pseudonym: bytes | None
    category: str | None = None
    policy_version: int = 0
    #: What the gate gives: ``zone:NAME`` or ``service:NAME`` (None for an unknown gate).
    target: str | None = None

    @property
    def granted(self) -> bool:
        """Whether the gate opens."""
        return self.reason in _GRANTS

    def event(self, ts_ms: int) -> Event:
        """The ``access.granted`` or ``access.denied`` event: pseudonym, never the raw id."""
        attrs: dict[str, object] = {"reason": str(self.reason),
                                    "policy_version": self.policy_version}
        if self.pseudonym is not None:
            attrs["badge"] = pseudonym_text(self.pseudonym)
        if self.category is not None:
            attrs["category"] = self.category
        if self.target is not None:
            kind_of_target, _, name = self.target.partition(":")
            attrs[kind_of_target] = name
        kind = "access.granted" if self.granted else "access.denied"
        return Event(kind, self.gate, ts_ms, attrs)


class Presence:
    """Who entered which anti-passback zone, and when; in memory (a restart forgets).

    Hard anti-passback: a badge that came in through an ``in`` gate cannot come in again
    until it leaves through an ``out`` gate or the zone's ``antipassback_s`` has passed.
    """

    def __init__(self) -> None:
        self._entered_ms: dict[tuple[str, bytes], int] = {}

    def blocks(self, zone: str, pseudonym: bytes, window_s: int, now_ms: int) -> bool:
        """Whether the badge is still counted inside ``zone``."""
        entered = self._entered_ms.get((zone, pseudonym))
        return entered is not None and now_ms - entered < window_s * 1000

    def record(self, policy: AccessPolicy, decision: Decision, now_ms: int) -> None:
        """Note an entry or an exit that was granted."""
        gate = policy.gates.get(decision.gate)
        if not decision.granted or decision.pseudonym is None or gate is None or gate.zone is None:
            return
        zone = policy.zones.get(gate.zone)
        if zone is None or not zone.antipassback_s:
            return
        key = (gate.zone, decision.pseudonym)
        if gate.direction == "in":
            self._entered_ms[key] = now_ms
            if len(self._entered_ms) % 1024 == 0:
                self._forget_older_than(policy, now_ms)
        elif gate.direction == "out":
            self._entered_ms.pop(key, None)

    def _forget_older_than(self, policy: AccessPolicy, now_ms: int) -> None:
        for (zone_name, badge), entered in list(self._entered_ms.items()):
            zone = policy.zones.get(zone_name)
            if zone is None or now_ms - entered >= zone.antipassback_s * 1000:
                del self._entered_ms[(zone_name, badge)]


def decide(policy: AccessPolicy | None, gate_name: str, pseudonym: bytes, now_ms: int,
           presence: Presence | None = None) -> Decision:
    """Whether the badge ``pseudonym`` may pass ``gate_name`` at ``now_ms``, and why."""
    if policy is None:
        return Decision(gate_name, Reason.NO_POLICY, pseudonym)
    gate = policy.gates.get(gate_name)
    if gate is None:
        return Decision(gate_name, Reason.UNKNOWN_GATE, pseudonym, policy_version=policy.version)
    badge = None
    reason = _gate_reason(policy, gate, now_ms)
    if reason is None:
        badge = policy.badges.find(pseudonym)
        reason = (Reason.UNKNOWN_BADGE if badge is None
                  else _validity(badge, now_ms) or _entitlement(policy, gate, badge, now_ms,
                                                                presence))
    category = policy.category_name(badge.category) if badge is not None else None
    return Decision(gate_name, reason, pseudonym, category, policy.version, gate.target)


def _gate_reason(policy: AccessPolicy, gate: Gate, now_ms: int) -> Reason | None:
    """The answer when the gate decides alone; None when the badge must be checked."""
    if gate.mode == "locked":
        return Reason.GATE_LOCKED
    if gate.mode == "open":
        return Reason.GATE_OPEN
    if policy.expired(now_ms) and gate.fail_mode == "open":
        return Reason.FAIL_OPEN
    return None


def _validity(badge: BadgeRecord, now_ms: int) -> Reason | None:
    """Why the credential itself is refused, or None."""
    now_s = now_ms // 1000
    if badge.revoked:
        return Reason.REVOKED
    if now_s < badge.valid_from_s:
        return Reason.NOT_YET_VALID
    if now_s >= badge.valid_until_s:
        return Reason.BADGE_EXPIRED
    return None


def _entitlement(policy: AccessPolicy, gate: Gate, badge: BadgeRecord, now_ms: int,
                 presence: Presence | None) -> Reason:
    """Master, expired policy, category entitlement, schedule, then anti-passback."""
    if badge.master:
        return Reason.MASTER
    if policy.expired(now_ms):
        return Reason.POLICY_EXPIRED
    schedules = policy.entitlements.get((badge.category, gate.target))
    if schedules is None:
        return Reason.NOT_ENTITLED
    if None not in schedules:
        local = datetime.fromtimestamp(now_ms / 1000, UTC).astimezone(policy.timezone)
        if not any(policy.schedules[name].is_open(local, policy.holidays)
                   for name in schedules if name is not None):
            return Reason.OUTSIDE_SCHEDULE
    if presence is not None and gate.zone is not None and gate.direction == "in":
        zone = policy.zones[gate.zone]
        if zone.antipassback_s and presence.blocks(zone.name, badge.pseudonym,
                                                   zone.antipassback_s, now_ms):
            return Reason.ANTIPASSBACK
    return Reason.GRANTED
