"""What the rule engine asks for: alarm transitions and the actions that go with them. Pure.

The engine decides, the executor acts; these records are the contract between the two, and
what ``edge-agent rules test`` prints in a dry run.
"""

from __future__ import annotations

from dataclasses import dataclass

from edge_agent.records import Event

__all__ = ["Downlink", "Intent", "RelayPulse", "RelaySet", "Transition", "describe"]


@dataclass(frozen=True, slots=True)
class RelayPulse:
    """Close relay ``channel`` of ``board`` for ``ms``, timed by the board."""

    rule: str
    board: str
    channel: int
    ms: int


@dataclass(frozen=True, slots=True)
class RelaySet:
    """Switch relay ``channel`` of ``board`` on or off until told otherwise (a latch)."""

    rule: str
    board: str
    channel: int
    on: bool


@dataclass(frozen=True, slots=True)
class Downlink:
    """Send ``data`` on ``fport`` to the LoRaWAN device ``device``."""

    rule: str
    device: str
    fport: int
    data: bytes
    confirmed: bool


Intent = RelayPulse | RelaySet | Downlink


@dataclass(frozen=True, slots=True)
class Transition:
    """An alarm raised or cleared (``event``) and the actions it calls for, in order."""

    event: Event
    intents: tuple[Intent, ...] = ()


def describe(intent: Intent) -> str:
    """One short line for logs and the dry run: ``pulse relays-a/4 700 ms``."""
    match intent:
        case RelayPulse(board=board, channel=channel, ms=ms):
            return f"pulse {board}/{channel} {ms} ms"
        case RelaySet(board=board, channel=channel, on=on):
            return f"set {board}/{channel} {'on' if on else 'off'}"
        case Downlink(device=device, fport=fport, data=data, confirmed=confirmed):
            return (f"downlink {device} fport {fport} {data.hex()}"
                    + (" confirmed" if confirmed else ""))
