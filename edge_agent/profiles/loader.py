"""Finding, loading and explaining profiles: Modbus devices, badge readers, LoRa sensors.

All kinds live side by side in one directory (the shipped ``device_profiles`` or a site's
own); a badge reader profile is told apart by its ``category: badge_reader``, a LoRaWAN sensor
by ``category: lora_sensor``, and every other file is a Modbus device.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable, Sequence
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

import msgspec
import yaml

import device_profiles
from edge_agent.errors import ProfileError
from edge_agent.profiles.lora import LORA_CATEGORY, LoraProfile, prepare_lora_profile
from edge_agent.profiles.models import DeviceProfile, prepare_profile
from edge_agent.profiles.readers import READER_CATEGORY, ReaderProfile
from edge_agent.schema import Invalid, validate
from edge_agent.validation import describe_validation_error
from edge_agent.yaml_source import LocatedYaml, load_located_yaml

__all__ = [
    "PROFILE_DIR",
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

#: Where the shipped profiles live: the ``device_profiles`` package, always a directory of
#: files (installed or not), so importlib.resources and its zipfile are not needed.
PROFILE_DIR = Path(device_profiles.__file__).resolve().parent

_Model = TypeVar("_Model", bound=msgspec.Struct)


def _as_is(data: Any) -> Any:
    return data


def _validate(path: Path, model: type[_Model], fields: str,
              prepare: Callable[[Any], Any] = _as_is) -> tuple[_Model, LocatedYaml]:
    """Parse and validate one file; ProfileError naming the file, line and field."""
    try:
        source = load_located_yaml(path)
    except (OSError, ValueError) as exc:
        raise ProfileError(f"{path}: {exc}") from exc
    if not isinstance(source.data, dict):
        raise ProfileError(f"{path}: a profile is a YAML mapping with {fields}")
    try:
        return validate(model, prepare(source.data)), source
    except Invalid as exc:
        raise ProfileError(describe_validation_error(exc, path, source, model)) from exc


def _check_id(path: Path, source: LocatedYaml, profile_id: str) -> None:
    if profile_id != path.stem:
        raise ProfileError(f"{path}:{source.line_of(('id',))}: id '{profile_id}' must match "
                           f"the file name '{path.stem}'; rename one of them")


def load_profile_file(path: Path) -> DeviceProfile:
    """Load and validate one Modbus profile file; ProfileError names the file, line and field."""
    profile, source = _validate(path, DeviceProfile, "id, model, points …", prepare_profile)
    _check_id(path, source, profile.id)
    return profile


def load_reader_profile_file(path: Path) -> ReaderProfile:
    """Load and validate one badge reader profile file, with the same errors."""
    profile, source = _validate(path, ReaderProfile, "id, model, category, reader …")
    _check_id(path, source, profile.id)
    return profile


def load_lora_profile_file(path: Path) -> LoraProfile:
    """Load, validate and compile one LoRa sensor profile file, with the same errors."""
    profile, source = _validate(path, LoraProfile,
                                "id, model, category, uplink_interval_s, ports …",
                                prepare_lora_profile)
    _check_id(path, source, profile.id)
    return profile


def _category(path: Path) -> object:
    """The ``category`` a file declares (None for a broken file or a file without one)."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, yaml.YAMLError):  # ValueError: not UTF-8
        return None
    return data.get("category") if isinstance(data, dict) else None


@cache
def _category_cached(path: Path) -> object:
    """:func:`_category` once per file, as the profile itself is loaded once per file: a
    gateway of 200 meters of one model reads and parses that file once, not 400 times."""
    return _category(path)


def is_reader_profile(path: Path) -> bool:
    """Whether ``path`` declares ``category: badge_reader`` (a broken file is not one)."""
    return _category(path) == READER_CATEGORY


def is_lora_profile(path: Path) -> bool:
    """Whether ``path`` declares ``category: lora_sensor`` (a broken file is not one)."""
    return _category(path) == LORA_CATEGORY


def _ids(directory: Path, wanted: Callable[[object], bool]) -> list[str]:
    return sorted(path.stem for path in directory.glob("*.yaml") if wanted(_category(path)))


def available_profiles(directory: Path = PROFILE_DIR) -> list[str]:
    """Ids of every Modbus device profile in ``directory``, sorted."""
    return _ids(directory, lambda category: category not in (READER_CATEGORY, LORA_CATEGORY))


def available_reader_profiles(directory: Path = PROFILE_DIR) -> list[str]:
    """Ids of every badge reader profile in ``directory``, sorted."""
    return _ids(directory, lambda category: category == READER_CATEGORY)


def available_lora_profiles(directory: Path = PROFILE_DIR) -> list[str]:
    """Ids of every LoRa sensor profile in ``directory``, sorted."""
    return _ids(directory, lambda category: category == LORA_CATEGORY)


@cache
def _load_cached(path: Path) -> DeviceProfile:
    return load_profile_file(path)


@cache
def _load_reader_cached(path: Path) -> ReaderProfile:
    return load_reader_profile_file(path)


@cache
def _load_lora_cached(path: Path) -> LoraProfile:
    return load_lora_profile_file(path)


def _find(profile_id: str, extra_dirs: Sequence[Path], kind: str,
          listing: Callable[[Path], list[str]]) -> Path:
    """The first ``profile_id``.yaml in ``extra_dirs`` then the shipped profiles."""
    directories = [*extra_dirs, PROFILE_DIR]
    for directory in directories:
        path = directory / f"{profile_id}.yaml"
        try:
            if path.is_file():
                return path
        except OSError:  # a name too long for the file system is no profile's
            continue
    known = sorted({pid for directory in directories for pid in listing(directory)})
    close = difflib.get_close_matches(profile_id, known, n=1)
    hint = f"did you mean '{close[0]}'?" if close else f"known profiles: {', '.join(known)}"
    where = ", ".join(str(directory) for directory in directories)
    raise ProfileError(f"no {kind} profile '{profile_id}' in {where}; {hint}")


def load_profile(profile_id: str, *, extra_dirs: Sequence[Path] = ()) -> DeviceProfile:
    """Load a Modbus device profile by id, suggesting close ids when it does not exist.

    ``extra_dirs`` (a site's own profiles) are searched first, then the shipped profiles, so
    a site can add a device model or override a shipped one without touching the package.
    """
    path = _find(profile_id, extra_dirs, "device", available_profiles)
    category = _category_cached(path)
    if category == READER_CATEGORY:
        raise ProfileError(f"{path}: '{profile_id}' is a badge reader, not a Modbus device; "
                           f"try `edge-agent reader listen --profile {profile_id}`")
    if category == LORA_CATEGORY:
        raise ProfileError(f"{path}: '{profile_id}' is a LoRaWAN sensor, not a Modbus device; "
                           f"try `edge-agent lora decode --profile {profile_id}`")
    return _load_cached(path)


def _find_of_category(profile_id: str, extra_dirs: Sequence[Path], kind: str, category: str,
                      listing: Callable[[Path], list[str]]) -> Path:
    """:func:`_find`, then ProfileError unless the file declares ``category``."""
    path = _find(profile_id, extra_dirs, kind, listing)
    if _category_cached(path) != category:
        raise ProfileError(f"{path}: '{profile_id}' is not a {kind} profile (category: "
                           f"{category}); shipped: {', '.join(listing(PROFILE_DIR))}")
    return path


def load_reader_profile(profile_id: str, *, extra_dirs: Sequence[Path] = ()) -> ReaderProfile:
    """Load a badge reader profile by id, searched as :func:`load_profile` searches."""
    return _load_reader_cached(_find_of_category(
        profile_id, extra_dirs, "badge reader", READER_CATEGORY, available_reader_profiles))


def load_lora_profile(profile_id: str, *, extra_dirs: Sequence[Path] = ()) -> LoraProfile:
    """Load a LoRa sensor profile by id, searched as :func:`load_profile` searches.

    Loaded once per file and kept: its layouts are compiled, ready for every uplink.
    """
    return _load_lora_cached(_find_of_category(
        profile_id, extra_dirs, "LoRa sensor", LORA_CATEGORY, available_lora_profiles))


def _json_schema(model: type[msgspec.Struct]) -> str:
    """JSON Schema of ``model`` with its own properties at the top, as editors expect."""
    schema = msgspec.json.schema(model)
    definitions = schema.pop("$defs")
    top = definitions.pop(model.__name__)
    return json.dumps({**top, "$defs": definitions} if definitions else top, indent=2)


def profile_json_schema() -> str:
    """JSON Schema of a Modbus profile file, for editor completion."""
    return _json_schema(DeviceProfile)


def lora_profile_json_schema() -> str:
    """JSON Schema of a LoRa sensor profile file, for editor completion."""
    return _json_schema(LoraProfile)
