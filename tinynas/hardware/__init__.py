"""Hardware profiles: what each board offers (SRAM, flash, clock, latency model, ecosystem ids).

The first stage of the pipeline: every budget, cost estimate and firmware project
starts from ``load_profile(id_or_path)``. Profiles are TOML files, built-in under
``hardware_profiles/`` or the user's own (see ``tinynas.hardware.loader``).
"""

from tinynas.hardware.loader import (
    builtin_profile_dir,
    clear_cache,
    list_profiles,
    load_profile,
    overlay_path,
    profile_ids,
    profile_search_path,
    tinynas_home,
    validate_profile_file,
)
from tinynas.hardware.overlay import save_latency_overlay
from tinynas.hardware.profile import KINDS, Ecosystem, HardwareProfile, LatencyModel, SerialSettings
from tinynas.hardware.schema import ProfileValidationError

__all__ = [
    "KINDS",
    "Ecosystem",
    "HardwareProfile",
    "LatencyModel",
    "ProfileValidationError",
    "SerialSettings",
    "builtin_profile_dir",
    "clear_cache",
    "list_profiles",
    "load_profile",
    "overlay_path",
    "profile_ids",
    "profile_search_path",
    "save_latency_overlay",
    "tinynas_home",
    "validate_profile_file",
]
