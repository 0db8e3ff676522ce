"""Linky TIC frames: golden groups from real meters (reference §3.3), horodates, both checksum
methods, interrupted frames and garbage; then properties: any chunking gives the same
frames, noise never crashes the decoder, a flipped bit is counted and never stored."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_agent.codecs.tic import (
    EOT,
    HORODATED,
    STX,
    Horodate,
    TicDecoder,
    TicFrame,
    TicGroup,
    TicMode,
    TicStats,
    checksum,
    encode_frame,
    encode_group,
    format_horodate,
    parse_group,
    parse_horodate,
    summer_time,
)
from edge_agent.errors import CodecError

HISTORIC, STANDARD = TicMode.HISTORIC, TicMode.STANDARD

#: Groups of a real Linky TEMPO frame in standard mode, checksums as the meter sent them.
REAL_STANDARD = [
    b"EAST\t050019226\t(",
    b"DATE\tH240107175810\t\tE",
    b"SMAXSN\tH240107024723\t08611\t=",
    b"DPM2\t 240108060000\t00\t#",
    b"MSG1\tPAS DE          MESSAGE         \t<",
    b"PRM\t09312300926695\t8",
]
#: Groups of a real historic frame.
REAL_HISTORIC = [
    b"OPTARIF HC.. <", b"ISOUSC 45 ?", b"HCHC 010956910 %", b"IINST 021 Z", b"IMAX 047 J",
    b"PAPP 04860 3", b"HHPHC A ,", b"MOTDETAT 000000 B",
]


def _wire(bodies: list[bytes]) -> bytes:
    return encode_frame(b"\n" + body + b"\r" for body in bodies)


# --- golden vectors -------------------------------------------------------------------------


@pytest.mark.parametrize("body", REAL_STANDARD)
def test_real_standard_groups_pass_and_reencode_identically(body: bytes) -> None:
    group, mode = parse_group(body)
    assert mode is STANDARD
    horodate = group.horodate.text if group.horodate else None
    assert encode_group(group.label, group.value, STANDARD, horodate=horodate) == (
        b"\n" + body + b"\r")


@pytest.mark.parametrize("body", REAL_HISTORIC)
def test_real_historic_groups_pass_and_reencode_identically(body: bytes) -> None:
    group, mode = parse_group(body)
    assert mode is HISTORIC
    assert encode_group(group.label, group.value, HISTORIC) == b"\n" + body + b"\r"


def test_real_frames_decode_to_their_groups() -> None:
    decoder = TicDecoder()
    frames = decoder.feed(_wire(REAL_STANDARD) + _wire(REAL_HISTORIC))
    assert [frame.mode for frame in frames] == [STANDARD, HISTORIC]
    standard, historic = frames
    assert standard.value("EAST") == "050019226"
    assert standard.groups[1] == TicGroup(
        "DATE", "", Horodate("H240107175810", 1_704_646_690_000, degraded=False))
    assert standard.value("MSG1") == "PAS DE          MESSAGE         "
    assert historic.as_dict()["OPTARIF"] == "HC.."
    assert decoder.mode is HISTORIC
    assert decoder.stats == TicStats(frames=2, groups=14)


def test_checksum_is_the_low_six_bits_plus_0x20() -> None:
    assert checksum(b"ISOUSC 45") == ord("?")
    assert checksum(b"EAST\t050019226\t") == ord("(")
    assert checksum(b"") == 0x20


def test_the_other_checksum_method_is_accepted_in_both_modes() -> None:
    for mode in TicMode:
        group = encode_group("PAPP", "01230", mode, last_separator=mode is HISTORIC)
        assert group != encode_group("PAPP", "01230", mode)
        assert parse_group(group[1:-1])[0] == TicGroup("PAPP", "01230")


def test_a_historic_checksum_may_be_a_space() -> None:
    body = b"IINST 009  "  # label SP data SP, then the checksum: SP
    assert checksum(b"IINST 009") == 0x20
    assert parse_group(body) == (TicGroup("IINST", "009"), HISTORIC)
    assert TicDecoder().feed(_wire([body]))[0].value("IINST") == "009"


def test_values_with_spaces_and_empty_data() -> None:
    for label, value in (("NGTF", "     TEMPO      "), ("LTARF", "    HP  BLEU    "),
                         ("PJOURF+1", "00004001 06004002 22004001 NONUTILE")):
        group = encode_group(label, value, STANDARD)
        assert parse_group(group[1:-1])[0] == TicGroup(label, value)


# --- horodates ------------------------------------------------------------------------------


def test_horodate_seasons() -> None:
    winter = parse_horodate("H240107175810")
    assert winter.ts_ms == 1_704_646_690_000  # 16:58:10 UTC: winter is UTC+1
    summer = parse_horodate("E240707175810")
    assert summer.ts_ms == 1_720_367_890_000  # 15:58:10 UTC: summer is UTC+2
    degraded = parse_horodate("e240707175810")
    assert (degraded.ts_ms, degraded.degraded) == (summer.ts_ms, True)
    assert parse_horodate(" 240108060000") == Horodate(" 240108060000", None, degraded=False)


@pytest.mark.parametrize("text", ["X240107175810", "H2401071758", "H240107175810X",
                                  "H241307175810", "H24010717581A", ""])
def test_bad_horodates_are_refused(text: str) -> None:
    with pytest.raises(CodecError):
        parse_horodate(text)


def test_horodates_round_trip_across_the_changes_of_time() -> None:
    # 2024: summer from 31 March 01:00 UTC to 27 October 01:00 UTC.
    for ts_ms, text in ((1_711_846_799_000, "H240331015959"), (1_711_846_800_000,
                        "E240331030000"), (1_729_990_799_000, "E241027025959"),
                        (1_729_990_800_000, "H241027020000")):
        assert format_horodate(ts_ms) == text
        assert parse_horodate(text).ts_ms == ts_ms
    assert not summer_time(1_704_646_690_000)
    assert format_horodate(1_704_646_690_000, degraded=True) == "h240107175810"


def test_a_horodated_group_with_a_bad_horodate_is_malformed() -> None:
    decoder = TicDecoder()
    assert decoder.feed(_wire([encode_group("DATE", "", STANDARD, horodate="Z240107175810")[
        1:-1]])) == []
    assert (decoder.stats.malformed_groups, decoder.stats.rejected_frames) == (1, 1)


# --- what is counted, never stored ----------------------------------------------------------


def test_eot_interrupts_a_frame() -> None:
    decoder = TicDecoder()
    cut = _wire(REAL_HISTORIC)[:40] + bytes([EOT])
    frames = decoder.feed(cut + _wire(REAL_HISTORIC))
    assert len(frames) == 1
    assert decoder.stats.interrupted_frames == 1
    assert decoder.stats.garbage_bytes == 0


def test_a_new_stx_interrupts_a_frame_and_the_port_closing_too() -> None:
    decoder = TicDecoder()
    wire = _wire(REAL_HISTORIC)
    assert len(decoder.feed(wire[:30] + wire + wire[:30])) == 1
    decoder.discard()
    assert decoder.stats.interrupted_frames == 2


def test_garbage_outside_and_inside_frames() -> None:
    decoder = TicDecoder()
    wire = _wire(REAL_HISTORIC)
    assert decoder.feed(b"\xff\x00abc" + wire) != []
    assert decoder.stats.garbage_bytes == 5
    position = wire.index(b"\n", 1)
    spoiled = wire[:position] + b"zz" + wire[position:]
    assert decoder.feed(spoiled) == []
    assert (decoder.stats.garbage_bytes, decoder.stats.rejected_frames) == (7, 1)


def test_one_bad_group_drops_its_whole_frame() -> None:
    decoder = TicDecoder()
    bad = [*REAL_HISTORIC[:3], b"PAPP 04860 4", *REAL_HISTORIC[4:]]
    assert decoder.feed(_wire(bad)) == []
    assert decoder.stats == TicStats(groups=7, bad_checksums=1, rejected_frames=1)


@pytest.mark.parametrize("body", [
    b"PAPP04860 3",           # one separator
    b"PAPP 04860 3 ",         # the checksum is not last
    b"TOOLONGLABEL 1 0",      # label over 10 characters
    b"PAPP\t04860",           # standard, no checksum field
    b"A\tB\tC\tD\tE",         # standard, too many fields
    b"PAPP\t04860\tAB",       # checksum of two characters
    b"PA\x7fP 04860 3",       # a character no group carries
])
def test_malformed_groups(body: bytes) -> None:
    with pytest.raises(CodecError):
        parse_group(body)
    decoder = TicDecoder()
    assert decoder.feed(_wire([body])) == []
    assert decoder.stats.malformed_groups + decoder.stats.bad_checksums == 1


def test_groups_of_both_modes_in_one_frame_are_refused() -> None:
    decoder = TicDecoder()
    assert decoder.feed(_wire([REAL_HISTORIC[0], REAL_STANDARD[0]])) == []
    assert decoder.stats.malformed_groups == 1


def test_the_parity_bit_is_masked() -> None:
    wire = _wire(REAL_HISTORIC)
    with_parity = bytes(byte | (0x80 if bin(byte).count("1") % 2 else 0) for byte in wire)
    assert TicDecoder().feed(with_parity) == TicDecoder().feed(wire)


def test_an_endless_group_or_frame_is_cut() -> None:
    decoder = TicDecoder()
    assert decoder.feed(bytes([STX]) + b"\n" + b"1" * 500 + b"\r\x03") == []
    assert decoder.stats.malformed_groups == 1
    group = b"\nIINST 021 Z\r"
    assert decoder.feed(bytes([STX]) + group * 300 + b"\x03") == []
    assert decoder.stats.interrupted_frames == 1


def test_a_label_that_carries_a_horodate_needs_one() -> None:
    # A flipped bit turns the HT after DATE's horodate into "I" and keeps the 6-bit sum.
    with pytest.raises(CodecError, match="DATE carries a horodate"):
        parse_group(b"DATE\tH240107175810I\tE")


def test_historic_groups_carry_no_horodate() -> None:
    with pytest.raises(CodecError):
        encode_group("DATE", "", HISTORIC, horodate="H240107175810")


# --- properties -----------------------------------------------------------------------------

_TEXT = st.text(alphabet=st.sampled_from("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ .+-"),
                max_size=20)
_LABEL = st.text(alphabet=st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+-"),
                 min_size=1, max_size=10)


@st.composite
def frames(draw: st.DrawFn) -> tuple[TicMode, list[tuple[str, str, str | None]]]:
    mode = draw(st.sampled_from(TicMode))
    groups = []
    for _ in range(draw(st.integers(1, 6))):
        value = draw(_TEXT)
        if mode is HISTORIC:
            value = value.replace(" ", "0")
        horodate = None
        if mode is STANDARD and draw(st.booleans()):
            label = draw(st.sampled_from(sorted(HORODATED)))
            horodate = format_horodate(draw(st.integers(946_684_800_000, 4_102_444_799_000)))
        else:
            label = draw(_LABEL.filter(lambda label: label not in HORODATED))
        groups.append((label, value, horodate))
    return mode, groups


def _encode(mode: TicMode, groups: list[tuple[str, str, str | None]]) -> bytes:
    return encode_frame(encode_group(label, value, mode, horodate=horodate)
                        for label, value, horodate in groups)


@given(frames(), st.lists(st.integers(1, 50), max_size=10))
def test_an_encoded_frame_decodes_back_in_any_chunks(
    frame: tuple[TicMode, list[tuple[str, str, str | None]]], cuts: list[int]
) -> None:
    mode, groups = frame
    wire = _encode(mode, groups) * 2
    decoder = TicDecoder()
    decoded: list[TicFrame] = []
    positions = [0, *itertools.accumulate(cuts)]
    for start, end in itertools.pairwise([*positions, len(wire)]):
        decoded += decoder.feed(wire[start:end] if start < len(wire) else b"")
    expected = tuple(TicGroup(label, value, parse_horodate(h) if h else None)
                     for label, value, h in groups)
    assert decoded == [TicFrame(mode, expected)] * 2
    assert decoder.stats == TicStats(frames=2, groups=2 * len(groups))


@given(st.lists(st.binary(max_size=64), max_size=8))
def test_noise_never_crashes_and_is_counted(chunks: list[bytes]) -> None:
    decoder = TicDecoder()
    for chunk in chunks:
        decoder.feed(chunk)
    decoder.discard()
    good = _wire(REAL_HISTORIC)
    assert decoder.feed(good) == TicDecoder().feed(good)


@given(frames(), st.data())
def test_a_flipped_bit_is_counted_and_never_stored(
    frame: tuple[TicMode, list[tuple[str, str, str | None]]], data: st.DataObject
) -> None:
    mode, groups = frame
    sent = _encode(mode, groups)
    position = data.draw(st.integers(0, len(sent) - 1))
    bit = data.draw(st.integers(0, 6))  # bit 7 is the parity bit, masked by the decoder
    flipped = bytearray(sent)
    flipped[position] ^= 1 << bit
    decoder = TicDecoder()
    frames_out = decoder.feed(bytes(flipped) + _encode(mode, groups))
    stats = decoder.stats
    assert frames_out == TicDecoder().feed(_encode(mode, groups))
    assert (stats.garbage_bytes + stats.bad_checksums + stats.malformed_groups
            + stats.interrupted_frames + stats.rejected_frames) >= 1


@given(st.binary(max_size=200).filter(lambda data: all(byte & 0x7F != STX for byte in data)))
def test_bytes_outside_any_frame_are_all_counted_as_garbage(noise: bytes) -> None:
    decoder = TicDecoder()
    assert decoder.feed(noise) == []
    assert decoder.stats == TicStats(garbage_bytes=len(noise))
