"""Finding, loading and explaining device profiles."""

from __future__ import annotations

import difflib
import json
from collections.abc import Sequence
from functools import cache
from importlib.resources import files
from pathlib import Path

from pydantic import ValidationError

from edge_agent.errors import ProfileError
from edge_agent.profiles.models import DeviceProfile
from edge_agent.validation import describe_validation_error
from edge_agent.yaml_source import load_located_yaml

__all__ = [
    "PROFILE_DIR",
    "available_profiles",
    "load_profile",
    "load_profile_file",
    "profile_json_schema",
]

#: Where the shipped profiles live (the ``device_profiles`` package).
PROFILE_DIR = Path(str(files("device_profiles")))


def load_profile_file(path: Path) -> DeviceProfile:
    """Load and validate one profile file; ProfileError names the file, line and field."""
    try:
        source = load_located_yaml(path)
    except (OSError, ValueError) as exc:
        raise ProfileError(f"{path}: {exc}") from exc
    if not isinstance(source.data, dict):
        raise ProfileError(f"{path}: a profile is a YAML mapping with id, model, points …")
    try:
        profile = DeviceProfile.model_validate(source.data)
    except ValidationError as exc:
        raise ProfileError(
            describe_validation_error(exc, path, source, DeviceProfile)
        ) from exc
    if profile.id != path.stem:
        raise ProfileError(f"{path}:{source.line_of(('id',))}: id '{profile.id}' must match "
                           f"the file name '{path.stem}'; rename one of them")
    return profile


def available_profiles(directory: Path = PROFILE_DIR) -> list[str]:
    """Ids of every profile in ``directory``, sorted."""
    return sorted(path.stem for path in directory.glob("*.yaml"))


@cache
def _load_cached(path: Path) -> DeviceProfile:
    return load_profile_file(path)


def load_profile(profile_id: str, *, extra_dirs: Sequence[Path] = ()) -> DeviceProfile:
    """Load a profile by id, suggesting close ids when it does not exist.

    ``extra_dirs`` (a site's own profiles) are searched first, then the shipped profiles, so
    a site can add a device model or override a shipped one without touching the package.
    """
    directories = [*extra_dirs, PROFILE_DIR]
    for directory in directories:
        path = directory / f"{profile_id}.yaml"
        if path.is_file():
            return _load_cached(path)
    known = sorted({pid for directory in directories for pid in available_profiles(directory)})
    close = difflib.get_close_matches(profile_id, known, n=1)
    hint = f"did you mean '{close[0]}'?" if close else f"known profiles: {', '.join(known)}"
    where = ", ".join(str(directory) for directory in directories)
    raise ProfileError(f"no device profile '{profile_id}' in {where}; {hint}")


def profile_json_schema() -> str:
    """JSON Schema of a profile file, for editor completion."""
    return json.dumps(DeviceProfile.model_json_schema(), indent=2)
