"""Declarative LoRa decoding against hand-written decoders for the same devices.

For each device, one payload is decoded many times by the shipped profile (``LoraProfile.decode``:
the layout compiled at load, fPort lookup, error context) and by a decoder written by hand for
that device in this file, the way a vendor's decoder is written: struct calls and an if/elif
chain over channels. Both return the same list of DecodedValue (checked before timing), so the
gap is the price of the declarative layout alone. Figures are µs per payload, median of the
runs; the goal is declarative ≤ 3× hand-written.

Run: .venv/bin/python bench/bench_lora_decode.py [--runs 7] [--payloads 20000]
"""

from __future__ import annotations

import argparse
import statistics
import struct
import time
from collections.abc import Callable
from functools import partial

from edge_agent.codecs.lora_payload import DecodedValue
from edge_agent.errors import CodecError
from edge_agent.profiles import load_lora_profile

Decoder = Callable[[bytes], list[DecodedValue]]

_U16_BE = struct.Struct(">H").unpack_from
_U16_LE = struct.Struct("<H").unpack_from
_I16_LE = struct.Struct("<h").unpack_from


def ldds75_by_hand(data: bytes) -> list[DecodedValue]:
    """Dragino LDDS75 fPort 2, written directly from the byte table."""
    if len(data) < 8:
        raise CodecError(f"payload truncated at byte {len(data)}")
    out = [DecodedValue("battery_voltage", (_U16_BE(data, 0)[0] & 0x3FFF) * 0.001)]
    distance = _U16_BE(data, 2)[0]
    if distance >= 20:
        out.append(DecodedValue("distance", distance * 0.001))
    return out


def am319_by_hand(data: bytes) -> list[DecodedValue]:
    """Milesight AM319 fPort 85, a channel loop with one branch per channel."""
    out: list[DecodedValue] = []
    i, size = 0, len(data)
    while i + 2 <= size:
        channel, kind = data[i], data[i + 1]
        i += 2
        if channel == 0x03 and kind == 0x67:
            out.append(DecodedValue("temperature", _I16_LE(data, i)[0] * 0.1))
            i += 2
        elif channel == 0x04 and kind == 0x68:
            out.append(DecodedValue("humidity", data[i] * 0.5))
            i += 1
        elif channel == 0x05 and kind == 0x00:
            out.append(DecodedValue("motion_detected", float(data[i])))
            i += 1
        elif channel == 0x06 and kind == 0xCB:
            out.append(DecodedValue("light_level", float(data[i])))
            i += 1
        elif channel == 0x07 and kind == 0x7D:
            out.append(DecodedValue("co2", float(_U16_LE(data, i)[0])))
            i += 2
        elif channel == 0x08 and kind == 0x7D:
            out.append(DecodedValue("tvoc_index", _U16_LE(data, i)[0] * 0.01))
            i += 2
        elif channel == 0x09 and kind == 0x73:
            out.append(DecodedValue("pressure", _U16_LE(data, i)[0] * 0.1))
            i += 2
        elif channel == 0x0A and kind == 0x7D:
            out.append(DecodedValue("hcho", _U16_LE(data, i)[0] * 0.01))
            i += 2
        elif channel == 0x0B and kind == 0x7D:
            out.append(DecodedValue("pm2_5", float(_U16_LE(data, i)[0])))
            i += 2
        elif channel == 0x0C and kind == 0x7D:
            out.append(DecodedValue("pm10", float(_U16_LE(data, i)[0])))
            i += 2
        else:
            raise CodecError(f"unknown channel 0x{channel:02X} at byte {i - 2}")
    return out


def nwave_by_hand(data: bytes) -> list[DecodedValue]:
    """Nwave NPS405 fPort 1: occupancy bit and the compressed previous-state duration."""
    if not data:
        raise CodecError("payload truncated at byte 0")
    x = data[0] >> 1
    out = [DecodedValue("spot_occupied", float(data[0] & 1))]
    if x < 90:
        out.append(DecodedValue("previous_state_duration", x * 60.0))
    elif x < 120:
        out.append(DecodedValue("previous_state_duration", (90 + (x - 90) * 5) * 60.0))
    elif x < 127:
        out.append(DecodedValue("previous_state_duration", (240 + (x - 120) * 60) * 60.0))
    return out


CASES: list[tuple[str, str, int, str, Decoder]] = [
    ("Dragino LDDS75 (8 B, fixed)", "dragino-ldds75", 2, "0D0A07E900000001", ldds75_by_hand),
    ("Milesight AM319 full frame (37 B)", "milesight-am319", 85,
     "0367EE0004687C05000106CB02077DA803087D2500097366270A7D07000B7D20000C7D3000",
     am319_by_hand),
    ("Nwave NPS405 status (1 B, segments)", "nwave-nps405", 1, "D1", nwave_by_hand),
]


def per_payload_us(decode: Decoder, payload: bytes, count: int) -> float:
    clock = time.perf_counter
    start = clock()
    for _ in range(count):
        decode(payload)
    return (clock() - start) / count * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--payloads", type=int, default=20000)
    args = parser.parse_args()
    print(f"{'payload':<38} {'declarative':>12} {'by hand':>10} {'ratio':>7}")
    for label, profile_id, fport, hex_payload, by_hand in CASES:
        payload = bytes.fromhex(hex_payload)
        declarative: Decoder = partial(load_lora_profile(profile_id).decode, fport)
        assert [(v.quantity, round(v.value, 9)) for v in declarative(payload)] == [
            (v.quantity, round(v.value, 9)) for v in by_hand(payload)], label
        ours, theirs = [], []
        for _ in range(args.runs):
            ours.append(per_payload_us(declarative, payload, args.payloads))
            theirs.append(per_payload_us(by_hand, payload, args.payloads))
        ours_us, theirs_us = statistics.median(ours), statistics.median(theirs)
        print(f"{label:<38} {ours_us:>9.2f} µs {theirs_us:>7.2f} µs {ours_us / theirs_us:>6.2f}x")


if __name__ == "__main__":
    main()
