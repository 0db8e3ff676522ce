"""The hub's settings: where its database and signing key live, and its limits.

Flags and ``PONTON_HUB_*`` environment variables fill one model (sync_server/cli.py). Outside
demo mode the hub refuses to invent secrets: the signing key must have been created on
purpose (``sync-server keys init``), because a key generated silently at start would change
with every fresh container and strand every gateway that pinned the old one.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["DEFAULT_DATA_DIR", "HubSettings"]

DEFAULT_DATA_DIR = Path("hub-data")


class HubSettings(BaseModel):
    """Everything a hub process needs; immutable once built."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    data_dir: Path = DEFAULT_DATA_DIR
    #: SQLAlchemy URL; ``None`` means the embedded SQLite file ``<data_dir>/hub.db``.
    database_url: str | None = None
    #: PKCS8 PEM Ed25519 key; ``None`` means ``<data_dir>/signing-key.pem``.
    signing_key_file: Path | None = None
    #: Demo mode creates the signing key when missing; never use it in production.
    demo: bool = False
    max_request_bytes: int = Field(default=8 * 1024 * 1024, gt=0)
    max_decoded_bytes: int = Field(default=64 * 1024 * 1024, gt=0)
    #: Beyond this gap between a gateway's clock and the hub's, its timestamps are shifted.
    clock_tolerance_ms: int = Field(default=120_000, gt=0)
    enroll_max_failures: int = Field(default=10, gt=0)
    enroll_window_s: int = Field(default=900, gt=0)
    #: How long a signed access policy stays valid; renewed past half its life when fetched.
    policy_lifetime_s: int = Field(default=7 * 86_400, gt=0)
    #: k of the published service statistics: a cell needs at least k distinct badges.
    report_min_badges: int = Field(default=5, ge=1)
    #: A dashboard session ends after this long without a request.
    ui_idle_timeout_s: int = Field(default=1800, gt=0)
    #: Pushes decoded and stored at once per process (two cores, and the database's own
    #: work), and pushes waiting for them; a push beyond both is answered 503 with
    #: Retry-After (sync_server/api/push_pool.py).
    push_threads: int = Field(default=4, ge=1, le=64)
    push_queue: int = Field(default=12, ge=0, le=10_000)
    #: A request's body must be in this long after its token passed, or it is answered 408
    #: and its push slot freed: a link lost mid-body, or a client sending a byte at a time,
    #: held the slot for as long as its connection stayed open (sync_server/api/limits.py).
    body_timeout_s: float = Field(default=60.0, gt=0, le=3600)

    @property
    def resolved_database_url(self) -> str:
        """The database URL, defaulting to the embedded SQLite file."""
        return self.database_url or f"sqlite:///{self.data_dir / 'hub.db'}"

    @property
    def resolved_signing_key_file(self) -> Path:
        """The signing key's path, defaulting to one in the data directory."""
        return self.signing_key_file or self.data_dir / "signing-key.pem"

    @property
    def badge_seal_file(self) -> Path:
        """The badge seal's path: beside the signing key, kept with it."""
        return self.resolved_signing_key_file.with_name("badge-seal.key")
