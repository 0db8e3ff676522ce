"""An uplink decodes to the same event from binary protobuf as from its JSON mapping.

The protobuf reader takes an uplink's fields straight from the message rather than through
MessageToDict (for speed, see docs/benchmarks.md); this holds it to the JSON reader.
"""

from __future__ import annotations

import json

from chirpstack_api import integration
from google.protobuf.json_format import MessageToDict
from google.protobuf.struct_pb2 import Struct
from hypothesis import given
from hypothesis import strategies as st

from edge_agent.codecs.chirpstack import decode_event

APP = "a053b64c-a68f-406d-b66c-dbb0cd2072f4"
DEV_EUI = "a84041000181c061"
TOPIC = f"application/{APP}/device/{DEV_EUI}/event/up"

float32 = st.floats(width=32, allow_nan=False, allow_infinity=False)


@st.composite
def uplinks(draw: st.DrawFn) -> integration.UplinkEvent:
    message = integration.UplinkEvent(
        deduplication_id=draw(st.sampled_from(["", "173dffe8-a732-41e9-bd25-dcd70df132b0"])),
        dev_addr=draw(st.sampled_from(["", "01ab23cd"])),
        f_cnt=draw(st.integers(0, 2**32 - 1)), f_port=draw(st.integers(0, 223)),
        data=draw(st.binary(max_size=24)))
    message.device_info.dev_eui = draw(st.sampled_from(["", DEV_EUI, DEV_EUI.upper()]))
    message.device_info.application_id = draw(st.sampled_from(["", APP]))
    if draw(st.booleans()):
        message.time.FromNanoseconds(draw(st.integers(1_600_000_000, 2_000_000_000)) * 10**9
                                     + draw(st.integers(0, 10**9 - 1)))
    for rssi, snr in draw(st.lists(st.tuples(st.integers(-140, 0), float32), max_size=3)):
        message.rx_info.add(rssi=rssi, snr=snr)
    if draw(st.booleans()):
        obj = Struct()
        obj.update({"distance": draw(float32), "ok": draw(st.booleans()), "label": "x"})
        message.object.CopyFrom(obj)
    return message


@given(uplinks())
def test_protobuf_and_its_json_mapping_decode_alike(message: integration.UplinkEvent) -> None:
    as_json = json.dumps(MessageToDict(message)).encode()
    assert decode_event(TOPIC, message.SerializeToString(), "protobuf") == \
        decode_event(TOPIC, as_json, "json")
