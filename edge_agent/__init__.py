"""Ponton edge agent: reads field devices and keeps every record in a durable outbox."""

import logging

# A library logs but leaves handlers to the application (edge_agent.logs for the CLI).
logging.getLogger("edge_agent").addHandler(logging.NullHandler())

#: The one place the version is written: pyproject.toml reads it from here, so a gateway
#: does not import importlib.metadata (with the email package, about 2 MiB) to learn it.
__version__ = "0.1.0"

__all__ = ["__version__"]
