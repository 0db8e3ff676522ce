"""``edge-agent badge test``, ``gate open``, ``policy status``: access for staff and installers."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from edge_agent.access.control import send_command
from edge_agent.access.engine import AccessEngine, load_policy
from edge_agent.codecs.badge_numbers import FORMS, parse_printed
from edge_agent.codecs.pseudonyms import pseudonym, pseudonym_text
from edge_agent.config import load_config
from edge_agent.errors import ConfigError
from edge_agent.records import now_ms
from edge_agent.runtime import BUNDLES_DIR
from edge_agent.sync.bundles import BundleStore
from edge_agent.sync.identity import Identity, load_identity

__all__ = ["badge_app", "gate_app", "policy_app"]

badge_app = typer.Typer(help="Badges: what the gateway would decide.", no_args_is_help=True)
gate_app = typer.Typer(help="Gates: open one by hand.", no_args_is_help=True)
policy_app = typer.Typer(help="The access policy this gateway enforces.", no_args_is_help=True)

ConfigPath = Annotated[
    Path, typer.Option("--config", "-c", envvar="PONTON_CONFIG", help="Gateway TOML file.")
]


@badge_app.command("test")
def badge_test(
    number: Annotated[str, typer.Argument(help="The card's number, as printed or read.")],
    gate: Annotated[str, typer.Option("--gate", "-g", help="The gate to decide for.")],
    config: ConfigPath,
    form: Annotated[str, typer.Option(
        "--form", help=f"How NUMBER is written: {', '.join(FORMS)}.")] = "hex",
    length: Annotated[int | None, typer.Option(
        "--length", help="Card bytes (needed for the dec form).")] = None,
    at: Annotated[str | None, typer.Option(
        "--at", help="Decide as at this ISO time (e.g. 2026-12-25T08:00+01:00).")] = None,
) -> None:
    """Dry run: the decision and its reason for a card at a gate; nothing opens, nothing is logged.

    Exit status 0 when the card would be let through, 1 when not.
    """
    data_dir = load_config(config).gateway.data_dir
    identity = _identity(data_dir)
    raw = parse_printed(number, form, length=length)
    engine = AccessEngine(identity.badge_key)
    engine.reload(_store(data_dir, identity))
    when = now_ms() if at is None else _instant(at)
    decision = engine.decide(gate, raw, when)
    colour = "green" if decision.granted else "red"
    console = Console(highlight=False)
    console.print(f"[{colour}]{'granted' if decision.granted else 'denied'}[/]: "
                  f"{decision.reason} at gate {gate}")
    console.print(f"badge {pseudonym_text(pseudonym(identity.badge_key, raw))}"
                  + (f", category {decision.category}" if decision.category else "")
                  + (f", policy version {decision.policy_version}" if engine.policy else
                     f" ({engine.problem})"))
    raise typer.Exit(0 if decision.granted else 1)


@gate_app.command("open")
def gate_open(
    gate: Annotated[str, typer.Argument(help="The gate to open.")],
    config: ConfigPath,
) -> None:
    """Pulse a gate's relay through the running agent; the opening is logged as an event."""
    data_dir = load_config(config).gateway.data_dir
    reply = asyncio.run(send_command(data_dir, {"command": "open", "gate": gate}))
    if reply.get("granted"):
        typer.echo(f"gate {gate} opened (logged as access.granted, reason manual)")
    else:
        typer.echo(f"gate {gate} did not open: {reply.get('reason')}")
        raise typer.Exit(1)


@policy_app.command("status")
def policy_status(
    config: ConfigPath,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """The policy held: version, expiry, badges, gates (verified again from disk)."""
    data_dir = load_config(config).gateway.data_dir
    identity = _identity(data_dir)
    policy = load_policy(_store(data_dir, identity))
    if policy is None:
        raise ConfigError("no access policy received yet: every badge is denied until the "
                          "hub publishes one and the gateway fetches it")
    now = now_ms()
    report: dict[str, Any] = {
        "version": policy.version,
        "expires_at": _iso(policy.expires_at_ms),
        "expired": policy.expired(now),
        "badges": len(policy.badges),
        "gates": {name: {"target": gate.target, "mode": gate.mode, "fail_mode": gate.fail_mode}
                  for name, gate in sorted(policy.gates.items())},
        "categories": list(policy.categories),
        "timezone": str(policy.timezone),
    }
    if as_json:
        typer.echo(json.dumps(report, indent=1))
        return
    console = Console(highlight=False)
    state = "[red]EXPIRED: gates are in their fail mode[/]" if report["expired"] else "valid"
    console.print(f"policy version {policy.version}, {state} until {report['expires_at']}; "
                  f"{len(policy.badges)} badges, categories: {', '.join(policy.categories)}")
    table = Table("gate", "gives", "mode", "if expired")
    for name, gate in sorted(policy.gates.items()):
        table.add_row(name, gate.target, gate.mode, f"fail {gate.fail_mode}")
    console.print(table)


def _identity(data_dir: Path) -> Identity:
    identity = load_identity(data_dir)
    if identity is None:
        raise ConfigError(f"{data_dir} holds no enrollment: provision the gateway first "
                          "(edge-agent provision)")
    return identity


def _store(data_dir: Path, identity: Identity) -> BundleStore:
    return BundleStore(data_dir / BUNDLES_DIR, identity.signing_public_key, identity.territory)


def _instant(text: str) -> int:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"--at {text!r} is not an ISO time like 2026-12-25T08:00+01:00"
                          ) from None
    if moment.tzinfo is None:
        raise ConfigError(f"--at {text!r} needs its UTC offset, e.g. +01:00")
    return int(moment.timestamp() * 1000)


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="seconds")
