"""Every command the docs show is one the tools accept, and the cheap ones run as printed.

The pages are README.md, docs/*.md and device_profiles/README.md. Each ```sh block gives its
commands (continuations joined; a synopsis's ``[--opt V]`` and ``a|b`` give every form), and
each is **parsed** by the real parser of its program: typer's click for ``edge-agent`` and
``sync-server`` (group by group, so an option after a subcommand must belong to it), the
daemon's argparse for ``edge-agent run``, each simulator's argparse through ``python -m``;
``make`` targets must be in the Makefile and ``export`` must set a variable an option reads.
Commands quoted in the text (`` `edge-agent status` ``) are references: their commands and
options must exist where written, but what they require may be left out.

Commands are **run** for real (subprocesses, scratch directory, no ``PONTON_*`` variables)
when they end by themselves and name no placeholder:

- hub, in page order on one scratch SQLite hub: ``db upgrade``, ``keys init``, ``keys show``,
  ``territory add``, ``site add``, ``gateway add``, ``gateway list``, ``token add``,
  ``token list``, and access-hub.md's ``policy set``/``show``/``publish`` and
  ``badge add``/``import``/``list`` (with its rules and CSV files), ``opendata list``,
  ``enable`` and ``disable``, ``db maintain``, ``retention set`` and ``show``; a territory
  a page uses without adding it is added first;
- agent: ``profiles list``/``show``/``check``/``schema``, ``lora decode``, ``version``,
  ``config validate`` (README's gateway file as ``gateway.toml``; device_profiles/README.md's
  example profile as ``my-meter.yaml``);
- simulators: ``--help`` and ``python -m simulators.lora --print-config`` (its output must also
  validate as a gateway fragment).

Only **parsed**: commands with a placeholder (``CODE``, ``URL``, ``C``, ``/dev/tty…``,
``192.168.1.40:502``, ``example.org`` hosts); commands that serve or listen until stopped
(``serve``, ``run``, ``listen``, simulators, ``make``); commands that need a running agent,
hardware, a broker, a provisioned gateway, records or a file the docs do not show
(``status``, ``provision``, ``sync``, ``policy status``, ``badge test``, ``gate open``,
``lora send``, ``rules test``, ``modbus scan``, ``devices read``, ``token revoke``,
``badge revoke``, ``bundle publish``) or that have little to show on an empty hub
(``alarm``, ``carpark``, ``report``: each hub command costs a second of start-up);
README's ``policy`` and ``badge`` lines (the rules they use are not shown); and the other
forms of a synopsis line.

Every ```toml block is a gateway file checked with ``edge-agent config validate``, whole or
appended to a minimal ``[gateway]`` header and the devices its comments say it uses
(``GATEWAY_BLOCKS``), except access-hub.md's access rules, which ``policy set`` runs.
Every ```yaml block of device_profiles/README.md is checked with ``edge-agent profiles check``,
whole (it has an ``id``) or below the top of a LoRa profile (``PROFILE_FRAGMENTS``).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from edge_agent.cli import app as agent_app
from sync_server.cli import app as hub_app
from tests.helpers.doc_commands import (
    DOCS,
    ROOT,
    Block,
    DocCommand,
    blocks,
    command_tree,
    envvars,
    inline_commands,
    leaf_commands,
    parse_error,
    shell_commands,
)

BIN = Path(sys.executable).parent
COMMANDS = [command for page in DOCS for block in blocks(page) if block.lang == "sh"
            for command in shell_commands(block)]
INLINE = [command for page in DOCS for command in inline_commands(page)]
TOML_BLOCKS = [block for page in DOCS for block in blocks(page) if block.lang == "toml"]
YAML_BLOCKS = [block for block in blocks("device_profiles/README.md") if block.lang == "yaml"]
PLACEHOLDER = re.compile(r"^([A-Z]+|/dev/.*|.*example\.org.*|\d+\.\d+\.\d+\.\d+:\d+)$")

#: Commands (by their first words) that run for real when they name no placeholder.
RUN = [
    *[("sync-server", *words.split()) for words in (
        "db upgrade", "keys init", "keys show", "territory add", "site add", "gateway add",
        "gateway list", "token add", "token list", "policy set", "policy show",
        "policy publish", "badge add", "badge import", "badge list", "opendata list",
        "opendata enable", "opendata disable", "db maintain", "retention set",
        "retention show")],
    *[("edge-agent", *words.split()) for words in (
        "profiles list", "profiles show", "profiles check", "profiles schema", "lora decode",
        "config validate", "version")],
    ("python", "-m", "simulators.modbus", "--help"),
    ("python", "-m", "simulators.demo", "--help"),
    ("python", "-m", "simulators.lora", "--print-config"),
]
#: Commands that run on one page only: access-hub.md shows the rules and badge files they
#: read; README's use rules it does not show (its category ``boater``).
RUN_ONLY_ON: dict[tuple[str, ...], str] = {
    ("sync-server", "policy"): "docs/access-hub.md",
    ("sync-server", "badge"): "docs/access-hub.md",
}

HEADER = '[gateway]\nid = "docs-example"\ndata_dir = "data"\n\n'
_PONTOON = '[[buses]]\nname = "pontoon-a"\nserial = "/dev/ttyUSB0"\n\n'
_RELAYS = ('[[devices]]\nname = "relays-a"\nbus = "pontoon-a"\nprofile = "waveshare-relay-8ch"'
           '\nunit = 20\n\n')
_SENSORS = ('[[lora]]\napplication_ids = ["17c82e96-be03-4f38-aef3-f83d48582d97"]\n\n'
            '[[lora.devices]]\nname = "level-d982"\ndev_eui = "a84041000181c061"\n'
            'profile = "dragino-ldds75"\n\n'
            '[[lora.devices]]\nname = "siren-d982"\ndev_eui = "a84041000181c062"\n'
            'profile = "dragino-lds02"\n\n')


def _readme_gateway() -> str:
    """README's gateway file: the one complete file the docs show."""
    return next(b.text for b in blocks("README.md") if b.lang == "toml")


#: How each gateway block is checked, by page and section: what comes before it in the file.
GATEWAY_BLOCKS: dict[tuple[str, str], str] = {
    ("README.md", "The installer's tools"): "",
    ("docs/configuration.md", "`[[lora]]`"): HEADER,
    ("docs/configuration.md", "`[[rules]]`"): HEADER + _PONTOON + _RELAYS + _SENSORS,
    ("docs/configuration.md", "`[[tic]]`"): HEADER,
    ("docs/configuration.md", "`[[car_parks]]`"): HEADER + _PONTOON + _RELAYS + (
        '[[devices]]\nname = "sfar-1"\nbus = "pontoon-a"\nprofile = "isma-sfar-4di"\n'
        'unit = 3\n\n'),
    ("docs/rules.md", "Kinds"): HEADER + _PONTOON + _RELAYS + _SENSORS,
    ("docs/car-parks.md", "Example"): HEADER,
    ("docs/install-gateway.md", "3. The gateway file"): "",
    ("docs/install-gateway.md", "Monitoring"): HEADER,
    ("docs/access-control.md", "Configuration (gateway TOML)"): _readme_gateway() + (
        '\n[[devices]]\nname = "water-a"\nbus = "pontoon-a"\nprofile = "isma-sfar-4di"\n'
        'unit = 30\n\n'),
}
#: device_profiles/README.md's profile fragments, by section: the top of a profile they need.
PROFILE_FRAGMENTS = dict.fromkeys(
    ["Channel records (`layout: milesight` or `layout: elsys`)", "Object map"],
    "id: example\nmanufacturer: Docs\nmodel: Example\ncategory: lora_sensor\n"
    "uplink_interval_s: 600\nbattery_low: null\n")
#: Not gateway files: access-hub.md's rules go to the hub (``policy set``, run below).
OTHER_TOML = {("docs/access-hub.md", "Rules first")}


def _id(command: DocCommand) -> str:
    return f"{command.where} {command.text}"


def _runs(command: DocCommand) -> bool:
    page = RUN_ONLY_ON.get(command.argv[:2], command.where.split(":")[0])
    return (not command.variant and command.where.startswith(f"{page}:")
            and any(command.argv[:len(prefix)] == prefix for prefix in RUN)
            and not any(PLACEHOLDER.match(word) for word in command.argv))


@pytest.fixture(autouse=True)
def _no_ponton_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """A ``PONTON_CONFIG`` left in the environment would hide a missing ``--config``."""
    for name in list(os.environ):
        if name.startswith("PONTON_"):
            monkeypatch.delenv(name)


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PONTON_")}
    return {**env, "COLUMNS": "200", "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}"}


def _run(command: DocCommand, cwd: Path, **env: str) -> str:
    """Run a documented command as printed (``python`` is this interpreter); its output."""
    program = sys.executable if command.argv[0] == "python" else str(BIN / command.argv[0])
    done = subprocess.run([program, *command.argv[1:]], cwd=cwd, capture_output=True,
                          text=True, env={**_env(), **env}, timeout=60, check=False)
    assert done.returncode == 0, f"{_id(command)}\n{done.stdout}{done.stderr}"
    if command.redirect is not None and command.redirect.endswith(".json"):
        json.loads(done.stdout)
    return done.stdout


def _doc_file(page: str, lang: str) -> str:
    """The one block of ``lang`` on ``page`` that the docs' commands name as a file."""
    (text,) = [b.text for b in blocks(page) if b.lang == lang]
    return text


@pytest.fixture
def files(tmp_path: Path) -> Path:
    """A directory holding the files the documented commands name, from the docs."""
    (tmp_path / "gateway.toml").write_text(_readme_gateway(), encoding="utf-8")
    (tmp_path / "rules.toml").write_text(_doc_file("docs/access-hub.md", "toml"),
                                         encoding="utf-8")
    (tmp_path / "badges.csv").write_text(_doc_file("docs/access-hub.md", "csv"),
                                         encoding="utf-8")
    profile = next(b.text for b in blocks("device_profiles/README.md") if b.lang == "yaml")
    (tmp_path / "my-meter.yaml").write_text(
        re.sub(r"^id: \S+", "id: my-meter", profile, flags=re.MULTILINE), encoding="utf-8")
    return tmp_path


@pytest.mark.parametrize("command", COMMANDS, ids=_id)
def test_documented_command_is_accepted(command: DocCommand) -> None:
    program, *args = command.argv
    if program == "make":
        makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
        assert re.search(rf"^{re.escape(args[0])}:", makefile, re.MULTILINE), args[0]
    elif program == "export":
        assert args[0].split("=", 1)[0] in envvars(), args[0]
    else:
        assert parse_error(command.argv) is None, parse_error(command.argv)


@pytest.mark.parametrize("command", INLINE, ids=_id)
def test_command_quoted_in_the_text_exists(command: DocCommand) -> None:
    """A sentence may name a command without what it requires, never a wrong name."""
    assert parse_error(command.argv, names_only=True) is None, parse_error(
        command.argv, names_only=True)


def test_every_command_that_runs_is_in_the_docs() -> None:
    for prefix in RUN:
        assert any(_runs(c) for c in COMMANDS if c.argv[:len(prefix)] == prefix), prefix


@pytest.mark.parametrize("where", ["before", "after"])
def test_every_hub_command_takes_the_hub_settings(where: str) -> None:
    """README: "Every command takes --data-dir, --database-url, --signing-key" (or the
    PONTON_HUB_* variables): before the command's name, and after it as well."""
    assert {"PONTON_HUB_DATA_DIR", "PONTON_HUB_DATABASE_URL",
            "PONTON_HUB_SIGNING_KEY"} <= envvars()
    settings = ["--data-dir", "d", "--database-url", "sqlite:///d/hub.db", "--signing-key", "k"]
    refused = {" ".join(words): parse_error(tuple(
        ["sync-server", *settings, *words] if where == "before"
        else ["sync-server", *words, *settings]), names_only=True)
        for words in leaf_commands(hub_app)}
    assert len(refused) >= 12
    assert {words: why for words, why in refused.items() if why} == {}


def test_ponton_config_may_replace_every_config_option() -> None:
    """README: "`PONTON_CONFIG` may replace `--config`"."""
    reads = {" ".join(words): param.envvar for words, command in command_tree(agent_app)
             for param in command.params if "--config" in getattr(param, "opts", [])}
    assert len(reads) >= 10
    assert {words: envvar for words, envvar in reads.items() if envvar != "PONTON_CONFIG"} == {}


@pytest.mark.parametrize("block", TOML_BLOCKS, ids=lambda b: f"{b.path}:{b.line}")
def test_documented_gateway_file_validates(block: Block, tmp_path: Path) -> None:
    key = (block.path, block.heading)
    if key in OTHER_TOML:
        return
    assert key in GATEWAY_BLOCKS, f"decide how {key} is checked: add it to GATEWAY_BLOCKS"
    gateway = tmp_path / "gateway.toml"
    gateway.write_text(GATEWAY_BLOCKS[key] + block.text, encoding="utf-8")
    _run(DocCommand(f"{block.path}:{block.line}", ("edge-agent", "config", "validate",
                                                   str(gateway))), tmp_path)


@pytest.mark.parametrize("block", YAML_BLOCKS, ids=lambda b: f"{b.path}:{b.line}")
def test_documented_profile_checks(block: Block, tmp_path: Path) -> None:
    named = re.search(r"^id: (\S+)", block.text, re.MULTILINE)
    if named is None:
        assert block.heading in PROFILE_FRAGMENTS, f"decide how {block.heading!r} is checked"
    text = block.text if named else PROFILE_FRAGMENTS[block.heading] + block.text
    profile = tmp_path / f"{named.group(1) if named else 'example'}.yaml"
    profile.write_text(text, encoding="utf-8")
    _run(DocCommand(f"{block.path}:{block.line}", ("edge-agent", "profiles", "check",
                                                   str(profile))), tmp_path)


def test_hub_commands_run_on_a_scratch_hub(files: Path) -> None:
    territories: set[str] = set()
    data = {"PONTON_HUB_DATA_DIR": str(files / "hub")}
    for command in [c for c in COMMANDS if c.argv[0] == "sync-server" and _runs(c)]:
        args = list(command.argv)
        if args[1:3] == ["territory", "add"]:
            territories.add(args[3])
        elif "--territory" in args and args[args.index("--territory") + 1] not in territories:
            territory = args[args.index("--territory") + 1]
            _run(DocCommand("setup", ("sync-server", "territory", "add", territory)), files,
                 **data)
            territories.add(territory)
        _run(command, files, **data)


AGENT_RUNS = sorted({c.argv: c for c in COMMANDS if c.argv[0] != "sync-server" and _runs(c)
                     }.values(), key=lambda c: c.where)


@pytest.mark.parametrize("command", AGENT_RUNS, ids=_id)
def test_agent_and_simulator_commands_run(command: DocCommand, files: Path) -> None:
    output = _run(command, files)
    if command.argv[-1] == "--print-config":
        config = files / "lora.toml"
        config.write_text(HEADER + output, encoding="utf-8")
        _run(DocCommand("--print-config", ("edge-agent", "config", "validate", str(config))),
             files)
