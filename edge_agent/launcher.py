"""The ``edge-agent`` entry point: ``run`` goes to the lean daemon, the rest to the CLI."""

from __future__ import annotations

import sys

from edge_agent import daemon

__all__ = ["main"]


def main() -> None:
    """Dispatch on the first argument, before any UI library is imported."""
    args = sys.argv[1:]
    if args[:1] == ["run"] and not {"-h", "--help"} & set(args):
        daemon.main(args[1:])
        return
    from edge_agent.cli import main as cli_main  # noqa: PLC0415 - typer and rich only here

    cli_main()
