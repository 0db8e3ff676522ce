"""Schema migrations with Alembic, run from code (``sync-server db upgrade``, tests, demo).

The migration scripts live in ``sync_server/migrations``; a test checks that upgrading an
empty database to head gives exactly ``sync_server.db.schema``, on SQLite and PostgreSQL.
"""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from sync_server.errors import SettingsError

__all__ = ["current_revision", "head_revision", "require_head", "upgrade"]


def _config(engine: Engine | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", "sync_server:migrations")
    if engine is not None:
        config.attributes["engine"] = engine
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the database behind ``engine`` to ``revision`` (default: the latest)."""
    try:
        command.upgrade(_config(engine), revision)
    except OperationalError as exc:  # unreachable, refused, not writable: not a bug of ours
        raise _unreachable(engine, exc) from exc


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at, or None for an empty database."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str:
    """The newest revision the code knows."""
    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None
    return head


def require_head(engine: Engine) -> None:
    """SettingsError unless the database is reachable and at the code's revision."""
    try:
        revision = current_revision(engine)
    except SQLAlchemyError as exc:
        raise _unreachable(engine, exc) from exc
    if revision != head_revision():
        raise SettingsError(
            f"the database is at schema revision {revision or '(empty)'}, this hub needs "
            f"{head_revision()}: run `sync-server db upgrade` first")


def _unreachable(engine: Engine, exc: SQLAlchemyError) -> SettingsError:
    """The driver's own words on one line, without the link SQLAlchemy appends to its own."""
    reason = str(getattr(exc, "orig", None) or exc).split("(Background on this error")[0]
    return SettingsError(f"cannot reach the database {engine.url!r}: "
                         f"{' '.join(reason.split()) or type(exc).__name__}")
