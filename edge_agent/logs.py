"""Opt-in logging set-up for the agent's own entry points (the library only logs)."""

from __future__ import annotations

import logging

from rich.console import Console
from rich.logging import RichHandler

__all__ = ["configure_logging"]


def configure_logging(level: str = "INFO") -> None:
    """Human-readable logs on stderr; pymodbus's own per-timeout errors only at DEBUG.

    pymodbus logs an ERROR for every unanswered request; the agent already counts those per
    device and reports them once, so pymodbus is kept quiet unless debugging.
    """
    logging.basicConfig(
        level=level.upper(),
        format="%(name)s: %(message)s",
        handlers=[RichHandler(console=Console(stderr=True), show_path=False)],
        force=True,
    )
    if level.upper() != "DEBUG":
        logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
