"""Device profiles: one YAML file per device model, validated by msgspec structs."""

from edge_agent.profiles.loader import (
    PROFILE_DIR,
    available_lora_profiles,
    available_profiles,
    available_reader_profiles,
    is_lora_profile,
    is_reader_profile,
    load_lora_profile,
    load_lora_profile_file,
    load_profile,
    load_profile_file,
    load_reader_profile,
    load_reader_profile_file,
    lora_profile_json_schema,
    profile_json_schema,
)
from edge_agent.profiles.lora import LORA_CATEGORY, RADIO_QUANTITIES, BatteryLow, LoraProfile
from edge_agent.profiles.models import DeviceProfile, Limits, Point, RegisterKind, SerialDefaults
from edge_agent.profiles.readers import READER_CATEGORY, ReaderProfile, ReaderProtocol, ReaderSpec

__all__ = [
    "LORA_CATEGORY",
    "PROFILE_DIR",
    "RADIO_QUANTITIES",
    "READER_CATEGORY",
    "BatteryLow",
    "DeviceProfile",
    "Limits",
    "LoraProfile",
    "Point",
    "ReaderProfile",
    "ReaderProtocol",
    "ReaderSpec",
    "RegisterKind",
    "SerialDefaults",
    "available_lora_profiles",
    "available_profiles",
    "available_reader_profiles",
    "is_lora_profile",
    "is_reader_profile",
    "load_lora_profile",
    "load_lora_profile_file",
    "load_profile",
    "load_profile_file",
    "load_reader_profile",
    "load_reader_profile_file",
    "lora_profile_json_schema",
    "profile_json_schema",
]
