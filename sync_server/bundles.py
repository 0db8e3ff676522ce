"""Publishing and serving signed bundles (configuration, access policy) per territory.

Each publication gets the next version number of its (territory, kind) and is signed once,
at publication, with the hub key; gateways fetch the newest with a conditional GET. The
access policy's content is built in sync_server/access/policy.py; this is the mechanism.
"""

from __future__ import annotations

import json
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, Engine, func, select

from edge_agent.codecs.bundle import BUNDLE_KINDS, sign_bundle
from edge_agent.errors import BundleError
from edge_agent.records import now_ms
from sync_server.admin import territory_id
from sync_server.db.engine import reading
from sync_server.db.schema import bundles, territories
from sync_server.errors import BadRequest
from sync_server.keys import SigningKey

__all__ = [
    "LatestVersions",
    "etag",
    "latest_bundle",
    "latest_versions",
    "lock_territory",
    "publish_bundle",
    "publish_locked",
]


def etag(kind: str, version: int) -> str:
    """The strong ETag of one bundle version."""
    return f'"{kind}-{version}"'


def publish_bundle(
    engine: Engine,
    key: SigningKey,
    territory: str,
    kind: str,
    payload: dict[str, Any],
    *,
    expires_in_s: int,
) -> int:
    """Sign ``payload`` as the next version of ``kind`` for ``territory``; return the version."""
    with engine.begin() as conn:
        tid = territory_id(conn, territory)
        lock_territory(conn, tid)
        return publish_locked(conn, key, tid, territory, kind, payload,
                              expires_in_s=expires_in_s)


def lock_territory(conn: Connection, territory: int) -> None:
    """Serialise the territory's publications and access changes until the transaction ends.

    Two publications at once must not both take max + 1, and a policy must be built from the
    badges as they are when it is signed: PostgreSQL locks the territory's row; SQLite's
    BEGIN IMMEDIATE already serialises writers.
    """
    conn.execute(select(territories.c.id).where(territories.c.id == territory)
                 .with_for_update())


def publish_locked(
    conn: Connection,
    key: SigningKey,
    territory: int,
    territory_name: str,
    kind: str,
    payload: dict[str, Any],
    *,
    expires_in_s: int,
) -> int:
    """``publish_bundle`` inside the caller's transaction, which holds ``lock_territory``."""
    if kind not in BUNDLE_KINDS:
        raise BadRequest(f"bundle kind {kind!r} is not one of {', '.join(BUNDLE_KINDS)}")
    if expires_in_s <= 0:
        raise BadRequest(f"a bundle's lifetime must be positive, got {expires_in_s} s")
    issued = now_ms()
    current = conn.execute(select(func.max(bundles.c.version)).where(
        bundles.c.territory_id == territory, bundles.c.kind == kind)).scalar()
    version = int(current or 0) + 1
    try:
        envelope = sign_bundle(key.private, kind=kind, territory=territory_name,
                               version=version, issued_at_ms=issued,
                               expires_at_ms=issued + expires_in_s * 1000, payload=payload)
    except BundleError as exc:
        raise BadRequest(f"the {kind} payload cannot be signed: {exc}") from exc
    conn.execute(bundles.insert().values(
        territory_id=territory, kind=kind, version=version, issued_ms=issued,
        expires_ms=issued + expires_in_s * 1000,
        envelope=json.dumps(envelope, separators=(",", ":"), ensure_ascii=False)))
    return version


def latest_bundle(conn: Connection, territory: int, kind: str) -> tuple[int, str] | None:
    """The newest (version, signed envelope text) of ``kind`` for ``territory``, if any."""
    row = conn.execute(
        select(bundles.c.version, bundles.c.envelope)
        .where(bundles.c.territory_id == territory, bundles.c.kind == kind)
        .order_by(bundles.c.version.desc()).limit(1)
    ).first()
    return None if row is None else (int(row.version), str(row.envelope))


class LatestVersions:
    """The newest version of one kind per territory, remembered for ``ttl_s``.

    Every push answer names the newest policy (docs/sync-protocol.md), so a gateway behind
    pulls at once; a query per push would cost the hub's busiest route a round trip to the
    database, and several hub processes share the database, so a publication in one is
    seen by the others within ``ttl_s`` (a revocation reaches gates that much later).
    """

    def __init__(self, engine: Engine, kind: str, *, ttl_s: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._engine = engine
        self._kind = kind
        self._ttl_s = ttl_s
        self._clock = clock
        self._known: dict[int, tuple[float, int | None]] = {}
        self._lock = threading.Lock()

    def get(self, territory: int) -> int | None:
        """The newest version for ``territory`` (None if none was published), at most
        ``ttl_s`` old."""
        now = self._clock()
        with self._lock:
            known = self._known.get(territory)
        if known is not None and now - known[0] < self._ttl_s:
            return known[1]
        with reading(self._engine) as conn:
            found = conn.execute(select(func.max(bundles.c.version)).where(
                bundles.c.territory_id == territory, bundles.c.kind == self._kind)).scalar()
        version = None if found is None else int(found)
        with self._lock:
            self._known[territory] = (now, version)
        return version


_LATEST: weakref.WeakKeyDictionary[Engine, LatestVersions] = weakref.WeakKeyDictionary()
_LATEST_LOCK = threading.Lock()


def latest_versions(engine: Engine) -> LatestVersions:
    """The one cache of newest policy versions of ``engine``'s hub (one per process)."""
    with _LATEST_LOCK:
        cache = _LATEST.get(engine)
        if cache is None:
            cache = _LATEST[engine] = LatestVersions(engine, "policy")
        return cache
