"""Turning the registers or bits of one read into readings. Pure."""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence

from edge_agent.codecs.modbus_values import decode_registers
from edge_agent.drivers.modbus.planner import ReadRequest
from edge_agent.errors import CodecError
from edge_agent.profiles.models import Point
from edge_agent.records import Quality, Reading

__all__ = ["point_value", "readings_from_response"]


def point_value(point: Point, request: ReadRequest, data: Sequence[int] | Sequence[bool]) -> float:
    """The scaled value of ``point`` inside the data answered to ``request``."""
    offset = point.address - request.address
    if point.kind.is_bit:
        return 1.0 if data[offset] else 0.0
    words = [int(word) for word in data[offset : offset + point.count]]
    return float(decode_registers(words, point.type, point.word_order, byte_swap=point.byte_swap)
                 ) * point.scale


def readings_from_response(
    request: ReadRequest, data: Sequence[int] | Sequence[bool], *, device: str, ts_ms: int
) -> list[Reading]:
    """One reading per point; NaN or infinite values are kept with quality INVALID."""
    if len(data) < request.count:
        raise CodecError(
            f"{device}: asked for {request.count} values at {request.address}, got {len(data)}"
        )
    layout = request.layout
    if layout is not None:
        try:
            raw = struct.pack(f">{request.count}H", *data[:request.count])
        except struct.error as exc:
            raise CodecError(f"{device}: register values must be 0..65535 ({exc})") from exc
        return [Reading(device, point.quantity, ts_ms, value,
                        Quality.GOOD if math.isfinite(value) else Quality.INVALID)
                for point, number in zip(request.points, layout.unpack_from(raw), strict=True)
                for value in (float(number) * point.scale,)]
    readings = []
    for point in request.points:
        value = point_value(point, request, data)
        quality = Quality.GOOD if math.isfinite(value) else Quality.INVALID
        readings.append(Reading(device, point.quantity, ts_ms, value, quality))
    return readings
