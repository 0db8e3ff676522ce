"""Occupancy from LoRa spot sensors: uplinks published through a real broker (Mosquitto where
it runs, the embedded broker anywhere) reach the car park, which follows the spots' truth
once every spot has reported, corrects the drift of its counting, and keeps the spots'
states across a restart (Nwave sensors speak only on a change)."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

from edge_agent.config import load_config
from edge_agent.runtime import Gateway
from simulators.lora.chirpstack import ChirpstackPublisher, SimulatedSensor
from tests.helpers.mqtt import Broker, mqtt_broker
from tests.test_lora_gateway import running, stored, until

__all__ = ["mqtt_broker"]


SPOTS = [SimulatedSensor(f"spot-{n}", f"70b3d5e75e0030{n:02x}",
                         "bosch-tps110" if n % 2 else "nwave-nps405") for n in range(1, 4)]


def gateway_toml(tmp: Path, broker: Broker, app: str) -> Path:
    protocol = "3.1.1" if broker.kind == "embedded" else "auto"
    devices = "".join(
        f'[[lora.devices]]\nname = "{s.name}"\ndev_eui = "{s.dev_eui}"\nprofile = "{s.profile}"\n'
        for s in SPOTS)
    names = ", ".join(f'"{s.name}"' for s in SPOTS)
    path = tmp / "gateway.toml"
    path.write_text(
        f'[gateway]\nid = "spots-test"\ndata_dir = "data"\n\n'
        f'[[lora]]\nbroker = "{broker.url}"\napplication_ids = ["{app}"]\n'
        f'protocol = "{protocol}"\nsession_expiry_s = 300\n'
        f'client_id = "ponton-{uuid.uuid4().hex[:10]}"\n\n{devices}\n'
        f'[[car_parks]]\nname = "P-plage"\ncapacity = 3\nspots = [{names}]\n'
        f'occupancy_from_spots = true\n', encoding="utf-8")
    return path


async def publish(broker: Broker, app: str, states: list[tuple[int, int]]) -> None:
    publisher = await asyncio.to_thread(ChirpstackPublisher, broker.url, app)
    for index, occupied in states:
        await asyncio.to_thread(publisher.uplink, SPOTS[index], {"spot_occupied": occupied})
    await asyncio.to_thread(publisher.close)


async def test_spot_sensors_give_the_occupancy_and_keep_it_across_a_restart(
        tmp_path: Path, mqtt_broker: Broker) -> None:
    app = str(uuid.uuid4())
    config = load_config(gateway_toml(tmp_path, mqtt_broker, app))
    gateway = Gateway(config)
    async with running(gateway):
        (park,) = gateway.car_parks.parks
        await publish(mqtt_broker, app, [(0, 1), (1, 1)])
        await until(lambda: park.spots_occupied() == (2, 2))
        assert park.state.occupancy == 0  # two spots of three known: not yet the truth
        await publish(mqtt_broker, app, [(2, 0)])
        await until(lambda: park.state.occupancy == 2)
        await publish(mqtt_broker, app, [(1, 0), (2, 1), (0, 1)])
        await until(lambda: park.spots_occupied() == (2, 3) and not gateway.buffer.on_durable)
    gateway = Gateway(config)
    async with running(gateway):
        (park,) = gateway.car_parks.parks
        assert park.report()["from_spots"] is True
        assert park.state.occupancy == 2
        await publish(mqtt_broker, app, [(1, 1)])  # one change is enough after a restart
        await until(lambda: park.state.full and not gateway.buffer.on_durable)
    readings, events = stored(tmp_path / "data")
    values = [r.value for r in readings if r.device == "P-plage"
              and r.quantity == "parking_occupancy"]
    assert values[0] == 0
    assert values[-1] == 3
    assert 2 in values
    assert [(e.kind, e.attrs["occupancy"]) for e in events if e.device == "P-plage"] == [
        ("car_park.full", 3)]
