"""``edge-agent provision`` and ``edge-agent sync --once``: the gateway and its hub.

``provision`` trades the one-time code an operator made on the hub for the gateway's
identity; ``sync --once`` empties the outbox to the hub while the agent is stopped (a box
back from weeks offline, a test on the bench). The running agent syncs by itself, and one
outbox has one writer, so ``sync --once`` refuses to run beside it.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import msgspec
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from edge_agent.cli.gateway import ConfigPath
from edge_agent.config import GatewayConfig, load_config
from edge_agent.errors import ConfigError
from edge_agent.records import now_ms
from edge_agent.runtime import LOCK_FILE, OUTBOX_FILE, exclusive, lock_is_held
from edge_agent.store import Outbox
from edge_agent.sync.client import HubClient, enroll
from edge_agent.sync.identity import (
    IDENTITY_FILE,
    Identity,
    load_identity,
    not_provisioned,
    save_identity,
)
from edge_agent.sync.loop import SyncLoop, backlog_and_lag, declared_devices
from edge_agent.sync.tls import TlsFiles, keep_private_copies

__all__ = ["provision", "sync"]


def provision(
    config: ConfigPath,
    hub: Annotated[str, typer.Option("--hub", metavar="URL", help="The hub's base URL.")],
    code: Annotated[str, typer.Option("--code", help="One-time enrollment code from the hub.")],
    force: Annotated[bool, typer.Option(
        "--force", help="Replace an existing identity (the hub must have issued a new code).")
    ] = False,
    insecure_http: Annotated[bool, typer.Option(
        "--insecure-http", help="Allow a plain http:// hub (a test bench, the demo): the "
        "token and bundles then cross the network unencrypted.")] = False,
    ca_bundle: Annotated[Path | None, typer.Option(
        "--ca-bundle", metavar="PATH", help="Trust the hub's certificate through this private "
        "CA bundle (PEM) instead of the public CAs.")] = None,
    client_cert: Annotated[Path | None, typer.Option(
        "--client-cert", metavar="PATH", help="This gateway's certificate (PEM), for a hub "
        "that requires one (mutual TLS).")] = None,
    client_key: Annotated[Path | None, typer.Option(
        "--client-key", metavar="PATH", help="The key of --client-cert (PEM).")] = None,
) -> None:
    """Enroll this gateway with its hub: trade a one-time code for its identity and keys.

    TLS files given here are copied into the data directory (mode 0600) and used by every
    later exchange with the hub.
    """
    gateway_config = load_config(config)
    data_dir = gateway_config.gateway.data_dir
    if (data_dir / IDENTITY_FILE).exists() and not force:
        raise ConfigError(f"{data_dir / IDENTITY_FILE} exists: this gateway is already "
                          f"provisioned{_described(data_dir)}; add --force to replace it")
    given = TlsFiles(ca_bundle, client_cert, client_key)
    enrolled = asyncio.run(enroll(hub, code, insecure_http=insecure_http,
                                  timeout_s=gateway_config.sync.timeout_s, tls=given))
    kept = keep_private_copies(data_dir, given)
    identity = msgspec.structs.replace(enrolled, ca_bundle=kept.ca_bundle,
                                       client_cert=kept.client_cert, client_key=kept.client_key)
    path = save_identity(data_dir, identity)
    console = Console(highlight=False)
    console.print(f"[green]provisioned[/]: gateway {identity.gateway}, territory "
                  f"{identity.territory}, site {identity.site}, signing key "
                  f"{identity.signing_key_id}")
    console.print(f"identity (with the gateway's token) in {path}, mode 0600")
    if identity.gateway != gateway_config.gateway.id:
        console.print(f"[yellow]warning:[/] {config} names this gateway "
                      f"'{gateway_config.gateway.id}' but the hub registered it as "
                      f"'{identity.gateway}': the hub files its records under "
                      f"'{identity.gateway}'; set id = \"{identity.gateway}\" in [gateway] to "
                      "match")
    if lock_is_held(data_dir / LOCK_FILE):
        console.print("[yellow]the agent is running: restart it to sync with this identity[/]")


def sync(
    config: ConfigPath,
    once: Annotated[bool, typer.Option(
        "--once", help="Push until the outbox is empty, then exit.")] = False,
) -> None:
    """Push the whole outbox to the hub now, with a progress bar (the agent must be stopped)."""
    if not once:
        raise ConfigError("the running agent syncs by itself; `edge-agent sync --once` empties "
                          "the outbox now while the agent is stopped")
    gateway_config = load_config(config)
    data_dir = gateway_config.gateway.data_dir
    if lock_is_held(data_dir / LOCK_FILE):
        raise ConfigError(f"an edge-agent is running with {data_dir}: it syncs by itself (see "
                          "`edge-agent status`), and one outbox takes one writer; stop the agent "
                          "to sync from the command line")
    identity = load_identity(data_dir)
    if identity is None:
        raise ConfigError(f"{data_dir}: {not_provisioned(config)}")
    if not (data_dir / OUTBOX_FILE).exists():
        Console().print(f"nothing to send: no outbox in {data_dir}")
        return
    with exclusive(data_dir / LOCK_FILE):
        sent = asyncio.run(_drain(gateway_config, identity))
    Console(highlight=False).print(f"[green]outbox empty[/]: {sent} records sent to "
                                   f"{identity.hub_url}")


async def _drain(config: GatewayConfig, identity: Identity) -> int:
    """Push batches until the outbox is empty; the records the hub acknowledged."""
    data_dir = config.gateway.data_dir
    outbox = await asyncio.to_thread(Outbox.open, data_dir / OUTBOX_FILE)
    try:
        async with HubClient(identity, timeout_s=config.sync.timeout_s,
                             tls=identity.tls.overridden_by(config.sync)) as client:
            loop = SyncLoop(outbox, client, config.sync, devices=declared_devices(config))
            await loop.start()
            backlog, _lag = backlog_and_lag(await asyncio.to_thread(outbox.stats), now_ms())
            columns = (TextColumn("[progress.description]{task.description}"), BarColumn(),
                       MofNCompleteColumn(), TextColumn("records"), TimeRemainingColumn())
            with Progress(*columns) as progress:
                task = progress.add_task(f"to {identity.hub_url}", total=backlog)
                sent = 0
                while count := await loop.push_next():
                    sent += count
                    progress.update(task, completed=sent)
            return sent
    finally:
        await asyncio.to_thread(outbox.close)


def _described(data_dir: Path) -> str:
    """Who the existing identity says the gateway is, for the refusal to replace it."""
    try:
        identity = load_identity(data_dir)
    except ConfigError:
        return " (its identity file is damaged)"
    if identity is None:
        return ""
    return f" as {identity.gateway} of {identity.territory} at {identity.hub_url}"
