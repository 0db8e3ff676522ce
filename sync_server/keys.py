"""The hub's keys: the Ed25519 signing key and the badge seal, files created on purpose.

Gateways pin the public key at enrollment, so the key must outlive containers and upgrades:
``sync-server keys init`` creates it (mode 0600) and ``serve`` refuses to start without it,
except in demo mode, where a missing key is created so the demo needs no setup.

The badge seal (``badge-seal.key`` beside the signing key, created with it) keeps every
territory's badge pseudonymisation key encrypted in the database (AES-256-GCM, bound to the
territory's name): a copy of the database or of a backup alone does not turn card numbers
into pseudonyms. The hub opens its database with the seal (``BADGE_SEAL_OPTION``) and reads
or writes badge keys only through ``seal_badge_key`` and ``open_badge_key``.
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import Connection, Engine

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

__all__ = [
    "BADGE_SEAL_OPTION",
    "BadgeSeal",
    "SigningKey",
    "create_badge_seal",
    "create_signing_key",
    "load_badge_seal",
    "load_signing_key",
    "open_badge_key",
    "seal_badge_key",
    "with_badge_seal",
]

#: The execution option of a hub engine that carries its BadgeSeal.
BADGE_SEAL_OPTION = "ponton_badge_seal"
#: Sealed badge keys start with this, then a 12-byte nonce, then 32 bytes and a 16-byte tag.
_SEALED = b"pbs1"
_NONCE_BYTES = 12


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


@dataclass(frozen=True, slots=True)
class BadgeSeal:
    """The AES-256-GCM key that seals badge keys in the database, and where it came from."""

    key: bytes = field(repr=False)
    path: Path

    def seal(self, territory: str, badge_key: bytes) -> bytes:
        """``badge_key`` encrypted for ``territory``'s row (a fresh nonce each time)."""
        nonce = secrets.token_bytes(_NONCE_BYTES)
        return _SEALED + nonce + AESGCM(self.key).encrypt(nonce, badge_key, _bound(territory))

    def open(self, territory: str, sealed: bytes) -> bytes:
        """The badge key sealed in ``sealed``; SettingsError if this seal cannot open it."""
        nonce = sealed[len(_SEALED):len(_SEALED) + _NONCE_BYTES]
        try:
            if not sealed.startswith(_SEALED):
                raise InvalidTag
            return AESGCM(self.key).decrypt(nonce, sealed[len(_SEALED) + _NONCE_BYTES:],
                                            _bound(territory))
        except InvalidTag:
            raise SettingsError(
                f"the badge key of territory {territory!r} does not open with the badge seal "
                f"{self.path}: this hub was given another seal file than the one that sealed "
                "its database") from None


def _bound(territory: str) -> bytes:
    """Associated data: a sealed key moved to another territory's row does not open."""
    return b"ponton badge key\x00" + territory.encode()


def create_badge_seal(path: Path) -> BadgeSeal:
    """Write a new badge seal to ``path`` (0600, base64); Conflict if one is there already."""
    key = AESGCM.generate_key(bit_length=256)
    try:
        private_directory(path.parent)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise Conflict(f"{path} already exists; replacing the badge seal would leave every "
                       "territory's badge key sealed for good", code="already_exists") from None
    except OSError as exc:
        raise SettingsError(f"cannot write the badge seal {path}: {exc.strerror}") from None
    with os.fdopen(fd, "wb") as file:
        file.write(base64.b64encode(key) + b"\n")
        file.flush()
        os.fsync(file.fileno())
    return BadgeSeal(key, path)


def load_badge_seal(path: Path, *, demo: bool) -> BadgeSeal:
    """The badge seal at ``path``; in demo mode a missing one is created."""
    if not path.exists():
        if demo:
            return create_badge_seal(path)
        raise SettingsError(
            f"no badge seal at {path}: create it once with `sync-server keys init` (and keep "
            "it with the database: the territories' badge keys open only with it), or pass "
            "--demo for a throwaway hub")
    try:
        key = base64.b64decode(path.read_bytes().strip(), validate=True)
    except (OSError, binascii.Error) as exc:
        raise SettingsError(f"cannot read the badge seal {path}: {exc}") from exc
    if len(key) != 32:
        raise SettingsError(f"cannot read the badge seal {path}: {len(key)} bytes, not 32")
    return BadgeSeal(key, path)


def with_badge_seal(engine: Engine, seal: BadgeSeal | None) -> Engine:
    """``engine`` whose connections carry ``seal`` (same pool, same events); as is if None."""
    return engine if seal is None else engine.execution_options(**{BADGE_SEAL_OPTION: seal})


def seal_badge_key(bind: Engine | Connection, territory: str, badge_key: bytes) -> bytes:
    """``badge_key`` as ``territory``'s row stores it, sealed with the engine's seal."""
    return _seal_of(bind).seal(territory, badge_key)


def open_badge_key(bind: Engine | Connection, territory: str, stored: bytes) -> bytes:
    """``territory``'s badge key from what its row stores, opened with the engine's seal."""
    return _seal_of(bind).open(territory, bytes(stored))


def _seal_of(bind: Engine | Connection) -> BadgeSeal:
    seal = bind.get_execution_options().get(BADGE_SEAL_OPTION)
    if not isinstance(seal, BadgeSeal):
        raise SettingsError("no badge seal beside the signing key, so no territory's badge "
                            "key can be read or written: create it once with `sync-server keys "
                            "init`")
    return seal
