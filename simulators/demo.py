"""``make demo``: a marina pontoon on one machine, simulated meters feeding a real agent.

The "field" runs in this process: a feeder meter on Modbus TCP, and an RS-485 line (a pty
with 9600-baud line timing) carrying four berth meters, a water pulse counter and a relay
board. Berth meter A5 is configured but absent, so it goes offline; halfway through, berth
A4's cable is "cut" for a while and then mended. At the pontoon gate a badge reader (an
RDM6300 on its own pty) sees a card every few seconds, in turn a boater's, an unknown card
and a revoked one: the agent decides from the policy the hub signed, pulses the gate relay on
the relay board (or not), and the decision shows in the status and at the hub. Berths A1 and
A2 have pedestals, each with its reader, its energy meter and a water meter (the demo's own
profile, simulators/profiles/): a boater opens a session at A1 that runs on, and a sailor
opens and closes sessions at A2, so the dashboard's Marina page shows pedestals in use with
their kWh and m³, and the sessions closed. The agent
runs as its own process
(``edge-agent run``) on embedded defaults, with its outbox in ``demo-data/``, provisioned
into a sync hub that runs as a third process (SQLite in ``demo-data/hub/``; see
simulators/demo_hub.py). The screen shows each device's health, the outbox draining to the
hub, and the newest values the hub holds, live, until Ctrl-C (or ``--duration``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.live import Live

from edge_agent.codecs.tic import TicMode
from edge_agent.profiles import load_profile
from edge_agent.profiles.loader import load_profile_file
from edge_agent.runtime import LOCK_FILE, OUTBOX_FILE, STATUS_FILE
from edge_agent.status import gateway_report
from edge_agent.sync.identity import IDENTITY_FILE
from simulators.demo_hub import BOATER_CARD, REVOKED_CARD, SAILOR_CARD, UNKNOWN_CARD, DemoHub
from simulators.demo_screen import decision_lines, live_screen
from simulators.lora.chirpstack import ChirpstackPublisher
from simulators.lora.cli import publish_step
from simulators.lora.scenarios import SENSORS, Step, flood_distance, scenario
from simulators.modbus import Fault, LineSettings, ModbusSimulator, SimulatedMeter
from simulators.modbus.relay_board import SimulatedRelayBoard
from simulators.mqtt_broker import EmbeddedBroker
from simulators.readers import CardReaderSimulator
from simulators.tic import TicSimulator

__all__ = ["main"]

#: When berth A4's cable is cut and mended, in seconds from the start.
CABLE_CUT_S = (20.0, 35.0)
#: A card at the pontoon gate this often, in turn: a boater's, an unknown one, a revoked one.
CARD_EVERY_S = 5.0
#: The boater's card at pedestal A1 (the session runs on), and the sailor's at A2: first
#: tap, then one every ``A2_TAP_EVERY_S``, opening and closing sessions in turn.
A1_TAP_S = 3.0
A2_FIRST_TAP_S, A2_TAP_EVERY_S = 6.0, 8.0
#: The berths with a pedestal: relay channel on relays-a, water meter's unit on pontoon-a.
PEDESTALS = {"berth-a1": (5, 11), "berth-a2": (6, 12)}
#: Where the demo's own device profile (its water meter) is.
PROFILES = Path(__file__).resolve().parent / "profiles"
#: A LoRa uplink this often, in turn from the water-level sensor and a parking spot.
UPLINK_EVERY_S = 0.5
#: Level-sensor uplinks in one flood: the water passes the road's level after a few seconds.
FLOOD_STEPS = 24
#: The relay closing the harbour road's barrier.
BARRIER_CHANNEL = 3
#: The demo's ChirpStack application.
APPLICATION = "5f0b4c5e-2b1c-4a8e-9d55-0c1f2a3b4c5d"
CARDS = (BOATER_CARD, UNKNOWN_CARD, REVOKED_CARD)

GATEWAY_TOML = """\
# Written by the demo (python -m simulators.demo); edit freely and run
#   edge-agent run --config {config}
[gateway]
id = "demo-marina"
data_dir = "."
profiles_dir = "{profiles}"

[outbox]
quota_mb = 64

[sync]
interval_s = 2
# Each device's health on the dashboard's Gateway page within seconds (300 s by default).
health_interval_s = 10

[[buses]]
name = "harbour-office"
tcp = "{tcp}"
timeout_ms = 500

[[buses]]
name = "pontoon-a"
serial = "{serial}"
baudrate = 9600
timeout_ms = 300
max_backoff_s = 8

[[devices]]
name = "feeder"
bus = "harbour-office"
profile = "eastron-sdm630"
unit = 1
interval_s = 5
{berths}
[[devices]]
name = "water-a"
bus = "pontoon-a"
profile = "isma-sfar-4di"
unit = 10
interval_s = 5

[[devices]]
name = "relays-a"
bus = "pontoon-a"
profile = "waveshare-relay-8ch"
unit = 20
interval_s = 2

[[readers]]
name = "reader-gate-a"
profile = "rdm6300"
port = "{reader}"
gate = "gate-a"

[[gates]]
name = "gate-a"
relay = "relays-a"
channel = 1
pulse_ms = 700
{pedestals}
# The harbour office's Linky, on its TIC line.
[[tic]]
name = "linky-office"
serial = "{linky}"

# The harbour road's water-level sensor and the car park's spot sensors, through ChirpStack.
[[lora]]
broker = "{broker}"
application_ids = ["{application}"]
protocol = "3.1.1"
{lora_devices}
# Close the harbour road's barrier (relays-a channel 3) while the water is less than 1 m
# below the sensor; open it again once it is 1.2 m below.
[[rules]]
name = "flood-harbour-road"
device = "level-d982"
quantity = "distance"
kind = "below"
threshold = 1.0
clear_at = 1.2
severity = "critical"
on_raise = [{{type = "latch", board = "relays-a", channel = {barrier}}}]

# The harbour-office car park: four spaces, each with a LoRa spot sensor; its COMPLET sign
# on relays-a channel 4.
[[car_parks]]
name = "P-capitainerie"
capacity = 4
spots = ["spot-1", "spot-2", "spot-3", "spot-4"]
occupancy_from_spots = true
sign = {{board = "relays-a", channel = 4}}
"""

PEDESTAL = """
[[devices]]
name = "water-{berth_short}"
bus = "pontoon-a"
profile = "demo-water-meter"
unit = {water_unit}
interval_s = 2

[[readers]]
name = "reader-{berth}"
profile = "rdm6300"
port = "{reader}"
gate = "{berth}"

[[pedestals]]
name = "{berth}"
relay = "relays-a"
channel = {channel}
energy_meter = "{berth}"
water_meter = "water-{berth_short}"
max_duration_h = 24
"""

LORA_DEVICE = """
[[lora.devices]]
name = "{name}"
dev_eui = "{dev_eui}"
profile = "{profile}"
"""

BERTH = """
[[devices]]
name = "berth-a{unit}"
bus = "pontoon-a"
profile = "eastron-sdm120"
unit = {unit}
interval_s = 2
quantities = ["voltage", "current", "active_power", "active_energy_import"]
min_silence_ms = 20
"""


class Field:
    """The simulated devices, served from a thread with its own event loop."""

    def __init__(self) -> None:
        self.tcp = ""
        self.serial = ""
        self.reader = CardReaderSimulator("rdm6300")
        #: One reader per pedestal.
        self.pedestal_readers = {berth: CardReaderSimulator("rdm6300") for berth in PEDESTALS}
        self.linky = TicSimulator(TicMode.HISTORIC)
        self.board = SimulatedRelayBoard(20)
        self.broker = ""
        self._publisher: ChirpstackPublisher | None = None
        self._flood_step = 0
        self._spots = scenario("car-park")
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._pontoon: ModbusSimulator | None = None
        self._stopped = False
        self._thread = threading.Thread(target=asyncio.run, args=(self._serve(),), daemon=True)

    async def _serve(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        berths = [SimulatedMeter(unit, load_profile("eastron-sdm120"), seed=unit)
                  for unit in range(1, 5)]
        water = load_profile_file(PROFILES / "demo-water-meter.yaml")
        pontoon_meters = [*berths, SimulatedMeter(10, load_profile("isma-sfar-4di")),
                          *(SimulatedMeter(unit, water, seed=unit)
                            for _, unit in PEDESTALS.values()),
                          self.board]
        async with (
            ModbusSimulator([SimulatedMeter(1, load_profile("eastron-sdm630"))]) as office,
            ModbusSimulator(pontoon_meters, transport="rtu", line=LineSettings(9600),
                            line_timing=True) as pontoon,
            EmbeddedBroker() as broker,
        ):
            self.tcp, self.serial, self._pontoon = office.endpoint, pontoon.device_path, pontoon
            self.broker = broker.url
            linky = asyncio.create_task(self.linky.run())
            self._ready.set()
            await self._stop.wait()
            linky.cancel()

    def start(self) -> None:
        self.reader.open()
        for reader in self.pedestal_readers.values():
            reader.open()
        self.linky.open()
        self._thread.start()
        if not self._ready.wait(10):
            raise SystemExit("the simulated devices did not start")
        self._publisher = ChirpstackPublisher(self.broker, APPLICATION)

    def uplink(self, count: int) -> float:
        """The next LoRa uplink: the level sensor and a parking spot in turn; the level now."""
        assert self._publisher is not None
        if count % 2:
            publish_step(self._publisher, next(self._spots))
        else:
            self._flood_step += 1
            publish_step(self._publisher, Step(SENSORS["level-d982"], {
                "distance": flood_distance(self._flood_step, FLOOD_STEPS),
                "battery_voltage": 3.6}))
        return flood_distance(self._flood_step, FLOOD_STEPS)

    def barrier_closed(self) -> bool:
        """Whether the rule holds the harbour road's barrier closed."""
        return self.board.relay(BARRIER_CHANNEL)

    def cut_cable(self, unit: int, cut: bool) -> None:
        """Make a berth meter fall silent (or answer again), from the main thread."""
        pontoon, loop = self._pontoon, self._loop
        assert pontoon is not None
        assert loop is not None
        meter = pontoon.meter(unit)
        loop.call_soon_threadsafe(meter.set_fault, Fault.no_reply() if cut else Fault.none())

    def present(self, card: bytes, berth: str | None = None) -> None:
        """Hold ``card`` to the gate's reader, or to ``berth``'s pedestal (three frames, as an
        RDM6300 repeats them)."""
        reader = self.reader if berth is None else self.pedestal_readers[berth]
        reader.send(reader.frame(card) * 3)

    def outlets_on(self) -> list[str]:
        """The pedestals whose outlet is switched on."""
        return [berth for berth, (channel, _) in PEDESTALS.items() if self.board.relay(channel)]

    def gate_pulses(self) -> int:
        """How many times the gate relay was pulsed."""
        return len(self.board.pulses(1))

    def stop(self) -> None:
        """Stop serving and close the ptys (a second call does nothing)."""
        if self._stopped:
            return
        self._stopped = True
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)
        if self._publisher is not None:
            self._publisher.close()
        self.reader.close()
        for reader in self.pedestal_readers.values():
            reader.close()
        self.linky.close()


def prepare(data_dir: Path, field: Field) -> Path:
    """A fresh data directory with the gateway file; A5 is configured but not on the line."""
    data_dir.mkdir(parents=True, exist_ok=True)
    for name in (OUTBOX_FILE, f"{OUTBOX_FILE}-wal", f"{OUTBOX_FILE}-shm", STATUS_FILE, LOCK_FILE,
                 IDENTITY_FILE):
        (data_dir / name).unlink(missing_ok=True)
    config = data_dir / "gateway.toml"
    berths = "".join(BERTH.format(unit=unit) for unit in range(1, 6))
    sensors = [SENSORS["level-d982"], *(SENSORS[f"spot-{i}"] for i in range(1, 5))]
    lora_devices = "".join(LORA_DEVICE.format(name=s.name, dev_eui=s.dev_eui, profile=s.profile)
                           for s in sensors)
    pedestals = "".join(PEDESTAL.format(
        berth=berth, berth_short=berth.removeprefix("berth-"), channel=channel,
        water_unit=unit, reader=field.pedestal_readers[berth].path)
        for berth, (channel, unit) in PEDESTALS.items())
    config.write_text(GATEWAY_TOML.format(
        config=config, tcp=field.tcp, serial=field.serial, berths=berths,
        profiles=PROFILES, pedestals=pedestals,
        reader=field.reader.path, linky=field.linky.path, broker=field.broker,
        application=APPLICATION, lora_devices=lora_devices, barrier=BARRIER_CHANNEL),
        encoding="utf-8")
    return config


@contextlib.contextmanager
def agent_process(config: Path, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``edge-agent run`` as its own process; SIGTERM and a clean exit at the end."""
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "edge_agent", "run", "--config", str(config)],
            stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True,
        )
        try:
            yield process
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()  # reaped: no zombie, no "still running" warning later


def summary(data_dir: Path, hub: DemoHub) -> str:
    report = gateway_report(data_dir)
    waiting = {s["name"]: s["depth"] for s in report["streams"]}
    offline = [d["name"] for d in report["devices"] if d["online"] is False]
    return (f"outbox: {waiting.get('readings', 0)} readings and {waiting.get('events', 0)} "
            f"events waiting; {hub.summary()}; offline: {', '.join(offline) or 'none'}")


class Story:
    """What happens in the field, second by second: the cable cut, the cards, the flood."""

    def __init__(self, field: Field) -> None:
        self.field = field
        self.cable_cut = False
        self.cards_shown = self.uplinks = self.closures = 0
        self.a1_tapped = False
        self.a2_taps = 0
        self.level = flood_distance(0, FLOOD_STEPS)
        self.barrier_closed = False

    def advance(self, elapsed: float) -> None:
        """Make everything due by ``elapsed`` seconds happen."""
        field = self.field
        should_cut = CABLE_CUT_S[0] <= elapsed < CABLE_CUT_S[1]
        if should_cut != self.cable_cut:
            field.cut_cable(4, should_cut)
            self.cable_cut = should_cut
        if elapsed >= (self.cards_shown + 1) * CARD_EVERY_S:
            field.present(CARDS[self.cards_shown % len(CARDS)])
            self.cards_shown += 1
        if not self.a1_tapped and elapsed >= A1_TAP_S:
            field.present(BOATER_CARD, "berth-a1")
            self.a1_tapped = True
        if elapsed >= A2_FIRST_TAP_S + self.a2_taps * A2_TAP_EVERY_S:
            field.present(SAILOR_CARD, "berth-a2")
            self.a2_taps += 1
        while elapsed >= (self.uplinks + 1) * UPLINK_EVERY_S:
            self.level = field.uplink(self.uplinks)
            self.uplinks += 1
        if field.barrier_closed() != self.barrier_closed:
            self.barrier_closed = not self.barrier_closed
            self.closures += self.barrier_closed

    def title(self, elapsed: float) -> str:
        """The live screen's heading: two lines at 80 columns."""
        road = "[red]closed[/]" if self.barrier_closed else "open"
        cable = "[red]cut[/]" if self.cable_cut else "ok"
        return (f"[bold]Ponton demo[/] {elapsed:.0f} s (Ctrl-C to stop): berth A4 cable {cable} "
                f"(cut {CABLE_CUT_S[0]:.0f}-{CABLE_CUT_S[1]:.0f} s), A5 absent; gate opened "
                f"{self.field.gate_pulses()} times; water {self.level:.2f} m below the sensor, "
                f"road {road}")

    def line(self) -> str:
        """The field's part of a plain progress line."""
        road = "closed" if self.barrier_closed else "open"
        outlets = ", ".join(self.field.outlets_on()) or "none"
        return (f"gate opened {self.field.gate_pulses()} times; outlets on: {outlets}; water "
                f"{self.level:.2f} m below the sensor, road barrier {road}")


@dataclass
class Watched:
    """The demo's children and what they write, watched while the story unfolds."""

    agent: subprocess.Popen[bytes]
    hub: DemoHub
    data_dir: Path
    story: Story
    log: Path


def watch(console: Console, watched: Watched, stop: threading.Event, duration: float | None,
          live: bool) -> str:
    """Advance the story and show it until ``stop`` or ``duration``; why a child ended, if one did.

    Plain output is a line every second and one per gate decision with its reason, each
    printed whole (no wrapping in mid-phrase, however narrow the pipe).
    """
    started = time.monotonic()
    story, data_dir = watched.story, watched.data_dir
    decided_ms = 0
    next_line = 0.0
    with Live(console=console, auto_refresh=False, transient=not live) as screen:
        while not stop.is_set():
            elapsed = time.monotonic() - started
            if duration is not None and elapsed >= duration:
                break
            if watched.agent.poll() is not None:
                return f"the agent stopped (exit {watched.agent.returncode}); see {watched.log}"
            if (code := watched.hub.exit_code()) is not None:
                return f"the hub stopped (exit {code}); see {watched.hub.data_dir / 'hub.log'}"
            story.advance(elapsed)
            report = gateway_report(data_dir)
            if live:
                screen.update(live_screen(story.title(elapsed), report, watched.hub.report(),
                                          watched.hub.url), refresh=True)
            else:
                for ts_ms, line in decision_lines(report, decided_ms):
                    decided_ms = ts_ms
                    console.print(f"{elapsed:5.0f} s  {line}", soft_wrap=True, highlight=False)
                if elapsed >= next_line:
                    next_line = elapsed + 1
                    console.print(f"{elapsed:5.0f} s  {summary(data_dir, watched.hub)}; "
                                  f"{story.line()}", soft_wrap=True, highlight=False)
            stop.wait(UPLINK_EVERY_S)
    return ""


#: What stops the demo: Ctrl-C (to the whole process group), a kill, the terminal closing.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def stop_on_signals() -> threading.Event:
    """An event set by any stop signal; the children run in sessions of their own.

    The demo alone receives the signal and stops each child in turn, so no child's exit
    races the others' (a Ctrl-C used to reach the agent first and read as its crash).
    """
    stop = threading.Event()
    for signum in STOP_SIGNALS:
        signal.signal(signum, lambda _signum, _frame: stop.set())
    return stop


def run(data_dir: Path, duration: float | None, live: bool) -> int:
    """The demo until ``duration`` or a stop signal (exit 0), or a child's death (exit 1)."""
    stop = stop_on_signals()
    console = Console()
    field = Field()
    field.start()
    hub = DemoHub(data_dir / "hub")
    story = Story(field)
    problem = ""
    try:
        config = prepare(data_dir, field)
        log = data_dir / "agent.log"
        hub.start()
        hub.provision(config)
        introduce(console, field, hub, config, log)
        try:
            with agent_process(config, log) as agent:
                problem = watch(console, Watched(agent, hub, data_dir, story, log), stop,
                                duration, live)
        finally:
            field.stop()
        ending = (f"stopped. {summary(data_dir, hub)}; gate opened {field.gate_pulses()} "
                  f"times for {story.cards_shown} cards presented; road barrier closed "
                  f"{story.closures} times by the flood rule, {story.uplinks} LoRa uplinks")
    finally:
        hub.stop()
        field.stop()
    with contextlib.suppress(OSError):  # the terminal may be gone (SIGHUP)
        if problem:
            console.print(problem, style="red", soft_wrap=True)
        console.print(ending, soft_wrap=True, highlight=False)
        console.print(f"inspect it: edge-agent status --config {config}", soft_wrap=True)
    return 1 if problem else 0


def introduce(console: Console, field: Field, hub: DemoHub, config: Path, log: Path) -> None:
    """What runs where, printed once before the live screen."""
    for line in (
        f"field: feeder on tcp {field.tcp}, pontoon-a on {field.serial} (9600 baud)",
        f"hub: {hub.url} (sync-server, SQLite in {hub.data_dir})",
        f"dashboard: {hub.dashboard} - sign in once with {hub.signin_link}",
        f"agent: edge-agent run --config {config}  (log: {log})",
        f"gate: reader on {field.reader.path}, barrier on relays-a channel 1; cards "
        f"{', '.join(card.hex() for card in CARDS)} (boater, unknown, revoked)",
        f"pedestals: {', '.join(PEDESTALS)} (readers, energy and water meters, outlets on "
        f"relays-a channels {', '.join(str(c) for c, _ in PEDESTALS.values())}); the "
        f"boater's session at A1 runs on, the sailor's card {SAILOR_CARD.hex()} opens and "
        f"closes A2's every {A2_TAP_EVERY_S:.0f} s",
        f"flood: level sensor level-d982 through ChirpStack on {field.broker}; the rule closes "
        f"the road barrier (relays-a channel {BARRIER_CHANNEL}) while the water is less than "
        f"1 m below it; Linky on {field.linky.path}",
    ):
        console.print(line, soft_wrap=True, highlight=False, markup=False)


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m simulators.demo",
        description="Ponton demo: simulated marina, edge agent, sync hub.")
    parser.add_argument("--data-dir", type=Path, default=Path("demo-data"),
                        help="where the generated gateway.toml, the outbox, the agent log and the "
                             "hub's store go (default: demo-data)")
    parser.add_argument("--duration", type=float, default=None,
                        help="stop after this many seconds (default: until Ctrl-C)")
    parser.add_argument("--plain", action="store_true",
                        help="one summary line a second instead of the live tables")
    args = parser.parse_args()
    live = not args.plain and Console().is_terminal
    sys.exit(run(args.data_dir.resolve(), args.duration, live))


if __name__ == "__main__":
    main()
