"""Signed bundles: the canonical form, what verification refuses, and the gateway's store."""

from __future__ import annotations

import base64
import json
import math
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.codecs.bundle import (
    MAX_ENVELOPE_BYTES,
    VerifiedBundle,
    canonical_json,
    claimed_kind,
    generate_signing_key,
    key_id,
    load_private_key_pem,
    private_key_pem,
    public_key_bytes,
    sign_bundle,
    verify_bundle,
)
from edge_agent.errors import BundleError
from edge_agent.sync.bundles import VERSIONS_FILE, BundleStore

HUB_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
HUB_PUBLIC = public_key_bytes(HUB_KEY)
OTHER_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32, 64)))
TERRITORY = "dunkerque"
ISSUED = 1_764_100_000_000
EXPIRES = 1_764_704_800_000
NOW = ISSUED + 60_000
PAYLOAD = {"gates": {"berth-a3": "open"}}


def signed(*, key: Ed25519PrivateKey = HUB_KEY, kind: str = "policy",
           territory: str = TERRITORY, version: int = 7, issued_at_ms: int = ISSUED,
           expires_at_ms: int = EXPIRES, payload: dict[str, Any] | None = None) -> dict[str, Any]:
    return sign_bundle(key, kind=kind, territory=territory, version=version,
                       issued_at_ms=issued_at_ms, expires_at_ms=expires_at_ms,
                       payload=PAYLOAD if payload is None else payload)


def wire(envelope: dict[str, Any]) -> bytes:
    """An envelope as a hub might send it: not canonical (spaces, insertion order)."""
    return json.dumps(envelope, ensure_ascii=False).encode("utf-8")


def resign(envelope: dict[str, Any], key: Ed25519PrivateKey = HUB_KEY) -> dict[str, Any]:
    """``envelope`` with a fresh signature over whatever its bundle now holds."""
    signature = key.sign(canonical_json(envelope["bundle"]))
    return {**envelope, "signature": base64.b64encode(signature).decode("ascii")}


def verify(data: bytes | dict[str, Any], kind: str = "policy") -> VerifiedBundle:
    return verify_bundle(data, HUB_PUBLIC, kind=kind, territory=TERRITORY)


# -- canonical form -------------------------------------------------------------------------

@pytest.mark.parametrize(("value", "expected"), [
    ({"b": 1, "a": 2}, '{"a":2,"b":1}'),
    ({"z": {"b": [3, {"d": None, "c": True}], "a": {}}, "a": []},
     '{"a":[],"z":{"a":{},"b":[3,{"c":true,"d":null}]}}'),
    ({"a": 1, "B": 2, "é": 3, "aa": 4, "": 5}, '{"":5,"B":2,"a":1,"aa":4,"é":3}'),
    ({"name": "café ☃ 𝄞"}, '{"name":"café ☃ 𝄞"}'),
    (["quote\"", "back\\slash", "line\nbreak", "nul\x00", "tab\t"],
     '["quote\\"","back\\\\slash","line\\nbreak","nul\\u0000","tab\\t"]'),
    ([1, 1.0, 0.1, 1e16, -0.0, 2.5e-7, -3], '[1,1.0,0.1,1e+16,-0.0,2.5e-07,-3]'),
    # Keys sort by code point, not by UTF-16 unit as RFC 8785 would (U+1F600 after U+FFFD).
    ({"\U0001f600": 1, "\ufffd": 2}, '{"\ufffd":2,"\U0001f600":1}'),
    ("plain", '"plain"'),
    (None, "null"),
])
def test_canonical_json_golden_vectors(value: Any, expected: str) -> None:
    assert canonical_json(value) == expected.encode("utf-8")


@pytest.mark.parametrize(("value", "reason"), [
    (math.nan, "nan is not a JSON number"),
    ({"a": [1, {"b": math.inf}]}, "value['a'][1]['b'] has no canonical JSON form"),
    ({"x": -math.inf}, "-inf"),
    ({1: "one"}, "key 1 is not a string"),
    ({"t": (1, 2)}, "a tuple is not one of"),
    ({"s": {1}}, "a set is not one of"),
    ({"b": b"raw"}, "a bytes is not one of"),
    ("\ud800", "lone surrogate"),
    (10**5000, "has no canonical JSON form"),
], ids=["nan", "nested-inf", "minus-inf", "int-key", "tuple", "set", "bytes", "surrogate",
        "5001-digit-int"])
def test_canonical_json_refuses_values_without_a_canonical_form(value: Any, reason: str) -> None:
    with pytest.raises(BundleError) as caught:
        canonical_json(value)
    assert reason in str(caught.value)


def test_canonical_json_refuses_deep_nesting() -> None:
    value: Any = "leaf"
    for _ in range(65):
        value = [value]
    with pytest.raises(BundleError, match="nested deeper than 64 levels"):
        canonical_json(value)
    assert canonical_json(value[0]).startswith(b"[" * 64)


# -- keys ------------------------------------------------------------------------------------

def test_key_id_is_sixteen_hex_digits_of_the_sha256_of_the_raw_key() -> None:
    assert key_id(bytes(32)) == "66687aadf862bd77"
    assert key_id(HUB_PUBLIC) == "56475aa75463474c"
    with pytest.raises(BundleError, match="32 raw bytes, got 33"):
        key_id(bytes(33))


def test_private_key_pem_round_trip_and_public_key_is_raw_32_bytes() -> None:
    key = generate_signing_key()
    pem = private_key_pem(key)
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----\n")
    assert public_key_bytes(load_private_key_pem(pem)) == public_key_bytes(key)
    assert len(public_key_bytes(key)) == 32
    assert public_key_bytes(generate_signing_key()) != public_key_bytes(key)


def _encrypted_pem() -> bytes:
    return HUB_KEY.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.BestAvailableEncryption(b"secret"))


def _ec_pem() -> bytes:
    return ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption())


@pytest.mark.parametrize(("make", "reason"), [
    (lambda: b"", "not an unencrypted PEM private key"),
    (lambda: b"-----BEGIN PRIVATE KEY-----\njunk\n-----END PRIVATE KEY-----\n",
     "not an unencrypted PEM private key"),
    (_encrypted_pem, "not an unencrypted PEM private key"),
    (_ec_pem, "must be Ed25519"),
])
def test_load_private_key_pem_refuses_anything_but_a_plain_ed25519_key(
    make: Callable[[], bytes], reason: str
) -> None:
    with pytest.raises(BundleError, match=reason):
        load_private_key_pem(make())


# -- signing and verifying -------------------------------------------------------------------

def test_sign_bundle_gives_the_documented_envelope() -> None:
    envelope = signed()
    assert envelope == {
        "bundle": {"kind": "policy", "territory": "dunkerque", "version": 7,
                   "issued_at_ms": ISSUED, "expires_at_ms": EXPIRES, "payload": PAYLOAD},
        "key_id": "56475aa75463474c",
        # Ed25519 is deterministic: a change of canonical form changes this and breaks
        # every deployed gateway, so it is pinned.
        "signature": "Cv41fygbLcl+rqRQgmXsjVKr5H+1DYE9ODQ6CiDXp7+9cKiF6nkwodfKjNsqNrnyuadGNq3q7Ye2"
                     "46CHKp96Dw==",
    }
    message = (b'{"expires_at_ms":1764704800000,"issued_at_ms":1764100000000,"kind":"policy",'
               b'"payload":{"gates":{"berth-a3":"open"}},"territory":"dunkerque","version":7}')
    Ed25519PublicKey.from_public_bytes(HUB_PUBLIC).verify(
        base64.b64decode(envelope["signature"]), message)


@pytest.mark.parametrize("as_bytes", [True, False])
def test_verify_round_trip(as_bytes: bool) -> None:
    payload = {"allow": ["badge-1", "badge-2"], "fail_mode": "closed", "note": "quai ☃",
               "limits": {"kw": 3.5, "n": 2}}
    envelope = signed(payload=payload)
    bundle = verify(wire(envelope) if as_bytes else envelope)
    assert (bundle.kind, bundle.territory, bundle.version) == ("policy", TERRITORY, 7)
    assert (bundle.issued_at_ms, bundle.expires_at_ms) == (ISSUED, EXPIRES)
    assert bundle.payload == payload
    assert bundle.signed_bytes == canonical_json(envelope["bundle"])
    assert bundle.envelope == canonical_json(envelope)
    assert verify(bundle.envelope) == bundle


def test_layout_outside_the_bundle_does_not_matter() -> None:
    envelope = signed()
    relaid = b"\n\t " + wire(envelope).replace(b", ", b",\r\n  ").replace(b": ", b" :") + b"\n"
    reordered = json.dumps(dict(reversed(envelope.items()))).encode()
    assert verify(relaid) == verify(reordered) == verify(envelope)


def test_expired_is_the_callers_decision() -> None:
    bundle = verify(signed())
    assert not bundle.expired(EXPIRES - 1)
    assert bundle.expired(EXPIRES)
    assert bundle.expired(EXPIRES + 1)


def test_claimed_kind_reads_the_unverified_kind() -> None:
    assert claimed_kind(wire(signed(kind="config"))) == "config"
    with pytest.raises(BundleError, match="does not name its bundle's kind"):
        claimed_kind(b'{"bundle": {"kind": 3}}')


def _flip_payload(envelope: dict[str, Any]) -> bytes:
    return wire(envelope).replace(b'"open"', b'"opem"')


def _change_version(envelope: dict[str, Any]) -> bytes:
    return wire(envelope).replace(b'"version": 7', b'"version": 8')


def _other_key_same_key_id(envelope: dict[str, Any]) -> bytes:
    return wire(resign(envelope, OTHER_KEY))


def _other_key_own_key_id(envelope: dict[str, Any]) -> bytes:
    return wire(signed(key=OTHER_KEY))


def _key_id_mismatch(envelope: dict[str, Any]) -> bytes:
    return wire({**envelope, "key_id": "0123456789abcdef"})


@pytest.mark.parametrize(("tamper", "reason"), [
    (_flip_payload, "signature does not match the bundle"),
    (_change_version, "signature does not match the bundle"),
    (_other_key_same_key_id, "signature does not match the bundle"),
    (_other_key_own_key_id, "not with the pinned hub key '56475aa75463474c'"),
    (_key_id_mismatch, "signed with key '0123456789abcdef'"),
])
def test_tampered_envelope_is_refused(
    tamper: Callable[[dict[str, Any]], bytes], reason: str
) -> None:
    data = tamper(signed())
    assert data != wire(signed())
    with pytest.raises(BundleError, match=reason):
        verify(data)


def test_wrong_kind_is_refused() -> None:
    with pytest.raises(BundleError, match="is a 'config' bundle, 'policy' was expected"):
        verify(wire(signed(kind="config")), kind="policy")


def test_other_territory_is_refused() -> None:
    with pytest.raises(BundleError, match="territory 'calais', this gateway belongs to "
                                          "'dunkerque'"):
        verify(wire(signed(territory="calais")))


def test_signature_in_non_canonical_base64_is_refused() -> None:
    envelope = signed()
    text = envelope["signature"]
    # The character before "==" carries 2 bits of signature and 4 padding bits: "x" and "w"
    # decode to the same bytes.
    assert text[-3] == "w"
    same_bytes = text[:-3] + "x=="
    assert base64.b64decode(same_bytes) == base64.b64decode(text)
    with pytest.raises(BundleError, match="not in canonical base64"):
        verify(wire({**envelope, "signature": same_bytes}))


def _envelope_without(name: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    return lambda e: {k: v for k, v in e.items() if k != name}


def _bundle_with(**changes: Any) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """A bundle changed and signed again by the pinned key: only the shape check can refuse."""
    return lambda e: resign({**e, "bundle": {**e["bundle"], **changes}})


def _bundle_without(name: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    return lambda e: resign(
        {**e, "bundle": {k: v for k, v in e["bundle"].items() if k != name}})


@pytest.mark.parametrize(("reshape", "reason"), [
    pytest.param(_envelope_without("signature"), "envelope lacks the field(s) signature",
                 id="no-signature"),
    pytest.param(_envelope_without("key_id"), "envelope lacks the field(s) key_id",
                 id="no-key-id"),
    pytest.param(_envelope_without("bundle"), "envelope lacks the field(s) bundle",
                 id="no-bundle"),
    pytest.param(lambda e: {**e, "extra": 1}, "envelope has unknown field(s) extra",
                 id="extra-envelope-field"),
    pytest.param(lambda e: {**e, "bundle": [e["bundle"]]}, "'bundle' must be an object",
                 id="bundle-list"),
    pytest.param(lambda e: {**e, "key_id": 56475}, "'key_id' must be a string",
                 id="key-id-int"),
    pytest.param(lambda e: {**e, "signature": 12}, "'signature' must be a base64 string",
                 id="signature-int"),
    pytest.param(lambda e: {**e, "signature": "!!not base64!!"}, "not valid base64",
                 id="signature-junk"),
    pytest.param(lambda e: {**e, "signature": "AAAA"}, "signature is 3 bytes",
                 id="signature-short"),
    pytest.param(_bundle_without("version"), "bundle lacks the field(s) version",
                 id="no-version"),
    pytest.param(_bundle_without("payload"), "bundle lacks the field(s) payload",
                 id="no-payload"),
    pytest.param(_bundle_with(scope="all"), "bundle has unknown field(s) scope",
                 id="extra-bundle-field"),
    pytest.param(_bundle_with(version=True), "'version' must be an integer, got True",
                 id="version-bool"),
    pytest.param(_bundle_with(version="7"), "'version' must be an integer", id="version-str"),
    pytest.param(_bundle_with(version=7.0), "'version' must be an integer",
                 id="version-float"),
    pytest.param(_bundle_with(version=0), "'version' must be between 1", id="version-zero"),
    pytest.param(_bundle_with(version=2**63), "'version' must be between 1",
                 id="version-huge"),
    pytest.param(_bundle_with(issued_at_ms="now"), "'issued_at_ms' must be an integer",
                 id="issued-str"),
    pytest.param(_bundle_with(expires_at_ms=1.5e12), "'expires_at_ms' must be an integer",
                 id="expires-float"),
    pytest.param(_bundle_with(issued_at_ms=-1), "'issued_at_ms' must be between 0",
                 id="issued-negative"),
    pytest.param(_bundle_with(expires_at_ms=ISSUED), "no later than it was issued",
                 id="expires-at-issue"),
    pytest.param(_bundle_with(payload=["a"]), "'payload' must be an object",
                 id="payload-list"),
    pytest.param(_bundle_with(payload=None), "'payload' must be an object",
                 id="payload-null"),
    pytest.param(_bundle_with(kind=1), "'kind' must be a non-empty string", id="kind-int"),
    pytest.param(_bundle_with(territory=""), "'territory' must be a non-empty string",
                 id="territory-empty"),
])
def test_malformed_envelope_is_refused(
    reshape: Callable[[dict[str, Any]], dict[str, Any]], reason: str
) -> None:
    with pytest.raises(BundleError) as caught:
        verify(wire(reshape(signed())))
    assert reason in str(caught.value)


@pytest.mark.parametrize(("data", "reason"), [
    pytest.param(b"", "not JSON", id="empty"),
    pytest.param(b"not json", "not JSON", id="text"),
    pytest.param(b"\xff\xfe{}", "not UTF-8", id="not-utf8"),
    pytest.param(b"\xef\xbb\xbf{}", "not JSON", id="utf8-bom"),
    pytest.param(b"[]", "must be a JSON object", id="array"),
    pytest.param(b'{"bundle": {}, "key_id": "x", "signature": "y"', "not JSON",
                 id="truncated"),
    pytest.param(b'{"bundle": NaN}', "holds NaN, which is not JSON", id="nan"),
    pytest.param(b'{"key_id": "a", "key_id": "b"}', "the key 'key_id' twice", id="duplicate"),
    pytest.param(b"[" * 100_000, "nested too deeply", id="deep"),
    pytest.param(b" " * (MAX_ENVELOPE_BYTES + 1), "more than the 67108864 allowed",
                 id="huge"),
])
def test_non_envelope_bytes_are_refused(data: bytes, reason: str) -> None:
    with pytest.raises(BundleError) as caught:
        verify(data)
    assert reason in str(caught.value)


def test_pinned_key_of_the_wrong_length_is_refused() -> None:
    with pytest.raises(BundleError, match="32 raw bytes, got 31"):
        verify_bundle(wire(signed()), HUB_PUBLIC[:31], kind="policy", territory=TERRITORY)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)
payloads = st.dictionaries(st.text(max_size=8), json_values, max_size=5)


@settings(max_examples=200)
@given(payload=payloads, version=st.integers(1, 2**63 - 1))
def test_any_json_payload_round_trips(payload: dict[str, Any], version: int) -> None:
    envelope = signed(payload=payload, version=version)
    bundle = verify(wire(envelope))
    assert bundle.signed_bytes == canonical_json(envelope["bundle"])
    assert canonical_json(bundle.payload) == canonical_json(payload)
    assert bundle.version == version


@settings(max_examples=1000)
@given(payload=payloads, data=st.data())
def test_any_single_byte_change_is_refused_or_changes_nothing(
    payload: dict[str, Any], data: st.DataObject
) -> None:
    original = wire(signed(payload=payload))
    position = data.draw(st.integers(0, len(original) - 1), label="position")
    byte = data.draw(st.integers(0, 255).filter(lambda b: b != original[position]),
                     label="byte")
    changed = original[:position] + bytes([byte]) + original[position + 1:]
    try:
        bundle = verify(changed)
    except BundleError:
        return
    # Accepted only if the change was meaningless to the signed content (whitespace, 1.0
    # written 1e0 …): exactly the bundle the hub signed.
    assert bundle == verify(original)


# -- the gateway's store ---------------------------------------------------------------------

@pytest.fixture
def store(tmp_path: Path) -> BundleStore:
    return BundleStore(tmp_path / "bundles", HUB_PUBLIC, TERRITORY)


def test_accept_keeps_the_bundle_durably(store: BundleStore) -> None:
    accepted = store.accept(wire(signed()), now_ms=NOW)
    assert accepted is not None
    assert accepted.version == 7
    reopened = BundleStore(store.directory, HUB_PUBLIC, TERRITORY)
    assert reopened.current("policy") == accepted
    assert reopened.current("config") is None
    assert reopened.versions() == {"policy": 7}
    assert (store.directory / "policy.json").read_bytes() == canonical_json(signed())
    assert sorted(p.name for p in store.directory.iterdir()) == ["policy.json", VERSIONS_FILE]


def test_files_are_private(store: BundleStore) -> None:
    store.accept(wire(signed()), now_ms=NOW)
    assert stat.S_IMODE(store.directory.stat().st_mode) == 0o700
    for name in ("policy.json", VERSIONS_FILE):
        assert stat.S_IMODE((store.directory / name).stat().st_mode) == 0o600


def test_nothing_accepted_yet(tmp_path: Path) -> None:
    store = BundleStore(tmp_path / "never-created", HUB_PUBLIC, TERRITORY)
    assert store.current("policy") is None
    assert store.versions() == {}
    assert not store.directory.exists()


def test_a_newer_version_replaces_the_held_one(store: BundleStore) -> None:
    store.accept(wire(signed(version=7)), now_ms=NOW)
    newer = store.accept(wire(signed(version=9, payload={"gates": {}})), now_ms=NOW)
    assert newer is not None
    assert store.current("policy") == newer
    assert store.versions() == {"policy": 9}


def test_kinds_are_kept_apart(store: BundleStore) -> None:
    store.accept(wire(signed(kind="policy", version=7)), now_ms=NOW)
    store.accept(wire(signed(kind="config", version=2, payload={"poll_s": 10})), now_ms=NOW)
    assert store.versions() == {"config": 2, "policy": 7}
    config = store.current("config")
    assert config is not None
    assert config.payload == {"poll_s": 10}


def test_expired_bundle_is_refused_at_accept(store: BundleStore) -> None:
    with pytest.raises(BundleError, match="expired at 1764704800000 ms"):
        store.accept(wire(signed()), now_ms=EXPIRES)
    assert store.current("policy") is None


def test_other_territory_is_refused_at_accept(store: BundleStore) -> None:
    with pytest.raises(BundleError, match="territory 'calais'"):
        store.accept(wire(signed(territory="calais")), now_ms=NOW)
    assert store.versions() == {}


def test_unknown_kind_is_refused_at_accept(store: BundleStore) -> None:
    with pytest.raises(BundleError, match=r"unknown bundle kind '\.\./escape'"):
        store.accept(wire(signed(kind="../escape")), now_ms=NOW)
    assert not store.directory.exists()


def test_rollback_to_an_older_version_is_refused(store: BundleStore) -> None:
    store.accept(wire(signed(version=7)), now_ms=NOW)
    with pytest.raises(BundleError, match="version 6 is older than version 7 already accepted"):
        store.accept(wire(signed(version=6)), now_ms=NOW)
    held = store.current("policy")
    assert held is not None
    assert held.version == 7


def test_same_version_with_other_content_is_refused(store: BundleStore) -> None:
    store.accept(wire(signed(version=7)), now_ms=NOW)
    with pytest.raises(BundleError, match="version 7 differs from the version 7 already"):
        store.accept(wire(signed(version=7, payload={"gates": {"berth-a3": "closed"}})),
                     now_ms=NOW)
    held = store.current("policy")
    assert held is not None
    assert held.payload == PAYLOAD


def test_identical_redelivery_is_a_no_op(store: BundleStore) -> None:
    store.accept(wire(signed()), now_ms=NOW)
    path = store.directory / "policy.json"
    before = (path.read_bytes(), path.stat().st_ino, path.stat().st_mtime_ns)
    assert store.accept(wire(signed()), now_ms=NOW) is None
    assert store.accept(canonical_json(signed()), now_ms=NOW) is None  # other whitespace
    assert (path.read_bytes(), path.stat().st_ino, path.stat().st_mtime_ns) == before
    assert store.versions() == {"policy": 7}


def test_bundle_edited_on_disk_is_refused_at_load(store: BundleStore) -> None:
    store.accept(wire(signed()), now_ms=NOW)
    path = store.directory / "policy.json"
    path.write_bytes(path.read_bytes().replace(b'"open"', b'"shut"'))
    with pytest.raises(BundleError, match="was modified or is not signed by the pinned hub key"):
        store.current("policy")


def test_file_from_another_hub_key_is_refused_at_load(store: BundleStore) -> None:
    store.accept(wire(signed()), now_ms=NOW)
    (store.directory / "policy.json").write_bytes(wire(signed(key=OTHER_KEY, version=8)))
    with pytest.raises(BundleError, match="not signed by the pinned hub key"):
        store.current("policy")


def test_older_signed_file_copied_over_is_refused_as_rolled_back(store: BundleStore) -> None:
    store.accept(wire(signed(version=6)), now_ms=NOW)
    backup = (store.directory / "policy.json").read_bytes()
    store.accept(wire(signed(version=7)), now_ms=NOW)
    (store.directory / "policy.json").write_bytes(backup)
    with pytest.raises(BundleError, match="was rolled back: it holds version 6, version 7"):
        store.current("policy")


def test_deleted_file_is_refused_at_load(store: BundleStore) -> None:
    store.accept(wire(signed()), now_ms=NOW)
    (store.directory / "policy.json").unlink()
    with pytest.raises(BundleError, match="missing although version 7 was accepted"):
        store.current("policy")


def test_a_valid_delivery_repairs_a_damaged_file(store: BundleStore) -> None:
    store.accept(wire(signed(version=7)), now_ms=NOW)
    (store.directory / "policy.json").write_bytes(b"garbage")
    with pytest.raises(BundleError, match="was modified"):
        store.current("policy")
    with pytest.raises(BundleError, match="version 6 is older than version 7"):
        store.accept(wire(signed(version=6)), now_ms=NOW)  # versions.json still guards
    repaired = store.accept(wire(signed(version=7)), now_ms=NOW)
    assert repaired is not None
    assert store.current("policy") == repaired


def test_expired_bundle_is_still_returned_by_current(store: BundleStore) -> None:
    store.accept(wire(signed()), now_ms=NOW)
    held = store.current("policy")
    assert held is not None
    assert held.expired(EXPIRES + 1)
    assert not held.expired(NOW)


def test_crash_between_the_two_writes_leaves_a_usable_newer_file(store: BundleStore) -> None:
    store.accept(wire(signed(version=7)), now_ms=NOW)
    versions = (store.directory / VERSIONS_FILE).read_bytes()
    store.accept(wire(signed(version=8)), now_ms=NOW)
    (store.directory / VERSIONS_FILE).write_bytes(versions)  # versions.json never got to 8
    held = store.current("policy")
    assert held is not None
    assert held.version == 8
    with pytest.raises(BundleError, match="version 7 is older than version 8"):
        store.accept(wire(signed(version=7)), now_ms=NOW)
    assert store.accept(wire(signed(version=8)), now_ms=NOW) is None
    assert store.versions() == {"policy": 8}


def test_damaged_versions_file_is_refused(store: BundleStore) -> None:
    store.accept(wire(signed()), now_ms=NOW)
    (store.directory / VERSIONS_FILE).write_text('{"policy": true}')
    with pytest.raises(BundleError, match=r"versions\.json is damaged"):
        store.current("policy")


def test_store_refuses_a_pinned_key_of_the_wrong_length(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="32 raw bytes"):
        BundleStore(tmp_path, b"short", TERRITORY)


def test_no_temporary_files_are_left_behind(store: BundleStore) -> None:
    for version in range(1, 6):
        store.accept(wire(signed(version=version)), now_ms=NOW)
    assert sorted(os.listdir(store.directory)) == ["policy.json", VERSIONS_FILE]
