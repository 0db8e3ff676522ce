"""How the gateway trusts its hub, and how it proves itself to a hub that asks (mutual TLS).

By default the hub's certificate is verified against certifi's bundle of public CAs
(``SSL_CERT_FILE`` or ``SSL_CERT_DIR`` replacing it when set), so a hub behind a public
certificate needs nothing. No HTTP code is imported here: identity.json's readers
(``status``) need these paths without carrying the connection (edge_agent/sync/http.py).

A hub with a certificate from a private CA is trusted through that CA's bundle alone; a hub
that requires client certificates gets the gateway's. The files given at provisioning are
copied into the data directory, mode 0600, so the agent never depends on where an installer
left them.
"""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass, replace
from pathlib import Path

import certifi

from edge_agent.config import SyncSection
from edge_agent.durable import replace_durably
from edge_agent.errors import ConfigError
from edge_agent.private import make_private_dir

__all__ = ["TlsFiles", "certificate_problem", "keep_private_copies"]

#: The copies' names in the data directory.
_COPY_NAMES = {"ca_bundle": "hub-ca.pem", "client_cert": "client-cert.pem",
               "client_key": "client-key.pem"}


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """The CA bundle trusted for the hub and the gateway's own certificate and key, if any."""

    ca_bundle: Path | None = None
    client_cert: Path | None = None
    client_key: Path | None = None

    def __post_init__(self) -> None:
        if (self.client_cert is None) != (self.client_key is None):
            raise ConfigError("a client certificate needs its key and a key its certificate: "
                              "give both --client-cert and --client-key, or neither")

    def overridden_by(self, section: SyncSection) -> TlsFiles:
        """These files, with each one the config file's [sync] names instead."""
        return replace(self, **{name: getattr(section, name) for name in _COPY_NAMES
                                if getattr(section, name) is not None})

    def context(self) -> ssl.SSLContext:
        """The client's SSL context; ConfigError naming the file that cannot be loaded."""
        try:
            context = (ssl.create_default_context(cafile=self.ca_bundle) if self.ca_bundle
                       else _public_cas())
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"CA bundle {self.ca_bundle}: cannot load it ({exc})") from exc
        if self.client_cert is not None:
            try:
                context.load_cert_chain(self.client_cert, self.client_key)
            except (OSError, ssl.SSLError) as exc:
                raise ConfigError(f"client certificate {self.client_cert} with key "
                                  f"{self.client_key}: cannot load them ({exc})") from exc
        return context


def _public_cas() -> ssl.SSLContext:
    """certifi's CAs, or the file or directory the environment names instead (as OpenSSL's
    own tools and most HTTP clients do)."""
    if cafile := os.environ.get("SSL_CERT_FILE"):
        return ssl.create_default_context(cafile=cafile)
    if capath := os.environ.get("SSL_CERT_DIR"):
        return ssl.create_default_context(capath=capath)
    return ssl.create_default_context(cafile=certifi.where())


def keep_private_copies(data_dir: Path, files: TlsFiles) -> TlsFiles:
    """Copy each file into ``data_dir``, mode 0600 from its creation; the copies."""
    make_private_dir(data_dir)
    copies = {name: _private_copy(source, data_dir / _COPY_NAMES[name])
              for name in _COPY_NAMES if (source := getattr(files, name)) is not None}
    return TlsFiles(**copies)


def _private_copy(source: Path, target: Path) -> Path:
    try:
        replace_durably(target, source.read_bytes())
    except OSError as exc:
        raise ConfigError(f"cannot copy {source} to {target}: {exc.strerror or exc}") from exc
    return target.resolve()


def certificate_problem(exc: BaseException) -> str | None:
    """What failed in a TLS handshake behind ``exc`` (or what it was raised from), None if
    nothing did.

    The hub's certificate not verifying says why (unknown CA, expired, wrong name); a hub
    refusing the gateway's certificate shows as the alert it sent.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ssl.SSLCertVerificationError):
            return f"the hub's certificate did not verify: {current.verify_message}"
        if isinstance(current, ssl.SSLError):
            reason = current.reason or str(current)
            return f"TLS handshake failed: {reason.lower().replace('_', ' ')}"
        current = current.__cause__ or current.__context__
    return None
