"""Fetching the hub's signed bundles (configuration, access policy) into the bundle store.

Runs beside the push loop, every ``bundle_interval_s``: a conditional GET per kind, so an
unchanged bundle costs a 304 and no bytes. What arrives is handed to ``BundleStore.accept``,
which verifies it against the pinned key and refuses older, expired, foreign or tampered
bundles; a refusal is logged and counted, and the gateway keeps enforcing what it had. The
hub being away is not an error here: the push loop already reports it.

A revocation must not wait for the next round: every push answer names the territory's
newest policy, and the push loop tells ``hint``, which pulls the policy at once when it is
newer than the one held. The policy is asked for as a delta from the version held
(edge_agent/codecs/bundle_delta.py); a delta refused for any reason (tampered, a gap, a
wrong base) is counted in ``delta_fallbacks`` and the full bundle is fetched instead.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from edge_agent.codecs.bundle import BUNDLE_KINDS, VerifiedBundle
from edge_agent.errors import BundleError, HubAnswerTooLarge, HubRejected, SyncError
from edge_agent.records import now_ms
from edge_agent.sync.bundles import BundleStore
from edge_agent.sync.client import Fetched, HubClient

__all__ = ["BundlePuller", "PullState"]

log = logging.getLogger("edge_agent.sync")


@dataclass(slots=True)
class PullState:
    """What ``status.json`` says about bundles: versions held and refusals."""

    held: dict[str, dict[str, int]] = field(default_factory=dict)
    refused: int = 0
    last_refusal: str = ""
    #: Policy deltas applied, and refused (the full bundle was fetched instead).
    deltas: int = 0
    delta_fallbacks: int = 0
    last_delta_fallback: str = ""
    #: Pulls made at once because a push answer named a newer policy.
    hinted_pulls: int = 0


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
        self._nudge = asyncio.Event()
        self._hinted = 0

    async def run(self) -> None:
        """Pull every kind now and then every ``interval_s``, until cancelled.

        A bug here must not stop the gateway: it is logged and the next round goes on.
        """
        await asyncio.to_thread(self._load_held)
        kinds: tuple[str, ...] = BUNDLE_KINDS
        while True:
            # Cleared before the round, not after: a hint that comes while the round is
            # fetching (the push loop runs beside it) may name a version this round missed.
            self._nudge.clear()
            for kind in kinds:
                try:
                    await self.pull(kind)
                except Exception:
                    log.exception("fetching the %s bundle failed unexpectedly", kind)
            try:
                await asyncio.wait_for(self._nudge.wait(), self.interval_s)
            except TimeoutError:
                kinds = BUNDLE_KINDS
            else:
                kinds = ("policy",)
                self.state.hinted_pulls += 1

    def hint(self, newest_policy: int) -> None:
        """A push answer named ``newest_policy``: pull it now if it is newer than the policy
        held and than any version hinted before (a hub whose hint runs ahead of what it
        serves must not make every push cost a pull)."""
        held = self.state.held.get("policy", {}).get("version", 0)
        if newest_policy > max(held, self._hinted):
            self._hinted = newest_policy
            self._nudge.set()

    async def pull(self, kind: str) -> bool:
        """Fetch ``kind`` once (the policy as a delta from the version held); whether a new
        version was accepted."""
        held = self.state.held.get(kind, {}).get("version") if kind == "policy" else None
        fetched = await self._fetch(kind, held)
        if fetched is not None and fetched.delta:
            applied = await self._apply_delta(fetched)
            if applied is not None:
                return applied
            fetched = await self._fetch(kind, None, fresh=True)
        if fetched is None:
            return False
        return await self._accept(kind, fetched)

    async def _apply_delta(self, fetched: Fetched) -> bool | None:
        """Apply a policy delta: whether it brought a new version; None when it was refused
        and counted, the caller then fetching the full bundle."""
        try:
            accepted = await asyncio.to_thread(self.store.accept_delta, fetched.content,
                                               now_ms=now_ms())
        except BundleError as exc:
            self.state.delta_fallbacks += 1
            self.state.last_delta_fallback = str(exc)
            log.warning("refused the hub's policy delta (%s); fetching the full policy "
                        "instead (%d fallbacks so far)", exc, self.state.delta_fallbacks)
            return None
        self.state.deltas += 1
        self._etags["policy"] = fetched.etag
        return accepted is not None and self._accepted("policy", accepted)

    async def _fetch(self, kind: str, base: int | None, *, fresh: bool = False) -> Fetched | None:
        """The hub's answer for ``kind``; None when unchanged or the hub could not answer.
        ``fresh`` forgets the ETag, to fetch the full bundle whatever is held."""
        try:
            return await self.client.pull_bundle(
                kind, None if fresh else self._etags.get(kind), base)
        except SyncError as exc:
            self._hinted = 0  # the next push answer naming a newer version tries again
            # An unreachable hub is the push loop's to report; a refusal or an oversize
            # answer is news (a hub without this kind of bundle is not).
            if isinstance(exc, HubAnswerTooLarge) or (
                    isinstance(exc, HubRejected) and exc.code != "no_bundle"):
                log.warning("could not fetch the %s bundle: %s", kind, exc)
            return None

    async def _accept(self, kind: str, fetched: Fetched) -> bool:
        """Verify and keep a full bundle; whether it was a new version."""
        try:
            accepted = await asyncio.to_thread(self.store.accept, fetched.content,
                                               now_ms=now_ms())
        except BundleError as exc:
            # The ETag is not remembered: a refusal may be passing (a full disk, a clock
            # not yet synchronised), and the next look must fetch the bundle again.
            self.state.refused += 1
            self.state.last_refusal = f"{kind}: {exc}"
            log.error("refused the hub's %s bundle, keeping the one held: %s", kind, exc)
            return False
        self._etags[kind] = fetched.etag
        return accepted is not None and self._accepted(kind, accepted)

    def _accepted(self, kind: str, accepted: VerifiedBundle) -> bool:
        self._remember(kind, accepted.version, accepted.expires_at_ms)
        log.info("%s bundle version %d accepted (expires at %d ms)", kind, accepted.version,
                 accepted.expires_at_ms)
        if self._on_accept is not None:
            self._on_accept(accepted)
        return True

    def report(self) -> dict[str, Any]:
        """The state as plain data, for ``status.json``."""
        return dataclasses.asdict(self.state)

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
