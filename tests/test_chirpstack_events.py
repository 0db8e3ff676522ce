"""ChirpStack v4 integration events: the reference's shapes in JSON and protobuf, and garbage."""

from __future__ import annotations

import base64
import contextlib
import json
from typing import Any

import pytest
from chirpstack_api import integration
from google.protobuf.json_format import MessageToDict, ParseDict
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.codecs.chirpstack import decode_event, encode_downlink, parse_topic
from edge_agent.errors import CodecError

APP = "17c82e96-be03-4f38-aef3-f83d48582d97"
EUI = "0101010101010101"
INFO = {"tenantId": "52f14cd4-c6f1-4fbd-8f87-4025e1d49242", "tenantName": "ChirpStack",
        "applicationId": APP, "applicationName": "Test application",
        "deviceProfileId": "14855bf7-d10d-4aee-b618-ebfcb64dc7ad",
        "deviceProfileName": "Test device-profile", "deviceName": "Test device",
        "devEui": EUI, "deviceClassEnabled": "CLASS_A", "tags": {"key": "value"}}
#: The uplink of the reference (§1.4), as ChirpStack emits it.
UPLINK = {
    "deduplicationId": "3ac7e3c4-4401-4b8d-9386-a5c902f9202d",
    "time": "2022-07-18T09:34:15.775023242+00:00", "deviceInfo": INFO,
    "devAddr": "00189440", "adr": True, "dr": 1, "fCnt": 10, "fPort": 1, "confirmed": False,
    "data": "qg==", "object": {"distance_cm": 172.0},
    "rxInfo": [{"gatewayId": "0016c001f153a14c", "uplinkId": 4217106255,
                "nsTime": "2023-01-01T00:00:00+00:00", "rssi": -36, "snr": 10.5, "channel": 3,
                "rfChain": 1, "location": {}, "context": "E3OWOQ==",
                "metadata": {"region_config_id": "eu868"}, "crcStatus": "CRC_OK"},
               {"gatewayId": "0016c001f153a14d", "rssi": -90, "snr": -3.0}],
    "txInfo": {"frequency": 867100000,
               "modulation": {"lora": {"bandwidth": 125000, "spreadingFactor": 11,
                                       "codeRate": "CR_4_5"}}},
    "regionConfigId": "eu868",
}
STATUS = {"deduplicationId": "9d2cbd6a-0000-4000-8000-000000000001",
          "time": "2026-12-03T10:00:00Z", "deviceInfo": INFO, "margin": 7,
          "externalPowerSource": False, "batteryLevelUnavailable": False, "batteryLevel": 55.5}
ACK = {"deduplicationId": "9d2cbd6a-0000-4000-8000-000000000002",
       "time": "2026-12-03T10:00:01Z", "deviceInfo": INFO,
       "queueItemId": "5b9b7d40-0000-4000-8000-00000000abcd", "acknowledged": True,
       "fCntDown": 4}
TXACK = {"downlinkId": 12345, "time": "2026-12-03T10:00:02Z", "deviceInfo": INFO,
         "queueItemId": "5b9b7d40-0000-4000-8000-00000000abcd", "fCntDown": 4,
         "gatewayId": "0016c001f153a14c"}
LOG = {"time": "2026-12-03T10:00:03Z", "deviceInfo": INFO, "level": "ERROR",
       "code": "UPLINK_CODEC", "description": "decodeUplink did not return 'data'",
       "context": {"deduplication_id": "x"}}
MESSAGES: dict[str, Any] = {
    "up": integration.UplinkEvent, "status": integration.StatusEvent,
    "ack": integration.AckEvent, "txack": integration.TxAckEvent, "log": integration.LogEvent,
}


def topic(event: str, dev_eui: str = EUI) -> str:
    return f"application/{APP}/device/{dev_eui}/event/{event}"


def as_protobuf(event: str, body: dict[str, Any]) -> bytes:
    fixed = {**body, "downlinkId": body["downlinkId"]} if "downlinkId" in body else body
    message = ParseDict(fixed, MESSAGES[event](), ignore_unknown_fields=True)
    return bytes(message.SerializeToString())


@pytest.mark.parametrize("fmt", ["json", "protobuf"])
def test_the_reference_uplink_decodes_alike_from_json_and_protobuf(fmt: str) -> None:
    payload = json.dumps(UPLINK).encode() if fmt == "json" else as_protobuf("up", UPLINK)
    event = decode_event(topic("up"), payload, fmt)  # type: ignore[arg-type]
    assert (event.event, event.application_id, event.dev_eui) == ("up", APP, EUI)
    assert event.key == UPLINK["deduplicationId"]
    assert (event.f_cnt, event.f_port, event.data) == (10, 1, b"\xaa")
    assert event.ts_ms == 1658136855775  # nanoseconds cut to what Python keeps
    assert event.object == {"distance_cm": 172.0}
    assert (event.rssi, event.snr) == (-36.0, 10.5)  # the best of the two gateways


@pytest.mark.parametrize("fmt", ["json", "protobuf"])
def test_status_ack_txack_and_log_events(fmt: str) -> None:
    def decode(event: str, body: dict[str, Any]) -> Any:
        payload = json.dumps(body).encode() if fmt == "json" else as_protobuf(event, body)
        return decode_event(topic(event), payload, fmt)  # type: ignore[arg-type]

    status = decode("status", STATUS)
    assert (status.margin, status.battery_level, status.key) == (7, 55.5, STATUS["deduplicationId"])
    ack = decode("ack", ACK)
    assert (ack.queue_item_id, ack.acknowledged, ack.f_cnt_down) == (ACK["queueItemId"], True, 4)
    txack = decode("txack", TXACK)
    assert (txack.key, txack.queue_item_id) == ("12345", TXACK["queueItemId"])
    log = decode("log", LOG)
    assert (log.level, log.code, log.key) == ("ERROR", "UPLINK_CODEC", None)


def test_a_device_on_mains_or_without_a_battery_reading_reports_no_level() -> None:
    for flags in ({"externalPowerSource": True}, {"batteryLevelUnavailable": True}):
        body = json.dumps({**STATUS, **flags}).encode()
        assert decode_event(topic("status"), body, "json").battery_level is None


def test_an_uplink_without_codec_object_and_with_an_empty_frame() -> None:
    body = {key: value for key, value in UPLINK.items() if key not in ("object", "data")}
    event = decode_event(topic("up"), json.dumps({**body, "fPort": 0}).encode(), "json")
    assert (event.object, event.data, event.f_port) == (None, b"", 0)


def test_unknown_fields_from_a_newer_chirpstack_are_ignored() -> None:
    body = {**UPLINK, "someFutureField": {"x": 1}}
    assert decode_event(topic("up"), json.dumps(body).encode(), "json").f_cnt == 10
    assert decode_event(topic("up"), as_protobuf("up", body), "protobuf").f_cnt == 10


@pytest.mark.parametrize(("body", "why"), [
    ({**UPLINK, "deviceInfo": {**INFO, "devEui": "0202020202020202"}}, "not the topic's"),
    ({**UPLINK, "deviceInfo": {**INFO, "applicationId": "other"}}, "not the topic's"),
    ({**UPLINK, "fCnt": -1}, "fCnt"),
    ({**UPLINK, "fCnt": 2**32}, "fCnt"),
    ({**UPLINK, "fPort": 256}, "fPort"),
    ({**UPLINK, "fPort": "one"}, "fPort"),
    ({**UPLINK, "data": "not base64!"}, "up event"),
    ({**UPLINK, "data": 12}, "base64"),
    ({**UPLINK, "time": "yesterday"}, "up event"),
    ({**UPLINK, "time": "2026-12-03T10:00:00"}, "UTC offset"),
    ({**UPLINK, "rxInfo": "none"}, "rxInfo"),
    ({**UPLINK, "object": [1, 2]}, "object"),
    ({**UPLINK, "deduplicationId": "x" * 100}, "deduplicationId"),
    ({**UPLINK, "deviceInfo": "eui"}, "deviceInfo"),
])
def test_malformed_uplinks_are_refused_with_what_is_wrong(body: dict[str, Any], why: str) -> None:
    with pytest.raises(CodecError, match=why):
        decode_event(topic("up"), json.dumps(body).encode(), "json")


@pytest.mark.parametrize(("name", "payload", "fmt", "why"), [
    (topic("up"), b"\x00\xff", "json", "not JSON"),
    (topic("up"), b"[1, 2]", "json", "not an object"),
    (topic("up"), b"[" * 100_000, "json", "not JSON"),
    (topic("up"), b"\xff\xff\xff\xff", "protobuf", "not a protobuf"),
    (topic("integration"), b"{}", "json", "unknown event type"),
    (f"application/{APP}/device/xyz/event/up", b"{}", "json", "is not application"),
    ("eu868/gateway/0016c001f153a14c/event/up", b"{}", "json", "is not application"),
])
def test_garbage_messages_and_foreign_topics_are_refused(name: str, payload: bytes, fmt: str,
                                                         why: str) -> None:
    with pytest.raises(CodecError, match=why):
        decode_event(name, payload, fmt)  # type: ignore[arg-type]


def test_topics_give_application_lowercase_dev_eui_and_event() -> None:
    assert parse_topic(f"application/{APP}/device/A84041000181C061/event/join") == (
        APP, "a84041000181c061", "join")


@settings(deadline=None)  # a loaded CI machine must not turn a slow example into a failure
@given(st.binary(max_size=300), st.sampled_from(["json", "protobuf"]),
       st.sampled_from(["up", "status", "join", "ack", "txack", "log", "location"]))
def test_any_bytes_raise_codec_error_or_decode(payload: bytes, fmt: str, event: str) -> None:
    with contextlib.suppress(CodecError):
        decode_event(topic(event), payload, fmt)  # type: ignore[arg-type]


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=12), inner,
                                                                 max_size=4),
    max_leaves=20)


@settings(deadline=None)
@given(st.dictionaries(st.sampled_from(sorted(UPLINK)), JSON_VALUES, max_size=4))
def test_any_field_values_raise_codec_error_or_decode(fields: dict[str, Any]) -> None:
    with contextlib.suppress(CodecError):
        decode_event(topic("up"), json.dumps({**UPLINK, **fields}).encode(), "json")


@pytest.mark.parametrize("fmt", ["json", "protobuf"])
def test_a_downlink_command_is_what_chirpstack_expects(fmt: str) -> None:
    ident, payload = encode_downlink("A84041000181C061", 10, b"\x01\x2c", confirmed=True,
                                     fmt=fmt)  # type: ignore[arg-type]
    if fmt == "json":
        command = json.loads(payload)
    else:
        message = integration.DownlinkCommand()
        message.ParseFromString(payload)
        command = MessageToDict(message)
    assert command["id"] == ident
    assert command["devEui"] == "a84041000181c061"  # ChirpStack compares it to the topic's
    assert (command["fPort"], command["confirmed"]) == (10, True)
    assert base64.b64decode(command["data"]) == b"\x01\x2c"


@pytest.mark.parametrize("fport", [0, 224, -1])
def test_a_downlink_on_a_reserved_fport_is_refused(fport: int) -> None:
    with pytest.raises(CodecError, match="fPort"):
        encode_downlink(EUI, fport, b"\x01", confirmed=False, fmt="json")
