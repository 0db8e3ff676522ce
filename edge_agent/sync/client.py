"""The gateway's HTTP exchanges with the hub, one method per request of docs/sync-protocol.md.

httpx stops here: every transport failure (refused, reset, timeout, a garbled answer) becomes
HubUnreachable, a TLS handshake failed on a certificate HubUntrusted (edge_agent/sync/tls.py
says whose), and every error status HubRejected carrying the hub's stable error code, so
the push loop decides on types and codes, never on httpx classes or message text. The client
never retries: the loop owns retrying and its backoff.

The hub's answers are trusted for nothing, their size included: each is read raw and
inflated by ``answers.read_answer``, bounded by the limit of its kind (``BUNDLE_ANSWER_LIMIT``
for signed bundles, ``ANSWER_LIMIT`` for everything else) and dropped beyond it with
HubAnswerTooLarge, counted in ``oversize_answers``.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Any, Self

# httpx imports its own command line client, and with it rich, pygments and click, whenever
# they are installed (they are, for the installer's CLI). The daemon syncs for months and
# must not carry them: a None entry makes that one optional import fail, as httpx allows.
# ruff: noqa: E402 - the imports below follow this line on purpose
sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
import httpx
from pydantic import ValidationError

from edge_agent.codecs.batch import EVENTS_TYPE, READINGS_TYPE, encode_events, encode_readings
from edge_agent.codecs.bundle import MAX_ENVELOPE_BYTES
from edge_agent.codecs.compression import Encoding, compress
from edge_agent.errors import (
    ConfigError,
    HubAnswerTooLarge,
    HubRejected,
    HubUnreachable,
    HubUntrusted,
    SyncError,
)
from edge_agent.records import Event, Reading, now_ms
from edge_agent.store import Batch
from edge_agent.sync.answers import ACCEPT_ENCODING, read_answer
from edge_agent.sync.identity import Identity, hub_base_url, require_tls
from edge_agent.sync.tls import TlsFiles, certificate_problem

__all__ = [
    "ANSWER_LIMIT",
    "BUNDLE_ANSWER_LIMIT",
    "DeviceDeclaration",
    "HubClient",
    "PreparedBatch",
    "enroll",
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
_FRAMING_HEADERS = frozenset({"content-encoding", "content-length", "transfer-encoding"})
#: A hub that requires client certificates (uvicorn, TLS 1.3) refuses one by closing the
#: connection without a TLS alert: the gateway sees a hub that hung up without answering,
#: while reading or still writing its request.
_HANG_UPS = (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)


@dataclass(frozen=True, slots=True)
class DeviceDeclaration:
    """One device the gateway reads, as ``PUT /v1/gateway/devices`` declares it."""

    name: str
    profile: str
    quantities: tuple[str, ...]


class HubClient:
    """Authenticated requests of one gateway to its hub; use it as an async context manager.

    ``transport`` replaces the network (an ``httpx.ASGITransport`` serves a hub in-process);
    ``tls`` replaces the TLS files recorded in ``identity`` (the config file's overrides).
    """

    def __init__(
        self,
        identity: Identity,
        *,
        timeout_s: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
        tls: TlsFiles | None = None,
    ) -> None:
        self.hub_url = identity.hub_url
        self.identity = identity
        #: Seconds the hub asked to wait in its last refusal (``Retry-After``), if it said.
        self.retry_after_s: float | None = None
        #: Answers dropped for exceeding the limit of their kind.
        self.oversize_answers = 0
        self._http = httpx.AsyncClient(
            base_url=identity.hub_url,
            headers={"Authorization": f"Bearer {identity.token}",
                     "Accept-Encoding": ACCEPT_ENCODING},
            timeout=timeout_s,
            transport=transport,
            verify=(tls or identity.tls).context(),
        )

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
        await self._request("PUT", "/v1/gateway/devices", json=body)

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
            content=prepared.body, headers=headers,
        )
        return _acked_map(response)

    async def pull_bundle(self, kind: str, etag: str | None) -> tuple[bytes, str] | None:
        """The signed bundle of ``kind`` and its ETag; None when unchanged since ``etag``."""
        headers = {"If-None-Match": etag} if etag else {}
        response = await self._request("GET", f"/v1/gateway/bundles/{kind}", headers=headers,
                                       expect_not_modified=True, limit=BUNDLE_ANSWER_LIMIT)
        if response.status_code == 304:
            return None
        return response.content, response.headers.get("ETag", "")

    async def _request(
        self, method: str, path: str, *, expect_not_modified: bool = False,
        limit: int = ANSWER_LIMIT, **kwargs: Any
    ) -> httpx.Response:
        self.retry_after_s = None
        try:
            response = await _send(self._http, method, path, limit=limit, **kwargs)
        except HubAnswerTooLarge:
            self.oversize_answers += 1
            raise
        if response.is_success or (expect_not_modified and response.status_code == 304):
            return response
        self.retry_after_s = _retry_after(response.headers.get("Retry-After"))
        raise _rejection(method, path, response)


async def enroll(hub_url: str, code: str, *, insecure_http: bool = False,
                 timeout_s: float = 30.0, tls: TlsFiles | None = None,
                 transport: httpx.AsyncBaseTransport | None = None) -> Identity:
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
    async with httpx.AsyncClient(base_url=hub_url, timeout=timeout_s, transport=transport,
                                 verify=tls.context(),
                                 headers={"Accept-Encoding": ACCEPT_ENCODING}) as http:
        response = await _send(http, "POST", "/v1/enroll", limit=ANSWER_LIMIT,
                               json={"code": code})
    if not response.is_success:
        raise _rejection("POST", "/v1/enroll", response)
    answer = _json_object(response)
    hub_time = answer.get("hub_time_ms")
    now = now_ms()
    if isinstance(hub_time, int) and abs(hub_time - now) > _CLOCK_TOLERANCE_MS:
        log.warning("this gateway's clock is %.0f s off the hub's: set up NTP, or the hub will "
                    "shift and flag every batch", (now - hub_time) / 1000)
    # Fields a newer hub adds are not this agent's business.
    known = {name: answer[name] for name in Identity.model_fields if name in answer}
    try:
        return Identity.model_validate({**known, "hub_url": hub_url, "provisioned_at_ms": now,
                                        "insecure_http": insecure_http, "ca_bundle": tls.ca_bundle,
                                        "client_cert": tls.client_cert,
                                        "client_key": tls.client_key})
    except ValidationError as exc:
        # Field names and reasons only: the input values hold the token.
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise SyncError(f"hub {hub_url} answered the enrollment with an unexpected identity: "
                        f"{problems}") from None


async def _send(http: httpx.AsyncClient, method: str, path: str, *, limit: int,
                **kwargs: Any) -> httpx.Response:
    """One request and its whole answer, at most ``limit`` bytes sent and inflated.

    Every httpx failure becomes HubUnreachable (HubUntrusted when a certificate failed the
    TLS handshake), an answer beyond ``limit`` HubAnswerTooLarge.
    """
    try:
        async with http.stream(method, path, **kwargs) as streamed:
            content = await read_answer(streamed, limit,
                                        f"hub {http.base_url} answered {method} {path}")
    except httpx.TimeoutException as exc:
        raise HubUnreachable(f"hub {http.base_url} did not answer {method} {path} in time "
                             f"({type(exc).__name__})") from exc
    except httpx.HTTPError as exc:
        if problem := certificate_problem(exc):
            raise HubUntrusted(f"hub {http.base_url} refused over TLS for {method} {path}: "
                               f"{problem}") from exc
        reason = str(exc) or type(exc).__name__
        if isinstance(exc, _HANG_UPS) and http.base_url.scheme == "https":
            reason = (f"the connection closed without an answer ({type(exc).__name__}); over "
                      "TLS this is how a hub that requires client certificates refuses a "
                      "gateway without one its CA signed (see --client-cert)")
        raise HubUnreachable(f"hub {http.base_url} unreachable for {method} {path}: "
                             f"{reason}") from exc
    headers = [(name, value) for name, value in streamed.headers.multi_items()
               if name.lower() not in _FRAMING_HEADERS]
    return httpx.Response(streamed.status_code, headers=headers, content=content,
                          request=streamed.request)


def _rejection(method: str, path: str, response: httpx.Response) -> HubRejected:
    status = response.status_code
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


def _retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header: delta seconds or an HTTP date."""
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now_ms() / 1000)


def _json_object(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SyncError(f"hub answered {response.request.url.path} with something that is not "
                        f"JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise SyncError(f"hub answered {response.request.url.path} with {type(body).__name__}, "
                        "not a JSON object")
    return body


def _acked_map(response: httpx.Response) -> dict[str, int]:
    acked = _json_object(response).get("acked")
    if not isinstance(acked, Mapping) or not all(
        isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool)
        for k, v in acked.items()
    ):
        raise SyncError(f"hub answered {response.request.url.path} without a valid 'acked' "
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
