"""``edge-agent reader``: check a badge reader and read a card's numbers on site."""

from __future__ import annotations

import asyncio
import signal
from typing import Annotated

import typer

from edge_agent.codecs.badge_numbers import printed_forms
from edge_agent.drivers.readers import BadgePresented, BadgeReader, ReaderSettings, open_reader
from edge_agent.profiles import load_reader_profile

__all__ = ["app", "describe_badge", "describe_health"]

app = typer.Typer(help="Badge readers: check one and read cards' numbers.",
                  no_args_is_help=True)


def describe_badge(badge: BadgePresented) -> str:
    """One line per card: its identifier, technology and every printed form of its number."""
    forms = "  ".join(f"{form} {text}" for form, text in printed_forms(badge.raw).items())
    return f"{badge.raw.hex().upper()}  {badge.technology}  {forms}"


def describe_health(reader: BadgeReader) -> str:
    """The counters an installer reads to judge a reader's line."""
    health = reader.health
    return (f"frames {health.frames}, badges {health.badges}, duplicates {health.duplicates}, "
            f"garbage bytes {health.garbage_bytes}, bad checksums {health.bad_checksums}, "
            f"partial frames {health.partial_frames}, timeouts {health.timeouts}, "
            f"port errors {health.port_errors}")


@app.command("listen")
def listen(
    profile: Annotated[str, typer.Option("--profile", metavar="ID",
                                         help="reader profile: rdm6300, em18, pn532-uart ...")],
    port: Annotated[str, typer.Option("--serial", "--port", metavar="PORT",
                                      help="serial port (or /dev/input/eventN for a wedge)")],
    count: Annotated[int | None, typer.Option(min=1, help="stop after N badges")] = None,
    timeout: Annotated[float | None, typer.Option(min=0, metavar="S",
                                                  help="stop after S seconds")] = None,
) -> None:
    """Print every badge presented to a reader in every printed form, then its counters.

    Exits with status 1 when --count badges did not come before --timeout.
    """
    reader = open_reader(ReaderSettings(name=profile, profile=load_reader_profile(profile),
                                        port=port))
    reader.check()
    seen = asyncio.run(_listen(reader, count, timeout))
    typer.echo(describe_health(reader))
    if count is not None and seen < count:
        raise typer.Exit(1)


async def _listen(reader: BadgeReader, count: int | None, timeout: float | None) -> int:
    """Run ``reader`` until ``count`` badges, ``timeout`` or a signal; the badges seen."""
    seen = 0

    def on_badge(badge: BadgePresented) -> None:
        nonlocal seen
        seen += 1
        typer.echo(describe_badge(badge))
        if count is not None and seen >= count:
            reader.stop()

    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, reader.stop)
    announce = loop.create_task(_announce(reader))
    try:
        async with asyncio.timeout(timeout):
            await reader.run(on_badge)
    except TimeoutError:
        pass
    finally:
        announce.cancel()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
    return seen


async def _announce(reader: BadgeReader) -> None:
    """Say so once the port is open: a card presented before would not be read."""
    while not reader.health.online:
        await asyncio.sleep(0.01)
    typer.echo(f"listening on {reader.settings.port} ({reader.settings.profile.id}); "
               "present a card, Ctrl-C to stop", err=True)
