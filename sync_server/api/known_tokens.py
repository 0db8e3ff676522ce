"""Gateway tokens this process has seen valid, so that a push's door costs no query.

A push's token is checked twice: at the door, before its body is read, and again inside
the transaction that stores its batch (sync_server/ingest.py updates the gateway row only
where it still holds the token). The second check is the one that admits records; the
first only keeps a client without a valid token from having its body read. So the door
may answer from memory: a token found valid here before passes it without a query, and
a push then costs one connection and one transaction. Nothing expires an entry by time: a
token revoked or reissued stays here until its next push, which stores nothing. That push
fails the second check (401, like an unknown token) or fails before it (a body that does
not decode, 400), and a push that does not succeed forgets its token here (``PushRoute``
in api/gateway.py): after its revocation a token has one body read and decoded in each
hub process (a few, if sent at once, each holding a push slot), and no more. Unknown
tokens are never kept: each costs a lookup before any body is read, as every route's does.
"""

from __future__ import annotations

import threading

from sync_server.ingest import GatewayRef

__all__ = ["KnownTokens"]


class KnownTokens:
    """Token digests found valid, and their gateways; at most ``limit`` (emptied beyond)."""

    def __init__(self, limit: int = 20_000) -> None:
        self._known: dict[str, GatewayRef] = {}
        self._limit = limit
        self._lock = threading.Lock()

    def get(self, digest: str) -> GatewayRef | None:
        """The gateway ``digest`` was last found to belong to, if it was."""
        return self._known.get(digest)

    def keep(self, digest: str, gateway: GatewayRef) -> None:
        """Remember that ``digest`` was found valid for ``gateway``."""
        with self._lock:
            if len(self._known) >= self._limit:
                self._known.clear()
            self._known[digest] = gateway

    def forget(self, digest: str) -> None:
        """``digest`` was refused since: look it up again next time."""
        with self._lock:
            self._known.pop(digest, None)
