"""The agent's models: every problem of a document found in one pass, each at its place."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import msgspec
import pytest
from msgspec import Meta

from edge_agent.schema import Invalid, Problem, Strict, at_field, field_names, to_data, validate


class Pulse(Strict, frozen=True, kw_only=True, tag="pulse", tag_field="type"):
    channel: Annotated[int, Meta(ge=1, le=32)]


class Latch(Strict, frozen=True, kw_only=True, tag="latch", tag_field="type"):
    channel: int
    on: bool = True


class Entry(Strict, frozen=True, kw_only=True):
    name: str
    level: Annotated[float, Meta(gt=0)] = 1.0
    mode: Literal["fast", "slow"] = "slow"
    actions: list[Pulse | Latch] = msgspec.field(default_factory=list)

    def __post_init__(self) -> None:
        if self.name == "reserved":
            raise at_field("name", "'reserved' is taken; pick another name", self.name)


class Document(Strict, frozen=True, kw_only=True):
    home: Path
    token: Annotated[str, Meta(pattern=r"^tok_\S+$")] = "tok_x"
    key: Annotated[bytes, Meta(min_length=4, max_length=4)] = b"abcd"
    entries: list[Entry] = msgspec.field(default_factory=list)

    def __post_init__(self) -> None:
        names = [entry.name for entry in self.entries]
        if len(set(names)) != len(names):
            raise Invalid([Problem(("entries", len(names) - 1, "name"), "value",
                                   "a name is used twice")])


def _problems(data: object) -> list[tuple[tuple[str | int, ...], str, str]]:
    with pytest.raises(Invalid) as caught:
        validate(Document, data)
    return [(p.location, p.kind, p.message) for p in caught.value.problems]


def test_a_valid_document_converts_with_paths_and_base64_keys() -> None:
    document = validate(Document, {"home": "var", "key": "AQIDBA==", "entries": [
        {"name": "a", "actions": [{"type": "pulse", "channel": 2}]}]})
    assert document.home == Path("var")
    assert document.key == b"\x01\x02\x03\x04"
    assert document.entries[0].actions == [Pulse(channel=2)]
    assert to_data(document)["home"] == "var"
    assert to_data(document)["key"] == "AQIDBA=="
    assert validate(Document, to_data(document)) == document


def test_every_problem_is_found_in_one_pass_each_at_its_place() -> None:
    problems = _problems({"hom": "var", "entries": [
        {"name": "a", "level": 0},
        {"name": 3, "mode": "quick"},
        {"name": "c", "actions": [{"type": "blink"}, {"type": "pulse", "channel": 40},
                                  {"channel": 1}]},
    ]})
    assert problems == [
        (("hom",), "unknown", "unknown field"),
        (("home",), "missing", "Field required"),
        (("entries", 0, "level"), "value", "Input should be greater than 0"),
        (("entries", 1, "name"), "str", "Expected `str`, got `int`"),
        (("entries", 1, "mode"), "value", "Input should be 'fast' or 'slow'"),
        (("entries", 2, "actions", 0, "type"), "value", "Input should be 'pulse' or 'latch'"),
        (("entries", 2, "actions", 1, "channel"), "value",
         "Input should be less than or equal to 32"),
        (("entries", 2, "actions", 2, "type"), "missing", "Field required"),
    ]


def test_checks_across_fields_point_at_the_field_they_are_about() -> None:
    assert _problems({"home": "h", "entries": [{"name": "reserved"}]}) == [
        (("entries", 0, "name"), "value", "'reserved' is taken; pick another name")]
    assert _problems({"home": "h", "entries": [{"name": "a"}, {"name": "a"}]}) == [
        (("entries", 1, "name"), "value", "a name is used twice")]


def test_a_pattern_problem_does_not_repeat_the_value_which_may_be_a_secret() -> None:
    [(where, _, message)] = _problems({"home": "h", "token": "secret-value"})
    assert where == ("token",)
    assert "secret-value" not in message


def test_lengths_and_base64_are_worded_for_people() -> None:
    assert _problems({"home": "h", "key": "AQID"}) == [
        (("key",), "value", "Value should have at least 4 bytes")]
    assert _problems({"home": "h", "key": "%%"}) == [
        (("key",), "value", "not base64; copy the value as the hub gave it")]


def test_field_names_are_the_names_written_in_files() -> None:
    assert field_names(Entry) == ["name", "level", "mode", "actions"]
    assert field_names(Pulse) == ["channel"]
