"""Docs that cannot drift: every command and every configuration field is documented."""

from __future__ import annotations

from pathlib import Path

import typer

from edge_agent.cli import app
from edge_agent.config import (
    BusConfig,
    DeviceConfig,
    GatewaySection,
    LoraConfig,
    LoraDeviceConfig,
    OutboxSection,
    SyncSection,
    TicConfig,
)
from edge_agent.schema import field_names
from sync_server.cli import app as hub_app

ROOT = Path(__file__).resolve().parents[1]


def _commands(group: typer.Typer, prefix: str = "") -> list[str]:
    for command in group.registered_commands:
        assert command.callback is not None
        assert command.callback.__doc__, f"{command.name} has no help text"
    names = [f"{prefix}{c.name or c.callback.__name__.replace('_', '-')}".strip()
             for c in group.registered_commands if c.callback is not None]
    for sub in group.registered_groups:
        assert sub.typer_instance is not None
        names += _commands(sub.typer_instance, f"{prefix}{sub.name} ")
    return names


def test_readme_opens_with_the_two_set_up_commands() -> None:
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert lines[2:6] == ["```sh", lines[3], lines[4], "```"]
    assert lines[3].startswith("make demo")
    assert lines[4].startswith("make test")


def test_every_command_has_help_and_appears_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    commands = _commands(app)
    assert len(commands) >= 9
    for command in commands:
        assert f"edge-agent {command}" in readme, command


def test_every_hub_command_has_help_and_appears_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    commands = _commands(hub_app)
    assert len(commands) >= 12
    for command in commands:
        assert f"sync-server {command}" in readme, command


def test_ci_runs_the_readme_test_command() -> None:
    assert "make test" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")


def test_every_configuration_field_is_documented() -> None:
    doc = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    for model in (GatewaySection, OutboxSection, SyncSection, BusConfig, DeviceConfig,
                  TicConfig, LoraConfig, LoraDeviceConfig):
        for field in field_names(model):
            assert f"| `{field}` |" in doc, f"{model.__name__}.{field}"
