"""Uplink payloads of the supported sensors, built from their vendors' byte tables.

Written independently of the agent's declarative layouts, so the simulator is a second
opinion on every layout (the reference's vendor vectors are the first). Each builder takes
values in our canonical units and returns ``(fPort, payload)``.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

__all__ = ["BUILDERS", "build_payload"]

Builder = Callable[[dict[str, float]], tuple[int, bytes]]


def _dragino_ldds75(v: dict[str, float]) -> tuple[int, bytes]:
    # fPort 2, big-endian: battery mV (14 bits), distance mm, interrupt, temperature /10, flag.
    return 2, struct.pack(">HHBhB", round(v.get("battery_voltage", 3.3) * 1000) & 0x3FFF,
                          round(v["distance"] * 1000), 0, round(v.get("temperature", 0) * 10), 1)


def _milesight_udl(v: dict[str, float]) -> tuple[int, bytes]:
    # Milesight channels, little-endian: battery %, distance mm.
    return 85, (bytes([0x01, 0x75, round(v.get("battery", 100))])
                + bytes([0x03, 0x82]) + struct.pack("<H", round(v["distance"] * 1000)))


def _milesight_air(v: dict[str, float]) -> tuple[int, bytes]:
    # AM307 runs on batteries and reports them; the AM319 is powered and has no such channel.
    frame = bytes([0x01, 0x75, round(v["battery"])]) if "battery" in v else b""
    frame += bytes([0x03, 0x67]) + struct.pack("<h", round(v.get("temperature", 20) * 10))
    frame += bytes([0x04, 0x68, round(v.get("humidity", 50) * 2)])
    frame += bytes([0x07, 0x7D]) + struct.pack("<H", round(v["co2"]))
    frame += bytes([0x09, 0x73]) + struct.pack("<H", round(v.get("pressure", 1013) * 10))
    if "pm2_5" in v:
        frame += bytes([0x0B, 0x7D]) + struct.pack("<H", round(v["pm2_5"]))
        frame += bytes([0x0C, 0x7D]) + struct.pack("<H", round(v.get("pm10", v["pm2_5"])))
    return 85, frame


def _elsys_ers_co2(v: dict[str, float]) -> tuple[int, bytes]:
    # Elsys type-value, big-endian: temperature /10, humidity %, CO2 ppm.
    return 5, (bytes([0x01]) + struct.pack(">h", round(v.get("temperature", 20) * 10))
               + bytes([0x02, round(v.get("humidity", 50))])
               + bytes([0x06]) + struct.pack(">H", round(v["co2"])))


def _bosch_tps110(v: dict[str, float]) -> tuple[int, bytes]:
    return 1, bytes([int(v["spot_occupied"]) & 1])


def _nwave_nps405(v: dict[str, float]) -> tuple[int, bytes]:
    minutes = min(89, int(v.get("previous_state_duration", 0) // 60))
    return 1, bytes([(minutes << 1) | (int(v["spot_occupied"]) & 1)])


def _milesight_em300_di(v: dict[str, float]) -> tuple[int, bytes]:
    return 85, (bytes([0x01, 0x75, round(v.get("battery", 100))])
                + bytes([0x05, 0xC8]) + struct.pack("<I", int(v["pulse_count"])))


def _milesight_ws301(v: dict[str, float]) -> tuple[int, bytes]:
    return 85, bytes([0x01, 0x75, round(v.get("battery", 100)), 0x03, 0x00,
                      int(v["door_open"]) & 1, 0x04, 0x00, int(v.get("tamper", 0)) & 1])


def _dragino_lds02(v: dict[str, float]) -> tuple[int, bytes]:
    battery = round(v.get("battery_voltage", 3.0) * 1000) & 0x3FFF
    word = battery | (0x8000 if v["door_open"] else 0)
    count = int(v.get("open_count", 0)) & 0xFFFFFF
    duration = int(v.get("last_open_duration", 0) // 60) & 0xFFFFFF
    return 10, struct.pack(">HB", word, 1) + count.to_bytes(3, "big") \
        + duration.to_bytes(3, "big") + b"\x00"


#: Profile id → payload builder.
BUILDERS: dict[str, Builder] = {
    "dragino-ldds75": _dragino_ldds75,
    "milesight-em500-udl": _milesight_udl,
    "milesight-em310-udl": _milesight_udl,
    "milesight-am307": _milesight_air,
    "milesight-am319": _milesight_air,
    "elsys-ers-co2": _elsys_ers_co2,
    "bosch-tps110": _bosch_tps110,
    "nwave-nps405": _nwave_nps405,
    "milesight-em300-di": _milesight_em300_di,
    "milesight-ws301": _milesight_ws301,
    "dragino-lds02": _dragino_lds02,
}


def build_payload(profile: str, values: dict[str, Any]) -> tuple[int, bytes]:
    """``(fPort, payload)`` of ``profile`` carrying ``values`` (canonical units)."""
    return BUILDERS[profile](values)
