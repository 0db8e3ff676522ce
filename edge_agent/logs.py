"""Opt-in logging set-up for the agent's own entry points (the library only logs)."""

from __future__ import annotations

import logging
import sys

from edge_agent.codecs.log_lines import JsonLineFormatter, LogFormat

__all__ = ["configure_logging"]


def configure_logging(level: str = "INFO", log_format: LogFormat = "plain") -> None:
    """Logs on stderr: coloured on a terminal, one plain line each in a file or the journal,
    or one JSON object each (``log_format="json"``) for a log shipper.

    pymodbus logs an ERROR for every unanswered request; the agent already counts those per
    device and reports them once, so pymodbus is kept quiet unless debugging.
    """
    handler: logging.Handler
    if log_format == "json":
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonLineFormatter())
    elif sys.stderr.isatty():
        # rich only for a person at a terminal: a service's logs never pay for it.
        from rich.console import Console  # noqa: PLC0415
        from rich.logging import RichHandler  # noqa: PLC0415

        handler = RichHandler(console=Console(stderr=True), show_path=False,
                              log_time_format="%H:%M:%S")
        handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(
            "%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
    if level.upper() != "DEBUG":
        logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
