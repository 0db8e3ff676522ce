"""The gateway's decision state: the policy in force, the badge key, who is inside.

The policy comes from the bundle store (verified again at every load); when it cannot be
read the engine holds none and every decision is ``no_policy``, a deny, and the reason why
is kept for ``status``. Swapping in a new policy is one assignment: a decision sees the old
policy or the new one, never a mix.
"""

from __future__ import annotations

import logging

from edge_agent.access.decision import Decision, Presence, Reason, decide
from edge_agent.codecs.access_policy import AccessPolicy, parse_policy
from edge_agent.codecs.bundle import VerifiedBundle
from edge_agent.codecs.pseudonyms import pseudonym
from edge_agent.errors import BundleError, PolicyError
from edge_agent.sync.bundles import BundleStore

__all__ = ["AccessEngine", "load_policy", "policy_of"]

log = logging.getLogger("edge_agent.access")


def policy_of(bundle: VerifiedBundle) -> AccessPolicy:
    """The policy a verified ``policy`` bundle carries; PolicyError if it is malformed."""
    return parse_policy(bundle.payload, version=bundle.version,
                        expires_at_ms=bundle.expires_at_ms)


def load_policy(store: BundleStore) -> AccessPolicy | None:
    """The policy held in ``store``, verified now; None if none was ever accepted.

    BundleError if the file on disk was tampered with or rolled back, PolicyError if its
    content does not parse.
    """
    bundle = store.current("policy")
    return None if bundle is None else policy_of(bundle)


class AccessEngine:
    """Decides for raw badge identifiers; they are turned into pseudonyms here and go no further.

    ``badge_key`` is None on a gateway that was never provisioned: it cannot hold a policy
    either, so it denies everyone.
    """

    def __init__(self, badge_key: bytes | None, policy: AccessPolicy | None = None) -> None:
        self._badge_key = badge_key
        self.policy = policy
        self.presence = Presence()
        #: Why there is no policy, for ``status`` (empty when one is in force).
        self.problem = "" if policy is not None else "no access policy received yet"

    def install(self, policy: AccessPolicy) -> None:
        """Enforce ``policy`` from the next decision on."""
        self.policy = policy
        self.problem = ""
        log.info("access policy version %d in force: %d badges, %d gates", policy.version,
                 len(policy.badges), len(policy.gates))

    def install_bundle(self, bundle: VerifiedBundle) -> None:
        """Enforce a newly accepted ``policy`` bundle; a malformed one leaves the current."""
        try:
            self.install(policy_of(bundle))
        except PolicyError as exc:
            log.error("policy bundle version %d is malformed, keeping version %s: %s",
                      bundle.version, self.policy.version if self.policy else "none", exc)

    def reload(self, store: BundleStore) -> None:
        """Load the policy held in ``store``; a refused one means no policy (deny all)."""
        try:
            policy = load_policy(store)
        except (BundleError, PolicyError) as exc:
            self.policy = None
            self.problem = f"policy refused: {exc}"
            log.error("%s; every badge is denied until a valid policy arrives", self.problem)
            return
        if policy is not None:
            self.install(policy)

    def decide(self, gate: str, raw: bytes, now_ms: int) -> Decision:
        """The decision for the card ``raw`` at ``gate``; anti-passback state follows it."""
        if self._badge_key is None:
            return Decision(gate, Reason.NO_POLICY, None)
        badge = pseudonym(self._badge_key, raw)
        policy = self.policy
        decision = decide(policy, gate, badge, now_ms, self.presence)
        if policy is not None:
            self.presence.record(policy, decision, now_ms)
        return decision

    def manual(self, gate: str) -> Decision:
        """The decision recorded when staff open ``gate`` by command."""
        policy = self.policy
        target = None
        if policy is not None and gate in policy.gates:
            target = policy.gates[gate].target
        return Decision(gate, Reason.MANUAL, None,
                        policy_version=policy.version if policy else 0, target=target)
