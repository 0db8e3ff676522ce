"""The gateway configuration: one TOML file an installer writes per gateway.

Example (docs/configuration.md lists every field)::

    [gateway]
    id = "dk-marina-01"
    data_dir = "/var/lib/ponton"

    [[buses]]
    name = "pontoon-a"
    serial = "/dev/ttyUSB0"
    baudrate = 9600

    [[devices]]
    name = "berth-a12"
    bus = "pontoon-a"
    profile = "eastron-sdm120"
    unit = 12
"""

from __future__ import annotations

import difflib
import re
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import msgspec
from msgspec import Meta

from edge_agent.codecs.tic import ModeSetting
from edge_agent.drivers.modbus.bus import BusPolicy
from edge_agent.drivers.modbus.link import LinkSettings
from edge_agent.errors import ConfigError, ProfileError
from edge_agent.parking.config import CarParkConfig, car_park_problem
from edge_agent.profiles import (
    DeviceProfile,
    LoraProfile,
    load_lora_profile,
    load_profile,
    load_reader_profile,
)
from edge_agent.rules.models import LatchAction, RuleConfig, latch_conflict, rule_problem
from edge_agent.schema import Invalid, Strict, at_field, validate
from edge_agent.toml_source import locate_toml
from edge_agent.validation import located, validation_problems
from edge_agent.yaml_source import LocatedYaml

if TYPE_CHECKING:
    from edge_agent.drivers.tic import TicSettings

__all__ = [
    "BusConfig",
    "CarParkConfig",
    "DeviceConfig",
    "GateConfig",
    "GatewayConfig",
    "LoraConfig",
    "LoraDeviceConfig",
    "MetricsSection",
    "PedestalConfig",
    "ReaderConfig",
    "SyncSection",
    "TicConfig",
    "load_config",
]

_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"


class GatewaySection(Strict, frozen=True, kw_only=True):
    """Who this gateway is and where it keeps its data."""

    id: Annotated[str, Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")]
    data_dir: Annotated[Path, Meta(
        description="Outbox and status file; relative to the config file.")]
    profiles_dir: Annotated[Path, Meta(
        description="This site's own device profiles, searched before the shipped ones; "
        "relative to the config file.")] | None = None


class OutboxSection(Strict, frozen=True, kw_only=True):
    """Local storage bounds."""

    #: At most 1 TiB: an unbounded quota (``inf``) passed here and crashed the agent's start.
    quota_mb: Annotated[float, Meta(gt=0, le=1_048_576, description="Disk the outbox may use.")
                        ] = 1024.0


class SyncSection(Strict, frozen=True, kw_only=True):
    """How the gateway pushes its outbox to the hub it was provisioned for."""

    enabled: Annotated[bool, Meta(description="Push to the hub once provisioned.")] = True
    interval_s: Annotated[float, Meta(
        gt=0, le=3600, description="Wait between looks at an empty outbox.")] = 5.0
    batch_limit: Annotated[int, Meta(ge=1, le=100_000, description="Records per request.")
                           ] = 10_000
    timeout_s: Annotated[float, Meta(gt=0, le=600, description="Wait for each answer.")] = 30.0
    max_backoff_s: Annotated[float, Meta(
        gt=0, le=86_400, description="Longest wait between tries at the hub.")] = 300.0
    bundle_interval_s: Annotated[float, Meta(
        gt=0, le=86_400,
        description="Wait between looks for new signed bundles (configuration, policy).")] = 60.0
    health_interval_s: Annotated[float, Meta(
        gt=0, le=86_400,
        description="Wait between device.health events (each polled device's counters).")
    ] = 300.0
    ca_bundle: Annotated[Path, Meta(
        description="CA bundle trusted for the hub instead of the one recorded at "
        "provisioning; relative to the config file.")] | None = None
    client_cert: Annotated[Path, Meta(
        description="Client certificate for mutual TLS instead of the one recorded at "
        "provisioning; relative to the config file.")] | None = None
    client_key: Annotated[Path, Meta(
        description="The key of client_cert; relative to the config file.")] | None = None

    def __post_init__(self) -> None:
        if (self.client_cert is None) != (self.client_key is None):
            raise ValueError("client_cert and client_key go together: give both or neither")


class MetricsSection(Strict, frozen=True, kw_only=True):
    """Prometheus metrics on a local port (docs/install-gateway.md); off when absent."""

    listen: Annotated[str, Meta(
        pattern=r"^[^\s:]+:[0-9]{1,5}$",
        description="HOST:PORT to serve /metrics on; keep it on 127.0.0.1 or a management "
                    "network: it has no authentication.")]

    @property
    def address(self) -> tuple[str, int]:
        """``listen`` as a host and a port."""
        host, _, port = self.listen.rpartition(":")
        return host, int(port)

    def __post_init__(self) -> None:
        if not 0 < int(self.listen.rpartition(":")[2]) < 65536:
            raise at_field("listen", f"port of {self.listen!r} must be 1 to 65535", self.listen)


class BusConfig(Strict, frozen=True, kw_only=True):
    """One Modbus line: a serial port (RTU) or a TCP endpoint."""

    name: str
    serial: str | None = None
    tcp: Annotated[str, Meta(description="HOST:PORT of a Modbus TCP device.")] | None = None
    rtu_over_tcp: bool = False
    local_echo: Annotated[bool, Meta(
        description="The RS-485 adapter echoes what it sends; drop the echo.")] = False
    #: At most 12 Mbaud, the fastest USB serial adapters: pyserial overflows past 2**31.
    baudrate: Annotated[int, Meta(gt=0, le=12_000_000)] = 9600
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1
    timeout_ms: Annotated[float, Meta(gt=0, le=10_000)] = 500.0
    retries: Annotated[int, Meta(ge=0, le=5)] = 0
    offline_after: Annotated[int, Meta(
        ge=1, le=100, description="Failed polls in a row before a device is offline.")] = 3
    max_backoff_s: Annotated[float, Meta(
        gt=0, le=3600, description="Longest wait between tries at an offline device.")] = 60.0

    def __post_init__(self) -> None:
        value = self.tcp
        match = re.fullmatch(r"[^:\s]+:(\d{1,5})", value or "")
        if value is not None and (match is None or not 1 <= int(match.group(1)) <= 65535):
            raise at_field("tcp", f"'{value}' is not HOST:PORT, e.g. \"192.168.1.40:502\"",
                           value)
        if value is not None and not _resolvable(value.rpartition(":")[0]):
            raise at_field("tcp", f"'{value}' has a host name with an empty label (plc..lan) or "
                           "one longer than 63 characters", value)
        if (self.serial is None) == (self.tcp is None):
            raise ValueError("give exactly one of serial = \"/dev/ttyUSB0\" or tcp = \"host:502\"")

    def policy(self) -> BusPolicy:
        """How patient the bus is with devices that stop answering."""
        return BusPolicy(offline_after=self.offline_after, max_backoff_s=self.max_backoff_s)

    def link_settings(self) -> LinkSettings:
        """What the Modbus link needs to open this bus."""
        return LinkSettings(
            name=self.name,
            transport="serial" if self.serial else "tcp",
            target=self.serial or self.tcp or "",
            baudrate=self.baudrate,
            parity=self.parity,
            stopbits=self.stopbits,
            timeout_s=self.timeout_ms / 1000.0,
            retries=self.retries,
            rtu_over_tcp=self.rtu_over_tcp,
            local_echo=self.local_echo,
        )


class DeviceConfig(Strict, frozen=True, kw_only=True):
    """One device on a bus, described by a profile."""

    #: At most 128 characters: the hub keeps device names in a column of that size.
    name: Annotated[str, Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", max_length=128)]
    bus: str
    profile: str
    unit: Annotated[int, Meta(ge=1, le=247)]
    interval_s: Annotated[float, Meta(ge=0.05, le=86_400)] = 10.0
    quantities: Annotated[list[str], Meta(
        min_length=1, description="Subset of the profile's quantities; all when omitted.")
    ] | None = None
    min_silence_ms: Annotated[float, Meta(
        ge=0, le=5000, description="Overrides the profile's silence between requests.")
    ] | None = None


class ReaderConfig(Strict, frozen=True, kw_only=True):
    """A badge reader on a serial line (or a keyboard-wedge input device) in front of a gate."""

    name: Annotated[str, Meta(pattern=_NAME, max_length=128)]
    profile: Annotated[str, Meta(description="A reader profile: rdm6300, em18, pn532-uart ...")]
    port: Annotated[str, Meta(
        description="Serial device (/dev/ttyUSB1) or input device for a wedge.")]
    gate: Annotated[str, Meta(description="The gate or pedestal this reader stands at.")]
    duplicate_window_ms: Annotated[float, Meta(
        ge=0, le=60_000,
        description="The same card on this reader again within it is one presentation.")
    ] = 1500.0


class GateConfig(Strict, frozen=True, kw_only=True):
    """A gate or barrier opened by a pulse on a relay board output."""

    name: Annotated[str, Meta(pattern=_NAME, max_length=128,
                              description="The gate's name in the access policy.")]
    relay: Annotated[str, Meta(description="The relay board: a device of this file.")]
    channel: Annotated[int, Meta(ge=1, le=32)]
    pulse_ms: Annotated[int, Meta(ge=100, le=0x7FFF * 100,
                                  description="Contact closure, timed by the board.")] = 700


class PedestalConfig(Strict, frozen=True, kw_only=True):
    """A berth pedestal outlet: a badge opens a metered session, another tap closes it."""

    name: Annotated[str, Meta(
        pattern=_NAME, max_length=128,
        description="The pedestal's name in the access policy (a service gate).")]
    relay: Annotated[str, Meta(
        description="The relay board switching the outlet: a device of this file.")]
    channel: Annotated[int, Meta(ge=1, le=32)]
    energy_meter: Annotated[str, Meta(description="Meter with active_energy_import.")
                            ] | None = None
    water_meter: Annotated[str, Meta(description="Meter with water_volume.")] | None = None
    max_duration_h: Annotated[float, Meta(gt=0, le=24 * 31)] = 24.0
    credit_kwh: Annotated[float, Meta(gt=0, description="Switch off beyond it.")] | None = None
    credit_m3: Annotated[float, Meta(gt=0, description="Switch off beyond it.")] | None = None

    def __post_init__(self) -> None:
        if self.energy_meter is None and self.water_meter is None:
            raise ValueError("a pedestal needs energy_meter, water_meter or both")


class LoraDeviceConfig(Strict, frozen=True, kw_only=True):
    """A LoRaWAN sensor known to ChirpStack, decoded with one of our LoRa profiles."""

    name: Annotated[str, Meta(pattern=_NAME, max_length=128)]
    dev_eui: Annotated[str, Meta(pattern=r"^[0-9A-Fa-f]{16}$",
                                 description="The DevEUI, 16 hex digits.")]
    profile: Annotated[str, Meta(
        description="A LoRa profile: dragino-ldds75, milesight-am307 ...")]
    application_id: Annotated[str, Meta(
        description="Its ChirpStack application, for downlinks; the source's only application "
        "when omitted.")] | None = None

    def __post_init__(self) -> None:
        # One spelling of a DevEUI: ChirpStack's topics and events write it in lower case.
        msgspec.structs.force_setattr(self, "dev_eui", self.dev_eui.lower())


class LoraConfig(Strict, frozen=True, kw_only=True):
    """A ChirpStack v4 MQTT integration: the broker, the applications, the sensors."""

    name: Annotated[str, Meta(pattern=_NAME, max_length=64)] = "chirpstack"
    broker: Annotated[str, Meta(description="mqtt://HOST[:PORT], or mqtts:// for TLS.")
                      ] = "mqtt://127.0.0.1:1883"
    username: str | None = None
    password: str | None = None
    ca_file: Annotated[Path, Meta(description="CA bundle for a private broker CA.")
                       ] | None = None
    client_id: Annotated[str, Meta(
        max_length=128,
        description="The broker keeps our session under it; ponton-GATEWAY-NAME when omitted.")
    ] | None = None
    application_ids: Annotated[list[str], Meta(min_length=1,
                                               description="ChirpStack application ids.")]
    format: Annotated[Literal["json", "protobuf"], Meta(
        description="The integration's encoding (ChirpStack `json = true`).")] = "json"
    protocol: Literal["auto", "5", "3.1.1"] = "auto"
    session_expiry_s: Annotated[int, Meta(
        ge=60, le=90 * 86_400, description="How long the broker keeps messages for us.")
    ] = 7 * 86_400
    devices: list[LoraDeviceConfig] = msgspec.field(default_factory=list)

    def __post_init__(self) -> None:
        for value in self.application_ids:
            if not re.fullmatch(r"[A-Za-z0-9._-]{1,64}", value):
                raise at_field("application_ids",
                               f"application id {value!r} is not a ChirpStack id (a UUID)",
                               value)
        # Checked here, not first by `run` at start; the MQTT client is loaded for [[lora]]
        # gateways only, as at run time.
        from edge_agent.drivers.lora.mqtt import parse_broker_url  # noqa: PLC0415

        try:
            parse_broker_url(self.broker)
        except ConfigError as exc:
            raise at_field("broker", str(exc), self.broker) from None


class TicConfig(Strict, frozen=True, kw_only=True):
    """A Linky meter's TIC output on a serial port (docs/configuration.md, ``[[tic]]``)."""

    name: Annotated[str, Meta(pattern=_NAME, max_length=128,
                              description="Device name of its readings and events.")]
    serial: Annotated[str, Meta(
        description="Serial port of the TIC adapter, e.g. /dev/ttyAMA0.")]
    mode: Annotated[ModeSetting, Meta(
        description="historic: 1200 baud; standard: 9600; auto: detected.")] = "auto"
    index_interval_s: Annotated[float, Meta(
        gt=0, le=86_400, description="Indexes are stored this often.")] = 60.0
    max_interval_s: Annotated[float, Meta(
        gt=0, le=86_400, description="Every value is stored at least this often.")] = 300.0
    deadband_pct: Annotated[float, Meta(
        ge=0, le=100, description="Power and current: relative change to store.")] = 5.0
    deadband_va: Annotated[float, Meta(ge=0, description="Power: change to store (VA, W).")
                           ] = 50.0
    deadband_a: Annotated[float, Meta(ge=0, description="Current: change to store (A).")] = 1.0
    deadband_v: Annotated[float, Meta(ge=0, description="Voltage: change to store (V).")] = 3.0

    def settings(self) -> TicSettings:
        """What the TIC line needs to run."""
        from edge_agent.drivers.tic import SamplingPolicy, TicSettings  # noqa: PLC0415 - [[tic]] only

        return TicSettings(self.name, self.serial, self.mode, SamplingPolicy(
            index_interval_s=self.index_interval_s, max_interval_s=self.max_interval_s,
            deadband_pct=self.deadband_pct, deadband_va=self.deadband_va,
            deadband_a=self.deadband_a, deadband_v=self.deadband_v))


class GatewayConfig(Strict, frozen=True, kw_only=True):
    """The whole file."""

    gateway: GatewaySection
    outbox: OutboxSection = msgspec.field(default_factory=OutboxSection)
    sync: SyncSection = msgspec.field(default_factory=SyncSection)
    metrics: MetricsSection | None = None
    buses: list[BusConfig] = msgspec.field(default_factory=list)
    devices: list[DeviceConfig] = msgspec.field(default_factory=list)
    readers: list[ReaderConfig] = msgspec.field(default_factory=list)
    gates: list[GateConfig] = msgspec.field(default_factory=list)
    pedestals: list[PedestalConfig] = msgspec.field(default_factory=list)
    lora: list[LoraConfig] = msgspec.field(default_factory=list)
    rules: list[RuleConfig] = msgspec.field(default_factory=list)
    tic: list[TicConfig] = msgspec.field(default_factory=list)
    car_parks: list[CarParkConfig] = msgspec.field(default_factory=list)

    def __post_init__(self) -> None:
        bus_names = [bus.name for bus in self.buses]
        _no_duplicates("bus name", bus_names)
        ports: dict[str, str] = {}
        for bus in self.buses:
            if bus.serial is None:
                continue
            other = ports.setdefault(str(Path(bus.serial).resolve()), bus.name)
            if other != bus.name:
                raise ValueError(f"buses {other} and {bus.name} both use {bus.serial}; one "
                                 "serial line is one bus: put all its devices on one of them")
        _no_duplicates("device name", [device.name for device in self.devices]
                       + [sensor.name for source in self.lora for sensor in source.devices]
                       + [line.name for line in self.tic])
        _no_duplicates("LoRa source name", [source.name for source in self.lora])
        _no_duplicates("DevEUI", [s.dev_eui for source in self.lora for s in source.devices])
        on_unit: dict[tuple[str, int], str] = {}
        for device in self.devices:
            other = on_unit.setdefault((device.bus, device.unit), device.name)
            if other != device.name:
                raise ValueError(f"{other} and {device.name} both use unit {device.unit} on bus "
                                 f"{device.bus}; give each device its own unit id")
        for device in self.devices:
            if device.bus not in bus_names:
                close = difflib.get_close_matches(device.bus, bus_names, n=1)
                hint = f"did you mean '{close[0]}'?" if close else f"buses: {', '.join(bus_names)}"
                raise ValueError(f"device {device.name}: no bus named '{device.bus}'; {hint}")
        self._check_access()
        self._check_car_parks()
        self._check_rules()
        self._check_tic(ports)

    def _check_tic(self, bus_ports: dict[str, str]) -> None:
        """A TIC line's serial port is its alone (its name is checked with every device's)."""
        for line in self.tic:
            owner = f"TIC {line.name}"
            other = bus_ports.setdefault(str(Path(line.serial).resolve()), owner)
            if other != owner:
                other = other if other.startswith("TIC ") else f"bus {other}"
                raise ValueError(f"{other} and {owner} both use {line.serial}; a TIC line "
                                 "needs a serial port of its own")

    def _check_access(self) -> None:
        """Readers stand at declared gates; outputs and meters are declared devices."""
        outputs: list[GateConfig | PedestalConfig] = [*self.gates, *self.pedestals]
        _no_duplicates("gate or pedestal name", [output.name for output in outputs])
        _no_duplicates("reader name", [reader.name for reader in self.readers])
        devices = {device.name for device in self.devices}
        channels: dict[tuple[str, int], str] = {}
        for output in outputs:
            _known(f"{output.name}: relay", output.relay, devices)
            other = channels.setdefault((output.relay, output.channel), output.name)
            if other != output.name:
                raise ValueError(f"{other} and {output.name} both use channel {output.channel} "
                                 f"of {output.relay}")
        for pedestal in self.pedestals:
            for meter in (pedestal.energy_meter, pedestal.water_meter):
                if meter is not None:
                    _known(f"pedestal {pedestal.name}: meter", meter, devices)
        names = {output.name for output in outputs}
        for reader in self.readers:
            _known(f"reader {reader.name}: gate", reader.gate, names)

    def _check_car_parks(self) -> None:
        """Car parks count declared devices and light their sign on a channel of its own."""
        _no_duplicates("car park name", [park.name for park in self.car_parks])
        devices = self._field_devices()
        for park in self.car_parks:
            if park.name in devices:
                raise ValueError(f"car park {park.name} has the name of a device; its readings "
                                 "would mix with the device's: give it a name of its own")
        outputs: list[GateConfig | PedestalConfig] = [*self.gates, *self.pedestals]
        reserved = {(output.relay, output.channel): output.name for output in outputs}
        reserved |= {(action.board, action.channel): f"rule {rule.name}" for rule in self.rules
                     for action in rule.on_raise if isinstance(action, LatchAction)}
        for park in self.car_parks:
            problem = car_park_problem(park, devices, reserved)
            if problem is not None:
                raise ValueError(problem)
            if park.sign is not None:
                reserved[park.sign.board, park.sign.channel] = f"car park {park.name}"

    def lora_profiles(self) -> dict[str, LoraProfile]:
        """The LoRa profile of every ``[[lora.devices]]`` entry, by profile id."""
        extra = [self.gateway.profiles_dir] if self.gateway.profiles_dir else []
        ids = {sensor.profile for source in self.lora for sensor in source.devices}
        return {pid: load_lora_profile(pid, extra_dirs=extra) for pid in sorted(ids)}
    def _check_rules(self) -> None:
        """Rules watch known devices, act on declared boards, and leave gates' relays alone."""
        _no_duplicates("rule name", [rule.name for rule in self.rules])
        devices, reserved = self.device_names(), self.relay_outputs()
        for rule in self.rules:
            problem = rule_problem(rule, devices, reserved)
            if problem is not None:
                raise ValueError(problem)
        conflict = latch_conflict(self.rules)
        if conflict is not None:
            raise ValueError(conflict)

    def device_names(self) -> set[str]:
        """Every device readings can come from (rules watch these, and act on them).

        Car parks are among them: their occupancy and capacity are readings too.
        """
        return self._field_devices() | {park.name for park in self.car_parks}

    def _field_devices(self) -> set[str]:
        """The devices in the field: Modbus devices, LoRa sensors, TIC lines."""
        return ({device.name for device in self.devices}
                | {sensor.name for source in self.lora for sensor in source.devices}
                | {line.name for line in self.tic})

    def relay_outputs(self) -> dict[tuple[str, int], str]:
        """Relay channels rules may not latch, by (board, channel): their owner's name.

        Gates and pedestals (a rule may still pulse them) and car-park signs.
        """
        outputs: list[GateConfig | PedestalConfig] = [*self.gates, *self.pedestals]
        return {(output.relay, output.channel): output.name for output in outputs} | {
            (park.sign.board, park.sign.channel): f"car park {park.name}"
            for park in self.car_parks if park.sign is not None}

    def access_boards(self) -> set[str]:
        """The relay boards of gates and pedestals: the access side switches them off."""
        outputs: list[GateConfig | PedestalConfig] = [*self.gates, *self.pedestals]
        return {output.relay for output in outputs}

    def profile_of(self, device: DeviceConfig) -> DeviceProfile:
        """The device's profile (ProfileError when it does not exist)."""
        extra = [self.gateway.profiles_dir] if self.gateway.profiles_dir else []
        return load_profile(device.profile, extra_dirs=extra)


def _resolvable(host: str) -> bool:
    """Whether the resolver takes ``host`` at all (it raises UnicodeError otherwise)."""
    try:
        host.encode("idna")
    except UnicodeError:
        return False
    return True


def _no_duplicates(what: str, values: list[str]) -> None:
    seen: set[str] = set()
    for value in values:
        if value in seen:
            raise ValueError(f"{what} '{value}' is used twice")
        seen.add(value)


def _known(what: str, name: str, names: set[str]) -> None:
    if name not in names:
        close = difflib.get_close_matches(name, sorted(names), n=1)
        hint = f"did you mean '{close[0]}'?" if close else f"declared: {', '.join(sorted(names))}"
        raise ValueError(f"{what} '{name}' is not declared; {hint}")


def _check_lora_profiles(config: GatewayConfig, path: Path, source: LocatedYaml) -> list[str]:
    """A LoRa sensor's profile that does not exist, with the closest id."""
    extra = [config.gateway.profiles_dir] if config.gateway.profiles_dir else []
    # Each profile id once: finding a profile parses YAML files, and a territory has
    # thousands of sensors of a dozen models (2,000 sensors took 6.5 s to load otherwise).
    found: dict[str, ProfileError | None] = {}
    problems = []
    for s_index, lora_source in enumerate(config.lora):
        for index, sensor in enumerate(lora_source.devices):
            if sensor.profile not in found:
                try:
                    load_lora_profile(sensor.profile, extra_dirs=extra)
                    found[sensor.profile] = None
                except ProfileError as exc:
                    found[sensor.profile] = exc
            error = found[sensor.profile]
            if error is not None:
                where = located(path, source, ("lora", s_index, "devices", index, "profile"))
                problems.append(f"{where}: {error}")
    return problems


def _check_reader_profiles(config: GatewayConfig, path: Path, source: LocatedYaml
                           ) -> list[str]:
    """A badge reader's profile that does not exist (``run`` refuses it at start: validating
    must say so first)."""
    extra = [config.gateway.profiles_dir] if config.gateway.profiles_dir else []
    problems = []
    for index, reader in enumerate(config.readers):
        try:
            load_reader_profile(reader.profile, extra_dirs=extra)
        except ProfileError as exc:
            problems.append(f"{located(path, source, ('readers', index, 'profile'))}: {exc}")
    return problems


def _check_profiles(config: GatewayConfig, path: Path, source: LocatedYaml) -> list[str]:
    """A device's profile that does not exist, or a quantity its profile lacks."""
    problems = []
    for index, device in enumerate(config.devices):
        try:
            profile = config.profile_of(device)
        except ProfileError as exc:
            problems.append(f"{located(path, source, ('devices', index, 'profile'))}: {exc}")
            continue
        for quantity in device.quantities or []:
            if quantity not in profile.points:
                close = difflib.get_close_matches(quantity, list(profile.points), n=1)
                hint = f"did you mean '{close[0]}'?" if close else "see `edge-agent profiles show`"
                where = located(path, source, ("devices", index, "quantities"))
                problems.append(f"{where}: profile {profile.id} has no quantity '{quantity}'; "
                                f"{hint}")
    return problems


def _raw_profile_problems(data: dict[str, Any], path: Path, source: LocatedYaml) -> list[str]:
    """Profiles named in a file that failed validation: reported in the same pass."""
    section = data.get("gateway")
    profiles_dir = section.get("profiles_dir") if isinstance(section, dict) else None
    extra = [path.parent / profiles_dir] if isinstance(profiles_dir, str) else []
    problems = []
    devices = data.get("devices")
    for index, device in enumerate(devices if isinstance(devices, list) else []):
        profile = device.get("profile") if isinstance(device, dict) else None
        if isinstance(profile, str):
            try:
                load_profile(profile, extra_dirs=extra)
            except ProfileError as exc:
                problems.append(f"{located(path, source, ('devices', index, 'profile'))}: {exc}")
    return problems


def _check_car_park_inputs(config: GatewayConfig, path: Path, source: LocatedYaml) -> list[str]:
    """Each lane's quantity is read from its device, each spot sensor says spot_occupied."""
    if not config.car_parks:
        return []
    read = {device.name: set(device.quantities or config.profile_of(device).points)
            for device in config.devices}
    profiles = config.lora_profiles()
    read |= {sensor.name: set(profiles[sensor.profile].quantities())
             for lora_source in config.lora for sensor in lora_source.devices}
    problems = []
    for index, park in enumerate(config.car_parks):
        wanted = [(lane.device, lane.quantity) for lane in park.sources()]
        for device, quantity in wanted + [(spot, "spot_occupied") for spot in park.spots]:
            if quantity not in read[device]:
                problems.append(
                    f"{located(path, source, ('car_parks', index))}: device {device} does not "
                    f"read {quantity} (it reads {', '.join(sorted(read[device]))}); pick one of "
                    "those, or add it to the device's quantities")
    return problems


def _problems(path: Path, problems: list[str]) -> ConfigError:
    """Every problem of a file in one error: an installer fixes them all in one go."""
    return ConfigError("\n".join([f"{path}: {len(problems)} problem(s):",
                                   *(f"  {problem}" for problem in problems)]))


def load_config(path: Path) -> GatewayConfig:
    """Read, validate and cross-check a gateway file; ConfigError lists every problem.

    Each problem says where (file:line and field) and what to write instead; the profile
    checks run even when fields are wrong, so a second pass finds nothing new.
    """
    try:
        raw = path.read_bytes()
        text = raw.decode("utf-8")
        data = tomllib.loads(text)
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ConfigError(f"{path}:{line}: not UTF-8 text (byte {raw[exc.start]:#04x}); save "
                          "the file as UTF-8") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from exc
    except RecursionError:
        raise ConfigError(f"{path}: invalid TOML: nested too deeply") from None
    source = locate_toml(text, data)
    try:
        config = validate(GatewayConfig, data)
    except Invalid as exc:
        problems = validation_problems(exc, path, source, GatewayConfig, data=data)
        raise _problems(path, problems + _raw_profile_problems(data, path, source)) from exc
    section = config.gateway
    gateway = msgspec.structs.replace(
        section, data_dir=path.parent / section.data_dir,
        profiles_dir=path.parent / section.profiles_dir if section.profiles_dir else None,
    )  # absolute paths stay as they are: joining keeps the right-hand one
    sync = msgspec.structs.replace(config.sync, **{
        name: path.parent / value for name in ("ca_bundle", "client_cert", "client_key")
        if (value := getattr(config.sync, name)) is not None})
    lora = [msgspec.structs.replace(lora_source, ca_file=path.parent / lora_source.ca_file)
            if lora_source.ca_file else lora_source for lora_source in config.lora]
    config = msgspec.structs.replace(config, gateway=gateway, sync=sync, lora=lora)
    problems = (_check_profiles(config, path, source) + _check_lora_profiles(config, path, source)
                + _check_reader_profiles(config, path, source))
    if not problems:  # the car parks' inputs need every profile
        problems = _check_car_park_inputs(config, path, source)
    if problems:
        raise _problems(path, problems)
    return config
