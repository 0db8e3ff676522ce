"""Ponton edge agent: reads field devices and keeps every record in a durable outbox."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("ponton")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"

__all__ = ["__version__"]
