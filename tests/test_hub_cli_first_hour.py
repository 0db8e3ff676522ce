"""``sync-server`` as a new installer meets it in the first hour (issue 12, hub side).

Where the store is can be said before or after the command; no command but ``db upgrade``
makes a hub out of nothing; start-up failures and usage errors are one ``error:`` line;
help is plain; listings have ``--json`` and fit an 80-column console.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from typer.main import get_command

from sync_server.cli import app
from tests.helpers.hub import hub_cli, hub_cli_ok, start_hub

_STORE_OPTIONS = ("--data-dir", "--database-url", "--signing-key")


def _leaves(group: typer.Typer, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for command in group.registered_commands:
        assert command.callback is not None
        yield (*prefix, command.name or command.callback.__name__.replace("_", "-"))
    for sub in group.registered_groups:
        assert sub.typer_instance is not None
        assert sub.name is not None
        yield from _leaves(sub.typer_instance, (*prefix, sub.name))


COMMANDS = sorted(_leaves(app))


def _options(path: tuple[str, ...]) -> set[str]:
    """The option names ``sync-server PATH`` accepts, as the parser sees them."""
    command = get_command(app)
    for name in path:
        command = command.commands[name]  # type: ignore[attr-defined]
    return {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}


def _run(cwd: Path, *args: str, env: dict[str, str] | None = None
         ) -> subprocess.CompletedProcess[str]:
    """``sync-server ARGS`` in ``cwd`` with no PONTON_HUB_* setting: the defaults decide."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PONTON_HUB_")}
    return subprocess.run([sys.executable, "-m", "sync_server", *args], cwd=cwd,
                          capture_output=True, text=True, env={**clean, **(env or {})},
                          timeout=60, check=False)


def _one_error_line(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 2, (done.stdout, done.stderr)
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: "), done.stderr
    return lines[0]


@pytest.fixture(scope="module")
def hub_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data_dir = tmp_path_factory.mktemp("first-hour")
    hub_cli_ok(data_dir, "db", "upgrade")
    hub_cli_ok(data_dir, "keys", "init")
    hub_cli_ok(data_dir, "territory", "add", "dunkerque")
    hub_cli_ok(data_dir, "territory", "add", "toulon")
    hub_cli_ok(data_dir, "site", "add", "--territory", "dunkerque", "port-est")
    hub_cli_ok(data_dir, "site", "add", "--territory", "dunkerque",
               "capitainerie-du-bassin-de-commerce")
    hub_cli_ok(data_dir, "gateway", "add", "--territory", "dunkerque", "--site", "port-est")
    hub_cli_ok(data_dir, "gateway", "add", "--territory", "dunkerque", "--site",
               "capitainerie-du-bassin-de-commerce", "--name",
               "capitainerie-bassin-commerce-ponton-b-gw12")
    hub_cli_ok(data_dir, "token", "add", "--territory", "dunkerque", "--name",
               "cellule-de-crise-dunkerque")
    return data_dir


# item 4: the store options, before or after the subcommand


@pytest.mark.parametrize("path", COMMANDS, ids=" ".join)
def test_every_command_takes_the_store_options_after_itself(path: tuple[str, ...]) -> None:
    assert set(_STORE_OPTIONS) <= _options(path)


def test_the_store_options_work_after_the_command_and_win_there(
    hub_dir: Path, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    after = json.loads(hub_cli_ok(elsewhere, "gateway", "list", "--data-dir", str(hub_dir),
                                  "--json"))
    assert [row["gateway"] for row in after] == [
        "capitainerie-bassin-commerce-ponton-b-gw12", "port-est-gw1"]
    both = hub_cli_ok(elsewhere, "--data-dir", str(tmp_path / "wrong"), "territory", "list",
                      "--json", "--data-dir", str(hub_dir))
    assert [row["territory"] for row in json.loads(both)] == ["dunkerque", "toulon"]
    url = f"sqlite:///{hub_dir / 'hub.db'}"
    assert "dunkerque" in hub_cli_ok(elsewhere, "site", "list", "--database-url", url)
    key = hub_cli_ok(elsewhere, "keys", "show", "--signing-key", str(hub_dir / "signing-key.pem"))
    assert key.startswith("key id ")
    assert not elsewhere.exists()


# item 5: only `db upgrade` creates a database


@pytest.mark.parametrize(
    "args",
    [("gateway", "list"), ("territory", "list"), ("site", "list"), ("token", "list"),
     ("territory", "add", "dunkerque"), ("token", "revoke", "1"),
     ("badge", "list", "--territory", "dunkerque"),
     ("alarm", "list", "--territory", "dunkerque"),
     ("report", "services", "--territory", "dunkerque"),
     ("--demo", "serve", "--port", "0")],
    ids=" ".join,
)
def test_a_command_where_there_is_no_hub_says_so_and_creates_nothing(
    tmp_path: Path, args: tuple[str, ...]
) -> None:
    line = _one_error_line(_run(tmp_path, *args))
    looked = tmp_path / "hub-data" / "hub.db"
    assert line.startswith(f"error: no hub database at {looked}: nothing is there"), line
    assert "sync-server db upgrade" in line
    assert list(tmp_path.iterdir()) == [], "nothing created: no file, no directory"


def test_db_upgrade_creates_the_database(tmp_path: Path) -> None:
    assert "database at revision" in _run(tmp_path, "db", "upgrade").stdout
    assert (tmp_path / "hub-data" / "hub.db").is_file()
    assert _run(tmp_path, "territory", "list", "--json").stdout.strip() == "[]"


# item 6: start-up failures


def test_serve_on_a_port_in_use_is_one_error_line(hub_dir: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        line = _one_error_line(hub_cli(hub_dir, "serve", "--port", str(port)))
    assert line == f"error: cannot listen on 127.0.0.1:{port}: Address already in use"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("serve", "--port", "0", "--host", "no-such-host.invalid"),
         "error: cannot listen on no-such-host.invalid:0: "),
        (("--database-url", "postgresql://postgres@127.0.0.1:1/ponton", "serve", "--port", "0"),
         "error: cannot reach the database postgresql+psycopg://postgres@127.0.0.1:1/ponton: "),
        (("--database-url", "postgresql://postgres@127.0.0.1:1/ponton", "serve", "--port", "0",
          "--upgrade-db"),
         "error: cannot reach the database postgresql+psycopg://postgres@127.0.0.1:1/ponton: "),
        (("--database-url", "postgresql://postgres@127.0.0.1:1/ponton", "db", "upgrade"),
         "error: cannot reach the database postgresql+psycopg://postgres@127.0.0.1:1/ponton: "),
        (("--database-url", "mysql://x@y/z", "serve", "--port", "0"),
         "error: unsupported database 'mysql'"),
        (("--signing-key", "/nonexistent/key.pem", "serve", "--port", "0"),
         "error: no signing key at /nonexistent/key.pem"),
        (("keys", "init", "--signing-key", "/proc/no/key.pem"),
         "error: cannot write the signing key /proc/no/key.pem: "),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, tuple) else "",
)
def test_every_start_up_failure_is_one_error_line(
    hub_dir: Path, args: tuple[str, ...], message: str
) -> None:
    line = _one_error_line(hub_cli(hub_dir, *args))
    assert line.startswith(message), line


# item 10: usage errors, help, listings, the public key


@pytest.mark.parametrize(
    ("args", "message", "hint"),
    [
        (("site", "add", "x"), "error: missing option '--territory'",
         "Try 'sync-server site add --help' for help."),
        (("serve", "--port", "eighty"), "error: invalid value for '--port'",
         "Try 'sync-server serve --help' for help."),
        (("gateway", "list", "--colour"), "error: no such option: --colour",
         "Try 'sync-server gateway list --help' for help."),
        (("frobnicate",), "error: no such command 'frobnicate'",
         "Try 'sync-server --help' for help."),
    ],
)
def test_usage_errors_are_one_error_line_and_a_hint(
    tmp_path: Path, args: tuple[str, ...], message: str, hint: str
) -> None:
    done = _run(tmp_path, *args)
    assert done.returncode == 2
    first, *rest = done.stderr.splitlines()
    assert first.startswith(message), done.stderr
    assert rest == [hint], done.stderr
    assert done.stdout == ""


@pytest.mark.parametrize("path", [(), *sorted({p[:-1] for p in COMMANDS if len(p) > 1}),
                                  *COMMANDS], ids=lambda p: " ".join(p) or "root")
def test_help_is_plain_text_in_80_columns(tmp_path: Path, path: tuple[str, ...]) -> None:
    done = _run(tmp_path, *path, "--help", env={"COLUMNS": "80"})
    assert done.returncode == 0, done.stderr
    assert "<bool>" not in done.stdout
    assert "``" not in done.stdout
    assert not set("╭│╰━┃") & set(done.stdout), done.stdout
    assert max(len(line) for line in done.stdout.splitlines()) <= 80, done.stdout


def test_serve_help_names_the_ready_line_plainly(tmp_path: Path) -> None:
    assert "Prints READY http://HOST:PORT (https with --tls-cert) once listening." in _run(
        tmp_path, "serve", "--help", env={"COLUMNS": "200"}).stdout


def test_every_listing_command_has_json() -> None:
    listings = [path for path in COMMANDS if path[-1] == "list" or path[0] == "report"]
    assert ("territory", "list") in listings
    assert ("site", "list") in listings
    for path in listings:
        assert "--json" in _options(path), path


def test_territory_and_site_lists(hub_dir: Path) -> None:
    territories = json.loads(hub_cli_ok(hub_dir, "territory", "list", "--json"))
    assert [(t["territory"], t["sites"], t["gateways"]) for t in territories] == [
        ("dunkerque", 2, 2), ("toulon", 0, 0)]
    sites = json.loads(hub_cli_ok(hub_dir, "site", "list", "--territory", "dunkerque", "--json"))
    assert [(s["territory"], s["site"], s["gateways"]) for s in sites] == [
        ("dunkerque", "capitainerie-du-bassin-de-commerce", 1), ("dunkerque", "port-est", 1)]
    assert json.loads(hub_cli_ok(hub_dir, "site", "list", "--territory", "toulon", "--json")) == []
    refused = _one_error_line(hub_cli(hub_dir, "site", "list", "--territory", "caux"))
    assert refused == "error: no territory 'caux'; known: dunkerque, toulon"
    assert "port-est" in hub_cli_ok(hub_dir, "site", "list")


def test_token_list_has_json_without_secrets(hub_dir: Path) -> None:
    out = hub_cli_ok(hub_dir, "token", "list", "--json")
    assert [(t["name"], t["territory"]) for t in json.loads(out)] == [
        ("cellule-de-crise-dunkerque", "dunkerque")]
    assert "pop_" not in out


@pytest.mark.parametrize(
    ("args", "names"),
    [
        (("gateway", "list"), ["capitainerie-bassin-commerce-ponton-b-gw12",
                               "capitainerie-du-bassin-de-commerce", "port-est-gw1"]),
        (("site", "list"), ["capitainerie-du-bassin-de-commerce", "port-est", "dunkerque"]),
        (("territory", "list"), ["dunkerque", "toulon"]),
        (("token", "list"), ["cellule-de-crise-dunkerque"]),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, tuple) else "",
)
def test_tables_fit_80_columns_with_names_whole(
    hub_dir: Path, args: tuple[str, ...], names: list[str]
) -> None:
    env = {"PONTON_HUB_DATA_DIR": str(hub_dir), "COLUMNS": "80"}
    out = _run(hub_dir, *args, env=env).stdout
    assert max(len(line) for line in out.splitlines()) <= 80, out
    assert "…" not in out, out
    words = out.split()
    for name in names:
        assert name in words, f"{name} cut or folded:\n{out}"


def test_keys_show_prints_the_public_key_as_enrollment_gives_it(tmp_path: Path) -> None:
    with start_hub(tmp_path) as hub:
        identity = hub.enroll("dunkerque")
        shown = hub_cli_ok(tmp_path, "keys", "show").splitlines()
    assert shown == [f"key id {identity['signing_key_id']}",
                     f"public key {identity['signing_public_key']}"]
    assert len(base64.b64decode(identity["signing_public_key"], validate=True)) == 32
