"""What a gateway's configuration needs, imported only when it is needed.

A gateway runs for months on a Raspberry Pi with a few hundred MiB of memory, and every
module imported stays resident: the hub client (h11, ssl) only pays for itself once the
gateway is provisioned, the access modules only with readers, gates or pedestals, the TIC
line only with ``[[tic]]``, the ChirpStack source only with ``[[lora]]``. The runtime names
these through the stand-ins below, which import their module at the first call, so a
Modbus-only gateway never loads what it does not use. ``Features`` says which modules a
configuration brings in: tests/test_lean_agent.py and bench/bench_imports.py check it.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from edge_agent.config import GatewayConfig

__all__ = [
    "AccessController",
    "AccessEngine",
    "BundlePuller",
    "Features",
    "HubClient",
    "LoraSource",
    "SyncLoop",
    "TicLine",
    "build_readers",
    "declared_devices",
    "serve_control",
]

_ACCESS = ("edge_agent.access.control", "edge_agent.access.controller",
           "edge_agent.access.engine", "edge_agent.access.readers")
_SYNC = ("edge_agent.sync.client", "edge_agent.sync.loop", "edge_agent.sync.pull")
_TIC = ("edge_agent.drivers.tic",)
_LORA = ("edge_agent.drivers.lora.source",)


@dataclass(frozen=True, slots=True)
class Features:
    """The optional parts of the agent one gateway uses."""

    provisioned: bool = False
    access: bool = False
    tic: bool = False
    lora: bool = False

    @classmethod
    def of(cls, config: GatewayConfig, *, provisioned: bool) -> Features:
        """The parts ``config`` uses; ``provisioned`` when an identity is there to sync."""
        return cls(provisioned=provisioned and config.sync.enabled,
                   access=bool(config.readers or config.gates or config.pedestals),
                   tic=bool(config.tic), lora=bool(config.lora))

    def modules(self) -> list[str]:
        """The modules these parts import beyond ``edge_agent.runtime``."""
        wanted = [(self.provisioned, _SYNC), (self.access, _ACCESS), (self.tic, _TIC),
                  (self.lora, _LORA)]
        return [module for used, modules in wanted if used for module in modules]


class _Deferred:
    """A callable of ``module`` imported at its first call; the name then costs nothing."""

    __slots__ = ("_module", "_name", "_target")

    def __init__(self, module: str, name: str) -> None:
        self._module = module
        self._name = name
        self._target: Any = None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self._target is None:
            self._target = getattr(importlib.import_module(self._module), self._name)
        return self._target(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<{self._module}.{self._name}, imported at first use>"


AccessController = _Deferred("edge_agent.access.controller", "AccessController")
AccessEngine = _Deferred("edge_agent.access.engine", "AccessEngine")
build_readers = _Deferred("edge_agent.access.readers", "build_readers")
serve_control = _Deferred("edge_agent.access.control", "serve_control")
HubClient = _Deferred("edge_agent.sync.client", "HubClient")
SyncLoop = _Deferred("edge_agent.sync.loop", "SyncLoop")
declared_devices = _Deferred("edge_agent.sync.loop", "declared_devices")
BundlePuller = _Deferred("edge_agent.sync.pull", "BundlePuller")
TicLine = _Deferred("edge_agent.drivers.tic", "TicLine")
LoraSource = _Deferred("edge_agent.drivers.lora.source", "LoraSource")
