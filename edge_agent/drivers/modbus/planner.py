"""Read planning: cover a device's points with the fewest requests it accepts.

Points of one register table are sorted by address and merged greedily, as Telegraf's
``max_insert`` optimisation does: a point joins the current request while the hole before it
is at most the largest hole worth reading and the request stays within the device's size limit
(and, for devices that demand it, starts on an even address with an even count). Because any
sub-range of a valid request is itself valid, the greedy walk gives the fewest requests.

The largest hole worth reading is the profile's ``max_gap_registers`` when it sets one, else it
is weighed on the line (cost.py): a hole is read when its registers cost less line time than
the request they save. On Modbus TCP that is any hole that fits in a request, so reading a
subset of a device's points never takes more requests than reading them all.

Bit tables (coils, discrete inputs) count holes in registers' worth of bits (16 per register),
so the same gap means the same number of wasted bytes on the wire.
"""

from __future__ import annotations

import itertools
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field

from edge_agent.codecs.modbus_values import struct_layout
from edge_agent.drivers.modbus.cost import RequestCost
from edge_agent.profiles.models import Limits, Point, RegisterKind

__all__ = ["ReadRequest", "max_gap_registers", "plan_reads", "split_at_holes"]

_BITS_PER_REGISTER = 16


@dataclass(frozen=True, slots=True)
class ReadRequest:
    """One Modbus read: a table, a start address, a count, and the points it serves."""

    kind: RegisterKind
    address: int
    count: int
    points: tuple[Point, ...]
    #: Decodes every point of the reply's bytes in one call, when their layouts allow it.
    layout: struct.Struct | None = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        layout = None if self.kind.is_bit else struct_layout(
            [(p.address - self.address, p.type, p.word_order, p.byte_swap)
             for p in self.points], self.count)
        object.__setattr__(self, "layout", layout)

    @property
    def has_holes(self) -> bool:
        """Whether the request reads across registers between two of its points.

        Padding added only to satisfy an even-address rule is not a hole: splitting cannot
        remove it.
        """
        ordered = sorted(self.points, key=lambda p: p.address)
        return any(after.address > before.end
                   for before, after in itertools.pairwise(ordered))


def _max_count(kind: RegisterKind, limits: Limits) -> int:
    return limits.max_bits_per_request if kind.is_bit else limits.max_registers_per_request


def max_gap_registers(limits: Limits, cost: RequestCost) -> int:
    """The profile's own gap when it sets one, else the largest hole worth reading on the line."""
    if limits.max_gap_registers is not None:
        return limits.max_gap_registers
    return cost.max_gap_registers


def _max_gap(kind: RegisterKind, gap_registers: int) -> int:
    return gap_registers * _BITS_PER_REGISTER if kind.is_bit else gap_registers


def _span(kind: RegisterKind, start: int, end: int, limits: Limits) -> tuple[int, int]:
    """Start and count of a request covering [start, end), aligned when the device wants it."""
    if limits.even_address and not kind.is_bit:
        start -= start % 2
        end += end % 2
    return start, end - start


def _requests_for_table(kind: RegisterKind, points: list[Point], limits: Limits,
                        max_gap: int) -> list[ReadRequest]:
    requests: list[ReadRequest] = []
    group: list[Point] = []
    group_end = 0
    for point in sorted(points, key=lambda p: p.address):
        if group:
            _, count = _span(kind, group[0].address, max(group_end, point.end), limits)
            if point.address - group_end <= max_gap and count <= _max_count(kind, limits):
                group.append(point)
                group_end = max(group_end, point.end)
                continue
            requests.append(_close(kind, group, group_end, limits))
        group, group_end = [point], point.end
    if group:
        requests.append(_close(kind, group, group_end, limits))
    return requests


def _close(kind: RegisterKind, group: list[Point], end: int, limits: Limits) -> ReadRequest:
    start, count = _span(kind, group[0].address, end, limits)
    return ReadRequest(kind, start, count, tuple(group))


def plan_reads(points: Iterable[Point], limits: Limits, cost: RequestCost
               ) -> list[ReadRequest]:
    """The fewest requests that read every point, none over the device's limits, reading
    across a hole only when that costs less on the line than one more request."""
    gap = max_gap_registers(limits, cost)
    by_kind: dict[RegisterKind, list[Point]] = {}
    for point in points:
        by_kind.setdefault(point.kind, []).append(point)
    requests: list[ReadRequest] = []
    for kind in sorted(by_kind):
        requests += _requests_for_table(kind, by_kind[kind], limits, _max_gap(kind, gap))
    return requests


def split_at_holes(request: ReadRequest, limits: Limits) -> list[ReadRequest]:
    """The same points read without crossing any hole.

    Used when a device refuses a merged read with "illegal data address" because a hole it
    covers is undefined on that device, although the profile allowed the merge.
    """
    return _requests_for_table(request.kind, list(request.points), limits, max_gap=0)
