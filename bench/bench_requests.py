"""Requests per poll cycle: the agent's planner against one request per value.

One request per configured value is what the ThingsBoard IoT Gateway does (reference
peer-thingsboard-gateway.md, modbus.md §4.2). Counts are exact; the bus time is what those
requests cost on a 9600 baud 8N1 line with a 10 ms device turnaround (modbus.md §5.1).
Run: .venv/bin/python bench/bench_requests.py
"""

from __future__ import annotations

from edge_agent.drivers.modbus.cost import serial_cost
from edge_agent.drivers.modbus.planner import ReadRequest, plan_reads
from edge_agent.drivers.modbus.timing import char_time_s, inter_frame_gap_s
from edge_agent.profiles import DeviceProfile, load_profile

BAUD = 9600
TURNAROUND_S = 0.010
#: A marina bus of 40 meters: berth outlets, feeder meters, water pulse counters, relays.
MIXED_BUS = {
    "eastron-sdm120": 24,
    "eastron-sdm630": 8,
    "schneider-iem3155": 4,
    "isma-sfar-4di": 3,
    "waveshare-relay-8ch": 1,
}


def one_per_value(profile: DeviceProfile) -> list[ReadRequest]:
    """The peer's plan: one read per point, no merging."""
    return [ReadRequest(p.kind, p.address, p.count, (p,)) for p in profile.points.values()]


def bus_time_s(requests: list[ReadRequest]) -> float:
    """Wire time, gaps and turnaround of the requests on a 9600 8N1 line."""
    total = 0.0
    for request in requests:
        data_bytes = (request.count + 7) // 8 if request.kind.is_bit else 2 * request.count
        total += (13 + data_bytes) * char_time_s(BAUD) + 2 * inter_frame_gap_s(BAUD) + TURNAROUND_S
    return total


def compare(label: str, profiles: list[DeviceProfile]) -> None:
    ours = [r for p in profiles for r in plan_reads(p.points.values(), p.limits, serial_cost(
        BAUD, min_silence_s=p.limits.min_silence_ms / 1000))]
    naive = [r for p in profiles for r in one_per_value(p)]
    values = sum(len(p.points) for p in profiles)
    print(f"{label:<26} {values:>6} {len(naive):>10} {len(ours):>7} {len(naive) / len(ours):>6.1f}x"
          f" {bus_time_s(naive):>12.2f} s {bus_time_s(ours):>9.2f} s")


def main() -> None:
    print(f"{'poll cycle':<26} {'values':>6} {'per-value':>10} {'Ponton':>7} {'ratio':>7}"
          f" {'bus per-value':>14} {'bus Ponton':>11}")
    compare("SDM630 full snapshot", [load_profile("eastron-sdm630")])
    compare("SDM120 full snapshot", [load_profile("eastron-sdm120")])
    bus = [load_profile(pid) for pid, n in MIXED_BUS.items() for _ in range(n)]
    compare(f"bus of {len(bus)} mixed meters", bus)


if __name__ == "__main__":
    main()
