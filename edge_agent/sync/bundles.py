"""The gateway's signed bundles on disk: the last verified config and policy, rollback-proof.

A gateway must keep enforcing its last valid policy through days offline and across
restarts, and must never be talked back into an older one (TUF's rollback attack;
docs/sync-protocol.md, "Pull: signed bundles"). So ``accept`` writes a bundle durably before
it returns, ``versions.json`` remembers the highest version ever verified per kind, and
``current`` verifies the signature again on every load: a file edited on disk, or an older
signed file copied over the current one, is refused rather than obeyed.

Files: ``<kind>.json`` holds the canonical envelope, ``versions.json`` the highest versions;
both mode 0600, replaced atomically, in a directory created 0700. ``versions.json`` is not
signed: it defeats a replayed, restored or copied bundle, not someone who can rewrite both
files. The bundle file is written before ``versions.json``, so a crash in between leaves a
file newer than its record, which is served (and recorded on the next delivery), never the
other way round.
"""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path

from edge_agent.codecs.bundle import (
    BUNDLE_KINDS,
    MAX_ENVELOPE_BYTES,
    VerifiedBundle,
    canonical_json,
    claimed_kind,
    key_id,
    verify_bundle,
)
from edge_agent.codecs.bundle_delta import apply_delta, decode_delta
from edge_agent.durable import replace_durably
from edge_agent.errors import BundleError
from edge_agent.private import make_private_dir

__all__ = ["VERSIONS_FILE", "BundleStore"]

VERSIONS_FILE = "versions.json"

logger = logging.getLogger("edge_agent.sync")


class BundleStore:
    """Verified bundles of one gateway, checked against the hub key pinned at enrollment.

    Safe to call from several threads; one process owns a directory.
    """

    def __init__(self, directory: Path, public_key: bytes, territory: str) -> None:
        """A store in ``directory`` (created on the first accept) for ``territory``."""
        key_id(public_key)  # a pinned key of the wrong length fails here, not at first use
        if not territory:
            raise ValueError("territory must not be empty")
        self.directory = Path(directory)
        self.territory = territory
        self._public_key = bytes(public_key)
        self._lock = threading.Lock()

    def accept(self, envelope: bytes, *, now_ms: int) -> VerifiedBundle | None:
        """Verify ``envelope`` and keep it; None for an identical re-delivery.

        Refuses (BundleError) what ``verify_bundle`` refuses, an expired bundle, a version
        below the highest ever accepted for its kind, and that same version with other
        content. The bundle is on disk when this returns.
        """
        kind = claimed_kind(envelope)
        if kind not in BUNDLE_KINDS:
            raise BundleError(f"unknown bundle kind {kind!r}; a hub publishes "
                              f"{', '.join(BUNDLE_KINDS)}")
        bundle = verify_bundle(envelope, self._public_key, kind=kind, territory=self.territory)
        if bundle.expired(now_ms):
            raise BundleError(f"{kind} bundle version {bundle.version} expired at "
                              f"{bundle.expires_at_ms} ms, it is now {now_ms} ms")
        with self._lock:
            versions = self._read_versions()
            recorded = versions.get(kind, 0)
            held = self._held(kind)
            highest = max(recorded, held.version if held is not None else 0)
            if bundle.version < highest:
                raise BundleError(f"{kind} bundle version {bundle.version} is older than "
                                  f"version {highest} already accepted (rollback refused)")
            same_version = held if held is not None and held.version == bundle.version else None
            if same_version is not None and same_version.signed_bytes != bundle.signed_bytes:
                raise BundleError(f"{kind} bundle version {bundle.version} differs from the "
                                  f"version {bundle.version} already accepted")
            unchanged = same_version is not None
            _make_directory(self.directory)
            if not unchanged:
                _write_atomic(self._path(kind), bundle.envelope)
            if recorded < bundle.version:
                versions[kind] = bundle.version
                _write_atomic(self.directory / VERSIONS_FILE, canonical_json(versions))
        return None if unchanged else bundle

    def accept_delta(self, data: bytes, *, now_ms: int) -> VerifiedBundle | None:
        """Apply the policy delta ``data`` to the policy held and keep the result, as
        ``accept`` keeps a full bundle; BundleError when the delta is refused (its
        signature, a gap, a wrong base, a rebuilt policy that does not verify)."""
        held = self.current("policy")
        if held is None:
            raise BundleError("a policy delta needs a base, and this gateway holds no policy")
        delta = decode_delta(data, self._public_key, territory=self.territory)
        rebuilt = apply_delta(held, delta, self._public_key)
        return self.accept(rebuilt.envelope, now_ms=now_ms)

    def current(self, kind: str) -> VerifiedBundle | None:
        """The accepted bundle of ``kind``, verified again now; None if none was accepted.

        Expired bundles are returned: the caller checks ``expired``. BundleError if the file
        was modified, is missing although a version was accepted, or was rolled back.
        """
        if kind not in BUNDLE_KINDS:
            raise ValueError(f"unknown bundle kind {kind!r}")
        recorded = self._read_versions().get(kind)
        bundle = self._load(kind)
        if bundle is None:
            if recorded is not None:
                raise BundleError(f"{self._path(kind)} is missing although version {recorded} "
                                  f"was accepted")
            return None
        if recorded is not None and bundle.version < recorded:
            raise BundleError(f"{self._path(kind)} was rolled back: it holds version "
                              f"{bundle.version}, version {recorded} was accepted")
        return bundle

    def versions(self) -> dict[str, int]:
        """The highest version ever accepted, per kind."""
        return self._read_versions()

    def _path(self, kind: str) -> Path:
        return self.directory / f"{kind}.json"

    def _load(self, kind: str) -> VerifiedBundle | None:
        path = self._path(kind)
        data = _read(path)
        if data is None:
            return None
        try:
            return verify_bundle(data, self._public_key, kind=kind, territory=self.territory)
        except BundleError as exc:
            raise BundleError(f"{path} was modified or is not signed by the pinned hub key: "
                              f"{exc}") from exc

    def _held(self, kind: str) -> VerifiedBundle | None:
        """The bundle on disk for comparison; a damaged file is about to be replaced."""
        try:
            return self._load(kind)
        except BundleError as exc:
            logger.warning("held bundle is unusable, a valid delivery will replace it: %s", exc)
            return None

    def _read_versions(self) -> dict[str, int]:
        path = self.directory / VERSIONS_FILE
        data = _read(path)
        if data is None:
            return {}
        try:
            document = json.loads(data)
        except ValueError as exc:
            raise BundleError(f"{path} is damaged: {exc}") from None
        if not isinstance(document, dict) or not all(
            isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in document.values()
        ):
            raise BundleError(f"{path} is damaged: expected an object of positive versions")
        return document


def _read(path: Path) -> bytes | None:
    try:
        with path.open("rb") as file:
            return file.read(MAX_ENVELOPE_BYTES + 1)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise BundleError(f"cannot read {path}: {exc.strerror}") from exc


def _make_directory(directory: Path) -> None:
    try:
        make_private_dir(directory)
    except OSError as exc:
        raise BundleError(f"cannot create {directory}: {exc.strerror or exc}") from exc


def _write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` so that a power cut leaves the old or the new file."""
    try:
        replace_durably(path, data)
    except OSError as exc:
        raise BundleError(f"cannot save {path}: {exc.strerror or exc}") from exc
