"""A relay board (Waveshare Modbus RTU Relay and kin) as an actuator on a shared Modbus bus.

Every command and read goes through the bus's scheduler (:meth:`ModbusBus.execute`), so on
an RS-485 line shared with meters it runs before the next poll request and never collides
with one. Barrier pulses use the board's own timer ("flash on"): the board switches the
relay off by itself, so a gateway crash mid-pulse cannot leave a barrier contact closed.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable

from edge_agent.drivers.modbus.bus import ModbusBus
from edge_agent.errors import ConfigError, DeviceError, DeviceException
from edge_agent.profiles import RegisterKind

__all__ = ["ALL_RELAYS", "MAX_PULSE_MS", "RelayBoard"]

log = logging.getLogger("edge_agent.relay")

#: The coil that switches every relay of a Waveshare board at once.
ALL_RELAYS = 0x00FF
_PULSE_UNIT_MS = 100
#: Longest pulse the board can time: 0x7FFF units of 100 ms (about 54.6 minutes).
MAX_PULSE_MS = 0x7FFF * _PULSE_UNIT_MS


class RelayBoard:
    """The relays and digital inputs of one board (unit id ``unit``) on ``bus``.

    Channels are numbered from 1, as printed on the board. The bus must be running
    (:meth:`ModbusBus.run`) for commands to reach the line.
    """

    def __init__(self, bus: ModbusBus, unit: int, *, name: str, channels: int = 8) -> None:
        if not 1 <= unit <= 247:
            raise ConfigError(f"relay board {name}: unit id must be 1..247, got {unit}")
        if not 1 <= channels <= 255:
            raise ConfigError(f"relay board {name}: channels must be 1..255, got {channels}")
        self.bus = bus
        self.unit = unit
        self.name = name
        self.channels = channels

    def __repr__(self) -> str:
        return f"RelayBoard({self.name!r}, unit={self.unit}, bus={self.bus.name!r})"

    async def pulse(self, channel: int, duration_ms: int) -> int:
        """Close relay ``channel`` for ``duration_ms``, timed by the board; the ms commanded.

        The board counts in 100 ms units, so the duration is rounded up (250 ms becomes
        300 ms): a barrier contact held a little longer is safe, a shorter one may be missed.
        ValueError, before anything is sent, for a bad channel or a duration outside
        1..MAX_PULSE_MS.
        """
        self._check_channel(channel)
        if not 1 <= duration_ms <= MAX_PULSE_MS:
            raise ValueError(f"{self.name}: a pulse lasts 1..{MAX_PULSE_MS} ms "
                             f"(the board counts 0x7FFF units of 100 ms), got {duration_ms}")
        units = math.ceil(duration_ms / _PULSE_UNIT_MS)
        link = self.bus.link
        await self._run(lambda: link.pulse_coil(channel - 1, units, self.unit))
        log.info("%s: relay %d pulsed %d ms", self.name, channel, units * _PULSE_UNIT_MS)
        return units * _PULSE_UNIT_MS

    async def set(self, channel: int, on: bool) -> None:
        """Switch relay ``channel`` on or off until told otherwise (plain FC05).

        On a Waveshare board this also cancels a pulse running on that channel.
        """
        self._check_channel(channel)
        link = self.bus.link
        await self._run(lambda: link.write_coil(channel - 1, on, self.unit))
        log.info("%s: relay %d %s", self.name, channel, "on" if on else "off")

    async def all_off(self) -> None:
        """Switch every relay off (FC05 to 0x00FF): the safe state to start from.

        DeviceError when the board does not take it, so the caller can log and retry.
        """
        link = self.bus.link
        await self._run(lambda: link.write_coil(ALL_RELAYS, False, self.unit))
        log.info("%s: all relays off", self.name)

    async def read_inputs(self, count: int = 8) -> list[bool]:
        """The first ``count`` digital inputs (FC02): loop detectors, door or barrier limits."""
        return await self._read_bits(RegisterKind.DISCRETE_INPUT, count)

    async def read_relays(self, count: int = 8) -> list[bool]:
        """The first ``count`` relay states (FC01), relay 1 first."""
        return await self._read_bits(RegisterKind.COIL, count)

    async def _read_bits(self, kind: RegisterKind, count: int) -> list[bool]:
        if not 1 <= count <= self.channels:
            raise ValueError(f"{self.name}: count must be 1..{self.channels}, got {count}")
        link = self.bus.link
        bits: list[bool] = []

        async def read() -> None:
            bits.extend(bool(bit) for bit in await link.read(kind, 0, count, self.unit))

        await self._run(read)
        return bits

    def _check_channel(self, channel: int) -> None:
        if not 1 <= channel <= self.channels:
            raise ValueError(f"{self.name}: channel must be 1..{self.channels}, got {channel}")

    async def _run(self, call: Callable[[], Awaitable[None]]) -> None:
        """Run ``call`` on the bus; errors name this board, as poll errors name their meter."""
        try:
            await self.bus.execute(call)
        except DeviceException as exc:
            raise DeviceException(exc.reason, code=exc.code, device=self.name,
                                  bus=self.bus.name) from exc
        except DeviceError as exc:
            raise type(exc)(exc.reason, device=self.name, bus=self.bus.name) from exc
