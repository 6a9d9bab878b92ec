"""Finds, reads and caches hardware profiles: built-in, user folders, explicit paths, overlays.

Every stage that needs a board calls ``load_profile``; this module decides which
file that is, validates it through ``tinynas.hardware.schema`` and lays a
calibration overlay (``$TINYNAS_HOME/overlays/<id>.toml``) over its latency model.

Where a profile id is looked up, first match wins:

1. each folder of ``TINYNAS_PROFILE_PATH`` (``os.pathsep``-separated), in order;
2. ``$TINYNAS_HOME/profiles`` (``TINYNAS_HOME`` defaults to ``~/.config/tinynas``);
3. the built-in ``hardware_profiles/`` folder.

A file is named ``<id>.toml`` and its ``id`` must match. The file schema:

.. code-block:: toml

    id = "nucleo-l4r5zi"            # lower case, digits, '-', '_', '.'; equals the file name
    base = "nucleo-l432kc"          # optional: a profile id or .toml path whose values this file
                                    # keeps where it sets none (tables key by key; not id, name, notes)
    name = "ST NUCLEO-L4R5ZI"
    kind = "mcu"                    # mcu | mobile | gpu
    core = "cortex-m4f"
    clock_hz = 120_000_000          # integers with the unit in the name: never "120MHz"
    fpu = true                      # optional, default false
    simd = "dsp"                    # optional
    latency_target_ms = 200.0       # optional; absent: no latency limit
    notes = "..."                   # optional

    [memory]
    sram_bytes = 655_360
    flash_bytes = 2_097_152
    reserved_sram_bytes = 65_536    # firmware, stacks, heap, serial buffers
    runtime_flash_bytes = 163_840   # TFLM + kernels + application code

    [runtime]
    name = "tflm"                   # tflm (mcu) | litert (mobile, gpu)
    kernel_library = "cmsis-nn"     # reference | cmsis-nn | esp-nn | xnnpack | gpu-delegate | ...

    [latency]                       # MicroNets-style linear model, see profile.LatencyModel
    source = "where the figures come from"
    op_overhead_cycles = 3000.0
    invoke_overhead_cycles = 10000.0        # optional, default 0
    [latency.cycles_per_mac]                # TFLite builtin op names + 'default' (required)
    CONV_2D = 5.0
    default = 6.0
    [latency.cycles_per_element]            # ops without MACs, per output element; 'default' required
    default = 8.0

    [serial]                        # required for mcu
    baud = 115200
    usb_ids = ["0483:374b"]         # optional, "vid:pid" hex
    reset = "none"                  # none | dtr | rts
    boot_wait_s = 2.0

    [ecosystem]
    default_template = "cmake-cortexm"   # a firmware template id ("none" allowed for mobile/gpu)
    platformio_board = "nucleo_l4r5zi"   # each optional, but the default template's own id is required
    platformio_platform = "ststm32"
    arduino_fqbn = "..."
    zephyr_board = "nucleo_l4r5zi"
    espidf_target = ""
    pico_board = ""
    cmake_cpu = "cortex-m4"

    [extra]                          # optional, free-form: copied into profile.extra

An overlay file holds ``profile_id = "<id>"``, a ``[latency]`` table with any
subset of the keys above (op tables are merged key by key) and an optional
free-form ``[calibration]`` table (fit statistics).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
from pathlib import Path
from typing import Any

from tinynas.errors import ProfileError
from tinynas.hardware.profile import KINDS, HardwareProfile
from tinynas.hardware.schema import (BUILTIN_TEMPLATES, ProfileValidationError, nearest, parse_overlay,
                                     parse_profile)
from tinynas.resources import data_dir

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

log = logging.getLogger(__name__)

PROFILE_PATH_ENV = "TINYNAS_PROFILE_PATH"
HOME_ENV = "TINYNAS_HOME"

# (resolved path) -> (file bytes, parsed value): reading a few KB is cheap, parsing and
# validating is not, and comparing the bytes (not the mtime) never serves a stale profile.
_PROFILE_CACHE: dict[str, tuple[bytes, HardwareProfile]] = {}
_ANNOUNCED: set[str] = set()  # user files already logged as overriding a built-in
_OVERLAY_CACHE: dict[str, tuple[bytes, dict[str, Any]]] = {}


def tinynas_home() -> Path:
    """``$TINYNAS_HOME`` or ``~/.config/tinynas``: user profiles, overlays and caches live here."""
    value = os.environ.get(HOME_ENV, "").strip()
    return Path(value).expanduser() if value else Path.home() / ".config" / "tinynas"


def builtin_profile_dir() -> Path:
    """The ``hardware_profiles/`` folder shipped with tinynas (checkout or wheel)."""
    try:
        return data_dir("hardware_profiles")
    except FileNotFoundError as exc:
        raise ProfileError(f"{exc}; reinstall tinynas") from None


def profile_search_path() -> list[tuple[str, Path]]:
    """``(origin, folder)`` pairs in lookup order; origin is the env variable or 'builtin'."""
    return [(origin, Path(folder)) for origin, folder in _search_dirs()]


_SEARCH_CACHE: dict[tuple[str, str, str], tuple[tuple[str, str], ...]] = {}


def _search_dirs() -> tuple[tuple[str, str], ...]:
    # Plain strings, memoized per environment: load_profile runs often and pathlib is slow.
    key = (os.environ.get(PROFILE_PATH_ENV, ""), os.environ.get(HOME_ENV, ""), os.environ.get("HOME", ""))
    cached = _SEARCH_CACHE.get(key)
    if cached is None:
        folders = [(PROFILE_PATH_ENV, os.path.expanduser(part.strip()))
                   for part in key[0].split(os.pathsep) if part.strip()]
        folders.append((f"{HOME_ENV}/profiles", str(tinynas_home() / "profiles")))
        folders.append(("builtin", str(builtin_profile_dir())))
        cached = _SEARCH_CACHE[key] = tuple(folders)
    return cached


def _template_ids() -> tuple[str, ...]:
    # New firmware templates are an extension point: any folder with a manifest is a valid default_template.
    try:
        extra = sorted(p.name for p in data_dir("firmware_templates").iterdir() if (p / "manifest.toml").is_file())
    except (FileNotFoundError, OSError):
        extra = []
    return tuple(dict.fromkeys([*BUILTIN_TEMPLATES, *extra]))


def _read_bytes(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except FileNotFoundError:
        raise ProfileError(f"{path}: no such {what} file") from None
    except OSError as exc:
        raise ProfileError(f"{path}: cannot read this {what} file: {exc}") from None


def _parse_toml(raw: bytes, path: str, what: str) -> dict[str, Any]:
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ProfileError(f"{path}: this {what} file is not UTF-8 text: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"{path}: not valid TOML: {exc}; fix the syntax (quote strings, key = value)") from None


def validate_profile_file(path: str | os.PathLike[str]) -> HardwareProfile:
    """Read and validate one profile file (no overlay); raises ProfileError naming file and field."""
    text = os.path.expanduser(os.fspath(path))
    if not text.endswith(".toml"):
        raise ProfileError(f"{text}: a hardware profile is a .toml file named <id>.toml")
    if not os.path.isfile(text):
        raise ProfileError(f"{text}: no such profile file")
    key = os.path.abspath(text)
    raw = _read_bytes(text, "profile")
    data, raws = _with_base(_parse_toml(raw, text, "profile"), source=text, chain=(key,))
    read = b"\0".join((raw, *raws))  # a based profile is stale when its base file changed too
    cached = _PROFILE_CACHE.get(key)
    if cached and cached[0] == read:
        return cached[1]
    stem = os.path.basename(text)[: -len(".toml")]
    try:
        profile = parse_profile(data, source=text, file_stem=stem, templates=_template_ids())
    except ProfileValidationError as exc:
        named = [f"{t}.{k}" for t, keys in _BOARD_KEYS.items() for k in keys]
        if raws and any(any(name in p for name in named) for p in exc.problems):
            raise ProfileValidationError(text, [*exc.problems, (
                f"the base's {', '.join(named)} name its own board, so a profile of another id does not keep "
                "them: state this board's")]) from None
        raise
    _PROFILE_CACHE[key] = (read, profile)
    return profile


# What a profile never takes from its base: who it is, and the notes about that other board.
_NOT_INHERITED = ("id", "name", "notes")
# What names the base's board rather than its chip or core family: kept only by a file of the same id
# (one that replaces the base); another board states its own, or the firmware targets the base's.
_BOARD_KEYS = {"ecosystem": ("platformio_board", "arduino_fqbn", "zephyr_board", "pico_board"),
               "serial": ("usb_ids",)}


def _with_base(data: dict[str, Any], *, source: str,
               chain: tuple[str, ...]) -> tuple[dict[str, Any], tuple[bytes, ...]]:
    """``data`` laid over its ``base`` profile's (and that one's base's), with the base files' bytes.

    Why: a board of a built-in's family (another clock, more SRAM, another firmware
    reserve) needs only what differs, not a copy of 80 lines of fitted latency tables
    that then stop following the built-in's. Tables merge key by key; the latency
    source says where the figures came from. ``chain`` holds the files already read,
    so a loop is refused and a user file may extend the built-in it replaces.
    """
    base = data.get("base")
    if base is None:
        return data, ()
    if not isinstance(base, str) or not base.strip():
        raise ProfileError(f"{source}: base must be a profile id or a path to a .toml file, got {base!r}")
    if _looks_like_path(base):
        path = os.path.join(os.path.dirname(os.path.abspath(source)), os.path.expanduser(base))
        if not os.path.isfile(path):
            raise ProfileError(f"{source}: base {base!r}: no such profile file ({path})")
    else:
        try:  # a file may extend the profile of its own id that it replaces on the search path
            path = _find_profile_file(base, skip=chain[-1:])
        except ProfileError as exc:
            raise ProfileError(f"{source}: base {base!r}: {exc}") from None
    path = os.path.abspath(path)
    if path in chain:
        raise ProfileError(f"{source}: base {base!r} leads back to {path}; profiles cannot extend each other "
                           "in a loop")
    raw = _read_bytes(path, "base profile")
    parent, raws = _with_base(_parse_toml(raw, path, "base profile"), source=path, chain=(*chain, path))
    other_board = data.get("id") != parent.get("id")
    parent = {k: v for k, v in parent.items() if k not in _NOT_INHERITED}
    if other_board:  # the base's board names would build, flash and look for that other board
        for table, keys in _BOARD_KEYS.items():
            if isinstance(parent.get(table), dict):
                parent[table] = {k: v for k, v in parent[table].items() if k not in keys}
    # A region is a part of the base's memory (SRAM1 of SRAM1+2, flash after its boot loader): a
    # file that states another memory size describes another part, whose region it states itself.
    memory, own = dict(parent.get("memory", {})), data.get("memory", {})
    for total, region in (("sram_bytes", "ram_region_bytes"), ("flash_bytes", "flash_region_bytes")):
        if isinstance(own, dict) and total in own:
            memory.pop(region, None)
    if "memory" in parent:
        parent["memory"] = memory
    latency, own_latency = parent.get("latency"), data.get("latency")
    if isinstance(latency, dict) and "source" in latency and not (isinstance(own_latency, dict)
                                                                 and "source" in own_latency):
        parent["latency"] = {**latency, "source": f"{latency['source']} (from base profile {base})"}
    return _merged(parent, data), (raw, *raws)


def inherited_keys(path: str | os.PathLike[str]) -> list[str]:
    """The keys a profile file takes from its base, dotted (``memory.reserved_sram_bytes``), a
    table it does not have at all by its name (``latency``); empty for a file without a base."""
    text = os.path.expanduser(os.fspath(path))
    own = _parse_toml(_read_bytes(text, "profile"), text, "profile")
    merged, _ = _with_base(own, source=text, chain=(os.path.abspath(text),))
    return _absent(merged, own)


def _absent(merged: dict[str, Any], own: dict[str, Any], prefix: str = "") -> list[str]:
    out: list[str] = []
    for key, value in merged.items():
        if key not in own:
            out.append(prefix + key)
        elif isinstance(value, dict) and isinstance(own[key], dict):
            out += _absent(value, own[key], f"{prefix}{key}.")
    return out


def _merged(under: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(under)
    for key, value in over.items():
        below = out.get(key)
        out[key] = _merged(below, value) if isinstance(below, dict) and isinstance(value, dict) else value
    return out


def _looks_like_path(value: str) -> bool:
    return value.endswith(".toml") or "/" in value or os.sep in value


def _find_profile_file(profile_id: str, *, skip: tuple[str, ...] = ()) -> str:
    """The first ``<id>.toml`` on the search path; files in ``skip`` (absolute paths) are passed over."""
    found: list[tuple[str, str]] = []
    for origin, folder in _search_dirs():
        candidate = os.path.join(folder, profile_id + ".toml")
        if os.path.isfile(candidate) and os.path.abspath(candidate) not in skip:
            found.append((origin, candidate))
    if not found:
        known = profile_ids()
        raise ProfileError(
            f"unknown hardware profile {profile_id!r}{nearest(profile_id, known) or '.'} Known: {', '.join(known)}. "
            f"Add your own as <id>.toml in {tinynas_home() / 'profiles'} or a folder on ${PROFILE_PATH_ENV}, "
            "or pass a path to a .toml file"
        )
    origin, path = found[0]
    if origin != "builtin" and any(o == "builtin" for o, _ in found[1:]) and path not in _ANNOUNCED:
        _ANNOUNCED.add(path)
        log.info("user profile %s (from %s) overrides the built-in profile %r", path, origin, profile_id)
    return path


def load_profile(id_or_path: str | os.PathLike[str] | HardwareProfile, *, overlays: bool = True) -> HardwareProfile:
    """The profile for a built-in or user id, or for a path to a ``.toml`` file.

    With ``overlays`` (the default) a calibration overlay saved by
    ``save_latency_overlay`` replaces the matching latency coefficients, and
    ``profile.extra["latency_overlay"]`` names its file. Raises ProfileError
    for an unknown id or an invalid file (naming file, field and fix).
    """
    if isinstance(id_or_path, HardwareProfile):
        return id_or_path
    if isinstance(id_or_path, os.PathLike) or _looks_like_path(str(id_or_path)):
        profile = validate_profile_file(id_or_path)
    else:
        profile = validate_profile_file(_find_profile_file(str(id_or_path)))
    if overlays:
        profile = _apply_overlay(profile)
    # A fresh `extra` per call: callers may annotate it without touching the cache.
    return dataclasses.replace(profile, extra=dict(profile.extra))


def profile_ids() -> list[str]:
    """Every profile id on the search path (file names only, nothing parsed), sorted."""
    ids: set[str] = set()
    for _, folder in _search_dirs():
        if os.path.isdir(folder):
            ids.update(name[:-5] for name in os.listdir(folder) if name.endswith(".toml"))
    return sorted(ids)


def list_profiles(*, kind: str | None = None, overlays: bool = True, strict: bool = False) -> list[HardwareProfile]:
    """All profiles on the search path (user files shadow built-ins), sorted by id.

    An invalid user file is logged and skipped, unless ``strict``, then it raises.
    """
    if kind is not None and kind not in KINDS:
        raise ProfileError(f"unknown profile kind {kind!r}{nearest(kind, list(KINDS))}; use one of {', '.join(KINDS)}")
    profiles = []
    for profile_id in profile_ids():
        try:
            profile = load_profile(profile_id, overlays=overlays)
        except ProfileError as exc:
            if strict:
                raise
            log.warning("skipping profile %r: %s", profile_id, exc)
            continue
        if kind is None or profile.kind == kind:
            profiles.append(profile)
    return profiles


# -- calibration overlays -----------------------------------------------------------------
def overlay_path(profile_id: str, *, home: Path | None = None) -> Path:
    """Where the calibration overlay of ``profile_id`` lives (it may not exist)."""
    return (home if home is not None else tinynas_home()) / "overlays" / f"{profile_id}.toml"


def _overlay_file(profile_id: str) -> str:
    home = os.environ.get(HOME_ENV, "").strip()
    base = os.path.expanduser(home) if home else os.path.join(os.path.expanduser("~"), ".config", "tinynas")
    return os.path.join(base, "overlays", profile_id + ".toml")


def _apply_overlay(profile: HardwareProfile) -> HardwareProfile:
    path = _overlay_file(profile.id)
    if not os.path.isfile(path):
        return profile
    key = os.path.abspath(path)
    raw = _read_bytes(path, "latency overlay")
    cached = _OVERLAY_CACHE.get(key)
    if cached and cached[0] == raw:
        data = cached[1]
    else:
        data = _parse_toml(raw, path, "latency overlay")
        _OVERLAY_CACHE[key] = (raw, data)
    latency = parse_overlay(data, source=str(path), profile=profile)
    extra = dict(profile.extra)
    extra["latency_overlay"] = path
    if isinstance(data.get("calibration"), dict):
        extra["calibration"] = dict(data["calibration"])
    log.debug("profile %r: latency overlay %s applied", profile.id, path)
    return dataclasses.replace(profile, latency=latency, extra=extra)


def clear_cache() -> None:
    """Forget parsed files (tests; a changed file is re-parsed anyway)."""
    _PROFILE_CACHE.clear()
    _OVERLAY_CACHE.clear()
    _SEARCH_CACHE.clear()
    _ANNOUNCED.clear()
