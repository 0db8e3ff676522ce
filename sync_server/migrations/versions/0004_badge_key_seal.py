"""Badge keys sealed at rest with the hub's badge seal (AES-256-GCM, sync_server/keys.py)

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04 00:20:00.000000

Existing territories' keys are sealed with the seal the engine carries
(``sync-server keys init`` creates it beside the signing key); a store with territories and
no seal is refused with that advice. The column's type does not change on either store (a
BLOB, a bytea): only what it holds.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from alembic import op

from sync_server.errors import SettingsError
from sync_server.keys import BADGE_SEAL_OPTION, BadgeSeal

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_territories = sa.table("territories", sa.column("id", sa.Integer()),
                        sa.column("name", sa.String()), sa.column("badge_key", sa.LargeBinary()))


def upgrade() -> None:
    _rewrite(lambda seal, name, key: seal.seal(name, key))


def downgrade() -> None:
    _rewrite(lambda seal, name, key: seal.open(name, key))


def _rewrite(change: Callable[[BadgeSeal, str, bytes], bytes]) -> None:
    bind = op.get_bind()
    rows = bind.execute(sa.select(_territories)).all()
    if not rows:
        return
    seal = bind.get_execution_options().get(BADGE_SEAL_OPTION)
    if not isinstance(seal, BadgeSeal):
        raise SettingsError(
            f"{len(rows)} territories' badge keys need the hub's badge seal to be sealed or "
            "opened: create it with `sync-server keys init` (beside the signing key, kept "
            "with the database), then run `sync-server db upgrade` again")
    for row in rows:
        bind.execute(sa.update(_territories).where(_territories.c.id == row.id)
                     .values(badge_key=change(seal, row.name, bytes(row.badge_key))))
