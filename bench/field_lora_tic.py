"""The LoRa and TIC half of bench_footprint's field: many sensors through ChirpStack, a Linky.

Run by bench_footprint.py as its own process (not measured): ``SENSORS`` LoRaWAN sensors, a
mix of the shipped profiles, each sending one uplink every ``PERIOD`` seconds, spread evenly,
through a simulated ChirpStack on the broker given; and a Linky (historic mode) on a pty.
With ``embedded`` for the broker, an embedded broker of this process serves them. Prints
``READY <broker url> <pty>`` once all runs, then publishes until stopped.

Run: .venv/bin/python bench/field_lora_tic.py BROKER_URL|embedded APPLICATION SENSORS PERIOD
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import sys
import time

from edge_agent.codecs.tic import TicMode
from simulators.lora.chirpstack import ChirpstackPublisher
from simulators.lora.fleet import MIX, fleet
from simulators.mqtt_broker import EmbeddedBroker
from simulators.tic import TicSimulator


def _publish(broker: str, application: str, count: int, period_s: float) -> None:
    publisher = ChirpstackPublisher(broker, application)
    sensors = fleet(count)
    values = {profile: make for profile, _share, make in MIX}
    rng = random.Random(1)
    started = time.monotonic()
    sent = 0
    while True:
        sensor = sensors[sent % count]
        publisher.uplink(sensor, values[sensor.profile](rng))
        sent += 1
        delay = started + sent * period_s / count - time.monotonic()
        if delay > 0:
            time.sleep(delay)


async def _main(broker: str, application: str, count: int, period_s: float) -> None:
    async with contextlib.AsyncExitStack() as stack:
        if broker == "embedded":
            broker = (await stack.enter_async_context(EmbeddedBroker())).url
        linky = TicSimulator(TicMode.HISTORIC)
        linky.open()
        stack.callback(linky.close)
        sending = asyncio.create_task(linky.run())
        print(f"READY {broker} {linky.path}", flush=True)
        await asyncio.to_thread(_publish, broker, application, count, period_s)
        sending.cancel()


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_main(sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])))
