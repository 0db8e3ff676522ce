"""The gateway's systemd unit: systemd itself accepts it, and it keeps the hardening it promises.

``systemd-analyze verify`` checks the unit in a scratch root holding the host's own units and
a stand-in for the agent's executable (it refuses an ExecStart that does not exist). It
reports unknown keys and bad values as warnings with exit status 0, so the test requires
silence, not only the status.
"""

from __future__ import annotations

import configparser
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.helpers.doc_commands import ROOT, parse_error

UNIT = ROOT / "packaging" / "systemd" / "ponton-agent.service"
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
HOST_UNITS = next((p for p in (Path("/usr/lib/systemd/system"), Path("/lib/systemd/system"))
                   if p.is_dir()), None)

needs_systemd_analyze = pytest.mark.skipif(
    SYSTEMD_ANALYZE is None or HOST_UNITS is None,
    reason="systemd-analyze or the host's systemd units are absent (apt install systemd)")


def _service() -> configparser.SectionProxy:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys are CamelCase
    parser.read_string(UNIT.read_text(encoding="utf-8"))
    return parser["Service"]


def _verify(unit_text: str, root: Path) -> subprocess.CompletedProcess[str]:
    """``systemd-analyze verify`` of ``unit_text`` installed in the scratch ``root``."""
    assert SYSTEMD_ANALYZE is not None
    assert HOST_UNITS is not None
    shutil.copytree(HOST_UNITS, root / "usr/lib/systemd/system", symlinks=True)
    program = root / _service()["ExecStart"].split()[0].lstrip("/")
    program.parent.mkdir(parents=True)
    program.write_text("#!/bin/sh\n", encoding="utf-8")
    program.chmod(0o755)
    units = root / "etc/systemd/system"
    units.mkdir(parents=True)
    (units / UNIT.name).write_text(unit_text, encoding="utf-8")
    return subprocess.run([SYSTEMD_ANALYZE, "verify", "--man=no", f"--root={root}", UNIT.name],
                          capture_output=True, text=True, timeout=60, check=False)


@needs_systemd_analyze
def test_systemd_accepts_the_unit_without_a_warning(tmp_path: Path) -> None:
    done = _verify(UNIT.read_text(encoding="utf-8"), tmp_path)
    assert (done.returncode, done.stdout + done.stderr) == (0, "")


@needs_systemd_analyze
@pytest.mark.parametrize(("line", "mistake"), [
    ("WatchdogSec=60s", "WatchdogSecs=60s"),
    ("Type=notify", "Type=notifyy"),
    ("ProtectSystem=strict", "ProtectSystem=very"),
])
def test_verify_would_catch_a_mistake_in_the_unit(tmp_path: Path, line: str,
                                                  mistake: str) -> None:
    text = UNIT.read_text(encoding="utf-8")
    assert f"\n{line}\n" in text
    done = _verify(text.replace(f"\n{line}\n", f"\n{mistake}\n"), tmp_path)
    key, value = mistake.split("=")
    assert f"{UNIT.name}:" in done.stderr
    assert key in done.stderr or value in done.stderr, done.stderr


def test_the_unit_is_hardened_as_documented() -> None:
    service = _service()
    assert {key: service.get(key) for key in (
        "Type", "User", "SupplementaryGroups", "NoNewPrivileges", "ProtectSystem",
        "ProtectHome", "PrivateTmp", "ReadWritePaths", "Restart", "StateDirectory",
        "CapabilityBoundingSet")} == {
        "Type": "notify", "User": "ponton", "SupplementaryGroups": "dialout",
        "NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes",
        "PrivateTmp": "yes", "ReadWritePaths": "/var/lib/ponton", "Restart": "on-failure",
        "StateDirectory": "ponton", "CapabilityBoundingSet": ""}
    assert int(service["WatchdogSec"].removesuffix("s")) >= 10  # pinged every half of it
    assert "PrivateDevices" not in service  # the serial ports must stay visible


def test_the_unit_starts_the_agent_with_its_config_in_etc_ponton() -> None:
    program, *args = _service()["ExecStart"].split()
    assert program == "/opt/ponton/venv/bin/edge-agent"
    assert args == ["run", "--config", "/etc/ponton/gateway.toml"]
    assert parse_error(("edge-agent", *args)) is None
