"""The configured badge readers, opened with their profiles."""

from __future__ import annotations

from edge_agent.config import GatewayConfig
from edge_agent.drivers.readers import BadgeReader, ReaderSettings, open_reader
from edge_agent.errors import ConfigError, ProfileError
from edge_agent.profiles import load_reader_profile

__all__ = ["build_readers"]


def build_readers(config: GatewayConfig) -> list[BadgeReader]:
    """One reader per ``[[readers]]`` entry (ConfigError naming an unknown profile)."""
    extra = [config.gateway.profiles_dir] if config.gateway.profiles_dir else []
    readers = []
    for reader in config.readers:
        try:
            profile = load_reader_profile(reader.profile, extra_dirs=extra)
        except ProfileError as exc:
            raise ConfigError(f"reader {reader.name}: {exc}") from exc
        readers.append(open_reader(ReaderSettings(
            name=reader.name, profile=profile, port=reader.port,
            duplicate_window_s=reader.duplicate_window_ms / 1000)))
    return readers
