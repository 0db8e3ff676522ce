"""What every push tells the hub about the gateway besides its records.

The dashboard shows which agent version runs, how far behind the gateway is and which
bundle versions it enforces (is a revocation through yet?). Only the gateway knows these,
so each push carries them as headers (docs/sync-protocol.md); the hub keeps the latest.
"""

from __future__ import annotations

from collections.abc import Mapping

from edge_agent import __version__

__all__ = ["AGENT_VERSION_HEADER", "BUNDLES_HEADER", "SYNC_LAG_HEADER", "fact_headers"]

AGENT_VERSION_HEADER = "X-Ponton-Agent-Version"
SYNC_LAG_HEADER = "X-Ponton-Sync-Lag-Ms"
BUNDLES_HEADER = "X-Ponton-Bundles"


def fact_headers(lag_ms: int | None, held: Mapping[str, Mapping[str, int]]) -> dict[str, str]:
    """The headers of a push: the agent's version, the age in ms of the oldest record not
    yet acknowledged (absent when the outbox is empty), and ``kind=version`` of each bundle
    held (absent when none is)."""
    headers = {AGENT_VERSION_HEADER: __version__}
    if lag_ms is not None:
        headers[SYNC_LAG_HEADER] = str(lag_ms)
    if held:
        headers[BUNDLES_HEADER] = ",".join(
            f"{kind}={bundle['version']}" for kind, bundle in sorted(held.items()))
    return headers
