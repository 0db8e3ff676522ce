"""Signed bundles: Ed25519 over canonical JSON, so a gateway obeys only what its hub signed. Pure.

Config and policy reach a gateway over networks and disks nobody controls, so the hub signs
them and the gateway checks the signature with the key pinned at enrollment
(docs/sync-protocol.md, "Pull: signed bundles"). The signature covers the canonical encoding
of the ``bundle`` object, not the bytes that travelled: whitespace or key order picked up on
the way does not matter, any change of content does.

The canonical form is Python's ``json.dumps(sort_keys=True, separators=(",", ":"),
ensure_ascii=False, allow_nan=False)`` in UTF-8. It is close to, but not, RFC 8785 (JCS):
floats are written in Python's shortest round-trip form (``1.0``, ``1e+16``) and keys are
sorted by code point, not by UTF-16 unit. A verifier in another language must reproduce
that; payloads of integers, strings and BMP keys read the same in both.

Verifying does not check expiry: ``VerifiedBundle.expired`` lets the caller decide, so an
expired policy can still be loaded to put gates in their fail mode.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from edge_agent.errors import BundleError
from edge_agent.signatures import verify_ed25519

if TYPE_CHECKING:  # signing is the hub's business: a gateway never imports cryptography
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

__all__ = [
    "BUNDLE_KINDS",
    "MAX_ENVELOPE_BYTES",
    "VerifiedBundle",
    "canonical_json",
    "claimed_kind",
    "generate_signing_key",
    "key_id",
    "load_private_key_pem",
    "open_envelope",
    "private_key_pem",
    "public_key_bytes",
    "sign_bundle",
    "sign_envelope",
    "verify_bundle",
]

#: The kinds of bundle a hub publishes (``GET /v1/gateway/bundles/{kind}``).
BUNDLE_KINDS = ("config", "policy")

#: An envelope longer than this is refused before it is parsed.
MAX_ENVELOPE_BYTES = 64 * 1024 * 1024

_MAX_DEPTH = 64
_MAX_INTEGER = 2**63 - 1  # versions and timestamps must fit the hub's BIGINT columns
_PUBLIC_KEY_BYTES = 32
_SIGNATURE_BYTES = 64
_BUNDLE_FIELDS = frozenset(
    {"kind", "territory", "version", "issued_at_ms", "expires_at_ms", "payload"})


@dataclass(frozen=True, slots=True)
class VerifiedBundle:
    """A bundle whose signature checked out against the pinned key.

    ``signed_bytes`` is the canonical bundle the signature covers (compare it to tell two
    bundles apart: ``1 == 1.0 == True`` in Python); ``envelope`` is the canonical envelope,
    what a store writes to disk and verifies again later.
    """

    kind: str
    territory: str
    version: int
    issued_at_ms: int
    expires_at_ms: int
    payload: dict[str, Any]
    signed_bytes: bytes = field(repr=False)
    envelope: bytes = field(repr=False)

    def expired(self, now_ms: int) -> bool:
        """Whether the hub's validity window is over at ``now_ms`` (UTC ms)."""
        return now_ms >= self.expires_at_ms


class _NoCanonicalForm(Exception):
    """A value without canonical form; ``path`` is filled in on the way out of the walk."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.path: list[str | int] = []


def canonical_json(value: Any) -> bytes:
    """``value`` as the exact bytes a signature covers; BundleError if it has no canonical form.

    Only dict (string keys), list, str, int, finite float, bool and None are accepted, at
    most 64 levels deep: tuples, sets, bytes and NaN are refused rather than guessed at.
    """
    try:
        _check_value(value, 0)
    except _NoCanonicalForm as exc:
        where = "".join(f"[{step!r}]" for step in reversed(exc.path))
        raise BundleError(f"value{where} has no canonical JSON form: {exc.reason}") from None
    try:
        text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                          allow_nan=False)
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise BundleError("a string holds a lone surrogate, which UTF-8 cannot encode") from None
    except ValueError as exc:  # integers beyond sys.get_int_max_str_digits()
        raise BundleError(f"value has no canonical JSON form: {exc}") from None


def key_id(public_key: bytes) -> str:
    """The short name of a raw Ed25519 public key: 16 hex digits of its SHA-256."""
    if len(public_key) != _PUBLIC_KEY_BYTES:
        raise BundleError(f"an Ed25519 public key is {_PUBLIC_KEY_BYTES} raw bytes, "
                          f"got {len(public_key)}")
    return hashlib.sha256(public_key).hexdigest()[:16]


def generate_signing_key() -> Ed25519PrivateKey:
    """A new random hub signing key."""
    from cryptography.hazmat.primitives.asymmetric import ed25519  # noqa: PLC0415 - hub only

    return ed25519.Ed25519PrivateKey.generate()


def public_key_bytes(key: Ed25519PrivateKey) -> bytes:
    """The raw 32-byte public half of ``key``, what a gateway pins at enrollment."""
    from cryptography.hazmat.primitives import serialization  # noqa: PLC0415 - hub only

    return key.public_key().public_bytes(serialization.Encoding.Raw,
                                         serialization.PublicFormat.Raw)


def private_key_pem(key: Ed25519PrivateKey) -> bytes:
    """``key`` as unencrypted PKCS8 PEM; the file's 0600 mode is what protects it."""
    from cryptography.hazmat.primitives import serialization  # noqa: PLC0415 - hub only

    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def load_private_key_pem(data: bytes) -> Ed25519PrivateKey:
    """The Ed25519 key of an unencrypted PEM file; BundleError for anything else."""
    from cryptography.exceptions import UnsupportedAlgorithm  # noqa: PLC0415 - hub only
    from cryptography.hazmat.primitives import serialization  # noqa: PLC0415
    from cryptography.hazmat.primitives.asymmetric import ed25519  # noqa: PLC0415

    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise BundleError(f"not an unencrypted PEM private key: {exc}") from None
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise BundleError(f"the signing key must be Ed25519, this PEM holds a "
                          f"{type(key).__name__}")
    return key


def sign_bundle(
    private_key: Ed25519PrivateKey,
    *,
    kind: str,
    territory: str,
    version: int,
    issued_at_ms: int,
    expires_at_ms: int,
    payload: dict[str, Any],
) -> dict[str, Any]:
    """The signed envelope ``{"bundle", "key_id", "signature"}`` of docs/sync-protocol.md.

    The bundle is checked as a gateway will check it, so the hub cannot publish one that
    every gateway would refuse.
    """
    bundle = {"kind": kind, "territory": territory, "version": version,
              "issued_at_ms": issued_at_ms, "expires_at_ms": expires_at_ms, "payload": payload}
    _check_bundle(bundle)
    return sign_envelope(private_key, "bundle", bundle)


def sign_envelope(private_key: Ed25519PrivateKey, field_name: str,
                  body: dict[str, Any]) -> dict[str, Any]:
    """``{field_name: body, "key_id", "signature"}``: the envelope of bundles and of their
    deltas (edge_agent/codecs/bundle_delta.py), signed over ``canonical_json(body)``."""
    signature = private_key.sign(canonical_json(body))
    return {field_name: body, "key_id": key_id(public_key_bytes(private_key)),
            "signature": base64.b64encode(signature).decode("ascii")}


def open_envelope(data: bytes, public_key: bytes, field_name: str) -> tuple[dict[str, Any],
                                                                             bytes, bytes]:
    """The body, its canonical bytes and its signature, if the pinned ``public_key`` signed
    the envelope ``data`` whose body is under ``field_name``; BundleError otherwise.

    Only the signature is checked: what the body must hold is the caller's to check.
    """
    body, claimed_key_id, signature = _split_envelope(_parse(data), field_name)
    pinned_key_id = key_id(public_key)
    if claimed_key_id != pinned_key_id:
        raise BundleError(f"{field_name} is signed with key {claimed_key_id!r}, not with the "
                          f"pinned hub key {pinned_key_id!r}")
    signed = canonical_json(body)
    if not verify_ed25519(public_key, signature, signed):
        raise BundleError(f"signature does not match the {field_name}: its content was "
                          "changed or another key signed it")
    return body, signed, signature


def claimed_kind(envelope: bytes) -> str:
    """The kind an envelope says it holds, before any check.

    Only good for choosing what to verify against (``verify_bundle(kind=...)``); never
    trust it otherwise.
    """
    document = _parse(envelope)
    bundle = document.get("bundle") if isinstance(document, dict) else None
    kind = bundle.get("kind") if isinstance(bundle, dict) else None
    if not isinstance(kind, str):
        raise BundleError("envelope does not name its bundle's kind")
    return kind


def verify_bundle(
    envelope: bytes | dict[str, Any], public_key: bytes, *, kind: str, territory: str
) -> VerifiedBundle:
    """The bundle of ``envelope`` if the pinned ``public_key`` signed it for this gateway.

    Refuses (BundleError, saying which check failed) bytes that are not a JSON envelope
    of the documented shape, a key id other than the pinned key's, a signature that does
    not match the canonical bundle, and a bundle of another kind or territory. Expiry is
    the caller's decision (``VerifiedBundle.expired``).
    """
    data = envelope if isinstance(envelope, bytes) else canonical_json(envelope)
    bundle, signed, signature = open_envelope(data, public_key, "bundle")
    checked = _check_bundle(bundle)
    if checked.kind != kind:
        raise BundleError(f"bundle is a {checked.kind!r} bundle, {kind!r} was expected")
    if checked.territory != territory:
        raise BundleError(f"bundle is for territory {checked.territory!r}, this gateway "
                          f"belongs to {territory!r}")
    normalised = {"bundle": bundle, "key_id": key_id(public_key),
                  "signature": base64.b64encode(signature).decode("ascii")}
    return VerifiedBundle(checked.kind, checked.territory, checked.version,
                          checked.issued_at_ms, checked.expires_at_ms, checked.payload,
                          signed, canonical_json(normalised))


@dataclass(frozen=True, slots=True)
class _BundleFields:
    kind: str
    territory: str
    version: int
    issued_at_ms: int
    expires_at_ms: int
    payload: dict[str, Any]


def _check_value(value: object, depth: int) -> None:
    if depth > _MAX_DEPTH:
        raise _NoCanonicalForm(f"nested deeper than {_MAX_DEPTH} levels")
    if value is None or isinstance(value, bool | int | str):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _NoCanonicalForm(f"{value} is not a JSON number")
        return
    if isinstance(value, list):
        for index, item in enumerate(value):
            try:
                _check_value(item, depth + 1)
            except _NoCanonicalForm as exc:
                exc.path.append(index)
                raise
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise _NoCanonicalForm(f"key {key!r} is not a string")
            try:
                _check_value(item, depth + 1)
            except _NoCanonicalForm as exc:
                exc.path.append(key)
                raise
        return
    raise _NoCanonicalForm(f"a {type(value).__name__} is not one of dict, list, str, int, "
                           f"float, bool, None")


def _parse(data: bytes) -> Any:
    if len(data) > MAX_ENVELOPE_BYTES:
        raise BundleError(f"envelope is {len(data)} bytes, more than the "
                          f"{MAX_ENVELOPE_BYTES} allowed")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BundleError(f"envelope is not UTF-8: {exc}") from None
    try:
        return json.loads(text, object_pairs_hook=_without_duplicates,
                          parse_constant=_refuse_constant)
    except RecursionError:
        raise BundleError("envelope is nested too deeply to be a bundle") from None
    except ValueError as exc:
        raise BundleError(f"envelope is not JSON: {exc}") from None


def _without_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Parsers disagree on which of two equal keys wins; refuse rather than pick one.
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise BundleError(f"envelope has the key {key!r} twice")
        result[key] = value
    return result


def _refuse_constant(name: str) -> Any:
    raise BundleError(f"envelope holds {name}, which is not JSON")


def _split_envelope(document: Any, field_name: str) -> tuple[dict[str, Any], str, bytes]:
    if not isinstance(document, dict):
        raise BundleError("envelope must be a JSON object")
    _check_fields("envelope", document, frozenset({field_name, "key_id", "signature"}))
    body, claimed_key_id, encoded = (document[field_name], document["key_id"],
                                     document["signature"])
    if not isinstance(body, dict):
        raise BundleError(f"envelope field {field_name!r} must be an object")
    if not isinstance(claimed_key_id, str):
        raise BundleError("envelope field 'key_id' must be a string")
    if not isinstance(encoded, str):
        raise BundleError("envelope field 'signature' must be a base64 string")
    try:
        signature = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise BundleError("envelope field 'signature' is not valid base64") from None
    if len(signature) != _SIGNATURE_BYTES:
        raise BundleError(f"signature is {len(signature)} bytes, an Ed25519 signature is "
                          f"{_SIGNATURE_BYTES}")
    if base64.b64encode(signature).decode("ascii") != encoded:
        raise BundleError("envelope field 'signature' is not in canonical base64")
    return body, claimed_key_id, signature


def _check_fields(what: str, document: dict[str, Any], expected: frozenset[str]) -> None:
    missing, unexpected = sorted(expected - document.keys()), sorted(document.keys() - expected)
    if missing:
        raise BundleError(f"{what} lacks the field(s) {', '.join(missing)}")
    if unexpected:
        raise BundleError(f"{what} has unknown field(s) {', '.join(unexpected)}")


def _check_bundle(bundle: dict[str, Any]) -> _BundleFields:
    _check_fields("bundle", bundle, _BUNDLE_FIELDS)
    kind, territory = _name(bundle, "kind"), _name(bundle, "territory")
    version = _integer(bundle, "version", minimum=1)
    issued_at_ms = _integer(bundle, "issued_at_ms", minimum=0)
    expires_at_ms = _integer(bundle, "expires_at_ms", minimum=0)
    if expires_at_ms <= issued_at_ms:
        raise BundleError(f"bundle expires ({expires_at_ms}) no later than it was issued "
                          f"({issued_at_ms})")
    payload = bundle["payload"]
    if not isinstance(payload, dict):
        raise BundleError("bundle field 'payload' must be an object")
    return _BundleFields(kind, territory, version, issued_at_ms, expires_at_ms, payload)


def _name(bundle: dict[str, Any], name: str) -> str:
    value = bundle[name]
    if not isinstance(value, str) or not value:
        raise BundleError(f"bundle field {name!r} must be a non-empty string, got {value!r}")
    return value


def _integer(bundle: dict[str, Any], name: str, *, minimum: int) -> int:
    value = bundle[name]
    if not isinstance(value, int) or isinstance(value, bool):
        raise BundleError(f"bundle field {name!r} must be an integer, got {value!r}")
    if not minimum <= value <= _MAX_INTEGER:
        raise BundleError(f"bundle field {name!r} must be between {minimum} and "
                          f"{_MAX_INTEGER}, got {value}")
    return value
