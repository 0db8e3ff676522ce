"""Dashboard accounts on both stores: argon2id hashes, refusals with clear errors, one-time
links; and ``sync-server user`` as an operator runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from simulators.hub_process import demo_engine
from sync_server import admin
from sync_server.db.migrate import upgrade
from sync_server.db.schema import ui_users
from sync_server.errors import BadRequest, Conflict, NotFound
from sync_server.ui.accounts import (
    add_user,
    check_password,
    new_signin_link,
    redeem_signin_link,
    remove_user,
    user_list,
)
from tests.helpers.hub import hub_cli_ok

PASSWORD = "correct horse battery"


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "sqlite":
        created = demo_engine(tmp_path)
        upgrade(created)
        admin.add_territory(created, "dunkerque")
        yield created
        created.dispose()
        return
    from tests.helpers.postgres import fresh_database, require_postgres

    require_postgres()
    with fresh_database("accounts") as url:
        created = demo_engine(tmp_path, url)
        upgrade(created)
        admin.add_territory(created, "dunkerque")
        yield created
        created.dispose()


def test_a_password_is_kept_as_an_argon2id_hash_and_checked(engine: Engine) -> None:
    add_user(engine, "alice", "operator", "dunkerque", PASSWORD)
    with engine.connect() as conn:
        stored = conn.execute(select(ui_users.c.password_hash)).scalar_one()
    assert stored.startswith("$argon2id$")
    assert PASSWORD not in stored
    user_id = check_password(engine, "alice", PASSWORD)
    assert user_id is not None
    assert check_password(engine, "alice", PASSWORD + "!") is None
    assert check_password(engine, "nobody", PASSWORD) is None
    assert check_password(engine, "alice", "x" * 100_000) is None  # cut, not hashed whole
    assert user_list(engine) == [{"name": "alice", "role": "operator",
                                  "territory": "dunkerque",
                                  "created_ms": user_list(engine)[0]["created_ms"]}]


@pytest.mark.parametrize(("name", "role", "territory", "password", "error", "message"), [
    ("Alice", "staff", "dunkerque", PASSWORD, BadRequest, "user name 'Alice' is not valid"),
    ("bob", "boss", "dunkerque", PASSWORD, BadRequest, "role must be one of"),
    ("bob", "admin", "dunkerque", PASSWORD, BadRequest, "an admin has no --territory"),
    ("bob", "staff", None, PASSWORD, BadRequest, "staff and operators need one"),
    ("bob", "staff", "dunkerque", "short", BadRequest, "a password needs 10 to 1024"),
    ("bob", "staff", "nowhere", PASSWORD, NotFound, "no territory 'nowhere'"),
    ("alice", "staff", "dunkerque", PASSWORD, Conflict, "user 'alice' already exists"),
])
def test_bad_accounts_are_refused_with_a_reason(
    engine: Engine, name: str, role: str, territory: str | None, password: str,
    error: type[Exception], message: str,
) -> None:
    add_user(engine, "alice", "operator", "dunkerque", PASSWORD)
    with pytest.raises(error, match=message):
        add_user(engine, name, role, territory, password)
    assert [row["name"] for row in user_list(engine)] == ["alice"]


def test_a_sign_in_link_is_spent_once_and_expires(engine: Engine) -> None:
    add_user(engine, "alice", "staff", "dunkerque", PASSWORD)
    code = new_signin_link(engine, "alice", 600)
    assert redeem_signin_link(engine, code) is not None
    assert redeem_signin_link(engine, code) is None
    assert redeem_signin_link(engine, "made-up") is None
    with pytest.raises(BadRequest, match="lifetime must be positive"):
        new_signin_link(engine, "alice", 0)
    with pytest.raises(NotFound, match="no user 'bob'"):
        new_signin_link(engine, "bob", 600)
    remove_user(engine, "alice")  # with its links
    with pytest.raises(NotFound, match="no user 'alice'"):
        remove_user(engine, "alice")


def test_an_operator_manages_accounts_from_the_command_line(tmp_path: Path) -> None:
    hub_cli_ok(tmp_path, "db", "upgrade")
    hub_cli_ok(tmp_path, "keys", "init")
    hub_cli_ok(tmp_path, "territory", "add", "dunkerque")
    added = _with_stdin(tmp_path, f"{PASSWORD}\n", "user", "add", "jdupont", "--territory",
                        "dunkerque", "--role", "staff", "--password-stdin")
    assert added == "user jdupont added (staff, dunkerque); sign in at /ui\n"
    _with_stdin(tmp_path, f"{PASSWORD}\n", "user", "add", "--admin", "root",
                "--password-stdin")
    listed = json.loads(hub_cli_ok(tmp_path, "user", "list", "--json"))
    assert [(u["name"], u["role"], u["territory"]) for u in listed] == [
        ("jdupont", "staff", "dunkerque"), ("root", "admin", None)]
    table = hub_cli_ok(tmp_path, "user", "list")
    assert "(all)" in table
    assert "argon2" not in table
    link = hub_cli_ok(tmp_path, "user", "link", "jdupont", "--url", "https://hub.example.org/")
    assert link.startswith("https://hub.example.org/ui/signin/link/")
    assert hub_cli_ok(tmp_path, "user", "remove", "jdupont") == "user jdupont removed\n"


#: Refusals of ``sync-server user``, each with its one line (standard input: "short").
REFUSALS = [
    (("user", "add", "bob", "--role", "staff"),
     "error: give --territory T --role staff|operator, or --admin alone"),
    (("user", "add", "bob", "--admin", "--role", "operator"),
     "error: give --territory T --role staff|operator, or --admin alone"),
    (("user", "add", "bob", "--territory", "dunkerque", "--role", "admin"),
     "error: --role must be staff or operator, got 'admin'"),
    (("user", "add", "bob", "--territory", "dunkerque", "--role", "staff",
      "--password-stdin"), "error: a password needs 10 to 1024 characters, got 5"),
    (("user", "remove", "ghost"), "error: no user 'ghost'"),
]


def test_user_commands_refuse_in_one_line(tmp_path: Path) -> None:
    hub_cli_ok(tmp_path, "db", "upgrade")
    hub_cli_ok(tmp_path, "keys", "init")
    hub_cli_ok(tmp_path, "territory", "add", "dunkerque")
    for args, message in REFUSALS:
        done = _run(tmp_path, "short\n", *args)
        assert (done.returncode, done.stderr) == (2, message + "\n"), args


def _run(data_dir: Path, stdin: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``sync-server ARGS`` with ``stdin`` typed in (tests/helpers/hub.py's has none)."""
    env = {**os.environ, "PONTON_HUB_DATA_DIR": str(data_dir), "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "sync_server", *args], input=stdin,
                          capture_output=True, text=True, env=env, timeout=60, check=False)


def _with_stdin(data_dir: Path, stdin: str, *args: str) -> str:
    done = _run(data_dir, stdin, *args)
    assert done.returncode == 0, done.stderr
    return done.stdout
