"""Badge reader frames: golden vectors from the datasheets, then properties of the decoders:
any chunking gives the same frames, and noise never crashes a decoder nor becomes a badge."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_agent.codecs.badge_frames import (
    KEY_ENTER,
    PN532_ACK,
    PN532_CHIP,
    PN532_HOST,
    PN532_SYNTAX_ERROR,
    CardRead,
    DecoderStats,
    Em18Decoder,
    Frame,
    FrameDecoder,
    Pn532Ack,
    Pn532Decoder,
    Pn532ErrorFrame,
    Pn532Frame,
    Rdm6300Decoder,
    Technology,
    WedgeDecoder,
    em18_frame,
    in_list_passive_target,
    in_list_passive_target_response,
    pn532_frame,
    rdm6300_frame,
    rf_max_retries,
    sam_configuration,
    target_uid,
    wedge_keys,
)
from edge_agent.errors import CodecError

EM = Technology.EM4100
SEEED = bytes.fromhex("02 36 32 45 33 30 38 36 43 45 44 30 38 03")
DEADBEEF_RESPONSE = bytes.fromhex("00 00 FF 0C F4 D5 4B 01 01 00 04 08 04 DE AD BE EF 96 00")


def _stats(decoder: FrameDecoder) -> tuple[int, int, int]:
    stats = decoder.stats
    return stats.garbage_bytes, stats.bad_checksums, stats.partial_frames


# --- golden vectors -------------------------------------------------------------------------


def test_seeed_datasheet_frame() -> None:
    decoder = Rdm6300Decoder()
    assert decoder.feed(SEEED) == [CardRead(bytes.fromhex("62E3086CED"), EM)]
    assert decoder.stats == DecoderStats()
    assert rdm6300_frame(bytes.fromhex("62E3086CED")) == SEEED


def test_computed_rdm6300_frame_keeps_the_version_byte() -> None:
    assert Rdm6300Decoder().feed(b"\x02010012D68742\x03") == [
        CardRead(bytes.fromhex("010012D687"), EM)]
    assert rdm6300_frame(bytes.fromhex("010012D687")) == b"\x02010012D68742\x03"


def test_em18_vendor_example() -> None:
    assert Em18Decoder().feed(b"4500C5D1E9B8") == [CardRead(bytes.fromhex("4500C5D1E9"), EM)]
    assert em18_frame(bytes.fromhex("4500C5D1E9")) == b"4500C5D1E9B8"


def test_pn532_host_frames() -> None:
    assert in_list_passive_target(1, 0) == bytes.fromhex("00 00 FF 04 FC D4 4A 01 00 E1 00")
    assert sam_configuration() == bytes.fromhex("00 00 FF 05 FB D4 14 01 14 01 02 00")
    assert pn532_frame(PN532_HOST, 0x02) == bytes.fromhex("00 00 FF 02 FE D4 02 2A 00")
    assert rf_max_retries(2) == pn532_frame(PN532_HOST, 0x32, bytes.fromhex("05 FF 01 02"))


def test_pn532_ack_response_and_syntax_error() -> None:
    decoder = Pn532Decoder()
    frames = decoder.feed(PN532_ACK + DEADBEEF_RESPONSE + PN532_SYNTAX_ERROR)
    assert frames == [
        Pn532Ack(),
        Pn532Frame(PN532_CHIP, 0x4B, bytes.fromhex("01 01 00 04 08 04 DE AD BE EF")),
        Pn532ErrorFrame(),
    ]
    assert decoder.stats == DecoderStats()
    response = frames[1]
    assert isinstance(response, Pn532Frame)
    assert target_uid(response) == bytes.fromhex("DEADBEEF")
    assert in_list_passive_target_response(bytes.fromhex("DEADBEEF")) == DEADBEEF_RESPONSE


@pytest.mark.parametrize("uid", ["DEADBEEF", "04112233445566", "04112233445566778899"])
def test_pn532_uids_of_every_length(uid: str) -> None:
    (frame,) = Pn532Decoder().feed(in_list_passive_target_response(bytes.fromhex(uid)))
    assert isinstance(frame, Pn532Frame)
    assert target_uid(frame) == bytes.fromhex(uid)


def test_pn532_no_card() -> None:
    (frame,) = Pn532Decoder().feed(in_list_passive_target_response(None))
    assert isinstance(frame, Pn532Frame)
    assert target_uid(frame) is None


@pytest.mark.parametrize(
    "frame",
    [Pn532Frame(PN532_CHIP, 0x4B, bytes.fromhex("01 01 00 04 08 05 DE AD BE EF 00")),
     Pn532Frame(PN532_CHIP, 0x4B, bytes.fromhex("01 01 00 04 08 07 DE AD BE EF")),
     Pn532Frame(PN532_CHIP, 0x15, b""),
     Pn532Frame(PN532_CHIP, 0x4B, b"")],
)
def test_pn532_malformed_target_answers(frame: Pn532Frame) -> None:
    with pytest.raises(CodecError):
        target_uid(frame)


def test_encoders_refuse_impossible_cards() -> None:
    with pytest.raises(CodecError, match="5 bytes"):
        rdm6300_frame(b"\x01\x02")
    with pytest.raises(CodecError, match="4, 7 or 10"):
        in_list_passive_target_response(b"\x01\x02\x03")
    with pytest.raises(CodecError, match="at most 255"):
        pn532_frame(PN532_HOST, 0x40, bytes(300))
    with pytest.raises(CodecError, match="digits and A-F"):
        wedge_keys("12G4")


def test_wedge_decimal_and_hex_forms() -> None:
    decimal = WedgeDecoder("8H10D", EM)
    assert decimal.feed(wedge_keys("0040856634")) == [CardRead(bytes.fromhex("026F6C3A"), EM)]
    hexa = WedgeDecoder("hex", EM, length=5)
    shifted = bytes([42]).join(wedge_keys("01026F6C3A")[i:i + 1] for i in range(11))
    assert hexa.feed(shifted) == [CardRead(bytes.fromhex("01026F6C3A"), EM)]
    assert hexa.stats == DecoderStats()


def test_wedge_keypad_digits_and_enter() -> None:
    decoder = WedgeDecoder("8H10D", EM)
    keypad = bytes([82, 82, 75, 82, 73, 77, 77, 76, 72, 75, 96])  # 0040966584, KP Enter
    assert decoder.feed(keypad) == [CardRead((40966584).to_bytes(4, "big"), EM)]


def test_wedge_counts_what_it_drops() -> None:
    decoder = WedgeDecoder("8H10D", EM)
    assert decoder.feed(bytes([KEY_ENTER]) + bytes([57]) + wedge_keys("99999999999")) == []
    assert _stats(decoder) == (2, 1, 0)  # empty Enter, space; 11 digits
    assert decoder.feed(wedge_keys("40856634")) == []  # two keystrokes lost
    assert decoder.feed(wedge_keys("9999999999")) == []  # 10 digits, more than 4 bytes
    assert decoder.stats.bad_checksums == 3
    assert decoder.feed(wedge_keys("1" * 40)) == []
    assert decoder.stats.partial_frames == 1
    decoder.feed(wedge_keys("12")[:2])
    decoder.discard()
    assert decoder.stats.partial_frames == 2
    with pytest.raises(CodecError, match="unknown number form"):
        WedgeDecoder("10H", EM)


# --- what each decoder drops, and how it counts it --------------------------------------------


def test_rdm6300_drops_and_counts() -> None:
    good = rdm6300_frame(bytes.fromhex("62E3086CED"))
    bad = good[:11] + b"FF\x03"  # checksum digits wrong
    decoder = Rdm6300Decoder()
    frames = decoder.feed(b"\xff\x00noise" + bad + good[:6] + good + b"\x02" + b"1" * 13 + good)
    assert frames == [CardRead(bytes.fromhex("62E3086CED"), EM)] * 2
    # 7 noise bytes + the 13th digit; a bad checksum; a frame cut by STX, a too-long frame.
    assert _stats(decoder) == (8, 1, 2)
    decoder.feed(b"\x02123")
    decoder.discard()
    assert decoder.feed(b"\x03") == []
    assert _stats(decoder) == (9, 1, 3)


def test_rdm6300_short_frame_and_lower_case() -> None:
    decoder = Rdm6300Decoder()
    assert decoder.feed(b"\x02ABC\x03" + SEEED.lower()) == [
        CardRead(bytes.fromhex("62E3086CED"), EM)]
    assert _stats(decoder) == (0, 0, 1)


def test_em18_finds_frames_after_noise_and_bad_frames() -> None:
    good = em18_frame(bytes.fromhex("4500C5D1E9"))
    bad = good[:10] + b"00"
    decoder = Em18Decoder()
    frames = decoder.feed(b"\r\n" + bad + good + b"\x00" + good[:5] + b"\x00" + good)
    assert frames == [CardRead(bytes.fromhex("4500C5D1E9"), EM)] * 2
    # CR LF and two zeros are noise; the bad frame is one bad checksum whose 11 leftover
    # characters slide out as garbage; the five characters before a zero are a cut frame.
    assert _stats(decoder) == (4 + 11, 1, 1)


def test_pn532_resynchronises_inside_a_garbled_frame() -> None:
    decoder = Pn532Decoder()
    garbled = bytearray(DEADBEEF_RESPONSE)
    garbled[10] ^= 0xFF  # breaks the data checksum
    cut = DEADBEEF_RESPONSE[:9]  # a frame whose end never came, then a whole one
    frames = decoder.feed(b"\x55\x55\x00\x00" + bytes(garbled) + cut + DEADBEEF_RESPONSE)
    assert [type(frame) for frame in frames] == [Pn532Frame]
    assert decoder.stats.bad_checksums >= 2
    assert decoder.feed(bytes.fromhex("00 00 FF 03 FC")) == []  # bad length checksum
    assert decoder.feed(DEADBEEF_RESPONSE[:7]) == []
    decoder.discard()
    assert decoder.stats.partial_frames == 1
    assert decoder.feed(PN532_ACK) == [Pn532Ack()]


def test_pn532_unknown_frame_identifier_is_garbage() -> None:
    decoder = Pn532Decoder()
    unknown = pn532_frame(0xD6, 0x01)
    assert decoder.feed(unknown) == []
    assert decoder.stats.garbage_bytes == len(unknown) - 2  # preamble and postamble are zeros


# --- properties -----------------------------------------------------------------------------

DecoderFactory = Callable[[], FrameDecoder]
DECODERS: dict[str, DecoderFactory] = {
    "rdm6300": Rdm6300Decoder,
    "em18": Em18Decoder,
    "pn532": Pn532Decoder,
    "wedge": lambda: WedgeDecoder("hex", EM),
}

em_ids = st.binary(min_size=5, max_size=5)
uids = st.sampled_from([4, 7, 10]).flatmap(lambda n: st.binary(min_size=n, max_size=n))


def _encode(protocol: str, raw: bytes) -> bytes:
    if protocol == "rdm6300":
        return rdm6300_frame(raw)
    if protocol == "em18":
        return em18_frame(raw)
    if protocol == "wedge":
        return wedge_keys(raw.hex())
    return PN532_ACK + in_list_passive_target_response(raw)


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({cut % (len(data) + 1) for cut in cuts})
    bounds = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


@pytest.mark.parametrize("protocol", DECODERS)
@given(st.data())
def test_any_chunking_gives_the_same_frames_and_counts(protocol: str, data: st.DataObject
                                                       ) -> None:
    raws = data.draw(st.lists(uids if protocol == "pn532" else em_ids, max_size=4))
    noise = st.binary(max_size=6)
    stream = b"".join(data.draw(noise) + _encode(protocol, raw) for raw in raws)
    stream += data.draw(noise)
    cuts = data.draw(st.lists(st.integers(0, 10_000), max_size=12))
    whole, chunked = DECODERS[protocol](), DECODERS[protocol]()
    expected = whole.feed(stream)
    got = [frame for chunk in _split(stream, cuts) for frame in chunked.feed(chunk)]
    assert got == expected
    assert chunked.stats == whole.stats


def _appears_in(protocol: str, frame: Frame, stream: bytes) -> bool:
    if isinstance(frame, Pn532Ack):
        return PN532_ACK[1:5] in stream
    if isinstance(frame, Pn532ErrorFrame):
        return PN532_SYNTAX_ERROR[1:7] in stream
    if isinstance(frame, Pn532Frame):
        return pn532_frame(frame.tfi, frame.code, frame.data)[1:-1] in stream
    if protocol == "wedge":
        return True  # a typed number has no checksum: any digits then Enter is a number
    return _encode(protocol, frame.raw) in stream.upper()


@pytest.mark.parametrize("protocol", DECODERS)
@given(st.lists(st.binary(max_size=64), max_size=8))
def test_noise_never_crashes_and_only_real_frames_come_out(protocol: str, chunks: list[bytes]
                                                           ) -> None:
    decoder = DECODERS[protocol]()
    for chunk in chunks:
        for frame in decoder.feed(chunk):
            assert _appears_in(protocol, frame, b"".join(chunks))
    decoder.discard()


# Noise each protocol cannot mistake for a frame: no STX, no hex digit, no start code, no Enter.
NOISE = {
    "rdm6300": st.binary(max_size=200).map(lambda b: b.replace(b"\x02", b"")),
    "em18": st.binary(max_size=200).map(lambda b: bytes(c for c in b if chr(c) not in
                                                        "0123456789ABCDEFabcdef")),
    "pn532": st.binary(max_size=200).map(lambda b: b.replace(b"\xff", b"")),
    "wedge": st.binary(max_size=200).map(lambda b: b.replace(bytes([KEY_ENTER]), b"")
                                         .replace(b"\x60", b"")),
}


@pytest.mark.parametrize("protocol", DECODERS)
@given(st.data())
def test_noise_around_a_frame_leaves_exactly_that_frame(protocol: str, data: st.DataObject
                                                        ) -> None:
    raw = data.draw(uids if protocol == "pn532" else em_ids)
    before, after = data.draw(NOISE[protocol]), data.draw(NOISE[protocol])
    decoder = DECODERS[protocol]()
    assert decoder.feed(before) == []
    if protocol == "wedge":
        decoder.discard()  # the wedge driver does this when the keyboard has been idle
    frames = decoder.feed(_encode(protocol, raw) + after)
    cards = [frame for frame in frames if isinstance(frame, CardRead)]
    if protocol == "pn532":
        responses = [frame for frame in frames if isinstance(frame, Pn532Frame)]
        assert [target_uid(frame) for frame in responses] == [raw]
    else:
        assert [card.raw for card in cards] == [raw]
