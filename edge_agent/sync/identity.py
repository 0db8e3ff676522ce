"""Who this gateway is to the hub: the answer to its enrollment, kept in ``identity.json``.

The file holds the gateway's bearer token, so it is created with mode 0600 and replaced
atomically: a reader sees the old file or the new one, never half of one, and the token is
never world-readable, not even for the instant between creating and chmod-ing a file.
Keys travel as base64 on disk, as in the enrollment answer (docs/sync-protocol.md).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shlex
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

import msgspec
from msgspec import Meta

from edge_agent.errors import ConfigError
from edge_agent.private import make_private_dir
from edge_agent.schema import Invalid, Strict, at_field, to_data, validate
from edge_agent.sync.tls import TlsFiles
from edge_agent.validation import describe_validation_error

__all__ = [
    "IDENTITY_FILE",
    "Identity",
    "hub_base_url",
    "load_identity",
    "not_provisioned",
    "require_tls",
    "save_identity",
]

log = logging.getLogger("edge_agent.sync")

IDENTITY_FILE = "identity.json"


def not_provisioned(config: Path | None) -> str:
    """What the agent and its commands say about a data directory without an identity.

    The hint names the gateway file, so it runs as printed once URL and CODE are filled in
    (``provision`` cannot work without ``--config``).
    """
    where = shlex.quote(str(config)) if config is not None else "gateway.toml"
    return f"not provisioned: run `edge-agent provision --config {where} --hub URL --code CODE`"


def hub_base_url(text: str) -> str:
    """``text`` as a hub base URL (http or https, a host, no trailing slash); ValueError if not.

    The form only: whether plain HTTP is allowed is ``require_tls``'s business.
    """
    url = text.rstrip("/")
    try:
        parts = urlsplit(url)
        _port = parts.port  # ValueError unless absent or 0-65535
    except ValueError as exc:
        raise ValueError(f"'{text}' is not a URL: {exc}") from None
    if (parts.scheme not in {"http", "https"} or not parts.hostname or parts.query
            or parts.fragment or parts.username or any(c.isspace() for c in url)):
        raise ValueError(f"'{text}' is not an http:// or https:// URL of a hub, "
                         "e.g. https://hub.example.org")
    try:  # what the resolver will do with it: a typo otherwise fails there, as a traceback
        parts.hostname.encode("idna")
    except UnicodeError:
        raise ValueError(f"'{text}' is not a hub URL: its host name has an empty label "
                         "(hub..org) or one longer than 63 characters") from None
    return url


def require_tls(url: str, *, insecure_http: bool) -> None:
    """ValueError when ``url`` is plain HTTP and the installer did not ask for it.

    The gateway's bearer token and the signed bundles cross the network: only a test bench
    or a demo on one machine may do without TLS, and says so with ``--insecure-http``.
    """
    if urlsplit(url).scheme == "http" and not insecure_http:
        raise ValueError(f"'{url}' is plain HTTP, which would expose the gateway's token: "
                         "use the hub's https:// URL, or provision with --insecure-http for a "
                         "test bench")


#: 32 bytes (an Ed25519 public key, an HMAC key), base64 in JSON.
Key32 = Annotated[bytes, Meta(min_length=32, max_length=32)]

#: Fields never shown in a repr, so never in log lines and tracebacks.
_SECRETS = ("token", "badge_key")


class Identity(Strict, frozen=True, kw_only=True):
    """The gateway's enrollment: where its hub is, who it is there, and the keys it pins."""

    hub_url: str
    gateway: Annotated[str, Meta(min_length=1)]
    territory: Annotated[str, Meta(min_length=1)]
    site: Annotated[str, Meta(min_length=1)]
    token: Annotated[str, Meta(pattern=r"^pgw_\S+$", description="Bearer token: secret.")]
    signing_public_key: Annotated[Key32, Meta(description="Ed25519 key that signs bundles.")]
    signing_key_id: Annotated[str, Meta(pattern=r"^[0-9a-f]{16}$")]
    badge_key: Annotated[Key32, Meta(description="The territory's badge HMAC key: secret.")]
    provisioned_at_ms: Annotated[int, Meta(ge=0)]
    #: Provisioned with ``--insecure-http``: a plain http:// hub on a test bench or a demo.
    insecure_http: bool = False
    #: The private CA bundle trusted for the hub (``--ca-bundle``), copied into the data dir.
    ca_bundle: Path | None = None
    #: The gateway's certificate and key for a hub that requires them (mutual TLS), copied.
    client_cert: Path | None = None
    client_key: Path | None = None

    def __post_init__(self) -> None:
        try:
            url = hub_base_url(self.hub_url)
        except ValueError as exc:
            raise at_field("hub_url", str(exc)) from None
        msgspec.structs.force_setattr(self, "hub_url", url)
        require_tls(self.hub_url, insecure_http=self.insecure_http)

    def __repr__(self) -> str:
        return f"Identity({', '.join(f'{name}={value!r}' for name, value in self._shown())})"

    def __rich_repr__(self) -> list[tuple[str, Any]]:
        """What rich prints: the same fields as the repr."""
        return list(self._shown())

    def _shown(self) -> Iterator[tuple[str, object]]:
        for name in self.__struct_fields__:
            if name not in _SECRETS:
                yield name, getattr(self, name)

    @property
    def tls(self) -> TlsFiles:
        """The TLS files recorded at provisioning."""
        return TlsFiles(self.ca_bundle, self.client_cert, self.client_key)


def save_identity(data_dir: Path, identity: Identity) -> Path:
    """Write ``<data_dir>/identity.json`` atomically, mode 0600 from its creation; its path."""
    path = data_dir / IDENTITY_FILE
    text = json.dumps(to_data(identity), indent=1)
    try:
        make_private_dir(data_dir)
        # mkstemp creates the file with mode 0600, whatever the umask.
        fd, partial = tempfile.mkstemp(prefix=".identity-", suffix=".tmp", dir=data_dir)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as file:
                file.write(text)
                file.flush()
                os.fsync(file.fileno())
            Path(partial).replace(path)
        except BaseException:
            with contextlib.suppress(OSError):
                Path(partial).unlink()
            raise
        directory = os.open(data_dir, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror or exc}") from exc
    return path


def load_identity(data_dir: Path) -> Identity | None:
    """The identity in ``<data_dir>``, None if the gateway was never provisioned.

    A malformed file is a ConfigError naming it; a file others may read is logged.
    """
    path = data_dir / IDENTITY_FILE
    try:
        text = path.read_text(encoding="utf-8")
        mode = path.stat().st_mode
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("%s holds the gateway's token but others may read it (mode %o): "
                    "chmod 600 %s", path, stat.S_IMODE(mode), path)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: not JSON ({exc}); provision the gateway again "
                          "(edge-agent provision --force)") from exc
    try:
        return validate(Identity, data)
    except Invalid as exc:
        raise ConfigError(describe_validation_error(exc, path, None, Identity, data=data)) from exc
