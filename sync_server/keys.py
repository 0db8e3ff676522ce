"""The hub's Ed25519 signing key: one PEM file, created on purpose, read at start.

Gateways pin the public key at enrollment, so the key must outlive containers and upgrades:
``sync-server keys init`` creates it (mode 0600) and ``serve`` refuses to start without it,
except in demo mode, where a missing key is created so the demo needs no setup.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge_agent.codecs.bundle import (
    generate_signing_key,
    key_id,
    load_private_key_pem,
    private_key_pem,
    public_key_bytes,
)
from edge_agent.errors import BundleError
from sync_server.errors import Conflict, SettingsError
from sync_server.private_files import private_directory

__all__ = ["SigningKey", "create_signing_key", "load_signing_key"]


@dataclass(frozen=True, slots=True)
class SigningKey:
    """The private key with the public facts gateways pin."""

    private: Ed25519PrivateKey
    public_bytes: bytes
    key_id: str


def _wrap(private: Ed25519PrivateKey) -> SigningKey:
    public = public_key_bytes(private)
    return SigningKey(private, public, key_id(public))


def create_signing_key(path: Path) -> SigningKey:
    """Write a new key to ``path`` (0600); Conflict if one is there already."""
    private = generate_signing_key()
    try:
        private_directory(path.parent)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise Conflict(
            f"{path} already exists; replacing the signing key would strand every gateway "
            "that pinned it", code="already_exists") from None
    except OSError as exc:  # a directory we may not write, a path through a file
        raise SettingsError(f"cannot write the signing key {path}: {exc.strerror}") from None
    with os.fdopen(fd, "wb") as file:
        file.write(private_key_pem(private))
        file.flush()
        os.fsync(file.fileno())
    return _wrap(private)


def load_signing_key(path: Path, *, demo: bool) -> SigningKey:
    """The key at ``path``; in demo mode a missing key is created."""
    if not path.exists():
        if demo:
            return create_signing_key(path)
        raise SettingsError(
            f"no signing key at {path}: create it once with `sync-server keys init` (and keep "
            "it: gateways pin its public key), or pass --demo for a throwaway hub")
    try:
        return _wrap(load_private_key_pem(path.read_bytes()))
    except (OSError, BundleError) as exc:
        raise SettingsError(f"cannot read the signing key {path}: {exc}") from exc
