"""What a rule says: the ``[[rules]]`` entries of the gateway file and of the config bundle.

One flat model per rule rather than one per kind: an installer who writes ``kind = "rate"``
and forgets ``window_s`` gets "kind 'rate' needs window_s", not a union's list of every
kind it did not match. Cross-checks that need the rest of the gateway (declared devices,
relay channels held by gates) are in :func:`rule_problem`, shared by the file and the bundle.
"""

from __future__ import annotations

import difflib
import hashlib
import math
from collections.abc import Iterable, Mapping
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from edge_agent.drivers.modbus.relay import MAX_PULSE_MS
from edge_agent.quantities import lookup_quantity, suggest_quantity
from edge_agent.schema import Strict, at_field

__all__ = [
    "Action",
    "DownlinkAction",
    "LatchAction",
    "PulseAction",
    "RuleConfig",
    "fingerprint",
    "latch_conflict",
    "rule_problem",
]

_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
_MAX_WINDOW_S = 7 * 86_400
_THRESHOLD_KINDS = ("above", "below")


class PulseAction(Strict, frozen=True, kw_only=True, tag="pulse", tag_field="type"):
    """Close a relay for ``ms``, timed by the board: a barrier's open or close input."""

    board: Annotated[str, Meta(description="A relay board: a device of the gateway file.")]
    channel: Annotated[int, Meta(ge=1, le=32)]
    ms: Annotated[int, Meta(ge=100, le=MAX_PULSE_MS)] = 700


class LatchAction(Strict, frozen=True, kw_only=True, tag="latch", tag_field="type"):
    """Hold a relay ``on`` (or off) while the alarm is raised; released when it clears."""

    board: Annotated[str, Meta(description="A relay board: a device of the gateway file.")]
    channel: Annotated[int, Meta(ge=1, le=32)]
    on: Annotated[bool, Meta(description="The relay's state while the alarm is raised.")] = True


class DownlinkAction(Strict, frozen=True, kw_only=True, tag="downlink", tag_field="type"):
    """Send bytes to a LoRaWAN device (a siren, a valve) through the LoRa source."""

    device: str
    fport: Annotated[int, Meta(ge=1, le=223)]
    payload: Annotated[str, Meta(description="Hex bytes, e.g. \"0101\".")]
    confirmed: bool = False

    def __post_init__(self) -> None:
        try:
            data = bytes.fromhex(self.payload)
        except ValueError:
            raise at_field("payload", f"payload '{self.payload}' is not hex bytes, e.g. "
                           "\"01ff\"") from None
        if not data:
            raise at_field("payload", "payload is empty; give the bytes as hex, e.g. \"01\"")

    def data(self) -> bytes:
        """The payload's bytes."""
        return bytes.fromhex(self.payload)


#: An action, told apart by its ``type``.
Action = PulseAction | LatchAction | DownlinkAction


class RuleConfig(Strict, frozen=True, kw_only=True):
    """One rule: what to watch, when to raise and clear, what to do then."""

    name: Annotated[str, Meta(pattern=_NAME, max_length=128)]
    device: Annotated[str, Meta(
        description="The watched device; the alarm events carry its name.")]
    quantity: Annotated[str, Meta(
        description="The watched quantity; a stale rule without it watches every reading of "
        "the device.")] | None = None
    kind: Literal["above", "below", "rate", "stale"]
    threshold: float | None = None
    clear_at: Annotated[float, Meta(
        description="Hysteresis: the level (or the change, for rate) that clears the alarm.")
    ] | None = None
    for_s: Annotated[float, Meta(
        ge=0, le=86_400,
        description="The condition holds this long before raising or clearing.")] = 0.0
    delta: Annotated[float, Meta(
        description="rate: the change within window_s; positive for a rise, negative for a "
        "fall.")] | None = None
    window_s: Annotated[float, Meta(gt=0, le=_MAX_WINDOW_S)] | None = None
    after_s: Annotated[float, Meta(gt=0, le=_MAX_WINDOW_S,
                                   description="stale: the silence that raises the alarm.")
                       ] | None = None
    severity: Literal["info", "warning", "critical"] = "warning"
    on_raise: list[Action] = msgspec.field(default_factory=list)
    on_clear: list[Action] = msgspec.field(default_factory=list)

    def __post_init__(self) -> None:
        for name in ("threshold", "clear_at", "delta"):
            value = getattr(self, name)
            if value is not None and not math.isfinite(value):
                raise at_field(name, f"{name} should be a finite number, not {value}")
        if self.quantity is not None and lookup_quantity(self.quantity) is None:
            close = suggest_quantity(self.quantity)
            hint = f"did you mean '{close}'?" if close else "see device_profiles/README.md"
            raise at_field("quantity",
                           f"'{self.quantity}' is not in the quantity vocabulary; {hint}")
        self._fields_of_kind()

    def _fields_of_kind(self) -> None:
        kind = self.kind
        needs = {"above": ("threshold",), "below": ("threshold",), "rate": ("delta", "window_s"),
                 "stale": ("after_s",)}[kind]
        for name in needs:
            if getattr(self, name) is None:
                raise ValueError(f"kind '{kind}' needs {name} = <number>")
        foreign = [name for name in ("threshold", "delta", "window_s", "after_s")
                   if name not in needs and getattr(self, name) is not None]
        if kind == "stale":
            foreign += [name for name in ("clear_at",) if self.clear_at is not None]
            foreign += ["for_s"] if self.for_s else []
        if foreign:
            raise ValueError(f"kind '{kind}' takes no {', '.join(foreign)}; "
                             f"it uses {', '.join(needs)}")
        if kind != "stale" and self.quantity is None:
            raise ValueError(f"kind '{kind}' needs quantity = \"<name>\" (only a stale rule "
                             "may watch a whole device)")
        if kind == "rate" and self.delta == 0:
            raise ValueError("delta must not be 0: +0.2 for a rise of 0.2, -0.2 for a fall")
        self._check_hysteresis()
        if any(isinstance(action, LatchAction) for action in self.on_clear):
            raise ValueError("on_clear takes no latch: a latch in on_raise holds while the "
                             "alarm is raised and is released when it clears")

    def _check_hysteresis(self) -> None:
        clear, level = self.clear_level(), self.threshold if self.kind != "rate" else self.delta
        if clear is None or level is None:
            return
        rising = self.kind == "above" or (self.kind == "rate" and level > 0)
        if rising and clear > level:
            raise ValueError(f"clear_at {clear:g} is above the raising level {level:g}; "
                             f"give a clear_at at or below it")
        if not rising and clear < level:
            raise ValueError(f"clear_at {clear:g} is below the raising level {level:g}; "
                             f"give a clear_at at or above it")

    def clear_level(self) -> float | None:
        """The level that clears: ``clear_at``, else the threshold, else half the rate."""
        if self.clear_at is not None:
            return self.clear_at
        if self.kind in _THRESHOLD_KINDS:
            return self.threshold
        if self.kind == "rate" and self.delta is not None:
            return self.delta / 2
        return None

    def boards(self) -> set[str]:
        """The relay boards its actions use."""
        return {action.board for action in [*self.on_raise, *self.on_clear]
                if not isinstance(action, DownlinkAction)}


def fingerprint(rule: RuleConfig) -> str:
    """A short digest of the rule's definition: a saved state applies only to the same rule."""
    return hashlib.sha256(msgspec.json.encode(rule)).hexdigest()[:16]


def rule_problem(rule: RuleConfig, devices: Iterable[str],
                 reserved: Mapping[tuple[str, int], str]) -> str | None:
    """Why ``rule`` cannot run on this gateway, or None.

    ``devices`` are the names readings can come from (``GatewayConfig.device_names()``);
    ``reserved`` maps the relay channels of gates and pedestals to their name: a rule may
    pulse them (open a gate for evacuation) but not latch them.
    """
    names = set(devices)
    checks = [("device", rule.device)]
    actions = [*rule.on_raise, *rule.on_clear]
    for action in actions:
        checks.append(("downlink device", action.device) if isinstance(action, DownlinkAction)
                      else ("board", action.board))
    for what, name in checks:
        if name not in names:
            close = difflib.get_close_matches(name, sorted(names), n=1)
            hint = (f"did you mean '{close[0]}'?" if close
                    else f"declared: {', '.join(sorted(names)) or 'none'}")
            return f"rule {rule.name}: {what} '{name}' is not declared; {hint}"
    for action in actions:
        if isinstance(action, LatchAction) and (action.board, action.channel) in reserved:
            owner = reserved[action.board, action.channel]
            return (f"rule {rule.name}: channel {action.channel} of {action.board} belongs to "
                    f"{owner}; latch another channel (a pulse may share it)")
    return None


def latch_conflict(rules: Iterable[RuleConfig]) -> str | None:
    """Two rules latching one relay to opposite states, or None: neither could hold it."""
    held: dict[tuple[str, int], tuple[bool, str]] = {}
    for rule in rules:
        for action in rule.on_raise:
            if not isinstance(action, LatchAction):
                continue
            on, other = held.setdefault((action.board, action.channel), (action.on, rule.name))
            if on != action.on:
                return (f"rules {other} and {rule.name} latch channel {action.channel} of "
                        f"{action.board} to opposite states; use one state or another channel")
    return None
