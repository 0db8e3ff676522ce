"""The migrations build exactly the schema the code declares, and the hub refuses to serve
a database that is not at head or without a signing key outside demo mode."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine

from sync_server.app import create_app
from sync_server.db.engine import create_hub_engine
from sync_server.db.migrate import current_revision, head_revision, upgrade
from sync_server.db.partitions import READINGS_KEY
from sync_server.db.schema import metadata
from sync_server.errors import SettingsError
from sync_server.keys import create_signing_key, load_signing_key
from sync_server.settings import HubSettings


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "sqlite":
        engine = create_hub_engine(f"sqlite:///{tmp_path / 'hub.db'}")
        yield engine
        engine.dispose()
        return
    from tests.helpers.postgres import fresh_database, require_postgres

    require_postgres()
    with fresh_database("schema") as url:
        engine = create_hub_engine(url)
        yield engine
        engine.dispose()


def test_upgrading_an_empty_database_gives_the_declared_schema(empty_engine: Engine) -> None:
    assert current_revision(empty_engine) is None
    upgrade(empty_engine)
    assert current_revision(empty_engine) == head_revision()
    with empty_engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), metadata)
    # PostgreSQL's partitioned readings are keyed by a unique index that the declared schema,
    # shared with SQLite's primary key, does not hold (sync_server/db/partitions.py).
    differences = [d for d in differences
                   if not (d[0] == "remove_index" and d[1].name == READINGS_KEY
                           and empty_engine.dialect.name == "postgresql")]
    assert differences == []
    upgrade(empty_engine)  # a second upgrade is a no-op
    assert current_revision(empty_engine) == head_revision()


def test_the_hub_refuses_a_database_that_is_not_upgraded(tmp_path: Path) -> None:
    settings = HubSettings(data_dir=tmp_path / "hub", demo=True)
    with pytest.raises(SettingsError, match=r"no hub database at .*: nothing is there"):
        create_app(settings)
    assert list(tmp_path.iterdir()) == [], "serving creates no database"
    (tmp_path / "hub").mkdir()
    (tmp_path / "hub" / "hub.db").touch()  # an empty SQLite database
    with pytest.raises(SettingsError, match="run `sync-server db upgrade` first"):
        create_app(settings)


def test_outside_demo_mode_the_signing_key_must_exist(tmp_path: Path) -> None:
    engine = create_hub_engine(f"sqlite:///{tmp_path / 'hub.db'}")
    upgrade(engine)
    engine.dispose()
    with pytest.raises(SettingsError, match="sync-server keys init"):
        create_app(HubSettings(data_dir=tmp_path))
    assert not (tmp_path / "signing-key.pem").exists()
    create_app(HubSettings(data_dir=tmp_path, demo=True)).state.hub.engine.dispose()
    assert (tmp_path / "signing-key.pem").stat().st_mode & 0o777 == 0o600


def test_a_signing_key_is_never_replaced_and_junk_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "key.pem"
    key = create_signing_key(path)
    with pytest.raises(Exception, match="already exists"):
        create_signing_key(path)
    assert load_signing_key(path, demo=False).key_id == key.key_id
    path.write_bytes(b"-----BEGIN PRIVATE KEY-----\njunk\n-----END PRIVATE KEY-----\n")
    with pytest.raises(SettingsError, match="cannot read the signing key"):
        load_signing_key(path, demo=True)


@pytest.mark.parametrize("url", ["mysql://localhost/x", "not a url", "sqlite+nodriver:///x"])
def test_unsupported_database_urls_are_refused_clearly(url: str) -> None:
    with pytest.raises(SettingsError):
        create_hub_engine(url)
