"""The hub's maintenance timer and service (packaging/systemd/ponton-hub-maintain.*): systemd
itself accepts them, silently, and the service runs the documented command."""

from __future__ import annotations

import configparser
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.helpers.doc_commands import ROOT

UNITS = ROOT / "packaging" / "systemd"
SERVICE, TIMER = "ponton-hub-maintain.service", "ponton-hub-maintain.timer"
ANALYZE = shutil.which("systemd-analyze")
SYSTEM_UNITS = Path("/usr/lib/systemd/system")

pytestmark = pytest.mark.skipif(
    ANALYZE is None or not SYSTEM_UNITS.is_dir(),
    reason="systemd-analyze or the host's systemd units are absent (apt install systemd)")


def _section(name: str, section: str) -> configparser.SectionProxy:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys are CamelCase
    parser.read_string((UNITS / name).read_text(encoding="utf-8"))
    return parser[section]


def _analyze(root: Path, timer_text: str) -> subprocess.CompletedProcess[str]:
    """``systemd-analyze verify`` of both units in a scratch root with the host's units."""
    assert ANALYZE is not None
    shutil.copytree(SYSTEM_UNITS, root / "usr/lib/systemd/system", symlinks=True)
    stub = root / _section(SERVICE, "Service")["ExecStart"].split()[0].lstrip("/")
    stub.parent.mkdir(parents=True)
    stub.write_text("#!/bin/sh\n", encoding="utf-8")
    stub.chmod(0o755)
    installed = root / "etc/systemd/system"
    installed.mkdir(parents=True)
    shutil.copy(UNITS / SERVICE, installed / SERVICE)
    (installed / TIMER).write_text(timer_text, encoding="utf-8")
    return subprocess.run([ANALYZE, "verify", "--man=no", f"--root={root}", SERVICE, TIMER],
                          capture_output=True, text=True, timeout=60, check=False)


def test_systemd_accepts_the_timer_and_its_service(tmp_path: Path) -> None:
    done = _analyze(tmp_path, (UNITS / TIMER).read_text(encoding="utf-8"))
    assert (done.returncode, done.stdout + done.stderr) == (0, "")
    assert _section(SERVICE, "Service")["ExecStart"].endswith("sync-server db maintain")
    assert _section(SERVICE, "Service")["Type"] == "oneshot"


def test_verify_would_catch_a_bad_schedule(tmp_path: Path) -> None:
    text = (UNITS / TIMER).read_text(encoding="utf-8")
    assert "\nOnCalendar=*:0/5\n" in text
    done = _analyze(tmp_path, text.replace("OnCalendar=*:0/5", "OnCalendar=every five"))
    assert "Failed to parse calendar specification" in done.stderr, done.stderr
    assert done.returncode != 0
