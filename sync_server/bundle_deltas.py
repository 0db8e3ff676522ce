"""Policy deltas served to gateways: the change from the version a gateway holds to the
newest, built from the two stored versions and signed with the hub key.

A gateway asks ``GET /v1/gateway/bundles/policy?base=N``; it gets a delta when the hub
still stores version N and the delta is much smaller than the bundle, else the full bundle
(docs/sync-protocol.md, "Policy deltas"). Building one reads and compares two whole badge
tables (0.3 s for 100,000 badges), and every gateway of a territory asks for the same one
after a change (the push answers name the new version), so each is built once and kept in
a small cache; requests for a delta being built wait for it rather than build it too (forty
threads built the same one at once, each holding its own tens of megabytes). Stored versions
never change, and the digest of the newest is part of the key, so a cached delta is never
stale.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict

from sqlalchemy import Engine, select

from edge_agent.codecs.bundle_delta import encode_delta
from sync_server.db.engine import reading
from sync_server.db.schema import bundles
from sync_server.errors import Conflict
from sync_server.keys import SigningKey

__all__ = ["DeltaCache", "policy_delta"]

#: A delta larger than this share of the full bundle is not worth it: the bundle is sent.
_WORTH_IT = 0.25
_CACHED = 64
#: Builds of different deltas that may run at once (two that share a lock queue).
_BUILDS = 8

_Key = tuple[int, int, int, str]


class DeltaCache:
    """The deltas built lately, newest last; thread-safe."""

    def __init__(self, size: int = _CACHED) -> None:
        self._size = size
        self._deltas: OrderedDict[_Key, bytes | None] = OrderedDict()
        self._lock = threading.Lock()
        self._builds = [threading.Lock() for _ in range(_BUILDS)]

    def building(self, key: _Key) -> threading.Lock:
        """The lock a build of ``key`` holds: a second request for it waits, then finds it."""
        return self._builds[hash(key) % len(self._builds)]

    def get(self, key: _Key) -> tuple[bool, bytes | None]:
        """Whether ``key`` is known, and its delta (None: the full bundle is better)."""
        with self._lock:
            if key not in self._deltas:
                return False, None
            self._deltas.move_to_end(key)
            return True, self._deltas[key]

    def put(self, key: _Key, delta: bytes | None) -> None:
        """Remember ``delta`` for ``key``, forgetting the oldest beyond the size."""
        with self._lock:
            self._deltas[key] = delta
            while len(self._deltas) > self._size:
                self._deltas.popitem(last=False)


_CACHE = DeltaCache()


def policy_delta(engine: Engine, key: SigningKey, territory: int, base: int, newest: int,
                 envelope: str) -> bytes | None:
    """The delta from ``base`` to ``newest`` (an older version; ``envelope`` is newest's), or None
    when the full bundle should go: ``base`` is not stored any more, or the delta would
    not be much smaller.

    Conflict (409 ``unknown_base``) for a base newer than the newest version: the gateway
    holds what this territory never published (another hub, a restored database).
    """
    if base > newest:
        raise Conflict(f"base version {base} is newer than this territory's newest policy, "
                       f"version {newest}", code="unknown_base")
    cache_key = (territory, base, newest, hashlib.sha256(envelope.encode()).hexdigest())
    known, delta = _CACHE.get(cache_key)
    if known:
        return delta
    with _CACHE.building(cache_key):
        known, delta = _CACHE.get(cache_key)
        if known:
            return delta
        with reading(engine) as conn:
            stored = conn.execute(select(bundles.c.envelope).where(
                bundles.c.territory_id == territory, bundles.c.kind == "policy",
                bundles.c.version == base)).scalar()
        if stored is not None:
            delta = encode_delta(key.private, json.loads(stored), json.loads(envelope))
            if len(delta) > _WORTH_IT * len(envelope):
                delta = None
        _CACHE.put(cache_key, delta)
    return delta
