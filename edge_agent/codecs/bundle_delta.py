"""Policy deltas: one signed change from a base version to the next, so a revocation costs
a few hundred bytes instead of the whole badge table. Pure.

A territory of 100,000 badges has a 3.4 MB policy; revoking one badge changes 26 bytes of
it. A delta carries what changed (badge records added or replaced, pseudonyms removed,
top-level rule fields set or dropped) and is chained to its base: the base's version and
the SHA-256 of the base's canonical bundle. It is signed with the hub key, like bundles
(docs/sync-protocol.md, "Policy deltas"), and it also carries the target version's own
signature, so the gateway rebuilds the target bundle exactly as the hub signed it and keeps
that in its store: what it enforces is always a full, signed bundle.

The gateway refuses (BundleError, saying which check failed) a delta whose signature fails,
whose base is not the one it holds (``wrong base``: same version, other content), or which
does not start at the version it holds (``gap``); it then fetches the full bundle.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from edge_agent.codecs.access_policy import BadgeRecord
from edge_agent.codecs.bundle import (
    VerifiedBundle,
    canonical_json,
    key_id,
    open_envelope,
    sign_envelope,
    verify_bundle,
)
from edge_agent.codecs.pseudonyms import PSEUDONYM_BYTES
from edge_agent.errors import BundleError

if TYPE_CHECKING:  # signing is the hub's business: a gateway never imports cryptography
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

__all__ = [
    "DELTA_MEDIA_TYPE",
    "POLICY_VERSION_HEADER",
    "PolicyDelta",
    "apply_delta",
    "decode_delta",
    "encode_delta",
]

#: The push answer's header naming the territory's newest policy version.
POLICY_VERSION_HEADER = "X-Ponton-Policy-Version"
#: The Content-Type of a delta answer; a full bundle is ``application/json``.
DELTA_MEDIA_TYPE = "application/vnd.ponton.bundle-delta+json"

_RECORD_BYTES = len(BadgeRecord(b"\0" * PSEUDONYM_BYTES, 0).pack())
#: Payload fields that hold the badge table: carried as record changes, never whole.
_TABLE_FIELDS = frozenset({"badges", "badge_count"})
_DELTA_FIELDS = frozenset({"kind", "territory", "base_version", "base_sha256", "version",
                           "issued_at_ms", "expires_at_ms", "target_signature", "set", "unset",
                           "upsert", "remove"})
_MAX_INTEGER = 2**63 - 1


@dataclass(frozen=True, slots=True)
class PolicyDelta:
    """A delta whose signature checked out; nothing yet says it fits the bundle held."""

    territory: str
    base_version: int
    base_sha256: str
    version: int
    issued_at_ms: int
    expires_at_ms: int
    target_signature: str
    set_fields: dict[str, Any]
    unset_fields: tuple[str, ...]
    #: Packed badge records to add or replace, sorted by pseudonym.
    upsert: bytes
    #: Pseudonyms to drop, sorted.
    remove: bytes


def encode_delta(private_key: Ed25519PrivateKey, base: Mapping[str, Any],
                 target: Mapping[str, Any]) -> bytes:
    """The signed delta turning the policy envelope ``base`` into ``target`` (both as the
    hub stored them, parsed), as canonical bytes."""
    base_bundle, target_bundle = base["bundle"], target["bundle"]
    if base_bundle["kind"] != "policy" or target_bundle["kind"] != "policy":
        raise BundleError("deltas exist for policy bundles only")
    if base_bundle["territory"] != target_bundle["territory"]:
        raise BundleError("a delta joins two versions of one territory")
    if base_bundle["version"] >= target_bundle["version"]:
        raise BundleError(f"a delta goes forward: version {base_bundle['version']} to "
                          f"{target_bundle['version']} does not")
    old, new = base_bundle["payload"], target_bundle["payload"]
    old_records, new_records = _records(_table(old)), _records(_table(new))
    added = sorted(new_records - old_records)
    kept = {record[:PSEUDONYM_BYTES] for record in new_records}
    removed = sorted({record[:PSEUDONYM_BYTES] for record in old_records - new_records} - kept)
    body = {
        "kind": "policy", "territory": target_bundle["territory"],
        "base_version": base_bundle["version"], "base_sha256": _digest(base_bundle),
        "version": target_bundle["version"], "issued_at_ms": target_bundle["issued_at_ms"],
        "expires_at_ms": target_bundle["expires_at_ms"],
        "target_signature": target["signature"],
        "set": {name: value for name, value in new.items()
                if name not in _TABLE_FIELDS and old.get(name, _ABSENT) != value},
        "unset": sorted(name for name in old if name not in new and name not in _TABLE_FIELDS),
        "upsert": base64.b64encode(b"".join(added)).decode("ascii"),
        "remove": base64.b64encode(b"".join(removed)).decode("ascii"),
    }
    return canonical_json(sign_envelope(private_key, "delta", body))


def decode_delta(data: bytes, public_key: bytes, *, territory: str) -> PolicyDelta:
    """The delta of ``data`` if the pinned key signed it for this territory's policy."""
    body, _signed, _signature = open_envelope(data, public_key, "delta")
    missing, unknown = sorted(_DELTA_FIELDS - body.keys()), sorted(body.keys() - _DELTA_FIELDS)
    if missing or unknown:
        raise BundleError(f"delta lacks {missing or 'nothing'}, has unknown {unknown or 'none'}")
    if body["kind"] != "policy":
        raise BundleError(f"delta is for a {body['kind']!r} bundle; deltas are for policies")
    if body["territory"] != territory:
        raise BundleError(f"delta is for territory {body['territory']!r}, this gateway "
                          f"belongs to {territory!r}")
    set_fields, unset = body["set"], body["unset"]
    if not isinstance(set_fields, dict) or _TABLE_FIELDS & set_fields.keys():
        raise BundleError("delta field 'set' must be an object of rule fields")
    if not isinstance(unset, list) or not all(isinstance(name, str) for name in unset):
        raise BundleError("delta field 'unset' must be a list of field names")
    delta = PolicyDelta(
        territory, _integer(body, "base_version"), _text(body, "base_sha256"),
        _integer(body, "version"), _integer(body, "issued_at_ms"),
        _integer(body, "expires_at_ms"), _text(body, "target_signature"), set_fields,
        tuple(unset), _base64(body, "upsert", _RECORD_BYTES),
        _base64(body, "remove", PSEUDONYM_BYTES))
    if delta.version <= delta.base_version:
        raise BundleError(f"delta goes from version {delta.base_version} to "
                          f"{delta.version}, not forward")
    return delta


def apply_delta(base: VerifiedBundle, delta: PolicyDelta, public_key: bytes) -> VerifiedBundle:
    """The target bundle rebuilt from ``base`` and ``delta``, verified against the target's
    own signature; BundleError for a gap, a wrong base or a target that does not verify."""
    if delta.base_version != base.version:
        raise BundleError(f"gap: the delta starts at version {delta.base_version}, this "
                          f"gateway holds version {base.version}")
    if delta.base_sha256 != hashlib.sha256(base.signed_bytes).hexdigest():
        raise BundleError(f"wrong base: the hub's version {base.version} is not the one this "
                          "gateway holds (the hub's history was rewritten?)")
    table = _merge(_table(base.payload), delta.upsert, delta.remove)
    payload = {name: value for name, value in base.payload.items()
               if name not in delta.unset_fields}
    payload.update(delta.set_fields)
    payload["badges"] = base64.b64encode(table).decode("ascii")
    payload["badge_count"] = len(table) // _RECORD_BYTES
    bundle = {"kind": "policy", "territory": delta.territory, "version": delta.version,
              "issued_at_ms": delta.issued_at_ms, "expires_at_ms": delta.expires_at_ms,
              "payload": payload}
    envelope = {"bundle": bundle, "key_id": key_id(public_key),
                "signature": delta.target_signature}
    try:
        return verify_bundle(envelope, public_key, kind="policy", territory=delta.territory)
    except BundleError as exc:
        raise BundleError(f"the policy rebuilt from the delta does not verify: {exc}") from exc


class _Absent:
    """A value no JSON field holds, so a field set to null still counts as changed."""


_ABSENT = _Absent()


def _digest(bundle: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical_json(dict(bundle))).hexdigest()


def _table(payload: Mapping[str, Any]) -> bytes:
    text = payload.get("badges", "")
    try:
        data = base64.b64decode(text if isinstance(text, str) else "", validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BundleError(f"policy badges are not valid base64: {exc}") from None
    if len(data) % _RECORD_BYTES:
        raise BundleError(f"policy badge table of {len(data)} bytes is not whole records")
    return data


def _records(table: bytes) -> set[bytes]:
    return {table[offset:offset + _RECORD_BYTES]
            for offset in range(0, len(table), _RECORD_BYTES)}


def _merge(table: bytes, upsert: bytes, remove: bytes) -> bytes:
    """``table`` with ``upsert`` records put in place and ``remove`` pseudonyms dropped."""
    changes: dict[bytes, bytes | None] = {
        remove[offset:offset + PSEUDONYM_BYTES]: None
        for offset in range(0, len(remove), PSEUDONYM_BYTES)}
    for offset in range(0, len(upsert), _RECORD_BYTES):
        record = upsert[offset:offset + _RECORD_BYTES]
        if record[:PSEUDONYM_BYTES] in changes:
            raise BundleError(f"delta changes badge {record[:PSEUDONYM_BYTES].hex()} twice")
        changes[record[:PSEUDONYM_BYTES]] = record
    count = len(table) // _RECORD_BYTES
    pieces, done = [], 0
    for pseudonym in sorted(changes):
        index = _lower_bound(table, count, pseudonym, done)
        pieces.append(table[done * _RECORD_BYTES:index * _RECORD_BYTES])
        held = (index < count and table[index * _RECORD_BYTES:index * _RECORD_BYTES
                                        + PSEUDONYM_BYTES] == pseudonym)
        replacement = changes[pseudonym]
        if replacement is None and not held:
            raise BundleError(f"delta removes badge {pseudonym.hex()}, which the base "
                              "does not hold")
        if replacement is not None:
            pieces.append(replacement)
        done = index + 1 if held else index
    pieces.append(table[done * _RECORD_BYTES:])
    return b"".join(pieces)


def _lower_bound(table: bytes, count: int, pseudonym: bytes, low: int) -> int:
    """The index of the first record at or after ``pseudonym``, searching from ``low``."""
    high = count
    while low < high:
        middle = (low + high) // 2
        offset = middle * _RECORD_BYTES
        if table[offset:offset + PSEUDONYM_BYTES] < pseudonym:
            low = middle + 1
        else:
            high = middle
    return low


def _integer(body: Mapping[str, Any], name: str) -> int:
    value = body[name]
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= _MAX_INTEGER:
        raise BundleError(f"delta field {name!r} must be an integer from 0 to 2**63-1, "
                          f"got {value!r}")
    return value


def _text(body: Mapping[str, Any], name: str) -> str:
    value = body[name]
    if not isinstance(value, str) or not value:
        raise BundleError(f"delta field {name!r} must be a non-empty string")
    return value


def _base64(body: Mapping[str, Any], name: str, unit: int) -> bytes:
    value = body[name]
    try:
        data = base64.b64decode(value if isinstance(value, str) else "", validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BundleError(f"delta field {name!r} is not valid base64: {exc}") from None
    if not isinstance(value, str) or len(data) % unit:
        raise BundleError(f"delta field {name!r} must hold whole {unit}-byte entries")
    if any(data[i:i + unit] >= data[i + unit:i + 2 * unit]
           for i in range(0, len(data) - unit, unit)):
        raise BundleError(f"delta field {name!r} is not sorted without repeats")
    return data
