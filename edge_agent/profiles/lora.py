"""The model of a LoRaWAN sensor profile: payload layouts per fPort, or an object map.

A LoRa profile lives beside the Modbus and reader profiles and is told apart by
``category: lora_sensor``. Its layouts compile once, when the profile loads, so the
ChirpStack driver's per-uplink cost is the codec's and nothing else.
"""

from __future__ import annotations

from functools import cached_property
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from edge_agent.codecs.lora_payload import DecodedValue, ObjectMapping, PayloadDecoder
from edge_agent.errors import CodecError
from edge_agent.profiles.lora_layouts import (
    LayoutSpec,
    ObjectFieldSpec,
    Problem,
    name_layout_entries,
    named_entries,
)
from edge_agent.schema import Invalid, Strict
from edge_agent.schema import Problem as Located

__all__ = ["LORA_CATEGORY", "RADIO_QUANTITIES", "BatteryLow", "LoraProfile",
           "prepare_lora_profile"]

#: The ``category`` that makes a profile a LoRaWAN sensor.
LORA_CATEGORY = "lora_sensor"


#: What every sensor reports besides its profile's values: the uplink's radio (RSSI, SNR) and
#: ChirpStack's device-status answers (battery, link margin).
RADIO_QUANTITIES = ("rssi", "snr", "battery", "link_margin")

class BatteryLow(Strict, frozen=True, kw_only=True):
    """The battery quantity the device reports and the level at or below which it is low."""

    quantity: Literal["battery", "battery_voltage"]
    level: Annotated[float, Meta(gt=0, description="In % for battery, in V for "
                                                   "battery_voltage.")]


class LoraProfile(Strict, frozen=True, kw_only=True, dict=True):
    """A LoRaWAN sensor model: identity, expected interval, battery level, payload layouts."""

    # A file's data goes through prepare_lora_profile first (this docstring is the JSON
    # Schema's).

    id: Annotated[str, Meta(pattern=r"^[a-z0-9][a-z0-9-]*$")]
    manufacturer: str
    model: str
    category: Literal["lora_sensor"]
    description: str = ""
    uplink_interval_s: Annotated[int, Meta(
        ge=10, le=7 * 86400,
        description="Expected time between uplinks; silent for 2.5 times this is offline.")]
    battery_low: Annotated[BatteryLow, Meta(
        description="Battery quantity and low level; null for a device that reports none.")
    ] | None
    ports: Annotated[dict[int, LayoutSpec], Meta(description="fPort → payload layout.")
                     ] = msgspec.field(default_factory=dict)
    object_map: Annotated[dict[str, ObjectFieldSpec], Meta(
        description="Quantity → path in ChirpStack's decoded object, for fPorts with no "
        "layout.")] = msgspec.field(default_factory=dict, name="object")

    def __post_init__(self) -> None:
        """Profile-wide rules, each reported where it applies; then compile every layout once,
        here, rather than on each uplink."""
        problems: list[Problem] = []
        for port, layout in self.ports.items():
            if not 1 <= port <= 223:
                problems.append(((port,), f"fPort {port} is not an application port; use 1 "
                                          "to 223"))
            problems += [((port, *where), message) for where, message in layout.problems()]
        errors = [_error(("ports", *where), message) for where, message in problems]
        if not self.ports and not self.object_map:
            errors.append(_error(("ports",), "a LoRa profile needs ports (byte layouts per "
                                             "fPort) or object (fields of ChirpStack's decoded "
                                             "object), or both"))
        low = self.battery_low
        if low is not None and low.quantity not in self.quantities():
            errors.append(_error(("battery_low", "quantity"),
                                 f"battery_low watches {low.quantity}, which no layout "
                                 "produces; map it or set battery_low: null"))
        if errors:
            raise Invalid(errors)
        _ = self._compiled  # compiled now, at load, rather than on the first uplink

    @cached_property
    def _compiled(self) -> tuple[dict[int, PayloadDecoder], ObjectMapping | None]:
        """The layouts per fPort and the object map, compiled (a plain attribute once read)."""
        decoders = {port: layout.compile() for port, layout in self.ports.items()}
        mapping = (ObjectMapping(tuple(f.compile() for f in self.object_map.values()))
                   if self.object_map else None)
        return decoders, mapping

    def decode(self, fport: int, data: bytes, decoded_object: dict[str, Any] | None = None
               ) -> list[DecodedValue]:
        """The values of one uplink, each in its quantity's canonical unit.

        The bytes are decoded when the profile has a layout for ``fport``: those layouts are
        tested against the vendor's vectors, while the shape of ``object`` depends on whatever
        JS codec the ChirpStack device profile runs. Otherwise ``decoded_object`` (ChirpStack's
        ``object``) goes through the profile's object map. CodecError when neither applies or
        the payload is malformed.
        """
        decoders, mapping = self._compiled
        try:
            decoder = decoders.get(fport)
            if decoder is not None:
                return decoder.decode(data)
            if mapping is not None and decoded_object is not None:
                return mapping.decode(decoded_object)
        except CodecError as exc:
            raise CodecError(f"{self.id} fPort {fport}: {exc}") from None
        if mapping is not None:
            raise CodecError(f"{self.id} fPort {fport}: no layout for this fPort and no "
                             "decoded object from ChirpStack; set a codec in its device profile")
        ports = ", ".join(str(port) for port in sorted(decoders))
        raise CodecError(f"{self.id}: no layout for fPort {fport} (it decodes fPorts {ports})")

    def quantities(self) -> list[str]:
        """Every quantity the profile can produce, each once, in declaration order."""
        names = [name for layout in self.ports.values() for name in layout.quantities()]
        return list(dict.fromkeys([*names, *self.object_map]))


def prepare_lora_profile(data: Any) -> Any:
    """A profile file's data with every layout field, channel value and object entry named
    by its key (data that is not a profile's shape is left for validation to explain)."""
    data = named_entries(data, "object")
    if isinstance(data, dict) and isinstance(data.get("ports"), dict):
        data = {**data, "ports": {port: name_layout_entries(layout)
                                  for port, layout in data["ports"].items()}}
    return data


def _error(location: tuple[str | int, ...], message: str) -> Located:
    return Located(location, "value", message)
