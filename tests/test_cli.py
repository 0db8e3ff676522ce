"""The installer's command line, run as a real process: output, exit codes, no tracebacks."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from edge_agent.profiles import PROFILE_DIR, available_profiles, load_profile
from tests.conftest import SimulatorStarter


def edge_agent(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``edge-agent`` the way an installer does, through its console entry point."""
    return subprocess.run(
        [sys.executable, "-m", "edge_agent", *args],
        capture_output=True, text=True, timeout=60, cwd=cwd, check=False,
        env={**os.environ, "COLUMNS": "200"},
    )


def test_profiles_list_names_every_shipped_profile() -> None:
    result = edge_agent("profiles", "list")
    assert result.returncode == 0, result.stderr
    for profile_id in available_profiles():
        assert profile_id in result.stdout


def test_profiles_show_prints_points_and_the_read_plan() -> None:
    result = edge_agent("profiles", "show", "eastron-sdm630")
    assert result.returncode == 0, result.stderr
    assert "active_energy_import" in result.stdout
    assert "a full read on its factory line (RTU 9600 8N1) takes 4 request(s)" in result.stdout
    assert "a full read on Modbus TCP takes 4 request(s)" in result.stdout


def test_profiles_schema_is_json_schema_of_a_profile_file() -> None:
    result = edge_agent("profiles", "schema")
    schema = json.loads(result.stdout)
    assert {"points", "defaults", "limits"} <= set(schema["properties"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("profiles", "show", "eastron-sdm63"), "did you mean 'eastron-sdm630'?"),
        (("config", "validate", "/nonexistent/gateway.toml"), "cannot read"),
        (("devices", "read", "--profile", "eastron-sdm120", "--unit", "1"),
         "give exactly one of --tcp HOST:PORT or --serial PORT"),
        (("devices", "read", "--profile", "eastron-sdm120", "--unit", "1", "--serial",
          "/dev/nonexistent-tty"), "/dev/nonexistent-tty does not exist"),
        (("modbus", "scan", "--tcp", "127.0.0.1:9", "--parity", "X"), "--parity must be N, E or O"),
        (("devices", "read", "--profile", "eastron-sdm120", "--unit", "1", "--tcp",
          "127.0.0.1:99999"), "is not HOST:PORT with a port from 1 to 65535"),
        (("run", "--config", "/nonexistent.toml", "--log-level", "verbose"),
         "--log-level must be DEBUG, INFO, WARNING or ERROR"),
    ],
)
def test_user_errors_give_one_line_and_exit_2_without_traceback(
    args: tuple[str, ...], message: str
) -> None:
    result = edge_agent(*args)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_config_validate_warns_when_a_meter_ships_at_other_serial_settings(
    tmp_path: Path,
) -> None:
    path = tmp_path / "gateway.toml"
    path.write_text(
        '[gateway]\nid = "gw"\ndata_dir = "var"\n'
        '[[buses]]\nname = "pontoon"\nserial = "/dev/ttyUSB0"\nbaudrate = 9600\n'
        '[[devices]]\nname = "berth-1"\nbus = "pontoon"\nprofile = "eastron-sdm120"\nunit = 1\n',
        encoding="utf-8",
    )
    result = edge_agent("config", "validate", "--config", str(path))
    assert result.returncode == 0, result.stderr
    assert "berth-1: eastron-sdm120 ships at 2400 8N1 but bus pontoon runs at 9600" in (
        result.stdout)


def test_config_validate_summarises_a_good_file(tmp_path: Path) -> None:
    path = tmp_path / "gateway.toml"
    path.write_text(
        '[gateway]\nid = "gw"\ndata_dir = "var"\n'
        '[[buses]]\nname = "lan"\ntcp = "127.0.0.1:5020"\n'
        '[[devices]]\nname = "feeder"\nbus = "lan"\nprofile = "eastron-sdm630"\nunit = 1\n',
        encoding="utf-8",
    )
    result = edge_agent("config", "validate", str(path))
    assert result.returncode == 0, result.stderr
    assert "ok" in result.stdout
    assert "feeder" in result.stdout


def test_devices_read_json_over_tcp_gives_every_quantity(
    simulator_process: SimulatorStarter,
) -> None:
    endpoint = simulator_process("--profile", "eastron-sdm630", "--tcp", "0", "--unit", "3")
    result = edge_agent("devices", "read", "--profile", "eastron-sdm630", "--tcp", endpoint,
                        "--unit", "3", "--json")
    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout)
    assert set(values) == set(load_profile("eastron-sdm630").points)
    assert 200 < values["voltage_l1"] < 260
    assert values["voltage_l1"] == round(values["voltage_l1"], 1)  # no float32 noise
    assert values["active_energy_import"] > 0


def test_devices_read_table_over_rtu_prints_units(simulator_process: SimulatorStarter) -> None:
    path = simulator_process("--profile", "eastron-sdm120", "--pty", "--baud", "9600",
                             "--unit", "5")
    result = edge_agent("devices", "read", "--profile", "eastron-sdm120", "--serial", path,
                        "--baud", "9600", "--unit", "5")
    assert result.returncode == 0, result.stderr
    assert "active_energy_import" in result.stdout
    assert "kWh" in result.stdout


def test_devices_read_of_a_silent_unit_says_what_to_check(
    simulator_process: SimulatorStarter,
) -> None:
    endpoint = simulator_process("--profile", "eastron-sdm120", "--tcp", "0", "--unit", "1")
    result = edge_agent("devices", "read", "--profile", "eastron-sdm120", "--tcp", endpoint,
                        "--unit", "2", "--timeout-ms", "200")
    assert result.returncode == 2
    # Modbus TCP: no wiring or baud rate to check, the unit id and the device's power.
    assert "no answer within 0.2 s (check the unit id and that the device is powered)" in (
        result.stderr)


def test_modbus_scan_finds_exactly_the_units_on_the_line(
    simulator_process: SimulatorStarter,
) -> None:
    path = simulator_process("--profile", "eastron-sdm120", "--pty", "--baud", "9600",
                             "--unit", "2", "--unit", "7")
    result = edge_agent("modbus", "scan", "--serial", path, "--baud", "9600", "--first", "1",
                        "--last", "10", "--timeout-ms", "100")
    assert result.returncode == 0, result.stderr
    assert "2 device(s)" in result.stdout
    rows = [line.split("│")[1].strip() for line in result.stdout.splitlines()
            if line.startswith("│")]
    assert rows == ["2", "7"]


def test_a_site_profile_is_checked_and_then_used_by_a_gateway(tmp_path: Path) -> None:
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    shipped = (PROFILE_DIR / "eastron-sdm120.yaml").read_text(encoding="utf-8")
    (profiles / "site-meter.yaml").write_text(
        shipped.replace("id: eastron-sdm120", "id: site-meter"), encoding="utf-8")
    checked = edge_agent("profiles", "check", str(profiles / "site-meter.yaml"))
    assert checked.returncode == 0, checked.stderr
    # At the factory 2400 baud the 38-register hole costs more than a request; on TCP it does not.
    assert "a full read on its factory line (RTU 2400 8N1) takes 3 request(s)" in checked.stdout
    assert "a full read on Modbus TCP takes 2 request(s)" in checked.stdout

    config = tmp_path / "gateway.toml"
    config.write_text(
        '[gateway]\nid = "gw"\ndata_dir = "var"\nprofiles_dir = "profiles"\n'
        '[[buses]]\nname = "lan"\ntcp = "127.0.0.1:5020"\n'
        '[[devices]]\nname = "m"\nbus = "lan"\nprofile = "site-meter"\nunit = 1\n',
        encoding="utf-8",
    )
    validated = edge_agent("config", "validate", str(config))
    assert validated.returncode == 0, validated.stderr
    assert "site-meter" in validated.stdout


def test_profiles_check_names_the_line_of_a_mistake(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text((PROFILE_DIR / "eastron-sdm120.yaml").read_text(encoding="utf-8")
                      .replace("id: eastron-sdm120", "id: broken")
                      .replace("frequency: {address: 0x0046", "frequncy: {address: 0x0046"),
                      encoding="utf-8")
    result = edge_agent("profiles", "check", str(broken))
    assert result.returncode == 2
    assert "points.frequncy: unknown quantity 'frequncy'; did you mean 'frequency'?" in (
        result.stderr)
    assert "broken.yaml:" in result.stderr


def test_the_run_path_loads_no_ui_library() -> None:
    """A gateway runs for months on a Pi: typer and rich stay out of `edge-agent run`."""
    probe = subprocess.run(
        [sys.executable, "-c", "import sys; import edge_agent.launcher, edge_agent.daemon; "
         "print(sorted({'typer', 'rich'} & set(sys.modules)))"],
        capture_output=True, text=True, timeout=60, check=True,
    )
    assert probe.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("run", "--config", "/nonexistent/gateway.toml"), "error: cannot read"),
        (("run",), "give the gateway file: --config FILE (or set PONTON_CONFIG)"),
    ],
)
def test_run_errors_are_one_line_too(args: tuple[str, ...], message: str) -> None:
    env = {key: value for key, value in os.environ.items() if key != "PONTON_CONFIG"}
    result = subprocess.run([sys.executable, "-m", "edge_agent", *args], capture_output=True,
                            text=True, timeout=60, check=False, env=env)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_run_help_is_the_cli_help() -> None:
    result = edge_agent("run", "--help")
    assert result.returncode == 0
    assert "--log-level" in result.stdout


@pytest.mark.parametrize("args", [
    ("devices", "read", "--profile", "eastron-sdm120", "--unit", "abc"),
    ("devices", "nope"),
    ("profiles", "show", "--bogus"),
    ("status",),
])
def test_usage_errors_are_one_error_line_and_a_try_line_exit_2(args: tuple[str, ...]) -> None:
    env = {key: value for key, value in os.environ.items() if key != "PONTON_CONFIG"}
    result = subprocess.run([sys.executable, "-m", "edge_agent", *args], capture_output=True,
                            text=True, timeout=60, check=False, env=env)
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert lines[0].startswith("error: ")
    assert len(lines) <= 2
    assert lines[1:] == [] or lines[1].startswith("Try 'edge-agent ")


def test_help_shows_no_type_noise_and_no_boxes() -> None:
    result = edge_agent("devices", "read", "--help")
    assert result.returncode == 0
    assert "<bool>" not in result.stdout
    assert "╭" not in result.stdout
    assert "--json " in result.stdout


def test_devices_read_defaults_to_unit_1(simulator_process: SimulatorStarter) -> None:
    endpoint = simulator_process("--profile", "eastron-sdm120", "--tcp", "0")
    result = edge_agent("devices", "read", "--profile", "eastron-sdm120", "--tcp", endpoint,
                        "--json")
    assert result.returncode == 0, result.stderr
    assert "voltage" in json.loads(result.stdout)


def test_status_of_a_gateway_that_never_ran_says_so_and_exits_1(tmp_path: Path) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text('[gateway]\nid = "gw"\ndata_dir = "var"\n', encoding="utf-8")
    result = edge_agent("status", "--config", str(config))
    assert result.returncode == 1
    assert "the agent has not run yet" in result.stdout
    assert f"edge-agent run --config {config}" in result.stdout


def test_modbus_scan_over_tcp_keeps_going_past_silent_units_with_its_defaults(
    simulator_process: SimulatorStarter,
) -> None:
    """A TCP converter with meters in gaps: the link drops after silent units, the scan goes on."""
    endpoint = simulator_process("--profile", "eastron-sdm120", "--tcp", "0",
                                 "--unit", "1", "2", "3", "9", "12", "25")
    result = edge_agent("modbus", "scan", "--tcp", endpoint, "--last", "30", "--json")
    assert result.returncode == 0, result.stderr
    assert [row["unit"] for row in json.loads(result.stdout)] == [1, 2, 3, 9, 12, 25]


@pytest.mark.parametrize("profile_id", [*available_profiles(), "dragino-ldds75"])
def test_piped_profiles_show_at_80_columns_cuts_no_quantity_name(profile_id: str) -> None:
    result = subprocess.run([sys.executable, "-m", "edge_agent", "profiles", "show", profile_id],
                            capture_output=True, text=True, timeout=60, check=False,
                            env={**os.environ, "COLUMNS": "80"})
    assert result.returncode == 0, result.stderr
    assert "…" not in result.stdout
    assert all(len(line) <= 80 for line in result.stdout.splitlines())
    if profile_id in available_profiles():
        for quantity in load_profile(profile_id).points:
            assert re.search(rf"^{quantity} ", result.stdout, re.MULTILINE), quantity


def test_profiles_show_and_list_give_json() -> None:
    shown = json.loads(edge_agent("profiles", "show", "eastron-sdm630", "--json").stdout)
    assert set(shown["points"]) == set(load_profile("eastron-sdm630").points)
    assert len(shown["read_plan"]) == 4
    assert shown["read_plan_line"] == "RTU 9600 8N1"
    listed = json.loads(edge_agent("profiles", "list", "--json").stdout)
    assert [p["id"] for p in listed["devices"]] == available_profiles()
    assert "rdm6300" in [r["id"] for r in listed["readers"]]
    assert "dragino-ldds75" in [lp["id"] for lp in listed["lora"]]


def test_config_validate_gives_json(tmp_path: Path) -> None:
    path = tmp_path / "gateway.toml"
    path.write_text(
        '[gateway]\nid = "gw"\ndata_dir = "var"\n'
        '[[buses]]\nname = "lan"\ntcp = "127.0.0.1:5020"\n'
        '[[devices]]\nname = "feeder"\nbus = "lan"\nprofile = "eastron-sdm630"\nunit = 1\n',
        encoding="utf-8")
    result = edge_agent("config", "validate", str(path), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["devices"] == [{"device": "feeder", "bus": "lan", "unit": 1,
                                  "profile": "eastron-sdm630", "interval_s": 10.0,
                                  "requests_per_poll": 4}]
