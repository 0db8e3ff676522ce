"""What a gateway says about itself on each push: its agent version, its sync lag and the
bundle versions it holds (docs/sync-protocol.md), checked before anything is stored.

The headers come from the network: each is bounded and must match its form exactly, or the
push is refused whole (``400 invalid_request``, counted per header like a refused record)
and nothing of it is kept. A header left out keeps the value stored before, so an older
agent that sends none leaves dashes on the dashboard rather than wrong values. A bundle
kind this hub does not know is ignored: a newer agent must not have its records refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from edge_agent.codecs.bundle import BUNDLE_KINDS
from sync_server.bad_records import count_refused
from sync_server.errors import BadRequest
from sync_server.record_checks import Problem

__all__ = ["MAX_VERSION_LENGTH", "GatewayFacts", "parse_facts"]

#: Room for a PEP 440 version with a local part (``0.1.0.dev3+g1a2b3c4.d20261204``).
MAX_VERSION_LENGTH = 64
_VERSION = re.compile(rf"[0-9A-Za-z][0-9A-Za-z.+!_-]{{0,{MAX_VERSION_LENGTH - 1}}}")
#: Milliseconds and bundle versions, far below int64 either way.
_MAX_INT = 2**53
_INT = re.compile(r"[0-9]{1,16}")
_BUNDLE = re.compile(r"([a-z][a-z0-9_]{0,15})=([0-9]{1,16})")
_MAX_BUNDLES = 16


@dataclass(frozen=True, slots=True)
class GatewayFacts:
    """What one push reported; None where its header was absent."""

    agent_version: str | None = None
    sync_lag_ms: int | None = None
    policy_version: int | None = None
    config_version: int | None = None

    def columns(self) -> dict[str, str | int]:
        """The ``gateways`` columns to update: only what was reported."""
        reported = {"agent_version": self.agent_version, "sync_lag_ms": self.sync_lag_ms,
                    "held_policy_version": self.policy_version,
                    "held_config_version": self.config_version}
        return {column: value for column, value in reported.items() if value is not None}


def parse_facts(agent_version: str | None, sync_lag_ms: str | None,
                bundles: str | None) -> GatewayFacts:
    """The facts of the three headers; BadRequest (counted) naming the first malformed one."""
    if agent_version is not None and not _VERSION.fullmatch(agent_version):
        _refuse("X-Ponton-Agent-Version", agent_version,
                f"a version of at most {MAX_VERSION_LENGTH} letters, digits and .+!_-")
    lag = None
    if sync_lag_ms is not None:
        lag = int(sync_lag_ms) if _INT.fullmatch(sync_lag_ms) else -1
        if not 0 <= lag <= _MAX_INT:
            _refuse("X-Ponton-Sync-Lag-Ms", sync_lag_ms, "a non-negative integer below 2**53")
    held = _held(bundles) if bundles is not None else {}
    return GatewayFacts(agent_version, lag, held.get("policy"), held.get("config"))


def _held(header: str) -> dict[str, int]:
    items = header.split(",", _MAX_BUNDLES)
    held: dict[str, int] = {}
    for item in items:
        found = _BUNDLE.fullmatch(item.strip())
        kind, version = (found[1], int(found[2])) if found else ("", 0)
        if len(items) > _MAX_BUNDLES or not 1 <= version <= _MAX_INT or kind in held:
            _refuse("X-Ponton-Bundles", header,
                    f"at most {_MAX_BUNDLES} distinct kind=version pairs, comma-separated, "
                    "versions positive integers below 2**53")
        held[kind] = version
    return {kind: version for kind, version in held.items() if kind in BUNDLE_KINDS}


def _refuse(header: str, value: str, expected: str) -> None:
    problem = Problem(header, f"expected {expected}, got {value[:40]!r}")
    count_refused(problem)
    raise BadRequest(f"header {problem}; nothing of this batch was stored")
