"""The agent's side of the sync: identity file, hub client, push loop, CLI and status.

The first half needs no hub: real sockets stand in for a hub that is down, silent, garbled or
refusing. The second half runs a real hub process (``tests/helpers/hub.py``, SQLite) and the
agent against it over real HTTP.
"""

from __future__ import annotations

import asyncio
import base64
import fcntl
import json
import logging
import os
import random
import socket
import stat
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from rich.console import Console
from sqlalchemy import select

from edge_agent.config import SyncSection, load_config
from edge_agent.errors import ConfigError, HubRejected, HubUnreachable, SyncError
from edge_agent.records import Event, Reading, now_ms
from edge_agent.runtime import LOCK_FILE, OUTBOX_FILE, STATUS_FILE, Gateway
from edge_agent.status import gateway_report, report_view
from edge_agent.store import Outbox
from edge_agent.sync.client import DeviceDeclaration, HubClient, enroll, http_date
from edge_agent.sync.identity import (
    IDENTITY_FILE,
    Identity,
    hub_base_url,
    load_identity,
    save_identity,
)
from edge_agent.sync.loop import SyncLoop, backlog_and_lag, backoff_delay
from sync_server import admin
from sync_server.db.schema import devices, gateways
from tests.helpers.hub import HubProcess, start_hub
from tests.test_cli import edge_agent

# --- helpers -----------------------------------------------------------------------------


def an_identity(hub_url: str = "http://127.0.0.1:9", token: str = "pgw_test") -> Identity:
    """An identity as enrollment gives one (keys are arbitrary bytes here)."""
    return Identity(hub_url=hub_url, gateway="gw1", territory="dunkerque", site="port-est",
                    token=token, signing_public_key=bytes(range(32)),
                    signing_key_id="0123456789abcdef", badge_key=bytes(range(32, 64)),
                    provisioned_at_ms=1_764_100_000_000, insecure_http=True)


def gateway_file(tmp_path: Path, sync: str = "") -> Path:
    """A gateway with no devices and a ``[sync]`` section of the caller's choosing."""
    path = tmp_path / "gateway.toml"
    path.write_text(f'[gateway]\nid = "gw1"\ndata_dir = "data"\n\n[sync]\n{sync}\n',
                    encoding="utf-8")
    return path


def closed_port() -> int:
    """A local port nothing listens on: connecting is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@asynccontextmanager
async def canned_server(answer: bytes) -> AsyncIterator[str]:
    """A TCP server that reads one request head and writes ``answer`` (raw bytes), closing."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(answer)
        await writer.drain()
        writer.close()
        await writer.wait_closed()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()
        await server.wait_closed()


def readings(count: int, start_ts: int = 1_764_000_000_000) -> list[Reading]:
    """``count`` voltage readings of three meters, one a second."""
    return [Reading(f"m{i % 3}", "voltage", start_ts + i * 1000, 230.0 + i % 7 / 10)
            for i in range(count)]


def alarm(ts_ms: int) -> Event:
    """A flood alarm, as the rules engine will raise one."""
    return Event("alarm.raised", "level-1", ts_ms, {"level_m": 2.4})


# --- identity ----------------------------------------------------------------------------


def test_identity_round_trips_with_keys_as_base64_in_a_0600_file(tmp_path: Path) -> None:
    old_umask = os.umask(0)  # even a permissive umask must not widen the file
    try:
        path = save_identity(tmp_path / "data", an_identity())
    finally:
        os.umask(old_umask)
    assert path == tmp_path / "data" / IDENTITY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    on_disk = json.loads(path.read_text(encoding="utf-8"))
    assert base64.b64decode(on_disk["signing_public_key"]) == bytes(range(32))
    assert load_identity(tmp_path / "data") == an_identity()
    assert [p.name for p in path.parent.iterdir()] == [IDENTITY_FILE]  # no temporary left


def test_the_identity_file_is_never_readable_by_others_even_before_its_rename(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    modes: list[int] = []
    replace = Path.replace

    def spy(self: Path, target: str | os.PathLike[str]) -> Path:
        modes.append(stat.S_IMODE(self.stat().st_mode))
        return replace(self, target)

    monkeypatch.setattr(Path, "replace", spy)
    save_identity(tmp_path, an_identity())
    save_identity(tmp_path, an_identity(token="pgw_other"))  # replacing keeps it private
    assert modes == [0o600, 0o600]
    assert load_identity(tmp_path) == an_identity(token="pgw_other")


def test_secrets_stay_out_of_the_identity_repr() -> None:
    text = repr(an_identity(token="pgw_secret"))
    assert "pgw_secret" not in text
    assert "badge_key" not in text
    assert "gw1" in text


def test_no_identity_file_means_not_provisioned(tmp_path: Path) -> None:
    assert load_identity(tmp_path) is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("{not json", "not JSON"),
        ('{"gateway": "gw1"}', "hub_url: Field required"),
        ("bad base64", "signing_public_key: not base64"),
        ("short key", "badge_key: Value should have at least 32 bytes"),
        ("bad url", "hub_url: 'ftp://hub' is not an http:// or https:// URL"),
        ("extra field", "colour: unknown field"),
    ],
)
def test_a_malformed_identity_file_is_a_config_error_naming_it(
    tmp_path: Path, change: str, message: str
) -> None:
    path = save_identity(tmp_path, an_identity())
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    if change == "bad base64":
        data["signing_public_key"] = "not base64!"
    elif change == "short key":
        data["badge_key"] = base64.b64encode(b"short").decode()
    elif change == "bad url":
        data["hub_url"] = "ftp://hub"
    elif change == "extra field":
        data["colour"] = "blue"
    text = change if change.startswith("{") else json.dumps(data)
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as raised:
        load_identity(tmp_path)
    assert str(path) in str(raised.value)
    assert message in str(raised.value)
    assert "pgw_test" not in str(raised.value)


def test_an_identity_file_others_may_read_is_reported(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = save_identity(tmp_path, an_identity())
    path.chmod(0o644)
    assert load_identity(tmp_path) == an_identity()
    assert f"chmod 600 {path}" in caplog.text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("https://hub.example.org/", "https://hub.example.org"),
        ("http://127.0.0.1:8000", "http://127.0.0.1:8000"),
        ("https://example.org/ponton/", "https://example.org/ponton"),
        ("ftp://hub", None), ("hub:8000", None), ("http://", None), ("http://[::1", None),
        ("http://hub:99999", None), ("http://user:pw@hub", None), ("http://h ub", None),
        ("https://hub/?x=1", None), ("https://hub..example.org", None),
        (f"https://{'h' * 64}.example.org", None),
    ],
)
def test_hub_urls_are_checked_and_normalised(text: str, expected: str | None) -> None:
    if expected is None:
        with pytest.raises(ValueError, match="URL"):
            hub_base_url(text)
    else:
        assert hub_base_url(text) == expected


async def test_a_plain_http_hub_is_refused_before_the_code_leaves() -> None:
    with pytest.raises(ConfigError, match=r"plain HTTP.*--insecure-http"):
        await enroll(f"http://127.0.0.1:{closed_port()}", "code")


def test_a_plain_http_identity_needs_the_insecure_setting_it_was_provisioned_with(
    tmp_path: Path
) -> None:
    save_identity(tmp_path, an_identity())  # http://127.0.0.1:9, provisioned --insecure-http
    path = tmp_path / IDENTITY_FILE
    document = json.loads(path.read_text(encoding="utf-8"))
    assert document["insecure_http"] is True
    del document["insecure_http"]  # as an older agent wrote it
    path.write_text(json.dumps(document), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"plain HTTP.*--insecure-http") as refused:
        load_identity(tmp_path)
    assert str(path) in str(refused.value)
    document["hub_url"] = "https://hub.example.org"
    path.write_text(json.dumps(document), encoding="utf-8")
    assert load_identity(tmp_path) == msgspec.structs.replace(
        an_identity("https://hub.example.org"), insecure_http=False)


# --- configuration -----------------------------------------------------------------------


def test_the_sync_section_is_optional_with_defaults(tmp_path: Path) -> None:
    path = tmp_path / "gateway.toml"
    path.write_text('[gateway]\nid = "gw1"\ndata_dir = "data"\n', encoding="utf-8")
    assert load_config(path).sync == SyncSection(
        enabled=True, interval_s=5, batch_limit=10_000, timeout_s=30, max_backoff_s=300)


def test_the_sync_section_is_read(tmp_path: Path) -> None:
    config = load_config(gateway_file(tmp_path, "enabled = false\ninterval_s = 1.5\n"
                                                "batch_limit = 100\ntimeout_s = 4\n"
                                                "max_backoff_s = 60\n"))
    assert config.sync == SyncSection(enabled=False, interval_s=1.5, batch_limit=100,
                                      timeout_s=4, max_backoff_s=60)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("intervals = 3", "sync.intervals: unknown field; did you mean 'interval_s'?"),
        ("batch_limit = 0", "sync.batch_limit: Input should be greater than or equal to 1"),
        ("timeout_s = -1", "sync.timeout_s: Input should be greater than 0"),
    ],
)
def test_sync_section_mistakes_are_named(tmp_path: Path, line: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(gateway_file(tmp_path, line))


# --- backoff, backlog and lag ------------------------------------------------------------


def test_backoff_is_full_jitter_under_a_doubling_ceiling_and_the_cap() -> None:
    rng = random.Random(7)
    delays = [backoff_delay(n, cap_s=300, rng=rng) for n in range(1, 13)]
    again = random.Random(7)
    assert delays == [backoff_delay(n, cap_s=300, rng=again) for n in range(1, 13)]
    for failures, delay in enumerate(delays, start=1):
        assert 0 <= delay <= min(300, 2 ** (failures - 1))
    assert delays[-1] != delays[-2]  # at the cap the waits still differ: no herd
    assert backoff_delay(10_000, cap_s=300, rng=rng) <= 300  # no overflow after months


def test_backoff_honours_retry_after_up_to_the_cap() -> None:
    rng = random.Random(1)
    assert backoff_delay(1, cap_s=300, rng=rng, retry_after_s=42) == 42
    assert backoff_delay(1, cap_s=300, rng=rng, retry_after_s=86_400) == 300
    assert backoff_delay(20, cap_s=300, rng=random.Random(3), retry_after_s=0.5) == \
        backoff_delay(20, cap_s=300, rng=random.Random(3))


@pytest.mark.parametrize(("value", "seconds"), [
    ("Sun, 06 Nov 1994 08:49:37 GMT", 784111777.0),
    ("Fri, 04 Dec 2026 17:00:00 GMT", 1796403600.0),
    ("  Thu, 01 Jan 1970 00:00:00 GMT ", 0.0),
    ("Sunday, 06-Nov-94 08:49:37 GMT", None),  # RFC 850, obsolete: servers must not send it
    ("Sun Nov  6 08:49:37 1994", None),  # asctime, obsolete too
    ("Sun, 06 Nov 1994 08:49:37 CET", None),
    ("Sun, 31 Feb 1994 08:49:37 GMT", None),
    ("Sun, 06 Nov 1994 25:49:37 GMT", None),
    ("Sun, 06 Nov 1994 08:49 GMT", None),
    ("Sun, xx Nov 1994 08:49:37 GMT", None),
    ("", None),
])
def test_http_dates_are_read_in_the_form_servers_send(value: str, seconds: float | None
                                                      ) -> None:
    assert http_date(value) == seconds


def test_backlog_counts_every_stream_and_lag_is_the_oldest_waiting_record(
    tmp_path: Path,
) -> None:
    with Outbox.open(tmp_path / OUTBOX_FILE) as outbox:
        assert backlog_and_lag(outbox.stats(), 5_000) == (0, None)
        outbox.append_readings(readings(10, start_ts=2_000))
        outbox.append_events([alarm(3_000)], stream="alarms")
        outbox.ack("readings", 10)
        outbox.append_readings(readings(2, start_ts=4_000))
        assert backlog_and_lag(outbox.stats(), 5_000) == (3, 2_000)


# --- the client against hubs that are down, silent, garbled or refusing ------------------


async def test_a_closed_port_is_hub_unreachable() -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    async with HubClient(an_identity(url), timeout_s=5) as client:
        with pytest.raises(HubUnreachable, match="unreachable"):
            await client.acked()
    with pytest.raises(HubUnreachable):
        await enroll(url, "code", insecure_http=True, timeout_s=5)


async def test_a_hub_that_never_answers_is_unreachable_after_the_timeout() -> None:
    with socket.socket() as listener:  # accepts connections (backlog) but never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        async with HubClient(an_identity(url), timeout_s=0.3) as client:
            with pytest.raises(HubUnreachable, match="did not answer"):
                await client.acked()


@pytest.mark.parametrize("answer", [b"garbage\r\n\r\n", b""])
async def test_a_garbled_or_cut_answer_is_hub_unreachable(answer: bytes) -> None:
    async with canned_server(answer) as url, HubClient(an_identity(url)) as client:
        with pytest.raises(HubUnreachable):
            await client.acked()


async def test_error_statuses_carry_the_hub_code_or_the_status() -> None:
    body = b'{"error": "seq_conflict", "detail": "seq 3 differs"}'
    json_answer = (b"HTTP/1.1 409 Conflict\r\nContent-Type: application/json\r\n"
                   b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body))
    async with canned_server(json_answer) as url, HubClient(an_identity(url)) as client:
        with pytest.raises(HubRejected) as raised:
            await client.acked()
    assert (raised.value.status, raised.value.code) == (409, "seq_conflict")
    assert "seq 3 differs" in str(raised.value)

    html = (b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 7\r\nContent-Length: 6\r\n"
            b"Connection: close\r\n\r\n<html>")
    async with canned_server(html) as url, HubClient(an_identity(url)) as client:
        with pytest.raises(HubRejected) as raised:
            await client.acked()
        assert client.retry_after_s == 7
    assert (raised.value.status, raised.value.code) == (503, "http_503")


async def test_a_success_without_an_acked_map_is_a_sync_error() -> None:
    answer = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 14\r\n"
              b"Connection: close\r\n\r\n{\"acked\": [1]}")
    async with canned_server(answer) as url, HubClient(an_identity(url)) as client:
        with pytest.raises(SyncError, match="without a valid 'acked' map"):
            await client.acked()


async def test_enroll_refuses_a_url_that_is_not_a_hub() -> None:
    with pytest.raises(ConfigError, match=r"--hub: 'hub\.example\.org' is not an http"):
        await enroll("hub.example.org", "code")


async def test_enroll_refuses_a_host_name_the_resolver_cannot_take() -> None:
    """A doubled dot went as far as the resolver, whose UnicodeError was a traceback."""
    with pytest.raises(ConfigError, match=r"--hub: 'https://hub\.\.example\.org' is not a hub "
                                          r"URL: its host name has an empty label"):
        await enroll("https://hub..example.org", "code")


async def test_a_batch_too_large_for_the_hub_goes_again_at_half_the_size(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    body = b'{"error": "too_large", "detail": "request body exceeds the limit"}'
    answer = (b"HTTP/1.1 413 Content Too Large\r\nContent-Type: application/json\r\n"
              b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body))
    with Outbox.open(tmp_path / OUTBOX_FILE) as outbox:
        outbox.append_readings(readings(10))
        async with canned_server(answer) as url, HubClient(an_identity(url)) as client:
            loop = SyncLoop(outbox, client, SyncSection(batch_limit=4))
            with pytest.raises(HubRejected) as raised:
                await loop.push_next()
        assert raised.value.code == "too_large"
        assert outbox.stats()[-1].depth == 10
    assert "batches now hold at most 2 records" in caplog.text
    assert "batches now hold at most 1 records" in caplog.text


# --- the loop while the hub is down ------------------------------------------------------


@pytest.mark.usefixtures("no_leaks")
async def test_the_loop_backs_off_keeps_every_record_and_stops_promptly(tmp_path: Path) -> None:
    settings = SyncSection(interval_s=0.05, max_backoff_s=0.05)
    url = f"http://127.0.0.1:{closed_port()}"
    with Outbox.open(tmp_path / OUTBOX_FILE) as outbox:
        outbox.append_readings(readings(50))
        async with HubClient(an_identity(url), timeout_s=1) as client:
            loop = SyncLoop(outbox, client, settings, rng=random.Random(0))
            stop = asyncio.Event()
            task = asyncio.create_task(loop.run(stop))
            async with asyncio.timeout(10):
                while loop.state.consecutive_failures < 3:
                    await asyncio.sleep(0.01)
            stop.set()
            await asyncio.wait_for(task, 5)
            report = loop.report(outbox.stats())
        assert report["backlog"] == 50
        assert report["last_success_ms"] is None
        assert "unreachable" in report["last_error"]
        assert outbox.stats()[-1].acked_seq == 0


@pytest.mark.usefixtures("no_leaks")
async def test_a_stop_abandons_a_request_in_flight(tmp_path: Path) -> None:
    with (socket.socket() as listener,  # a hub that takes the request and never answers
          Outbox.open(tmp_path / OUTBOX_FILE) as outbox):
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        outbox.append_readings(readings(5))
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        async with HubClient(an_identity(url), timeout_s=60) as client:
            stop = asyncio.Event()
            task = asyncio.create_task(SyncLoop(outbox, client, SyncSection()).run(stop))
            await asyncio.sleep(0.3)
            assert not task.done()
            stop.set()
            await asyncio.wait_for(task, 10)  # not the 60 s of the request's timeout
        assert outbox.stats()[-1].depth == 5


# --- command line and status without a hub -----------------------------------------------


def test_sync_once_refuses_while_the_agent_runs(tmp_path: Path) -> None:
    config = gateway_file(tmp_path)
    data_dir = tmp_path / "data"
    save_identity(data_dir, an_identity())
    with (data_dir / LOCK_FILE).open("a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # what a running agent holds
        result = edge_agent("sync", "--once", "--config", str(config))
    assert result.returncode == 2, result.stdout
    assert "an edge-agent is running with" in result.stderr
    assert "it syncs by itself" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("args", "provisioned", "message"),
    [
        (("sync", "--once"), False, "not provisioned: run `edge-agent provision"),
        (("sync",), True, "`edge-agent sync --once` empties the outbox now"),
        (("provision", "--hub", "http://127.0.0.1:9", "--code", "abc"), True,
         "already provisioned as gw1 of dunkerque at http://127.0.0.1:9; add --force"),
        (("provision", "--hub", "hub.example.org", "--code", "abc"), False,
         "--hub: 'hub.example.org' is not an http:// or https:// URL"),
        (("provision", "--hub", "http://127.0.0.1:1", "--code", "abc", "--insecure-http"), False,
         "unreachable for POST /v1/enroll"),
        (("provision", "--hub", "http://127.0.0.1:1", "--code", "abc"), False,
         "--hub: 'http://127.0.0.1:1' is plain HTTP, which would expose the gateway's token: "
         "use the hub's https:// URL, or provision with --insecure-http for a test bench"),
    ],
)
def test_sync_commands_explain_what_is_wrong(
    tmp_path: Path, args: tuple[str, ...], provisioned: bool, message: str
) -> None:
    config = gateway_file(tmp_path)
    if provisioned:
        save_identity(tmp_path / "data", an_identity())
    result = edge_agent(*args, "--config", str(config))
    assert result.returncode == 2, result.stdout
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_status_shows_the_hub_backlog_lag_and_last_error(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    save_identity(data_dir, an_identity("https://hub.example.org"))
    with Outbox.open(data_dir / OUTBOX_FILE) as outbox:
        outbox.append_readings(readings(40, start_ts=now_ms() - 3 * 3_600_000))
    error = "hub https://hub.example.org unreachable for GET /v1/gateway/streams: refused"
    (data_dir / STATUS_FILE).write_text(json.dumps({
        "gateway": "gw1", "pid": 1, "started_ms": 0, "updated_ms": now_ms(), "stopped": False,
        "devices": [], "streams": [],
        "sync": {"hub": "https://hub.example.org", "last_success_ms": now_ms() - 600_000,
                 "last_error": error, "last_error_ms": now_ms(), "consecutive_failures": 4,
                 "pushed_batches": 2, "pushed_records": 9000, "hub_acked": {"readings": 9000},
                 "backlog": 1, "lag_ms": 1},
    }), encoding="utf-8")
    sync = gateway_report(data_dir)["sync"]
    assert sync["hub"] == "https://hub.example.org"
    assert sync["backlog"] == 40  # from the outbox itself, not the agent's last word
    assert 3 * 3_600_000 - 60_000 < sync["lag_ms"] < 3 * 3_600_000 + 60_000
    assert sync["consecutive_failures"] == 4
    console = Console(record=True, width=240)
    console.print(report_view(gateway_report(data_dir)))
    text = console.export_text()
    for expected in ("https://hub.example.org", "40", "3.0 h", "10 min ago", error):
        assert expected in text

    result = edge_agent("status", "--json", "--config", str(gateway_file(tmp_path)))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["sync"]["last_error"] == error


def test_status_says_when_the_gateway_is_not_provisioned(tmp_path: Path) -> None:
    console = Console(record=True, width=200)
    console.print(report_view(gateway_report(tmp_path)))
    assert ("not provisioned: run `edge-agent provision --config gateway.toml --hub URL --code "
            "CODE`") in console.export_text()


@pytest.mark.usefixtures("no_leaks")
async def test_an_unprovisioned_gateway_runs_without_sync_and_says_so_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "edge_agent")
    config = gateway_file(tmp_path)
    gateway = Gateway(load_config(config), config)
    stop = asyncio.Event()
    task = asyncio.create_task(gateway.run(stop))
    gateway.buffer.put_event(alarm(now_ms()))
    async with asyncio.timeout(10):
        while not (tmp_path / "data" / STATUS_FILE).exists():
            await asyncio.sleep(0.02)
    stop.set()
    await asyncio.wait_for(task, 10)
    assert gateway.sync is None
    assert caplog.text.count("not provisioned: run `edge-agent provision") == 1
    status = json.loads((tmp_path / "data" / STATUS_FILE).read_text(encoding="utf-8"))
    assert status["sync"] == {"note": f"not provisioned: run `edge-agent provision --config "
                                      f"{config} --hub URL --code CODE`"}
    with Outbox.open(tmp_path / "data" / OUTBOX_FILE) as outbox:
        assert {s.name: s.depth for s in outbox.stats()}["alarms"] == 1


# --- against a real hub ------------------------------------------------------------------


@pytest.fixture(scope="module")
def sqlite_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubProcess]:
    """One hub process (SQLite) for this module's end-to-end tests."""
    with start_hub(tmp_path_factory.mktemp("hub")) as running:
        yield running


_gateway_numbers = iter(range(1, 1000))


def enrollment_code(hub: HubProcess, name: str | None = None) -> tuple[str, str]:
    """A new gateway of territory ``sync`` and its one-time code: ``(name, code)``."""
    name = name or f"agent-gw{next(_gateway_numbers)}"
    site = hub.territory("sync").site
    return name, admin.add_gateway(hub.engine, "sync", site, name).code


async def provisioned(hub: HubProcess, data_dir: Path) -> Identity:
    """Enroll a new gateway over HTTP and keep its identity in ``data_dir``."""
    _name, code = enrollment_code(hub)
    identity = await enroll(hub.url, code, insecure_http=True)
    save_identity(data_dir, identity)
    return identity


def hub_marks(hub: HubProcess, identity: Identity) -> dict[str, int]:
    """``GET /v1/gateway/streams`` as the gateway sees it."""
    answer = httpx.get(f"{hub.url}/v1/gateway/streams", timeout=10,
                       headers={"Authorization": f"Bearer {identity.token}"})
    answer.raise_for_status()
    marks: dict[str, int] = answer.json()["acked"]
    return marks


def hub_devices(hub: HubProcess, identity: Identity) -> list[tuple[str, str, list[str]]]:
    """The devices the hub keeps for the gateway, as its last declaration gave them."""
    with hub.engine.connect() as conn:
        rows = conn.execute(
            select(devices.c.name, devices.c.profile, devices.c.quantities)
            .join(gateways, gateways.c.id == devices.c.gateway_id)
            .where(gateways.c.name == identity.gateway))
        return [(name, profile, json.loads(quantities)) for name, profile, quantities in rows]


async def test_enrollment_gives_an_identity_with_the_hub_keys(
    sqlite_hub: HubProcess, tmp_path: Path
) -> None:
    name, code = enrollment_code(sqlite_hub)
    identity = await enroll(sqlite_hub.url + "/", code, insecure_http=True)
    assert (identity.gateway, identity.territory, identity.site) == (name, "sync", "sync-site")
    assert identity.hub_url == sqlite_hub.url
    assert identity.token.startswith("pgw_")
    assert len(identity.signing_public_key) == 32
    assert len(identity.badge_key) == 32
    with pytest.raises(HubRejected) as raised:  # single use
        await enroll(sqlite_hub.url, code, insecure_http=True)
    assert (raised.value.status, raised.value.code) == (401, "invalid_code")


@pytest.mark.usefixtures("no_leaks")
async def test_a_backlog_drains_alarms_first_and_the_hub_marks_match(
    sqlite_hub: HubProcess, tmp_path: Path
) -> None:
    identity = await provisioned(sqlite_hub, tmp_path)
    settings = SyncSection(batch_limit=2000, interval_s=0.05, max_backoff_s=0.2)
    with Outbox.open(tmp_path / OUTBOX_FILE) as outbox:
        outbox.append_readings(readings(5000))
        outbox.append_events([Event("device.offline", "m1", 1_764_000_000_000)] * 3)
        outbox.append_events([alarm(1_764_000_000_000 + i) for i in range(2)], stream="alarms")
        async with HubClient(identity) as client:
            berth = DeviceDeclaration("berth-a3", "eastron-sdm120", ("voltage", "current"))
            loop = SyncLoop(outbox, client, settings, devices=[berth])
            await loop.start()
            assert hub_devices(sqlite_hub, identity) == [
                ("berth-a3", "eastron-sdm120", ["voltage", "current"])]
            assert await loop.push_next() == 2  # alarms leave first,
            assert hub_marks(sqlite_hub, identity) == {"alarms": 2}
            assert await loop.push_next() == 3  # then events, then readings
            stop = asyncio.Event()
            task = asyncio.create_task(loop.run(stop))
            async with asyncio.timeout(30):
                while loop.state.pushed_records < 5005:  # counted once acked locally
                    await asyncio.sleep(0.02)
            stop.set()
            await task
        assert hub_marks(sqlite_hub, identity) == {"alarms": 2, "events": 3, "readings": 5000}
        assert {s.name: (s.depth, s.acked_seq) for s in outbox.stats()} == {
            "alarms": (0, 2), "events": (0, 3), "readings": (0, 5000)}
        assert loop.state.pushed_records == 5005
        assert loop.state.pushed_batches == 5  # 2 alarms, 3 events, 3 x 2000 readings max
        assert loop.state.hub_acked == {"alarms": 2, "events": 3, "readings": 5000}
        assert loop.state.consecutive_failures == 0


async def test_at_start_what_the_hub_already_holds_is_removed_without_a_replay(
    sqlite_hub: HubProcess, tmp_path: Path
) -> None:
    identity = await provisioned(sqlite_hub, tmp_path)
    with Outbox.open(tmp_path / OUTBOX_FILE) as outbox:
        outbox.append_readings(readings(300))
        batch = outbox.next_batch(limit=200)
        assert batch is not None
        async with HubClient(identity) as client:
            # The hub stored the batch but its answer was lost: nothing acked locally.
            await client.push(batch, sent_at_ms=now_ms(), backlog=300)
            assert outbox.stats()[-1].depth == 300
            loop = SyncLoop(outbox, client, SyncSection())
            await loop.start()
        assert outbox.stats()[-1].depth == 100
        assert outbox.stats()[-1].acked_seq == 200
        assert loop.state.pushed_batches == 0


async def test_a_refused_device_declaration_does_not_hold_records_back(
    sqlite_hub: HubProcess, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    identity = await provisioned(sqlite_hub, tmp_path)
    too_long = DeviceDeclaration("berth-" + "x" * 300, "eastron-sdm120", ("voltage",))
    with Outbox.open(tmp_path / OUTBOX_FILE) as outbox:
        outbox.append_readings(readings(10))
        async with HubClient(identity) as client:
            loop = SyncLoop(outbox, client, SyncSection(), devices=[too_long])
            await loop.start()
            assert await loop.push_next() == 10
    assert "the hub refused the device declaration" in caplog.text
    assert "400 invalid_request" in loop.state.last_error
    assert loop.state.consecutive_failures == 0
    assert hub_marks(sqlite_hub, identity) == {"readings": 10}


@pytest.mark.usefixtures("no_leaks")
async def test_a_sequence_conflict_keeps_every_record_and_says_so_loudly(
    sqlite_hub: HubProcess, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    identity = await provisioned(sqlite_hub, tmp_path)
    async with HubClient(identity) as client:
        with Outbox.open(tmp_path / "first.sqlite") as first:
            first.append_readings(readings(10))
            await SyncLoop(first, client, SyncSection()).push_next()
        # The outbox file is replaced: same seqs, other values.
        with Outbox.open(tmp_path / OUTBOX_FILE) as outbox:
            outbox.append_readings(readings(20, start_ts=1_765_000_000_000))
            loop = SyncLoop(outbox, client, SyncSection(max_backoff_s=0.05, interval_s=0.05))
            stop = asyncio.Event()
            task = asyncio.create_task(loop.run(stop))
            async with asyncio.timeout(10):
                while loop.state.consecutive_failures < 2:
                    await asyncio.sleep(0.01)
            stop.set()
            await task
            assert outbox.stats()[-1].depth == 20
    assert "409 seq_conflict" in loop.state.last_error
    assert "SEQUENCE CONFLICT" in caplog.text
    assert "this outbox was replaced" in caplog.text
    assert hub_marks(sqlite_hub, identity) == {"readings": 10}


@pytest.mark.usefixtures("no_leaks")
async def test_a_refused_token_asks_for_a_new_provisioning(
    sqlite_hub: HubProcess, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    identity = an_identity(sqlite_hub.url, token="pgw_revoked-or-never-issued")
    with Outbox.open(tmp_path / OUTBOX_FILE) as outbox:
        outbox.append_readings(readings(5))
        async with HubClient(identity) as client:
            loop = SyncLoop(outbox, client, SyncSection(max_backoff_s=0.05))
            stop = asyncio.Event()
            task = asyncio.create_task(loop.run(stop))
            async with asyncio.timeout(10):
                while not loop.state.consecutive_failures:
                    await asyncio.sleep(0.01)
            stop.set()
            await task
        assert outbox.stats()[-1].depth == 5
    assert "401 invalid_token" in loop.state.last_error
    assert "token refused: re-provision the gateway" in caplog.text


@pytest.mark.usefixtures("no_leaks")
async def test_the_running_gateway_syncs_and_an_alarm_leaves_at_once(
    sqlite_hub: HubProcess, tmp_path: Path
) -> None:
    # A long interval: only the alarm's wake-up can make it leave within the test's time.
    config = load_config(gateway_file(tmp_path, "interval_s = 600\nmax_backoff_s = 0.5\n"))
    identity = await provisioned(sqlite_hub, tmp_path / "data")
    with Outbox.open(tmp_path / "data" / OUTBOX_FILE) as outbox:  # a backlog from last week
        outbox.append_readings(readings(1200))
    gateway = Gateway(config)
    stop = asyncio.Event()
    task = asyncio.create_task(gateway.run(stop))
    async with asyncio.timeout(20):
        while hub_marks(sqlite_hub, identity).get("readings") != 1200:
            await asyncio.sleep(0.05)
        gateway.buffer.put_event(alarm(now_ms()))
        while hub_marks(sqlite_hub, identity).get("alarms") != 1:
            await asyncio.sleep(0.05)
        while json.loads((tmp_path / "data" / STATUS_FILE).read_text(encoding="utf-8"))[
                "sync"].get("pushed_records", 0) < 1201:
            await asyncio.sleep(0.1)
    stop.set()
    await asyncio.wait_for(task, 10)
    status = json.loads((tmp_path / "data" / STATUS_FILE).read_text(encoding="utf-8"))
    assert status["sync"]["hub"] == sqlite_hub.url
    assert status["sync"]["backlog"] == 0
    assert status["sync"]["lag_ms"] is None
    assert status["sync"]["last_success_ms"] is not None
    assert status["sync"]["consecutive_failures"] == 0


def test_provision_then_sync_once_drains_the_outbox_with_a_progress_bar(
    sqlite_hub: HubProcess, tmp_path: Path
) -> None:
    config = gateway_file(tmp_path, "batch_limit = 4000\n")
    name, code = enrollment_code(sqlite_hub)
    result = edge_agent("provision", "--config", str(config), "--hub", sqlite_hub.url,
                        "--code", code, "--insecure-http")
    assert result.returncode == 0, result.stderr
    assert f"gateway {name}, territory sync, site sync-site, signing key" in result.stdout
    identity = load_identity(tmp_path / "data")
    assert identity is not None
    assert stat.S_IMODE((tmp_path / "data" / IDENTITY_FILE).stat().st_mode) == 0o600

    with Outbox.open(tmp_path / "data" / OUTBOX_FILE) as outbox:
        outbox.append_readings(readings(10_000))
        outbox.append_events([alarm(1_764_000_000_000)], stream="alarms")
    result = edge_agent("sync", "--once", "--config", str(config))
    assert result.returncode == 0, result.stderr
    assert "10001/10001 records" in result.stdout
    assert f"outbox empty: 10001 records sent to {sqlite_hub.url}" in result.stdout
    assert hub_marks(sqlite_hub, identity) == {"alarms": 1, "readings": 10_000}

    result = edge_agent("sync", "--once", "--config", str(config))  # nothing left: still fine
    assert result.returncode == 0, result.stderr
    assert "outbox empty: 0 records sent" in result.stdout

    # Re-provisioning: refused without --force, done with it and a re-issued code.
    new_code = admin.add_gateway(sqlite_hub.engine, "sync", "sync-site", name,
                                 reissue=True).code
    refused = edge_agent("provision", "--config", str(config), "--hub", sqlite_hub.url,
                         "--code", new_code, "--insecure-http")
    assert refused.returncode == 2
    assert "already provisioned" in refused.stderr
    forced = edge_agent("provision", "--config", str(config), "--hub", sqlite_hub.url,
                        "--code", new_code, "--force", "--insecure-http")
    assert forced.returncode == 0, forced.stderr
    renewed = load_identity(tmp_path / "data")
    assert renewed is not None
    assert renewed.token != identity.token
    with pytest.raises(httpx.HTTPStatusError, match="401"):
        hub_marks(sqlite_hub, identity)  # the old token is revoked
    # The box keeps its outbox and goes on from its next seq with the new identity.
    with Outbox.open(tmp_path / "data" / OUTBOX_FILE) as outbox:
        outbox.append_readings(readings(5, start_ts=1_765_000_000_000))
    result = edge_agent("sync", "--once", "--config", str(config))
    assert result.returncode == 0, result.stderr
    assert hub_marks(sqlite_hub, renewed)["readings"] == 10_005
