"""``[[car_parks]]`` in the gateway file: every mistake gets a message naming what to fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_agent.config import load_config
from edge_agent.errors import ConfigError

BASE = """
[gateway]
id = "parking-gw"
data_dir = "data"

[[buses]]
name = "field"
tcp = "127.0.0.1:1502"

[[devices]]
name = "relays"
bus = "field"
profile = "waveshare-relay-8ch"
unit = 1

[[devices]]
name = "sfar"
bus = "field"
profile = "isma-sfar-4di"
unit = 2

[[gates]]
name = "barrier-in"
relay = "relays"
channel = 1
"""

PARK = """
[[car_parks]]
name = "P-gare"
capacity = 120
entries = [{device = "sfar", quantity = "pulse_count_1"}]
exits = [{device = "sfar", quantity = "pulse_count_2"}]
sign = {board = "relays", channel = 2}
reset_at = "04:00"
"""


def load(tmp_path: Path, text: str) -> None:
    path = tmp_path / "gateway.toml"
    path.write_text(BASE + text, encoding="utf-8")
    load_config(path)


def test_a_valid_car_park_is_a_device_rules_may_watch(tmp_path: Path) -> None:
    path = tmp_path / "gateway.toml"
    path.write_text(BASE + PARK + """
[[rules]]
name = "nearly-full"
device = "P-gare"
quantity = "parking_occupancy"
kind = "above"
threshold = 110
""", encoding="utf-8")
    config = load_config(path)
    (park,) = config.car_parks
    assert (park.full_level(), park.available_level(), park.time_zone) == (
        120, 119, "Europe/Paris")
    assert "P-gare" in config.device_names()
    assert config.relay_outputs()["relays", 2] == "car park P-gare"


@pytest.mark.parametrize(("old", "new", "expected"), [
    ('"pulse_count_1"', '"pulse_cont_1"', "did you mean 'pulse_count_1'?"),
    ('"pulse_count_1"', '"voltage"', "'voltage' neither counts"),
    ('device = "sfar", quantity = "pulse_count_2"', 'device = "sfra", quantity = "pulse_count_2"',
     "source 'sfra' is not declared; did you mean 'sfar'?"),
    ("channel = 2", "channel = 1", "sign channel 1 of relays belongs to barrier-in"),
    ('"04:00"', '"4h"', "reset_at '4h' is not HH:MM"),
    ('reset_at = "04:00"', 'reset_at = "04:00"\ntime_zone = "Europe/Pariss"',
     "'Europe/Pariss' is not an IANA time zone"),
    ("capacity = 120", "capacity = 120\nfull_at = 130", "full_at 130 is above the capacity"),
    ("capacity = 120", "capacity = 120\navailable_below = 121", "available_below 121 must be"),
    ("capacity = 120", "capacity = 120\nreset_to = 200", "reset_to 200 is above the capacity"),
    ("capacity = 120", "capacity = 3\nspots = [\"sfar\"]\noccupancy_from_spots = true",
     "occupancy_from_spots needs a sensor on every spot: 3 spots, 1 sensors"),
    ('name = "P-gare"', 'name = "sfar"', "car park sfar has the name of a device"),
    ('"pulse_count_2"', '"pulse_count_5"', "device sfar does not read pulse_count_5 (it reads "
     "pulse_count_1, pulse_count_2, pulse_count_3, pulse_count_4)"),
    ('"pulse_count_2"}]\n', '"pulse_count_2"}]\nspots = ["relays"]\n',
     "device relays does not read spot_occupied"),
    ("capacity = 120", "capacity = 0", "greater than or equal to 1"),
])
def test_each_mistake_gets_a_message(tmp_path: Path, old: str, new: str, expected: str) -> None:
    assert old in PARK
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, PARK.replace(old, new, 1))
    assert expected in str(caught.value)


def test_no_lane_and_no_spots_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="give entries and exits to count"):
        load(tmp_path, '[[car_parks]]\nname = "P"\ncapacity = 10\n')


def test_a_sign_on_a_rule_s_latch_and_two_parks_of_one_name_are_refused(tmp_path: Path
                                                                         ) -> None:
    rule = """
[[rules]]
name = "flood"
device = "sfar"
quantity = "pulse_count_3"
kind = "above"
threshold = 5
on_raise = [{type = "latch", board = "relays", channel = 2}]
"""
    with pytest.raises(ConfigError, match="sign channel 2 of relays belongs to rule flood"):
        load(tmp_path, PARK + rule)
    with pytest.raises(ConfigError, match="car park name 'P-gare' is used twice"):
        load(tmp_path, PARK + PARK.replace("channel = 2", "channel = 3"))


def test_the_example_of_docs_car_parks_is_valid(tmp_path: Path) -> None:
    text = (Path(__file__).parent.parent / "docs" / "car-parks.md").read_text(encoding="utf-8")
    example = text.split("```toml\n")[1].split("```")[0]
    path = tmp_path / "gateway.toml"
    path.write_text('[gateway]\nid = "gw"\ndata_dir = "data"\n\n' + example, encoding="utf-8")
    (park,) = load_config(path).car_parks
    assert (park.full_level(), park.available_level(), park.reset_to) == (118, 115, 6)
