"""The gateway's HTTP exchanges with the hub, one method per request of docs/sync-protocol.md.

The connection itself is edge_agent/sync/http.py's: every transport failure (refused, reset,
timeout, a garbled answer) comes from it as HubUnreachable, a TLS handshake failed on a
certificate as HubUntrusted (edge_agent/sync/tls.py says whose). Here every error status
becomes HubRejected carrying the hub's stable error code, so the push loop decides on types
and codes, never on message text. The client never retries a refusal: the loop owns retrying
and its backoff.

The hub's answers are trusted for nothing, their size included: each is read raw and
inflated by ``answers.read_answer``, bounded by the limit of its kind (``BUNDLE_ANSWER_LIMIT``
for signed bundles, ``ANSWER_LIMIT`` for everything else) and dropped beyond it with
HubAnswerTooLarge, counted in ``oversize_answers``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlencode

from edge_agent.codecs.batch import EVENTS_TYPE, READINGS_TYPE, encode_events, encode_readings
from edge_agent.codecs.bundle import MAX_ENVELOPE_BYTES
from edge_agent.codecs.bundle_delta import DELTA_MEDIA_TYPE, POLICY_VERSION_HEADER
from edge_agent.codecs.compression import Encoding, compress
from edge_agent.errors import (
    ConfigError,
    HubAnswerTooLarge,
    HubRejected,
    SyncError,
)
from edge_agent.records import Event, Reading, now_ms
from edge_agent.schema import Invalid, field_names, validate
from edge_agent.store import Batch
from edge_agent.sync.answers import ACCEPT_ENCODING, read_answer
from edge_agent.sync.http import Headers, HubConnection
from edge_agent.sync.identity import Identity, hub_base_url, require_tls
from edge_agent.sync.tls import TlsFiles

__all__ = [
    "ANSWER_LIMIT",
    "BUNDLE_ANSWER_LIMIT",
    "DeviceDeclaration",
    "Fetched",
    "HubClient",
    "PreparedBatch",
    "enroll",
    "http_date",
    "prepare",
]

log = logging.getLogger("edge_agent.sync")

#: Beyond this difference with the hub's clock, provisioning warns (the hub's tolerance).
_CLOCK_TOLERANCE_MS = 120_000
_ENCODING: Encoding = "zstd"
#: The most bytes a signed bundle answer may hold, raw or inflated: the bundle store's own
#: limit (a policy carries the territory's whole badge table).
BUNDLE_ANSWER_LIMIT = MAX_ENVELOPE_BYTES
#: The most bytes any other answer may hold (acks, enrollment, errors: small JSON documents).
ANSWER_LIMIT = 256 * 1024


@dataclass(frozen=True, slots=True)
class Fetched:
    """A bundle answer: the signed bundle, or a policy delta (``delta``), and its ETag."""

    content: bytes
    etag: str
    delta: bool


@dataclass(frozen=True, slots=True)
class DeviceDeclaration:
    """One device the gateway reads, as ``PUT /v1/gateway/devices`` declares it."""

    name: str
    profile: str
    quantities: tuple[str, ...]


class HubClient:
    """Authenticated requests of one gateway to its hub; use it as an async context manager.

    ``tls`` replaces the TLS files recorded in ``identity`` (the config file's overrides).
    """

    def __init__(
        self,
        identity: Identity,
        *,
        timeout_s: float = 30.0,
        tls: TlsFiles | None = None,
    ) -> None:
        self.hub_url = identity.hub_url
        self.identity = identity
        #: Seconds the hub asked to wait in its last refusal (``Retry-After``), if it said.
        self.retry_after_s: float | None = None
        #: Answers dropped for exceeding the limit of their kind.
        self.oversize_answers = 0
        #: The territory's newest policy version, as the last push answer named it.
        self.newest_policy: int | None = None
        #: Push answers whose policy version header was malformed (and ignored).
        self.bad_version_hints = 0
        self._timeout_s = timeout_s
        self._http = HubConnection(
            identity.hub_url, ssl_context=(tls or identity.tls).context(), timeout_s=timeout_s,
            headers={"Authorization": f"Bearer {identity.token}",
                     "Accept-Encoding": ACCEPT_ENCODING})

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connections; closing twice is harmless."""
        await self._http.aclose()

    async def acked(self) -> dict[str, int]:
        """The hub's high-water mark of every stream of this gateway."""
        response = await self._request("GET", "/v1/gateway/streams")
        return _acked_map(response)

    async def declare_devices(self, devices: Sequence[DeviceDeclaration]) -> None:
        """Tell the hub what the gateway reads; the hub keeps the last declaration."""
        body = {"devices": [{"name": d.name, "profile": d.profile,
                             "quantities": list(d.quantities)} for d in devices]}
        await self._request("PUT", "/v1/gateway/devices", **_json_body(body))

    async def push(self, batch: Batch, *, sent_at_ms: int, backlog: int,
                   facts: Mapping[str, str] | None = None) -> dict[str, int]:
        """Send one batch, compact and zstd-compressed; the hub's acked map in return."""
        return await self.push_prepared(prepare(batch), sent_at_ms=sent_at_ms, backlog=backlog,
                                        facts=facts)

    async def push_prepared(
        self, prepared: PreparedBatch, *, sent_at_ms: int, backlog: int,
        facts: Mapping[str, str] | None = None
    ) -> dict[str, int]:
        """Send a batch encoded beforehand (``prepare``); the hub's acked map in return.

        ``facts`` are more headers about the gateway (``sync.facts.fact_headers``).
        """
        headers = {
            **(facts or {}),
            "Content-Type": prepared.content_type,
            "Content-Encoding": _ENCODING,
            "X-Ponton-Sent-At": str(sent_at_ms),
            "X-Ponton-Backlog": str(backlog),
        }
        response = await self._request(
            "POST", f"/v1/gateway/streams/{prepared.batch.stream}/batches",
            body=prepared.body, headers=headers,
        )
        hint = response.headers.get(POLICY_VERSION_HEADER)
        self.newest_policy = _version_hint(hint)
        if hint is not None and self.newest_policy is None:
            self.bad_version_hints += 1
        return _acked_map(response)

    async def pull_bundle(self, kind: str, etag: str | None,
                          base: int | None = None) -> Fetched | None:
        """The signed bundle of ``kind``, or a delta from ``base``, the version held; None
        when unchanged since ``etag`` (or ``base``)."""
        headers = {"If-None-Match": etag} if etag else {}
        query = f"?{urlencode({'base': base})}" if base is not None else ""
        response = await self._request("GET", f"/v1/gateway/bundles/{kind}{query}",
                                       headers=headers, expect_not_modified=True,
                                       limit=BUNDLE_ANSWER_LIMIT)
        if response.status == 304:
            return None
        media_type = response.headers.get("Content-Type", "").partition(";")[0].strip()
        return Fetched(response.content, response.headers.get("ETag", ""),
                       media_type == DELTA_MEDIA_TYPE)

    async def _request(
        self, method: str, path: str, *, expect_not_modified: bool = False,
        limit: int = ANSWER_LIMIT, headers: Mapping[str, str] | None = None, body: bytes = b""
    ) -> _Answer:
        self.retry_after_s = None
        try:
            response = await _send(self._http, method, path, limit=limit, headers=headers,
                                   body=body, timeout_s=self._timeout_s)
        except HubAnswerTooLarge:
            self.oversize_answers += 1
            raise
        if response.is_success or (expect_not_modified and response.status == 304):
            return response
        self.retry_after_s = _retry_after(response.headers.get("Retry-After"))
        raise _rejection(method, path, response)


async def enroll(hub_url: str, code: str, *, insecure_http: bool = False,
                 timeout_s: float = 30.0, tls: TlsFiles | None = None) -> Identity:
    """Trade a one-time enrollment code for the gateway's identity (``POST /v1/enroll``).

    A plain http:// hub is refused before the code leaves, unless ``insecure_http``. The
    identity records ``tls`` as given: the caller keeps the files where it says.
    """
    tls = tls or TlsFiles()
    try:
        hub_url = hub_base_url(hub_url)
        require_tls(hub_url, insecure_http=insecure_http)
    except ValueError as exc:
        raise ConfigError(f"--hub: {exc}") from exc
    http = HubConnection(hub_url, ssl_context=tls.context(), timeout_s=timeout_s,
                         headers={"Accept-Encoding": ACCEPT_ENCODING})
    try:
        response = await _send(http, "POST", "/v1/enroll", limit=ANSWER_LIMIT,
                               timeout_s=timeout_s, **_json_body({"code": code}))
    finally:
        await http.aclose()
    if not response.is_success:
        raise _rejection("POST", "/v1/enroll", response)
    answer = _json_object(response)
    hub_time = answer.get("hub_time_ms")
    now = now_ms()
    if isinstance(hub_time, int) and abs(hub_time - now) > _CLOCK_TOLERANCE_MS:
        log.warning("this gateway's clock is %.0f s off the hub's: set up NTP, or the hub will "
                    "shift and flag every batch", (now - hub_time) / 1000)
    # Fields a newer hub adds are not this agent's business.
    known = {name: answer[name] for name in field_names(Identity) if name in answer}
    try:
        return validate(Identity, {**known, "hub_url": hub_url, "provisioned_at_ms": now,
                                   "insecure_http": insecure_http, "ca_bundle": tls.ca_bundle,
                                   "client_cert": tls.client_cert, "client_key": tls.client_key})
    except Invalid as exc:
        # Field names and reasons only: the input values hold the token.
        problems = "; ".join(f"{'.'.join(map(str, p.location))}: {p.message}"
                             for p in exc.problems)
        raise SyncError(f"hub {hub_url} answered the enrollment with an unexpected identity: "
                        f"{problems}") from None


@dataclass(frozen=True, slots=True)
class _Answer:
    """A whole answer: its status, its headers and its body, inflated."""

    path: str
    status: int
    headers: Headers
    content: bytes

    @property
    def is_success(self) -> bool:
        return 200 <= self.status < 300

    def json(self) -> Any:
        return json.loads(self.content)


def _json_body(document: Any) -> dict[str, Any]:
    """``_send``'s arguments for a JSON request body."""
    return {"body": json.dumps(document, separators=(",", ":")).encode(),
            "headers": {"Content-Type": "application/json"}}


async def _send(http: HubConnection, method: str, path: str, *, limit: int, timeout_s: float,
                headers: Mapping[str, str] | None = None, body: bytes = b"") -> _Answer:
    """One request and its whole answer, at most ``limit`` bytes sent and inflated.

    Transport failures come as HubUnreachable or HubUntrusted (``HubConnection``), an
    answer beyond ``limit`` as HubAnswerTooLarge. A small answer (``ANSWER_LIMIT``) is read
    whole within ``timeout_s``: the connection bounds each read only, which a hub dripping
    its body never hits. A bundle, up to 64 MiB over a slow link, has no such bound.
    """
    async with http.stream(method, path, headers=headers, body=body) as streamed:
        async with asyncio.timeout(timeout_s if limit <= ANSWER_LIMIT else None):
            content = await read_answer(streamed, limit,
                                        f"hub {http.base_url} answered {method} {path}")
    return _Answer(path.partition("?")[0], streamed.status, streamed.headers, content)


def _rejection(method: str, path: str, response: _Answer) -> HubRejected:
    status = response.status
    code, detail = f"http_{status}", ""
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        code = body["error"]
        detail = str(body.get("detail", ""))
    message = f"hub refused {method} {path}: {status} {code}" + (f": {detail}" if detail else "")
    return HubRejected(message, status=status, code=code)


def _version_hint(value: str | None) -> int | None:
    """The version a push answer names; None (logged) when absent or malformed: a hint is
    only a reason to pull sooner, never a reason to refuse the acknowledgement."""
    if value is None:
        return None
    if value.isascii() and value.isdigit() and len(value) <= 16:
        return int(value)
    log.warning("the hub named its newest policy as %r, not a version; ignored", value[:40])
    return None


def _retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header: delta seconds or an HTTP date."""
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    when = http_date(value)
    return None if when is None else max(0.0, when - now_ms() / 1000)


_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def http_date(value: str) -> float | None:
    """Seconds since the epoch of an IMF-fixdate (``Sun, 06 Nov 1994 08:49:37 GMT``, the
    only form RFC 9110 lets a server send); None for anything else.

    By hand, not ``email.utils``: the email package costs a gateway about 2 MiB for
    this one header.
    """
    parts = value.split()
    if len(parts) != 6 or parts[5] != "GMT" or parts[2] not in _MONTHS:
        return None
    clock = parts[4].split(":")
    try:
        hour, minute, second = (int(field) for field in clock)
        when = datetime(int(parts[3]), _MONTHS.index(parts[2]) + 1, int(parts[1]), hour,
                        minute, second, tzinfo=UTC)
    except ValueError:
        return None
    return when.timestamp()


def _json_object(response: _Answer) -> dict[str, Any]:
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SyncError(f"hub answered {response.path} with something that is not "
                        f"JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise SyncError(f"hub answered {response.path} with {type(body).__name__}, "
                        "not a JSON object")
    return body


def _acked_map(response: _Answer) -> dict[str, int]:
    acked = _json_object(response).get("acked")
    if not isinstance(acked, Mapping) or not all(
        isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool)
        for k, v in acked.items()
    ):
        raise SyncError(f"hub answered {response.path} without a valid 'acked' "
                        f"map: {acked!r}")
    return dict(acked)


@dataclass(frozen=True, slots=True)
class PreparedBatch:
    """A batch with its request body, encoded and compressed ahead of sending."""

    batch: Batch
    content_type: str
    body: bytes


def prepare(batch: Batch) -> PreparedBatch:
    """Encode and compress ``batch``: pure CPU work, so it can run in a thread."""
    content_type, document = _encode(batch)
    return PreparedBatch(batch, content_type, compress(document, _ENCODING))


def _encode(batch: Batch) -> tuple[str, bytes]:
    records = [record for _seq, record in batch.records]
    readings = [r for r in records if isinstance(r, Reading)]
    if len(readings) == len(records):
        return READINGS_TYPE, encode_readings(batch.first_seq, readings)
    events = [r for r in records if isinstance(r, Event)]
    if len(events) == len(records):
        return EVENTS_TYPE, encode_events(batch.first_seq, events)
    raise TypeError(f"batch of stream {batch.stream} mixes readings and events")
