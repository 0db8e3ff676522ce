"""``sync-server`` as an operator runs it: each command in a real process, errors as one line."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from sync_server.db.migrate import head_revision
from tests.helpers.hub import hub_cli, hub_cli_ok


def test_an_operator_sets_up_a_territory_from_nothing(tmp_path: Path) -> None:
    assert f"database at revision {head_revision()}\n" in hub_cli_ok(tmp_path, "db", "upgrade")
    assert "signing key" in hub_cli_ok(tmp_path, "keys", "init")
    hub_cli_ok(tmp_path, "territory", "add", "dunkerque")
    hub_cli_ok(tmp_path, "site", "add", "--territory", "dunkerque", "port-est")
    out = hub_cli_ok(tmp_path, "gateway", "add", "--territory", "dunkerque", "--site", "port-est",
              "--expires-in", "2h")
    assert "gateway port-est-gw1 (dunkerque/port-est)" in out
    code = re.search(r"enrollment code ([A-Z2-7]{4}(?:-[A-Z2-7]{4}){3})", out)
    assert code is not None
    assert f"edge-agent provision --config gateway.toml --hub URL --code {code.group(1)}" in out
    assert hub_cli_ok(tmp_path, "token", "add", "--territory", "dunkerque").startswith("pop_")
    assert hub_cli_ok(tmp_path, "token", "add", "--admin", "--name", "ops").startswith("pop_")
    listed = json.loads(hub_cli_ok(tmp_path, "gateway", "list", "--json"))
    assert [(g["territory"], g["site"], g["gateway"], g["enrolled_ms"]) for g in listed] == [
        ("dunkerque", "port-est", "port-est-gw1", None)]
    assert "port-est-gw1" in hub_cli_ok(tmp_path, "gateway", "list")
    payload = tmp_path / "config.json"
    payload.write_text('{"sync": {"interval_s": 10}}')
    assert "config bundle version 1 published for dunkerque" in hub_cli_ok(
        tmp_path, "bundle", "publish", "--territory", "dunkerque", "--kind", "config",
        str(payload))
    assert re.search(r"key id [0-9a-f]{16}", hub_cli_ok(tmp_path, "keys", "show"))
    listing = hub_cli_ok(tmp_path, "token", "list")
    assert "(admin: all)" in listing
    assert "pop_" not in listing, "secrets are never shown again"
    assert hub_cli_ok(tmp_path, "token", "revoke", "1") == "token 1 revoked\n"
    again = hub_cli(tmp_path, "token", "revoke", "1")
    assert (again.returncode, again.stderr) == (2, "error: no active operator token with id 1\n")


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data_dir = tmp_path_factory.mktemp("registry")
    hub_cli_ok(data_dir, "db", "upgrade")
    hub_cli_ok(data_dir, "keys", "init")
    hub_cli_ok(data_dir, "territory", "add", "dunkerque")
    hub_cli_ok(data_dir, "site", "add", "--territory", "dunkerque", "port")
    hub_cli_ok(data_dir, "gateway", "add", "--territory", "dunkerque", "--site", "port",
               "--name", "gw")
    return data_dir


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("territory", "add", "Dunkerque"), "territory name 'Dunkerque' is not valid"),
        (("territory", "add", "dunkerque"), "territory 'dunkerque' already exists"),
        (("site", "add", "--territory", "toulon", "x"), "no territory 'toulon'; known: dunkerque"),
        (("gateway", "add", "--territory", "dunkerque", "--site", "nowhere"), "no site 'nowhere'"),
        (("gateway", "add", "--territory", "dunkerque", "--site", "port", "--expires-in", "1w"),
         "duration '1w' is not like"),
        (("gateway", "add", "--territory", "dunkerque", "--site", "port", "--name", "gw"),
         "already exists in dunkerque; use --reissue"),
        (("token", "add"), "give exactly one of --territory T or --admin"),
        (("keys", "init"), "already exists; replacing the signing key would strand"),
        (("bundle", "publish", "--territory", "dunkerque", "--kind", "firmware", "x.json"),
         "cannot read x.json"),
    ],
)
def test_refusals_are_one_clear_line(registry: Path, args: tuple[str, ...], message: str) -> None:
    done = hub_cli(registry, *args)
    assert done.returncode == 2
    assert done.stderr.startswith("error: ")
    assert message in done.stderr
    assert "Traceback" not in done.stderr


def test_commands_refuse_a_database_that_was_never_upgraded(tmp_path: Path) -> None:
    (tmp_path / "hub.db").touch()  # an empty SQLite database
    done = hub_cli(tmp_path, "territory", "add", "x")
    assert (done.returncode, done.stderr.strip()) == (
        2, f"error: the database is at schema revision (empty), this hub needs "
           f"{head_revision()}: run `sync-server db upgrade` first")


def test_serve_refuses_to_invent_a_signing_key_outside_demo_mode(tmp_path: Path) -> None:
    hub_cli_ok(tmp_path, "db", "upgrade")
    done = hub_cli(tmp_path, "serve", "--port", "0")
    assert done.returncode == 2
    assert "no signing key" in done.stderr
    assert "--demo" in done.stderr
