"""Ponton edge agent: reads field devices and keeps every record in a durable outbox."""

import logging
from importlib.metadata import PackageNotFoundError, version

# A library logs but leaves handlers to the application (edge_agent.logs for the CLI).
logging.getLogger("edge_agent").addHandler(logging.NullHandler())

try:
    __version__ = version("ponton")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"

__all__ = ["__version__"]
