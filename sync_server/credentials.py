"""Secrets the hub hands out: gateway and operator tokens, enrollment codes.

Tokens are 256-bit random strings, so the hub keeps only their SHA-256: a database dump does
not let anyone push or read, and a slow password hash would add nothing against brute force.
Enrollment codes are shorter so an installer can type them (16 base32 characters, 80 bits),
single-use, short-lived, and guarded by a rate limit on failures.
"""

from __future__ import annotations

import base64
import hashlib
import secrets

__all__ = [
    "GATEWAY_TOKEN_PREFIX",
    "OPERATOR_TOKEN_PREFIX",
    "digest",
    "new_enrollment_code",
    "new_token",
    "normalise_code",
]

GATEWAY_TOKEN_PREFIX = "pgw_"
OPERATOR_TOKEN_PREFIX = "pop_"


def new_token(prefix: str) -> str:
    """A fresh bearer token; the prefix tells a reader what kind it is."""
    return prefix + secrets.token_urlsafe(32)


def digest(secret: str) -> str:
    """What the hub stores for a token or a normalised enrollment code."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def new_enrollment_code() -> str:
    """A code like ``K7QD-M2XP-9FHT-W4LA``: 80 random bits, no padding, easy to read out."""
    raw = base64.b32encode(secrets.token_bytes(10)).decode("ascii")
    return "-".join(raw[i : i + 4] for i in range(0, 16, 4))


def normalise_code(code: str) -> str:
    """The code as stored: upper case, without dashes or spaces, so typing slips match."""
    return "".join(code.split()).replace("-", "").upper()
