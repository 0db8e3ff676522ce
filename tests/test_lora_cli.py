"""``edge-agent lora decode`` and LoRa sensors in ``edge-agent profiles``, run as a real process
in an 80-column terminal."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from edge_agent.profiles import PROFILE_DIR, available_lora_profiles, load_lora_profile
from edge_agent.quantities import lookup_quantity, rounded

AM319 = ("0367EE0004687C05000106CB02077DA803087D2500097366270A7D07000B7D20000C7D3000")
LDDS75 = "0D0A07E900000001"


def edge_agent(*args: str) -> subprocess.CompletedProcess[str]:
    """Run ``edge-agent`` as an installer does, in a terminal 80 columns wide."""
    return subprocess.run(
        [sys.executable, "-m", "edge_agent", *args],
        capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "COLUMNS": "80"},
    )


def fits_80_columns(text: str) -> bool:
    return all(len(line) <= 80 for line in text.splitlines())


def test_decode_prints_each_value_with_its_unit_in_80_columns() -> None:
    result = edge_agent("lora", "decode", "--profile", "milesight-am319", "--fport", "85", AM319)
    assert result.returncode == 0, result.stderr
    assert fits_80_columns(result.stdout)
    rows = {line.split("│")[1].strip(): [cell.strip() for cell in line.split("│")[2:4]]
            for line in result.stdout.splitlines() if line.count("│") == 4}
    expected = load_lora_profile("milesight-am319").decode(85, bytes.fromhex(AM319))
    assert set(rows) == {value.quantity for value in expected}
    for value in expected:
        spec = lookup_quantity(value.quantity)
        assert spec is not None
        assert rows[value.quantity] == [f"{rounded(value.quantity, value.value):g}", spec.unit]


def test_decode_json_gives_quantity_to_value() -> None:
    result = edge_agent("lora", "decode", "--profile", "dragino-ldds75", "--fport", "2",
                        "--json", "0d 0a 07 e9 00 00 00 01")
    assert result.returncode == 0, result.stderr
    expected = load_lora_profile("dragino-ldds75").decode(2, bytes.fromhex(LDDS75))
    assert json.loads(result.stdout) == {
        value.quantity: rounded(value.quantity, value.value) for value in expected}


@pytest.mark.parametrize(("args", "message"), [
    (("--profile", "dragino-ldds75", "--fport", "2", "0D0A07ZZ"),
     "'0D0A07ZZ' is not a hex payload"),
    (("--profile", "dragino-ldds75", "--fport", "2", "0D0A07E9000000"),
     "dragino-ldds75 fPort 2: payload truncated at byte 7: this layout needs 8 bytes"),
    (("--profile", "dragino-ldds75", "--fport", "9", LDDS75),
     "no layout for fPort 9 (it decodes fPorts 2, 5)"),
    (("--profile", "milesight-ws301", "--fport", "85", "0175640D7D0100"),
     "unknown channel 0x0D type 0x7D at byte 3"),
    (("--profile", "dragino-ldds57", "--fport", "2", LDDS75), "did you mean 'dragino-ldds75'?"),
    (("--profile", "eastron-sdm120", "--fport", "2", LDDS75),
     "'eastron-sdm120' is not a LoRa sensor profile"),
])
def test_decode_errors_are_one_line_and_exit_2(args: tuple[str, ...], message: str) -> None:
    result = edge_agent("lora", "decode", *args)
    assert result.returncode == 2
    assert result.stderr.startswith("error: ")
    assert message in result.stderr
    assert result.stderr.count("\n") == 1
    assert "Traceback" not in result.stderr


def test_lora_help_names_the_app_and_decode() -> None:
    result = edge_agent("lora", "--help")
    assert result.returncode == 0
    assert "LoRaWAN sensors through ChirpStack" in result.stdout
    assert "decode" in result.stdout


def test_profiles_list_has_the_lora_sensors() -> None:
    result = edge_agent("profiles", "list")
    assert result.returncode == 0, result.stderr
    assert "LoRa sensors" in result.stdout
    for profile_id in available_lora_profiles():
        assert profile_id in result.stdout


def test_profiles_show_gives_ports_quantities_interval_and_battery() -> None:
    result = edge_agent("profiles", "show", "nwave-nps405")
    assert result.returncode == 0, result.stderr
    assert fits_80_columns(result.stdout)
    out = result.stdout
    assert "uplink every 24 h; offline after 60 h of silence" in out
    assert "battery low at or below 3.1 V (battery_voltage)" in out
    for port in ("1", "2", "3", "6", "10"):
        assert f"│ {port} " in out
    for quantity in load_lora_profile("nwave-nps405").quantities():
        assert quantity in out


def test_profiles_show_lists_milesight_records_and_the_ones_not_kept() -> None:
    result = edge_agent("profiles", "show", "milesight-am319")
    assert result.returncode == 0, result.stderr
    assert fits_80_columns(result.stdout)
    assert "03 67 +0" in result.stdout
    assert "read past, not kept" in result.stdout
    assert "battery: not reported" in result.stdout


def test_profiles_check_validates_a_lora_file(tmp_path: Path) -> None:
    path = tmp_path / "site-ldds75.yaml"
    shipped = (PROFILE_DIR / "dragino-ldds75.yaml").read_text(encoding="utf-8")
    path.write_text(shipped.replace("id: dragino-ldds75", "id: site-ldds75"), encoding="utf-8")
    result = edge_agent("profiles", "check", str(path))
    assert result.returncode == 0, result.stderr
    assert "site-ldds75" in result.stdout
    broken = tmp_path / "broken.yaml"
    broken.write_text(shipped.replace("id: dragino-ldds75", "id: broken").replace(
        "unit: m,", "unit: mm,"), encoding="utf-8")
    failed = edge_agent("profiles", "check", str(broken))
    assert failed.returncode == 2
    line = next(number for number, text in enumerate(shipped.splitlines(), 1)
                if text.strip().startswith("distance:"))
    assert f"broken.yaml:{line}: ports.2.fields.distance: distance is measured in 'm'" in (
        failed.stderr)


def test_profiles_schema_lora_is_the_lora_schema() -> None:
    result = edge_agent("profiles", "schema", "--lora")
    assert result.returncode == 0, result.stderr
    assert {"ports", "object", "battery_low"} <= set(json.loads(result.stdout)["properties"])
