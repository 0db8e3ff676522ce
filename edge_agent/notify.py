"""Telling systemd how the agent is doing: ``READY=1``, ``WATCHDOG=1``, ``STOPPING=1``.

The protocol is one datagram of ``KEY=value`` lines sent to the Unix socket named by
``$NOTIFY_SOCKET`` (``@name`` for the abstract namespace). Written here rather than taken
from a library: systemd-python and cysystemd compile against libsystemd (no compiler on a
Pi) and sdnotify has not been released since 2017; the whole protocol is a dozen lines.

The watchdog pings come from a task of the gateway's own event loop: when a blocking call
or a busy coroutine stalls the loop, the pings stop, and systemd restarts the service after
``WatchdogSec``. Outside systemd (no ``$NOTIFY_SOCKET``) every call does nothing.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Mapping

__all__ = ["ServiceNotifier", "keep_watchdog", "watchdog_interval_s"]

log = logging.getLogger("edge_agent.notify")


class ServiceNotifier:
    """Sends state lines to the service manager's socket, if the agent runs under one."""

    def __init__(self, socket_name: str | None) -> None:
        #: The socket's address as ``sendto`` takes it (abstract names start with NUL).
        self.address = _socket_address(socket_name)
        self._failed = False

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> ServiceNotifier:
        """The notifier systemd asked for (``Type=notify`` sets ``NOTIFY_SOCKET``)."""
        return cls(environ.get("NOTIFY_SOCKET"))

    @property
    def enabled(self) -> bool:
        """True when a service manager listens."""
        return self.address is not None

    def notify(self, *states: str) -> bool:
        """Send ``states`` (``"READY=1"``...) in one datagram; True if it was sent.

        A failure is logged once, never raised: the gateway's job is its outbox, and a
        service manager that cannot hear it stops or restarts it anyway.
        """
        if self.address is None:
            return False
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.sendto("\n".join(states).encode("utf-8"), self.address)
        except OSError as exc:
            if not self._failed:
                log.warning("cannot notify the service manager at %s: %s",
                            self.address.lstrip("\0"), exc.strerror or exc)
            self._failed = True
            return False
        self._failed = False
        return True


def _socket_address(name: str | None) -> str | None:
    if not name:
        return None
    return "\0" + name[1:] if name.startswith("@") else name


def watchdog_interval_s(environ: Mapping[str, str] = os.environ) -> float | None:
    """How often to ping: half of ``WatchdogSec`` (systemd's advice), or None without one.

    ``WATCHDOG_PID`` names the process the watchdog is meant for; another process (a child
    that inherited the environment) must not ping on its behalf.
    """
    usec = environ.get("WATCHDOG_USEC", "")
    pid = environ.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0 or (pid and pid != str(os.getpid())):
        return None
    return int(usec) / 2_000_000


async def keep_watchdog(notifier: ServiceNotifier, interval_s: float) -> None:
    """Ping ``WATCHDOG=1`` every ``interval_s`` until cancelled, from this event loop."""
    while True:
        notifier.notify("WATCHDOG=1")
        await asyncio.sleep(interval_s)
