"""Command line of the ChirpStack simulator: ``python -m simulators.lora --help``.

It publishes one step of a scenario every ``--every`` seconds as ChirpStack v4 would, on
the broker given (Mosquitto, or ``python -m simulators.mqtt_broker``). ``--print-config``
prints the ``[[lora]]`` section of a gateway file for the simulated sensors instead.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections.abc import Sequence

from simulators.lora.chirpstack import ChirpstackPublisher
from simulators.lora.scenarios import SCENARIOS, SENSORS, Step, scenario

__all__ = ["build_parser", "describe", "lora_section", "main", "publish_step"]

DEFAULT_APPLICATION = "5f0b4c5e-2b1c-4a8e-9d55-0c1f2a3b4c5d"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser."""
    parser = argparse.ArgumentParser(
        prog="python -m simulators.lora",
        description="Publish simulated LoRaWAN uplinks as a ChirpStack v4 MQTT integration.")
    parser.add_argument("--broker", default="mqtt://127.0.0.1:1883", metavar="URL")
    parser.add_argument("--application", default=DEFAULT_APPLICATION, metavar="ID",
                        help="the ChirpStack application id in the topics")
    parser.add_argument("--format", choices=["json", "protobuf"], default="json")
    parser.add_argument("--scenario", choices=SCENARIOS, default="all")
    parser.add_argument("--every", type=float, default=1.0, metavar="S",
                        help="seconds between messages (default 1)")
    parser.add_argument("--count", type=int, metavar="N", help="stop after N messages")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--print-config", action="store_true",
                        help="print the gateway file's [[lora]] section for these sensors")
    return parser


def lora_section(broker: str, application: str, fmt: str) -> str:
    """The ``[[lora]]`` section that makes an agent listen to the simulated sensors."""
    devices = "".join(f'\n[[lora.devices]]\nname = "{s.name}"\ndev_eui = "{s.dev_eui}"\n'
                      f'profile = "{s.profile}"\n' for s in SENSORS.values())
    return (f'[[lora]]\nbroker = "{broker}"\napplication_ids = ["{application}"]\n'
            f'format = "{fmt}"\n{devices}')


def publish_step(publisher: ChirpstackPublisher, step: Step) -> None:
    """Publish one scenario step."""
    if step.garbage is not None:
        publisher.raw(f"application/{publisher.application_id}/device/{step.sensor.dev_eui}"
                      "/event/up", step.garbage)
    elif step.raw is not None:
        publisher.uplink_bytes(step.sensor, step.f_port, step.raw)
    else:
        publisher.uplink(step.sensor, step.values or {})


def describe(step: Step) -> str:
    """What a step sends, in a few words."""
    if step.garbage is not None:
        return f"garbage ({len(step.garbage)} bytes)"
    if step.raw is not None:
        return f"fPort {step.f_port} {step.raw.hex()}"
    return " ".join(f"{quantity}={value:g}" for quantity, value in (step.values or {}).items())


def main(argv: Sequence[str] | None = None) -> None:
    """Publish until interrupted (or ``--count``)."""
    args = build_parser().parse_args(argv)
    if args.print_config:
        print(lora_section(args.broker, args.application, args.format), end="")  # noqa: T201
        return
    try:
        publisher = ChirpstackPublisher(args.broker, args.application, args.format)
    except OSError as exc:
        sys.exit(f"error: cannot reach the broker {args.broker}: {exc}")
    steps = scenario(args.scenario, args.seed)
    sent = 0
    with contextlib.suppress(KeyboardInterrupt):
        while args.count is None or sent < args.count:
            step = next(steps)
            publish_step(publisher, step)
            sent += 1
            print(f"{sent:6d} {step.sensor.name:<16} {describe(step)}", flush=True)  # noqa: T201
            time.sleep(args.every)
    publisher.close()


if __name__ == "__main__":
    main()
