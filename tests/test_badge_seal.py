"""Every territory's badge key is sealed at rest: the database alone does not give it away.

The key turns card numbers into pseudonyms. The hub keeps it encrypted (AES-256-GCM) under
its badge seal, a file beside the signing key, and opens it only for enrollment and the
badge registry (tests/test_hub_badges.py checks the registry's pseudonyms against the key a
gateway was given); migration 0004 seals the keys of an existing store. Both stores.
"""

from __future__ import annotations

import base64
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, insert, select

from sync_server.db.engine import create_hub_engine
from sync_server.db.migrate import current_revision, head_revision, upgrade
from sync_server.db.schema import territories
from sync_server.errors import SettingsError
from sync_server.keys import (
    create_badge_seal,
    load_badge_seal,
    open_badge_key,
    with_badge_seal,
)
from tests.helpers.hub import HubProcess, hub_cli, hub_cli_ok

RAW_KEY = bytes(range(100, 132))
SEAL_REVISION = "0004"


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", "sync_server:migrations")
    config.attributes["engine"] = engine
    return config


#: The revision before the seal, whatever the chain merged before it.
BEFORE_SEAL = str(ScriptDirectory.from_config(alembic_config(create_hub_engine("sqlite://")))
                  .get_revision(SEAL_REVISION).down_revision)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database of each store."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'hub.db'}"
        return
    from tests.helpers.postgres import fresh_database, require_postgres

    require_postgres()
    with fresh_database("seal") as url:
        yield url


def stored_key(engine: Engine, territory: str) -> bytes:
    with engine.connect() as conn:
        return bytes(conn.execute(select(territories.c.badge_key)
                                  .where(territories.c.name == territory)).scalar_one())


def test_an_enrolled_gateway_gets_the_key_the_database_only_holds_sealed(
    hub: HubProcess
) -> None:
    identity = hub.enroll("sealed", "sealed-gw")
    badge_key = base64.b64decode(identity["badge_key"])
    stored = stored_key(hub.engine, "sealed")
    assert badge_key not in stored
    assert len(stored) == 4 + 12 + 32 + 16
    assert open_badge_key(hub.engine, "sealed", stored) == badge_key
    if hub.database_url.startswith("sqlite"):  # nor anywhere in the files a copy would take
        for path in hub.data_dir.glob("hub.db*"):
            assert badge_key not in path.read_bytes(), path.name
    # Another seal, or the sealed key moved to another territory's row, does not open it.
    other = with_badge_seal(hub.engine, create_badge_seal(hub.data_dir / "other-seal.key"))
    with pytest.raises(SettingsError, match=r"does not open with the badge seal .*other-seal"):
        open_badge_key(other, "sealed", stored)
    with pytest.raises(SettingsError, match="'elsewhere' does not open"):
        open_badge_key(hub.engine, "elsewhere", stored)


def test_migration_0004_seals_the_keys_of_an_existing_store(
    store_url: str, tmp_path: Path
) -> None:
    engine = create_hub_engine(store_url)
    try:
        upgrade(engine, BEFORE_SEAL)
        with engine.begin() as conn:
            conn.execute(insert(territories).values(name="old", badge_key=RAW_KEY,
                                                    created_ms=1))
        with pytest.raises(SettingsError, match=r"1 territories' badge keys need the hub's "
                           r"badge seal.*`sync-server keys init`"):
            upgrade(engine)  # no seal: refused, nothing changed
        assert current_revision(engine) == BEFORE_SEAL
        assert stored_key(engine, "old") == RAW_KEY

        sealed = with_badge_seal(engine, create_badge_seal(tmp_path / "badge-seal.key"))
        upgrade(sealed)
        assert current_revision(engine) == head_revision()
        assert stored_key(engine, "old") != RAW_KEY
        assert open_badge_key(sealed, "old", stored_key(engine, "old")) == RAW_KEY
        command.downgrade(alembic_config(sealed), BEFORE_SEAL)  # back: the keys open again
        assert stored_key(engine, "old") == RAW_KEY
    finally:
        engine.dispose()


def test_keys_init_creates_the_seal_beside_the_signing_key_and_serve_needs_it(
    tmp_path: Path
) -> None:
    data_dir = tmp_path / "hub"
    hub_cli_ok(data_dir, "db", "upgrade")
    early = hub_cli(data_dir, "territory", "add", "early")
    assert early.stderr.strip().splitlines() == [
        "error: no badge seal beside the signing key, so no territory's badge key can be read "
        "or written: create it once with `sync-server keys init`"]
    hub_cli_ok(data_dir, "keys", "init")
    seal = data_dir / "badge-seal.key"
    assert stat.S_IMODE(seal.stat().st_mode) == 0o600
    assert len(load_badge_seal(seal, demo=False).key) == 32
    hub_cli_ok(data_dir, "territory", "add", "quay")
    engine = with_badge_seal(create_hub_engine(f"sqlite:///{data_dir / 'hub.db'}"),
                             load_badge_seal(seal, demo=False))
    try:
        assert len(open_badge_key(engine, "quay", stored_key(engine, "quay"))) == 32
    finally:
        engine.dispose()

    seal.rename(tmp_path / "aside.key")  # a hub set up before seals: the signing key only
    refused = hub_cli(data_dir, "serve", "--port", "0")
    assert refused.returncode != 0
    assert refused.stderr.strip().splitlines() == [
        f"error: no badge seal at {seal}: create it once with `sync-server keys init` (and "
        "keep it with the database: the territories' badge keys open only with it), or pass "
        "--demo for a throwaway hub"]
    assert f"badge seal written to {seal}" in hub_cli_ok(data_dir, "keys", "init")
    again = hub_cli(data_dir, "keys", "init")
    assert "already exists; replacing the signing key would strand" in again.stderr
