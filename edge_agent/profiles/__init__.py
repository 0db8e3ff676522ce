"""Device profiles: one YAML file per device model, validated by pydantic models."""

from edge_agent.profiles.loader import (
    PROFILE_DIR,
    available_profiles,
    available_reader_profiles,
    is_reader_profile,
    load_profile,
    load_profile_file,
    load_reader_profile,
    load_reader_profile_file,
    profile_json_schema,
)
from edge_agent.profiles.models import DeviceProfile, Limits, Point, RegisterKind, SerialDefaults
from edge_agent.profiles.readers import READER_CATEGORY, ReaderProfile, ReaderProtocol, ReaderSpec

__all__ = [
    "PROFILE_DIR",
    "READER_CATEGORY",
    "DeviceProfile",
    "Limits",
    "Point",
    "ReaderProfile",
    "ReaderProtocol",
    "ReaderSpec",
    "RegisterKind",
    "SerialDefaults",
    "available_profiles",
    "available_reader_profiles",
    "is_reader_profile",
    "load_profile",
    "load_profile_file",
    "load_reader_profile",
    "load_reader_profile_file",
    "profile_json_schema",
]
