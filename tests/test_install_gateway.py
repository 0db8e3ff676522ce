"""docs/install-gateway.md agrees with the unit, the Makefile and the agent's own parsers.

Its ```bash blocks are a root shell on a Pi: creating users, installing the unit and
``systemctl`` cannot run here. Each of their commands is checked instead: the agent's
commands by the agent's parsers, the user, groups and paths against the unit. What can run
here runs elsewhere: ``make dist`` and the venv install (tests/test_packaging.py, as
written), ``systemd-analyze verify`` of the unit (tests/test_service_unit.py), the gateway
file (tests/test_documented_commands.py).
"""

from __future__ import annotations

import configparser
import shlex
import tomllib
from collections.abc import Iterator

from tests.helpers.doc_commands import ROOT, blocks, parse_error

PAGE = "docs/install-gateway.md"
UNIT = ROOT / "packaging" / "systemd" / "ponton-agent.service"
#: The programs a root shell on the Pi runs in the page, and the build machine's ``scp``.
PROGRAMS = {"useradd", "install", "python3", "scp", "systemctl", "journalctl", "sudo"}


def _service() -> configparser.SectionProxy:
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys are CamelCase
    parser.read_string(UNIT.read_text(encoding="utf-8"))
    return parser["Service"]


SERVICE = _service()
AGENT, *RUN_ARGS = SERVICE["ExecStart"].split()
CONFIG = RUN_ARGS[RUN_ARGS.index("--config") + 1]
DATA_DIR = SERVICE["ReadWritePaths"]
USER = SERVICE["User"]


def _commands() -> Iterator[list[str]]:
    for block in blocks(PAGE):
        if block.lang == "bash":
            yield from (shlex.split(line) for line in block.text.splitlines() if line.strip())


def _agent_commands() -> Iterator[list[str]]:
    """Every ``edge-agent`` command of the page, without the ``sudo -u ponton`` before it."""
    for argv in _commands():
        words = argv[3:] if argv[:3] == ["sudo", "-u", USER] else argv
        if words[0].endswith("/edge-agent"):
            assert words[0] == AGENT, words
            yield words


def test_every_command_is_one_the_page_means() -> None:
    programs = {argv[0] for argv in _commands()}
    assert programs <= PROGRAMS | {AGENT, f"{AGENT.rsplit('/', 1)[0]}/pip"}
    assert [argv[:3] for argv in _commands() if argv[0] == "sudo"] == [
        ["sudo", "-u", USER]] * sum(1 for argv in _commands() if argv[0] == "sudo")


def test_every_agent_command_parses_and_reads_the_units_config() -> None:
    commands = list(_agent_commands())
    assert len(commands) >= 4
    for words in commands:
        argv = ("edge-agent", *words[1:])
        assert parse_error(argv) is None, (argv, parse_error(argv))
        if words[1] in {"provision", "status"}:
            assert words[words.index("--config") + 1] == CONFIG
        if words[1:3] == ["config", "validate"]:
            assert words[3] == CONFIG


def test_the_user_groups_and_directories_are_the_units() -> None:
    (useradd,) = [argv for argv in _commands() if argv[0] == "useradd"]
    assert useradd[-1] == USER
    assert useradd[useradd.index("--groups") + 1] == SERVICE["SupplementaryGroups"]
    assert useradd[useradd.index("--home-dir") + 1] == DATA_DIR
    directories = {argv[-1]: argv for argv in _commands() if argv[:2] == ["install", "-d"]}
    assert directories[DATA_DIR][2:6] == ["-o", USER, "-g", USER]
    config_dir = CONFIG.rsplit("/", 1)[0]
    assert directories[config_dir][2:6] == ["-o", "root", "-g", USER]  # read-only to it
    (venv,) = [argv for argv in _commands() if argv[:3] == ["python3", "-m", "venv"]]
    assert f"{venv[3]}/bin/edge-agent" == AGENT


def test_the_unit_installed_is_the_one_make_dist_puts_in_the_wheelhouse() -> None:
    (copied,) = [argv for argv in _commands()
                 if argv[0] == "install" and argv[-1].startswith("/etc/systemd/system/")]
    assert copied[-2].endswith(f"/wheelhouse/{UNIT.name}")
    assert copied[-1] == f"/etc/systemd/system/{UNIT.name}"
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert f"cp packaging/systemd/{UNIT.name} $(WHEELHOUSE)/" in makefile
    service = UNIT.name.removesuffix(".service")
    assert ["systemctl", "enable", "--now", service] in list(_commands())


def test_the_documented_gateway_file_writes_where_the_unit_lets_it() -> None:
    (toml,) = [b.text for b in blocks(PAGE)
               if b.lang == "toml" and b.heading == "3. The gateway file"]
    assert tomllib.loads(toml)["gateway"]["data_dir"] == DATA_DIR
