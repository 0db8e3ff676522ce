"""Gateway TOML files: what loads, and the message each mistake gets."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from edge_agent.config import load_config
from edge_agent.errors import ConfigError

VALID = """
[gateway]
id = "dk-marina-01"
data_dir = "var"

[outbox]
quota_mb = 64

[[buses]]
name = "pontoon-a"
serial = "/dev/ttyUSB0"
baudrate = 9600

[[buses]]
name = "switchboard"
tcp = "192.168.1.40:502"
timeout_ms = 1000

[[devices]]
name = "berth-a12"
bus = "pontoon-a"
profile = "eastron-sdm120"
unit = 12
quantities = ["active_energy_import", "active_power"]

[[devices]]
name = "feeder"
bus = "switchboard"
profile = "eastron-sdm630"
unit = 1
interval_s = 5
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gateway.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_valid_file_loads_with_data_dir_beside_it(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, VALID))
    assert config.gateway.id == "dk-marina-01"
    assert config.gateway.data_dir == tmp_path / "var"
    assert [d.name for d in config.devices] == ["berth-a12", "feeder"]
    link = config.buses[1].link_settings()
    assert (link.transport, link.target, link.timeout_s) == ("tcp", "192.168.1.40:502", 1.0)
    assert config.buses[0].link_settings().is_rtu


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ('bus = "pontoon-a"', 'bus = "pontoon-b"',
         "no bus named 'pontoon-b'; did you mean 'pontoon-a'?"),
        ('profile = "eastron-sdm120"', 'profile = "eastron-sdm12"',
         "did you mean 'eastron-sdm120'?"),
        ('"active_power"]', '"active_powr"]',
         "has no quantity 'active_powr'; did you mean 'active_power'?"),
        ("interval_s = 5", "interval_s = 0",
         "devices[feeder].interval_s: Input should be greater"),
        ("unit = 12\n", "unit = 300\n",
         "devices[berth-a12].unit: Input should be less than or equal to 247"),
        ('tcp = "192.168.1.40:502"', 'tcp = "192.168.1.40:99999"',
         "buses[switchboard].tcp: '192.168.1.40:99999' is not HOST:PORT"),
        ('quantities = ["active_energy_import", "active_power"]', "quantities = []",
         "devices[berth-a12].quantities: List should have at least 1 item"),
        ('tcp = "192.168.1.40:502"', 'serial = "/dev/../dev/ttyUSB0"',
         "buses pontoon-a and switchboard both use /dev/../dev/ttyUSB0; one serial line is one"),
        ('tcp = "192.168.1.40:502"', 'tcp = "plc..local:502"',
         "buses[switchboard].tcp: 'plc..local:502' has a host name with an empty label"),
        ('tcp = "192.168.1.40:502"', 'tcp = "192.168.1.40"',
         "buses[switchboard].tcp: '192.168.1.40' is not HOST:PORT, e.g. \"192.168.1.40:502\""),
        ('baudrate = 9600', 'baudrat = 9600',
         "buses[pontoon-a].baudrat: unknown field; did you mean 'baudrate'?"),
        ('serial = "/dev/ttyUSB0"', 'serial = "/dev/ttyUSB0"\ntcp = "h:1"', "exactly one of"),
        ('name = "feeder"', 'name = "berth-a12"', "device name 'berth-a12' is used twice"),
        ("[gateway]", "[gateway\n", "invalid TOML"),
        ('id = "dk-marina-01"\n', "", "gateway.id: Field required"),
    ],
)
def test_each_mistake_gets_a_message_naming_the_field(
    tmp_path: Path, old: str, new: str, expected: str
) -> None:
    assert old in VALID
    path = _write(tmp_path, VALID.replace(old, new, 1))
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(path) in str(caught.value)
    assert expected in str(caught.value)


def test_two_devices_on_one_unit_id_are_refused(tmp_path: Path) -> None:
    text = VALID.replace('bus = "switchboard"', 'bus = "pontoon-a"').replace(
        "unit = 1\n", "unit = 12\n")
    with pytest.raises(ConfigError, match="berth-a12 and feeder both use unit 12 on bus pontoon-a"):
        load_config(_write(tmp_path, text))


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "nope.toml")


def test_every_mistake_is_reported_in_one_pass_with_its_line_field_and_fix(
    tmp_path: Path,
) -> None:
    text = (VALID.replace('baudrate = 9600', 'baudrat = 9600')
            .replace("interval_s = 5", 'interval_s = "five"')
            .replace("unit = 12\n", 'unit = "12a"\n')
            .replace('profile = "eastron-sdm630"', 'profile = "eastron-sdm63"'))
    path = _write(tmp_path, text)
    lines = text.splitlines()

    def line_of(fragment: str) -> int:
        return next(number for number, line in enumerate(lines, 1) if fragment in line)

    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert f"{path}: 4 problem(s):" in message
    assert (f"gateway.toml:{line_of('baudrat')}: buses[pontoon-a].baudrat: unknown field; "
            "did you mean 'baudrate'?") in message
    assert (f"gateway.toml:{line_of('interval_s')}: devices[feeder].interval_s: 'five' is not "
            "a number; write one without quotes, e.g. interval_s = 5") in message
    assert (f"gateway.toml:{line_of('unit = ')}: devices[berth-a12].unit: '12a' is not a whole "
            "number") in message
    assert f"gateway.toml:{line_of('eastron-sdm63')}: devices[feeder].profile: " in message
    assert "did you mean 'eastron-sdm630'?" in message
    assert "unable to parse" not in message


def test_cross_checks_report_together_with_lines(tmp_path: Path) -> None:
    text = (VALID.replace('"active_power"]', '"active_powr"]')
            .replace('profile = "eastron-sdm630"', 'profile = "eastron-sdm63"'))
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert "2 problem(s)" in message
    assert ("gateway.toml:24: devices[berth-a12].quantities: profile eastron-sdm120 has no "
            "quantity 'active_powr'; did you mean 'active_power'?") in message
    assert "gateway.toml:29: devices[feeder].profile: no device profile 'eastron-sdm63'" in message


@pytest.mark.parametrize(("old", "new", "expected"), [
    ("quota_mb = 64", "quota_mb = inf",
     "outbox.quota_mb: Input should be less than or equal to 1048576"),
    ('data_dir = "var"', 'data_dir = "var\\u0000x"', "gateway.data_dir: a path cannot hold a NUL"),
    ('profile = "eastron-sdm120"', f'profile = "{"m" * 300}"', "no device profile 'mmm"),
    ("baudrate = 9600", "baudrate = 96000000000",
     "buses[pontoon-a].baudrate: Input should be less than or equal to 12000000"),
    ("quota_mb = 64", "quota_mb = 64\nx = " + "[" * 3000 + "]" * 3000,
     "invalid TOML: nested too deeply"),
], ids=["infinite-quota", "nul-in-a-path", "profile-name-too-long", "baudrate-past-a-c-long",
        "nested-too-deeply"])
def test_values_that_broke_the_agent_later_are_refused_when_loading(
    tmp_path: Path, old: str, new: str, expected: str
) -> None:
    """Each of these loaded, then crashed the agent with a traceback (an infinite quota at
    start, a NUL at the first open, a baud rate pyserial cannot pass to the kernel at every
    poll) or crashed the loading itself (a file name too long, arrays nested past Python's
    recursion limit)."""
    assert old in VALID
    with pytest.raises(ConfigError, match=re.escape(expected)):
        load_config(_write(tmp_path, VALID.replace(old, new, 1)))


def test_a_file_that_is_not_utf8_is_a_config_error_naming_its_line(tmp_path: Path) -> None:
    path = tmp_path / "gateway.toml"
    path.write_bytes(VALID.replace('"var"', '"donn\xe9es"').encode("latin-1"))
    with pytest.raises(ConfigError, match=r"gateway\.toml:4: not UTF-8 text \(byte 0xe9\); "
                                          "save the file as UTF-8"):
        load_config(path)


def test_a_profiles_dir_holding_a_file_that_is_not_utf8_still_explains_a_missing_profile(
    tmp_path: Path,
) -> None:
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "old.yaml").write_bytes("model: compteur \xe9lectrique\n"
                                                 .encode("latin-1"))
    text = VALID.replace('data_dir = "var"', 'data_dir = "var"\nprofiles_dir = "site"').replace(
        'profile = "eastron-sdm630"', 'profile = "eastron-sdm63"')
    with pytest.raises(ConfigError, match="did you mean 'eastron-sdm630'"):
        load_config(_write(tmp_path, text))


def test_a_badge_reader_profile_that_does_not_exist_is_found_when_validating(
    tmp_path: Path,
) -> None:
    """``run`` refused it at start while ``config validate`` said the file was fine."""
    text = VALID.replace("[[devices]]", """[[devices]]
name = "relays"
bus = "switchboard"
profile = "waveshare-relay-8ch"
unit = 9

[[gates]]
name = "gate-a"
relay = "relays"
channel = 1

[[readers]]
name = "r1"
profile = "rdm630"
port = "/dev/ttyUSB1"
gate = "gate-a"

[[devices]]""", 1)
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    line = text.splitlines().index('profile = "rdm630"') + 1
    assert (f"gateway.toml:{line}: readers[r1].profile: no badge reader profile 'rdm630'"
            in str(caught.value))
    assert "did you mean 'rdm6300'?" in str(caught.value)


def test_a_lora_broker_url_that_is_not_one_is_found_when_validating(tmp_path: Path) -> None:
    """``run`` refused it at start while ``config validate`` said the file was fine."""
    text = VALID + """
[[lora]]
broker = "broker.lan:1883"
application_ids = ["app1"]
"""
    with pytest.raises(ConfigError) as caught:
        load_config(_write(tmp_path, text))
    assert ("lora.0.broker: broker 'broker.lan:1883' is not mqtt://HOST[:PORT] or "
            "mqtts://HOST[:PORT]") in str(caught.value)
