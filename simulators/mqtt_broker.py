"""An MQTT broker for machines without Mosquitto: amqtt, in process, on a loopback port.

The demo and the tests use it where no broker answers on 127.0.0.1:1883. It speaks MQTT
3.1.1 only (the agent falls back to it) and, unlike Mosquitto, does not deliver again the
messages a client left unacknowledged: tests of redelivery need Mosquitto and say so.
``python -m simulators.mqtt_broker --port 1883`` serves until Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

__all__ = ["EmbeddedBroker", "PrivateMosquitto", "broker_answers", "main"]


def broker_answers(host: str = "127.0.0.1", port: int = 1883, timeout_s: float = 0.5) -> bool:
    """Whether something accepts TCP connections at ``host:port`` (a running broker)."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


class EmbeddedBroker:
    """``async with EmbeddedBroker() as broker: broker.url`` — a broker for this process."""

    def __init__(self, port: int = 0) -> None:
        self.port = port or _free_port()
        self.url = f"mqtt://127.0.0.1:{self.port}"
        self._broker: object | None = None

    async def __aenter__(self) -> Self:
        from amqtt.broker import Broker  # noqa: PLC0415 - a dev/demo dependency only

        for name in ("amqtt", "transitions"):
            logging.getLogger(name).setLevel(logging.ERROR)
        broker = Broker({
            "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{self.port}"}},
            "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin":
                        {"allow_anonymous": True}},
        })
        await broker.start()
        self._broker = broker
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        broker, self._broker = self._broker, None
        if broker is not None:
            await broker.shutdown()  # type: ignore[attr-defined]


class PrivateMosquitto:
    """A Mosquitto process of one test or benchmark, with persistence, stopped and started at will.

    ``extra`` lines go at the end of its config (``max_queued_messages 0``, say).
    """

    def __init__(self, binary: str, directory: Path, extra: str = "") -> None:
        self.binary = binary
        self.directory = directory
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port: int = probe.getsockname()[1]
        self.url = f"mqtt://127.0.0.1:{self.port}"
        self.conf = directory / "mosquitto.conf"
        # "user root" keeps a broker started by root from dropping to the mosquitto user, who
        # could not write its persistence file in the test's directory.
        self.conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\nuser root\n"
                             f"persistence true\npersistence_location {directory}/\n"
                             f"autosave_interval 1\n{extra}", encoding="utf-8")
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the broker and wait until it accepts connections."""
        self.process = subprocess.Popen([self.binary, "-c", str(self.conf)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not broker_answers(port=self.port):
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError(f"mosquitto did not start on port {self.port}")
            time.sleep(0.05)

    def stop(self) -> None:
        """Stop it as an operator would (SIGTERM: it saves its persistence file)."""
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def _serve(port: int) -> None:
    async with EmbeddedBroker(port) as broker:
        print(f"READY {broker.url}", flush=True)  # noqa: T201 - the simulator's one output
        await asyncio.Event().wait()


def main(argv: Sequence[str] | None = None) -> None:
    """Serve an embedded broker until interrupted."""
    parser = argparse.ArgumentParser(prog="python -m simulators.mqtt_broker",
                                     description="An in-process MQTT 3.1.1 broker (amqtt).")
    parser.add_argument("--port", type=int, default=1883)
    args = parser.parse_args(argv)
    if broker_answers(port=args.port):
        sys.exit(f"error: something already listens on 127.0.0.1:{args.port}")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args.port))


if __name__ == "__main__":
    main()
