"""Badge pseudonyms: what stands for a card everywhere outside the gateway that read it. Pure.

A badge identifier is 24 to 80 bits: an unkeyed hash of it is reversed by trying them all.
So the gateway and the hub key the hash with the territory's secret (HMAC-SHA-256, handed to
gateways at enrollment) and keep 128 bits of it: enough that two badges of one territory
never collide, short enough that a policy of a million badges stays small. Raw identifiers
never leave the gateway; events, policies and the hub's tables carry the pseudonym.
"""

from __future__ import annotations

import hashlib
import hmac

__all__ = ["PSEUDONYM_BYTES", "pseudonym", "pseudonym_from_text", "pseudonym_text"]

#: Bytes of the HMAC kept.
PSEUDONYM_BYTES = 16
_KEY_BYTES = 32


def pseudonym(key: bytes, raw: bytes) -> bytes:
    """The territory's pseudonym of the card whose canonical identifier is ``raw``."""
    if len(key) != _KEY_BYTES:
        raise ValueError(f"a badge key has {_KEY_BYTES} bytes, got {len(key)}")
    if not raw:
        raise ValueError("a badge identifier has at least one byte")
    return hmac.new(key, raw, hashlib.sha256).digest()[:PSEUDONYM_BYTES]


def pseudonym_text(value: bytes) -> str:
    """The printed form of a pseudonym, as events and reports show it (lowercase hex)."""
    return value.hex()


def pseudonym_from_text(text: str) -> bytes:
    """A pseudonym from its printed form; ValueError unless 32 hex digits."""
    try:
        value = bytes.fromhex(text)
    except ValueError:
        value = b""
    if len(value) != PSEUDONYM_BYTES:
        raise ValueError(f"a badge pseudonym is {2 * PSEUDONYM_BYTES} hex digits, got {text!r}")
    return value
