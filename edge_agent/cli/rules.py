"""``edge-agent rules test``: replay readings through the rules before trusting them.

An installer checks a threshold, a duration or a rate against a day of real values (or a
flood scenario) and sees every raise, clear and action the gateway would have performed,
in order; nothing is switched and nothing is sent.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from edge_agent.config import load_config
from edge_agent.errors import ConfigError
from edge_agent.rules.intents import Transition, describe
from edge_agent.rules.replay import read_readings, replay
from edge_agent.rules.sources import bundle_rules, merge_rules

__all__ = ["app"]

app = typer.Typer(help="Edge rules: thresholds, alarms and local actions.",
                  no_args_is_help=True)

_WIDTH = 80


@app.command("test")
def rules_test(
    config: Annotated[Path, typer.Option("--config", "-c", envvar="PONTON_CONFIG",
                                         help="Gateway TOML file.")],
    input_: Annotated[Path, typer.Option("--input", "-i",
                                         help="CSV of ts,device,quantity,value.")],
    bundle: Annotated[Path | None, typer.Option(
        "--bundle", help="A config bundle's JSON (settings.json) whose rules to add.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines.")] = False,
) -> None:
    """Dry run: replay readings through the rules; print each raise, clear and action."""
    gateway = load_config(config)
    rules = gateway.rules
    if bundle is not None:
        merged, skipped = merge_rules(rules, bundle_rules(_json_object(bundle), str(bundle)),
                                      gateway.device_names(), gateway.relay_outputs())
        rules = merged
        for problem in skipped:
            typer.echo(f"warning: {problem} (left out)", err=True)
    if not rules:
        raise ConfigError(f"{config}: no rules to test; add [[rules]] (docs/rules.md)")
    readings = read_readings(input_)
    counts = {"alarm.raised": 0, "alarm.cleared": 0, "actions": 0}
    for transition in replay(rules, readings):
        counts[transition.event.kind] += 1
        counts["actions"] += len(transition.intents)
        for line in (_json_lines(transition) if as_json else _text_lines(transition)):
            typer.echo(line)
    summary = (f"{len(readings)} readings, {len(rules)} rules: {counts['alarm.raised']} raised, "
               f"{counts['alarm.cleared']} cleared, {counts['actions']} actions (dry run: "
               "nothing was sent)")
    typer.echo(json.dumps({"type": "summary", "readings": len(readings), "rules": len(rules),
                           "raised": counts["alarm.raised"], "cleared": counts["alarm.cleared"],
                           "actions": counts["actions"]}) if as_json else summary)


def _json_object(path: Path) -> dict[str, Any]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc
    except ValueError as exc:
        raise ConfigError(f"{path}: invalid JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise ConfigError(f"{path}: a config bundle is a JSON object with a \"rules\" list")
    return document


def _stamp(ts_ms: int) -> str:
    return datetime.fromtimestamp(ts_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _text_lines(transition: Transition) -> list[str]:
    """Two lines per alarm change (when, rule; device and why), one per action."""
    event = transition.event
    attrs = event.attrs
    word = "RAISED " if event.kind == "alarm.raised" else "cleared"
    lines = [f"{_stamp(event.ts_ms)}  {word}  {attrs['rule']} ({attrs['severity']})",
             f"{'':22}{event.device}: {_detail(event.kind, attrs)}"]
    lines += [f"{'':22}action   {describe(intent)}" for intent in transition.intents]
    return [line if len(line) <= _WIDTH else line[:_WIDTH - 1] + "…" for line in lines]


def _detail(kind: str, attrs: dict[str, Any]) -> str:
    if attrs.get("reason") not in (None, "recovered"):
        return str(attrs["reason"]).replace("_", " ")
    quantity = attrs["quantity"]
    if attrs["kind"] == "stale":
        what = f"{quantity} " if quantity else ""
        if kind == "alarm.cleared":
            return f"{what}heard again after {attrs['silence_s']:g} s"
        return f"{what}silent {attrs['silence_s']:g} s (limit {attrs['threshold']:g} s)"
    if attrs["kind"] == "rate":
        level = attrs["clear_at"] if kind == "alarm.cleared" else attrs["threshold"]
        return (f"{quantity} {attrs['change']:+.6g} in {attrs['window_s']:g} s "
                f"(level {level:+g})")
    sign = ">" if attrs["kind"] == "above" else "<"
    if kind == "alarm.cleared":
        sign, level = ("<" if sign == ">" else ">"), attrs["clear_at"]
    else:
        level = attrs["threshold"]
    duration = f" for {attrs['for_s']:g} s" if attrs["for_s"] else ""
    return f"{quantity} {attrs['value']:g} {sign} {level:g}{duration}"


def _json_lines(transition: Transition) -> list[str]:
    event = transition.event
    lines = [json.dumps({"type": event.kind.removeprefix("alarm."), "ts_ms": event.ts_ms,
                         "device": event.device, **event.attrs})]
    lines += [json.dumps({"type": "action", "ts_ms": event.ts_ms, "rule": intent.rule,
                          "action": describe(intent)}) for intent in transition.intents]
    return lines
