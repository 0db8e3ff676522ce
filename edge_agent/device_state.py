"""Which devices the hub was last told are offline, across restarts: ``devices-state.json``.

Every ``device.offline`` must be followed by its ``device.online``, or the hub shows the
device offline for good. A device's health lives in memory, so an agent killed while a meter
was offline would start with the meter's health unknown and never announce its return. The
file lists the devices whose last announcement was ``device.offline``; the runtime marks them
offline again at start, so their next answer (a Modbus poll, a LoRa uplink) announces them
back. It is rewritten whole (mode 0600, fsync'd) at each announcement, before the writer can
put the event on disk: announcements are rare (three failed polls, then backoff).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Collection
from pathlib import Path

from edge_agent.durable import read_state_document, replace_durably
from edge_agent.records import Event

__all__ = ["STATE_FILE", "OfflineDevices"]

log = logging.getLogger("edge_agent.devices")

STATE_FILE = "devices-state.json"
_VERSION = 1
_KEY = "offline"


class OfflineDevices:
    """Devices announced offline and not yet back, by name, with the announcement's time."""

    def __init__(self, path: Path, configured: Collection[str]) -> None:
        """Read ``path``; devices no longer ``configured`` are forgotten."""
        self._path = path
        document = read_state_document(path, _VERSION, _KEY, log,
                                       "devices offline before the restart will not announce "
                                       "their return")
        #: Name -> when ``device.offline`` was announced (UTC ms).
        self.since_ms: dict[str, int] = {
            name: since for name, since in document.get(_KEY, {}).items()
            if name in configured and isinstance(since, int)}

    def observe(self, event: Event) -> None:
        """A record-buffer event observer: keep each ``device.offline`` until its online."""
        if event.kind == "device.offline" and event.device:
            self.since_ms[event.device] = event.ts_ms
        elif event.kind == "device.online" and event.device in self.since_ms:
            del self.since_ms[event.device]
        else:
            return
        document = {"version": _VERSION, _KEY: self.since_ms}
        try:
            replace_durably(self._path, json.dumps(document, indent=1).encode())
        except OSError as exc:
            log.error("cannot save %s (%s): if the agent restarts before it can, a device "
                      "offline now may not announce its return", self._path, exc.strerror)
