"""The models of LoRa payload layouts: fields, channels, object paths, per fPort.

Each model checks what the codec cannot (quantity and unit, a bit field inside its type, a
boolean that can only be 0 or 1) and compiles itself into the pure codec of
``edge_agent.codecs`` once, at load.
"""

from __future__ import annotations

import itertools
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from edge_agent.codecs.lora_channels import Channel, ChannelFormat, ChannelLayout
from edge_agent.codecs.lora_payload import (
    MAX_PAYLOAD,
    ByteOrder,
    Condition,
    FieldCodec,
    FixedLayout,
    LoraType,
    ObjectField,
    PayloadDecoder,
    Segment,
    type_size,
)
from edge_agent.profiles.models import check_quantity_unit
from edge_agent.quantities import lookup_quantity
from edge_agent.schema import Strict

__all__ = [
    "ChannelSpec",
    "ConditionSpec",
    "FieldSpec",
    "LayoutSpec",
    "ObjectFieldSpec",
    "Problem",
    "SegmentSpec",
    "name_layout_entries",
    "named_entries",
]


#: Where a problem is, relative to the model that reports it, and what to do about it.
Problem = tuple[tuple[str | int, ...], str]


def named_entries(data: Any, key: str) -> Any:
    """``data`` with each entry of the mapping ``data[key]`` given its key as its quantity."""
    if not isinstance(data, dict) or not isinstance(data.get(key), dict):
        return data
    return {**data, key: {name: {**spec, "quantity": name} if isinstance(spec, dict) else spec
                          for name, spec in data[key].items()}}


def name_layout_entries(layout: Any) -> Any:
    """A layout's data with its fields, and its channels' values, named by their keys."""
    layout = named_entries(layout, "fields")
    if isinstance(layout, dict) and isinstance(layout.get("channels"), list):
        layout = {**layout, "channels": [named_entries(channel, "values")
                                         for channel in layout["channels"]]}
    return layout


class SegmentSpec(Strict, frozen=True, kw_only=True):
    """Raw values ``first..last`` mean ``value + (raw - first) * step`` (before scale)."""

    first: int
    last: int
    value: float
    step: float = 1.0


class ConditionSpec(Strict, frozen=True, kw_only=True):
    """Read the field only when the byte at ``offset`` masked is one of ``values``."""

    offset: Annotated[int, Meta(ge=0, lt=MAX_PAYLOAD)]
    mask: Annotated[int, Meta(ge=1, le=0xFF)] = 0xFF
    values: Annotated[list[int], Meta(min_length=1)]


class FieldSpec(Strict, frozen=True, kw_only=True):
    """One value in the payload: where it is, its type, and how raw becomes the quantity."""

    quantity: Annotated[str, Meta(description="Filled from the key: a vocabulary name.")] = ""
    offset: Annotated[int, Meta(ge=0, lt=MAX_PAYLOAD,
                                description="First byte (channel data: 0).")]
    type: LoraType
    byte_order: Annotated[ByteOrder, Meta(
        description="Overrides the layout's (fixed) or format's byte order.")] | None = None
    mask: Annotated[int, Meta(ge=1, le=0xFFFFFFFF,
                              description="Bit field: raw = (raw & mask) >> shift.")] | None = None
    shift: Annotated[int, Meta(ge=0, le=31)] = 0
    valid_min: Annotated[int, Meta(description="Smaller raw values are no reading.")
                         ] | None = None
    valid_max: Annotated[int, Meta(description="Larger raw values are no reading.")
                         ] | None = None
    enum: Annotated[dict[int, float], Meta(
        description="Raw value → number; any other raw value is an error.")] | None = None
    segments: Annotated[list[SegmentSpec], Meta(
        description="Piecewise linear raw → number; uncovered raw: no reading.")] | None = None
    scale: Annotated[float, Meta(description="value = number × scale + add.")] = 1.0
    add: float = 0.0
    unit: Annotated[str, Meta(description="Canonical unit of the quantity, after scaling.")]
    when: ConditionSpec | None = None
    optional: Annotated[bool, Meta(
        description="Read only when the payload is long enough.")] = False
    description: str = ""

    @property
    def end(self) -> int:
        """First byte after the field."""
        return self.offset + type_size(self.type)

    def __post_init__(self) -> None:
        check_quantity_unit(self.quantity, self.unit)
        bits = 8 * type_size(self.type)
        if self.end > MAX_PAYLOAD:
            raise ValueError(f"a {self.type} at offset {self.offset} ends past the largest "
                             f"LoRaWAN payload ({MAX_PAYLOAD} bytes)")
        bit_field = (self.mask, self.enum, self.segments, self.valid_min, self.valid_max)
        if self.type is LoraType.FLOAT32 and (self.shift or bit_field != (None,) * 5):
            raise ValueError("a float32 takes no mask, shift, enum, segments or valid range; "
                             "use an integer type for bit fields and codes")
        if self.mask is not None and (self.mask >> bits or self.shift >= bits):
            raise ValueError(f"mask 0x{self.mask:X} or shift {self.shift} does not fit in a "
                             f"{bits}-bit {self.type}")
        if self.enum is not None and self.segments is not None:
            raise ValueError("give enum or segments, not both")
        self._check_segments()
        self._check_boolean()

    def _check_segments(self) -> None:
        ordered = sorted(self.segments or [], key=lambda s: s.first)
        for segment in ordered:
            if segment.first > segment.last:
                raise ValueError(f"segment {segment.first}..{segment.last} is empty; "
                                 "first must be at most last")
        for before, after in itertools.pairwise(ordered):
            if after.first <= before.last:
                raise ValueError(f"segments {before.first}..{before.last} and "
                                 f"{after.first}..{after.last} overlap")

    def _check_boolean(self) -> None:
        spec = lookup_quantity(self.quantity)
        if spec is None or spec.unit != "bool":
            return
        one_bit = self.mask is not None and self.mask >> self.shift == 1
        mapped = self.enum is not None and set(self.enum.values()) <= {0, 1}
        if not (one_bit or mapped) or self.scale != 1 or self.add != 0:
            raise ValueError(f"{self.quantity} is 0 or 1: read one bit (mask: 0x80, shift: 7 "
                             "for bit 7) or map the raw values with enum: {0: 0, 1: 1}, "
                             "without scale or add")

    def compile(self, order: ByteOrder) -> FieldCodec:
        """The codec of this field, in ``order`` unless the field sets its own."""
        when = self.when
        return FieldCodec(
            self.quantity, self.offset, self.type, self.byte_order or order,
            mask=self.mask, shift=self.shift, scale=self.scale, add=self.add,
            valid=(self.valid_min, self.valid_max), enum_map=self.enum,
            segments=tuple(Segment(s.first, s.last, s.value, s.step)
                           for s in sorted(self.segments or [], key=lambda s: s.first)),
            when=None if when is None else Condition(when.offset, when.mask,
                                                     frozenset(when.values)),
            optional=self.optional,
        )


class ChannelSpec(Strict, frozen=True, kw_only=True):
    """One record kind of a channel payload and the values in its data."""

    channel: Annotated[int, Meta(ge=0, le=0xFF, description="Milesight channel id; not for "
                                                            "Elsys.")] | None = None
    type: Annotated[int, Meta(ge=0, le=0xFF, description="Milesight channel type, or Elsys "
                                                         "type.")]
    length: Annotated[int, Meta(ge=0, lt=MAX_PAYLOAD, description="Bytes of data after the "
                                                                  "key.")]
    description: str = ""
    values: Annotated[dict[str, FieldSpec], Meta(
        description="Quantity → field, offsets from the start of the data.")
    ] = msgspec.field(default_factory=dict)

    def problems(self) -> list[Problem]:
        """Values that end past the record's data."""
        return [(("values", field.quantity, "offset"),
                 f"{field.quantity} ends at byte {field.end} of the data, past the record's "
                 f"length {self.length}; check offset and length")
                for field in self.values.values() if field.end > self.length]

    def key(self, channel_format: ChannelFormat) -> int:
        """The record key as the codec sees it."""
        if channel_format is ChannelFormat.MILESIGHT:
            return (self.channel or 0) << 8 | self.type
        return self.type


class LayoutSpec(Strict, frozen=True, kw_only=True):
    """How one fPort's payload is laid out: fields at fixed offsets, or channel records."""

    layout: Annotated[Literal["fixed", "milesight", "elsys"], Meta(
        description="fixed: fields at offsets; milesight or elsys: channel records.")]
    description: str = ""
    byte_order: Annotated[ByteOrder, Meta(
        description="fixed: the fields' byte order, big when unset (channel formats have "
        "their own: little for milesight, big for elsys).")] | None = None
    min_length: Annotated[int, Meta(
        ge=0, le=MAX_PAYLOAD,
        description="fixed: shorter payloads are truncated; at least the end of every "
        "required field.")] | None = None
    fields: Annotated[dict[str, FieldSpec], Meta(
        description="fixed: quantity → field; none for a port with nothing to keep.")
    ] = msgspec.field(default_factory=dict)
    channels: Annotated[list[ChannelSpec], Meta(
        description="milesight or elsys: the record kinds.")] = msgspec.field(default_factory=list)

    def problems(self) -> list[Problem]:
        """What is wrong with this layout as a whole, each where it is (empty when fine)."""
        if self.layout == "fixed":
            return self._fixed_problems()
        return self._channel_problems(ChannelFormat(self.layout))

    def _fixed_problems(self) -> list[Problem]:
        if self.channels:
            return [(("channels",), "a fixed layout has fields, not channels; set layout: "
                                    "milesight or elsys for channel records")]
        needed = max((f.end for f in self.fields.values() if not f.optional), default=0)
        if self.min_length is not None and self.min_length < needed:
            return [(("min_length",), f"min_length {self.min_length} is shorter than the "
                                      f"required fields, which end at byte {needed}; set "
                                      f"min_length: {needed} or mark the later fields "
                                      "optional: true")]
        return []

    def _channel_problems(self, channel_format: ChannelFormat) -> list[Problem]:
        given = {"fields": bool(self.fields), "min_length": self.min_length is not None,
                 "byte_order": self.byte_order is not None}
        misplaced = sorted(name for name, set_here in given.items() if set_here)
        problems: list[Problem] = [
            ((name,), f"{name} is for fixed layouts only; a {self.layout} layout lists "
                      "channels") for name in misplaced]
        if not self.channels:
            problems.append((("layout",), f"a {self.layout} layout needs channels"))
        milesight = channel_format is ChannelFormat.MILESIGHT
        seen: set[int] = set()
        for index, channel in enumerate(self.channels):
            where: tuple[str | int, ...] = ("channels", index)
            if milesight and channel.channel is None:
                problems.append((where, "a milesight record needs channel: (the id before "
                                        f"type 0x{channel.type:02X})"))
            if not milesight and channel.channel is not None:
                problems.append(((*where, "channel"), "elsys records have a type only; "
                                                      "remove channel:"))
            key = channel.key(channel_format)
            if key in seen:
                problems.append(((*where, "type"), f"record 0x{key:X} is declared twice; "
                                                   "keep one"))
            seen.add(key)
            problems += [((*where, *place), message) for place, message in channel.problems()]
        return problems

    def compile(self) -> PayloadDecoder:
        """The compiled layout."""
        if self.layout == "fixed":
            order = self.byte_order or ByteOrder.BIG
            return FixedLayout(tuple(f.compile(order) for f in self.fields.values()),
                               self.min_length or 0)
        channel_format = ChannelFormat(self.layout)
        order = channel_format.byte_order
        return ChannelLayout(channel_format, (
            Channel(c.key(channel_format), c.length,
                    tuple(f.compile(order) for f in c.values.values()))
            for c in self.channels))

    def quantities(self) -> list[str]:
        """The quantities this layout can produce."""
        return [*self.fields, *(name for channel in self.channels for name in channel.values)]


class ObjectFieldSpec(Strict, frozen=True, kw_only=True):
    """One value taken from ChirpStack's decoded ``object``."""

    quantity: Annotated[str, Meta(description="Filled from the key: a vocabulary name.")] = ""
    path: Annotated[str, Meta(min_length=1,
                              description="Dotted path in the object: air.temperature.")]
    enum: Annotated[dict[str, float], Meta(
        description="Text (or true/false) → number, for decoders that send words.")
    ] | None = None
    scale: float = 1.0
    add: float = 0.0
    unit: str
    description: str = ""

    def __post_init__(self) -> None:
        check_quantity_unit(self.quantity, self.unit)
        if any(not part for part in self.path.split(".")):
            raise ValueError(f"path '{self.path}' has an empty part; write a.b.c")

    def compile(self) -> ObjectField:
        """The codec of this entry."""
        return ObjectField(self.quantity, tuple(self.path.split(".")), self.scale, self.add,
                           self.enum)
