"""Fetching the hub's signed bundles (configuration, access policy) into the bundle store.

Runs beside the push loop, every ``bundle_interval_s``: a conditional GET per kind, so an
unchanged bundle costs a 304 and no bytes. What arrives is handed to ``BundleStore.accept``,
which verifies it against the pinned key and refuses older, expired, foreign or tampered
bundles; a refusal is logged and counted, and the gateway keeps enforcing what it had. The
hub being away is not an error here: the push loop already reports it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from edge_agent.codecs.bundle import BUNDLE_KINDS, VerifiedBundle
from edge_agent.errors import BundleError, HubAnswerTooLarge, HubRejected, SyncError
from edge_agent.records import now_ms
from edge_agent.sync.bundles import BundleStore
from edge_agent.sync.client import HubClient

__all__ = ["BundlePuller", "PullState"]

log = logging.getLogger("edge_agent.sync")


@dataclass(slots=True)
class PullState:
    """What ``status.json`` says about bundles: versions held and refusals."""

    held: dict[str, dict[str, int]] = field(default_factory=dict)
    refused: int = 0
    last_refusal: str = ""


class BundlePuller:
    """Keeps ``store`` up to date with the hub's newest bundles."""

    def __init__(self, client: HubClient, store: BundleStore, interval_s: float, *,
                 on_accept: Callable[[VerifiedBundle], None] | None = None) -> None:
        """``on_accept`` is told of every new version, once it is on disk."""
        self.client = client
        self._on_accept = on_accept
        self.store = store
        self.interval_s = interval_s
        self.state = PullState()
        self._etags: dict[str, str] = {}

    async def run(self) -> None:
        """Pull every kind now and then every ``interval_s``, until cancelled.

        A bug here must not stop the gateway: it is logged and the next round goes on.
        """
        await asyncio.to_thread(self._load_held)
        while True:
            for kind in BUNDLE_KINDS:
                try:
                    await self.pull(kind)
                except Exception:
                    log.exception("fetching the %s bundle failed unexpectedly", kind)
            await asyncio.sleep(self.interval_s)

    async def pull(self, kind: str) -> bool:
        """Fetch ``kind`` once; whether a new version was accepted."""
        try:
            fetched = await self.client.pull_bundle(kind, self._etags.get(kind))
        except SyncError as exc:
            # An unreachable hub is the push loop's to report; a refusal or an oversize
            # answer is news (a hub without this kind of bundle is not).
            if isinstance(exc, HubAnswerTooLarge) or (
                    isinstance(exc, HubRejected) and exc.code != "no_bundle"):
                log.warning("could not fetch the %s bundle: %s", kind, exc)
            return False
        if fetched is None:
            return False
        envelope, etag = fetched
        try:
            accepted = await asyncio.to_thread(self.store.accept, envelope, now_ms=now_ms())
        except BundleError as exc:
            # The ETag is not remembered: a refusal may be passing (a full disk, a clock
            # not yet synchronised), and the next look must fetch the bundle again.
            self.state.refused += 1
            self.state.last_refusal = f"{kind}: {exc}"
            log.error("refused the hub's %s bundle, keeping the one held: %s", kind, exc)
            return False
        self._etags[kind] = etag
        if accepted is None:
            return False
        self._remember(kind, accepted.version, accepted.expires_at_ms)
        log.info("%s bundle version %d accepted (expires at %d ms)", kind, accepted.version,
                 accepted.expires_at_ms)
        if self._on_accept is not None:
            self._on_accept(accepted)
        return True

    def report(self) -> dict[str, Any]:
        """The state as plain data, for ``status.json``."""
        return {"held": self.state.held, "refused": self.state.refused,
                "last_refusal": self.state.last_refusal}

    def _load_held(self) -> None:
        for kind in BUNDLE_KINDS:
            try:
                bundle = self.store.current(kind)
            except BundleError as exc:
                self.state.refused += 1
                self.state.last_refusal = f"{kind} on disk: {exc}"
                log.error("the %s bundle on disk is refused: %s", kind, exc)
                continue
            if bundle is not None:
                self._remember(kind, bundle.version, bundle.expires_at_ms)

    def _remember(self, kind: str, version: int, expires_at_ms: int) -> None:
        self.state.held[kind] = {"version": version, "expires_at_ms": expires_at_ms}
