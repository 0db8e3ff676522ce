"""Device profiles: one YAML file per device model, validated by pydantic models."""

from edge_agent.profiles.loader import (
    PROFILE_DIR,
    available_profiles,
    load_profile,
    load_profile_file,
    profile_json_schema,
)
from edge_agent.profiles.models import DeviceProfile, Limits, Point, RegisterKind, SerialDefaults

__all__ = [
    "PROFILE_DIR",
    "DeviceProfile",
    "Limits",
    "Point",
    "RegisterKind",
    "SerialDefaults",
    "available_profiles",
    "load_profile",
    "load_profile_file",
    "profile_json_schema",
]
