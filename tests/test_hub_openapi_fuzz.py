"""The guard: Schemathesis fuzzes every operation of the hub's own OpenAPI, on both stores.

A real hub process holds a seeded territory (site, gateways, devices, readings, events,
alarms, car parks, access rules, badges, access events); every operation is called with
schema-valid and schema-violating data, with the token its ``security`` names, so the
handlers are reached. Any 5xx, a status the document does not declare, a body that does not
match its declared schema, or a content type other than the declared one fails the run.

Deterministic (Hypothesis derandomised, no example database) and bounded: ``EXAMPLES`` cases
per sweep of each operation, without shrinking: about 22 s per store on the idle 2-core
machine, under two minutes while six other test runs share it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from edge_agent.records import Event, Reading
from tests.helpers.field import T0, field_world, push
from tests.helpers.hub import ACCESS_RULES, HubProcess

#: Cases per sweep of each operation.
EXAMPLES = 25
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]


@dataclass(frozen=True)
class Seeded:
    """The hub under fuzzing and the token each security scheme stands for."""

    hub: HubProcess
    tokens: dict[str, str]
    #: Parameter name -> a value naming seeded data (a gateway, an alarm, a badge ...) or
    #: one the hub speaks (the push's content type), so a sweep reaches past them.
    real: dict[str, str]


@pytest.fixture(scope="module")
def seeded(hub: HubProcess) -> Seeded:
    """``hub`` with a territory's whole story, and its operator and gateway tokens."""
    world = field_world(hub)
    gateway = world.gateways["gw1"]
    headers = {"Authorization": f"Bearer {gateway}"}
    declared = httpx.put(f"{hub.url}/v1/gateway/devices", headers=headers, timeout=10, json={
        "devices": [{"name": "meter-1", "profile": "meter", "quantities": ["energy_kwh"]}]})
    assert declared.status_code == 200, declared.text
    push(hub, gateway, "meters", [Reading("meter-1", "energy_kwh", T0 + i * 60_000, 10.0 + i)
                                    for i in range(20)])
    with world.operator() as operator:
        assert operator.put("/v1/policy/rules", json=ACCESS_RULES).status_code == 200
        for number in ("04A1B2C3", "04A1B2C4", "04A1B2C5"):
            added = operator.post("/v1/badges", json={"number": number, "category": "resident"})
            assert added.status_code == 200, added.text
        badges = [b["pseudonym"] for b in operator.get("/v1/badges").json()["badges"]]
        alarm = operator.get("/v1/alarms", params={"state": "open"}).json()["alarms"][0]["id"]
    push(hub, gateway, "access", [
        Event("access.granted", "pool-gate", T0 + i * 1000,
              {"badge": badges[i % 3], "service": "pool", "category": "resident",
               "gate": "pool-gate"}) for i in range(6)])
    real = {"gateway": "gw1", "device": "meter-1", "quantity": "energy_kwh", "kind": "policy",
            "alarm_id": alarm, "pseudonym": badges[0], "territory": "flood", "stream": "fuzzed",
            "content-type": "application/json", "content-encoding": "identity"}
    return Seeded(hub, {"operatorToken": world.flood, "gatewayToken": gateway}, real)


def _operations(schema: Any) -> Iterator[Any]:
    for result in schema.get_all_operations():
        yield result.ok()


def _headers(seeded: Seeded, operation: Any) -> dict[str, str]:
    security = operation.definition.raw.get("security") or [{}]
    scheme = next(iter(security[0]), None)
    return {} if scheme is None else {"Authorization": f"Bearer {seeded.tokens[scheme]}"}


@dataclass(frozen=True)
class Pass:
    """One sweep over an operation: a generation mode, and parameters held to real values."""

    name: str
    mode: GenerationMode
    real: bool = False


PASSES = (Pass("positive", GenerationMode.POSITIVE), Pass("negative", GenerationMode.NEGATIVE),
          Pass("positive, real names", GenerationMode.POSITIVE, real=True))
#: Where a parameter lives -> the ``as_strategy`` argument that holds it fixed.
_FIXED = {"path": "path_parameters", "query": "query", "header": "headers"}


def _passes(
    operation: Any, real: dict[str, str]
) -> Iterator[tuple[Pass, dict[str, dict[str, str]]]]:
    """The passes that apply to ``operation``, each with the parameters it holds fixed. An
    operation without parameters or body has nothing to make invalid, and one without a
    parameter naming seeded data gains nothing from real names."""
    raw = operation.definition.raw
    parameters = raw.get("parameters", [])
    fixed: dict[str, dict[str, str]] = {where: {} for where in _FIXED.values()}
    for parameter in parameters:
        if parameter["name"] in real and parameter["in"] in _FIXED:
            fixed[_FIXED[parameter["in"]]][parameter["name"]] = real[parameter["name"]]
    for sweep in PASSES:
        if sweep.mode is GenerationMode.NEGATIVE and not (parameters or raw.get("requestBody")):
            continue
        if sweep.real and not any(fixed.values()):
            continue
        yield sweep, (fixed if sweep.real else {})


def _fuzz(operation: Any, sweep: Pass, fixed: dict[str, dict[str, str]], seeded: Seeded,
          session: requests.Session, seen: Counter[tuple[str, int]]) -> None:
    """Call ``operation`` with ``EXAMPLES`` cases of ``sweep``; raise at the first failure.
    ``seen`` counts the answers by operation and status."""
    headers = _headers(seeded, operation)

    @given(case=operation.as_strategy(generation_mode=sweep.mode, **fixed))
    @settings(max_examples=EXAMPLES, derandomize=True, database=None, deadline=None,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    def call(case: Any) -> None:
        answer = case.call_and_validate(base_url=seeded.hub.url, session=session,
                                        headers=headers, checks=CHECKS)
        seen[operation.label, answer.status_code] += 1

    call()


def test_fuzzing_the_openapi_finds_no_5xx_and_no_undeclared_answer(seeded: Seeded) -> None:
    schema = schemathesis.openapi.from_url(f"{seeded.hub.url}/openapi.json")
    failures: list[str] = []
    seen: Counter[tuple[str, int]] = Counter()
    with requests.Session() as session:
        for operation in _operations(schema):
            for sweep, fixed in _passes(operation, seeded.real):
                try:
                    _fuzz(operation, sweep, fixed, seeded, session, seen)
                except (Exception, BaseExceptionGroup) as exc:  # collected, then all reported
                    failures.append(f"{operation.label} ({sweep.name}): {exc}")
    assert failures == [], "\n\n".join(failures)
    reached = {label for (label, status), _ in seen.items() if status != 401}
    assert {op.label for op in _operations(schema)} - reached == set(), \
        "operations never reached past the token check"
