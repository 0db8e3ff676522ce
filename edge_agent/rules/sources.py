"""Where rules come from: the gateway file, and the signed ``config`` bundle of the hub.

The hub publishes one config bundle per territory (``sync-server bundle publish --kind
config settings.json``); its ``rules`` list is validated with the file's own model. Bundle
rules replace file rules of the same name and add the others. A bundle rule that names a
device or relay board this gateway does not have is meant for another gateway of the
territory: it is left out here, and listed as skipped in ``status``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from edge_agent.errors import ConfigError
from edge_agent.rules.models import RuleConfig, latch_conflict, rule_problem
from edge_agent.schema import Invalid, Problem, validate

__all__ = ["bundle_rules", "merge_rules"]

def bundle_rules(payload: Mapping[str, Any], origin: str) -> list[RuleConfig]:
    """The rules of a config bundle's payload (none without a ``rules`` key).

    ConfigError names ``origin`` and each invalid field, as for the gateway file.
    """
    items = payload.get("rules", [])
    try:
        return validate(list[RuleConfig], items)
    except Invalid as exc:
        problems = "; ".join(_describe(problem, items) for problem in exc.problems)
        raise ConfigError(f"{origin}: {len(exc.problems)} problem(s) in rules: {problems}"
                          ) from exc


def merge_rules(
    file_rules: Iterable[RuleConfig],
    from_bundle: Iterable[RuleConfig],
    devices: Iterable[str],
    reserved: Mapping[tuple[str, int], str],
) -> tuple[list[RuleConfig], list[str]]:
    """The rules in force and why each bundle rule left out was left out."""
    merged = {rule.name: rule for rule in file_rules}
    names = set(devices)
    skipped = []
    for rule in from_bundle:
        problem = rule_problem(rule, names, reserved) or latch_conflict(
            [*(r for r in merged.values() if r.name != rule.name), rule])
        if problem is not None:
            skipped.append(problem)
            continue
        merged[rule.name] = rule
    return list(merged.values()), skipped


def _describe(problem: Problem, items: Any) -> str:
    """``rules[flood-d982].threshold: message``: entries named by their name, as in the file."""
    label = "rules"
    for part in problem.location:
        if isinstance(part, int):
            entry = items[part] if isinstance(items, list) and part < len(items) else None
            name = entry.get("name") if isinstance(entry, dict) else None
            label += f"[{name if isinstance(name, str) else part}]"
        else:
            label += f".{part}"
    message = "unknown field" if problem.kind == "unknown" else problem.message
    return f"{label}: {message}"
