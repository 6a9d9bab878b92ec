"""The profile TOML schema: turns one parsed file into a validated ``HardwareProfile``.

The loader (``tinynas.hardware.loader``) finds and caches files; this module only
checks fields. Every problem names the file, the dotted field and what was
expected, and all problems of a file are reported together. The schema itself
is documented in ``docs/profiles.md``.
"""

from __future__ import annotations

import difflib
import math
import re
from typing import Any, Callable, Mapping

from tinynas.errors import ProfileError
from tinynas.hardware.profile import (KINDS, MAX_RUNTIME_THREADS, Ecosystem, HardwareProfile, LatencyModel,
                                      SerialSettings)

RUNTIMES = ("tflm", "litert")
KERNEL_LIBRARIES = (
    "reference", "cmsis-nn", "esp-nn", "arc-mli", "xtensa-hifi", "ethos-u", "xnnpack", "gpu-delegate",
)
# Template ids the firmware generator ships; a folder added under firmware_templates/ is accepted too.
BUILTIN_TEMPLATES = ("arduino", "platformio", "zephyr", "espidf", "pico", "cmake-cortexm")
NO_TEMPLATE = "none"
RESETS = ("none", "dtr", "rts")
# Which ecosystem field a default template needs, so `tinynas firmware` never gets an empty board id.
TEMPLATE_NEEDS = {
    "arduino": "arduino_fqbn",
    "platformio": "platformio_board",
    "zephyr": "zephyr_board",
    "espidf": "espidf_target",
    "pico": "pico_board",
    "cmake-cortexm": "cmake_cpu",
}

_ID_RE = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
# What each ecosystem's tool accepts as a board id (the tools' own docs); nothing a shell would act on.
ECOSYSTEM_PATTERNS: dict[str, tuple[str, str]] = {
    "arduino_fqbn": (r"^[A-Za-z0-9_.-]+:[A-Za-z0-9_.-]+:[A-Za-z0-9_.-]+(:[A-Za-z0-9_.-]+=[A-Za-z0-9_.-]+"
                     r"(,[A-Za-z0-9_.-]+=[A-Za-z0-9_.-]+)*)?$",
                     "vendor:arch:board[:option=value,...] like 'arduino:mbed_nano:nano33ble'"),
    "platformio_board": (r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", "a PlatformIO board id like 'nucleo_l432kc'"),
    "platformio_platform": (r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", "a PlatformIO platform id like 'ststm32'"),
    "zephyr_board": (r"^[A-Za-z0-9][A-Za-z0-9_.-]*(@[A-Za-z0-9_.-]+)?(/[A-Za-z0-9_.-]+){0,3}$",
                     "a Zephyr board name with optional qualifiers like 'nrf5340dk/nrf5340/cpuapp'"),
    "espidf_target": (r"^esp32[a-z0-9]*$", "an ESP-IDF target like 'esp32s3'"),
    "pico_board": (r"^[A-Za-z0-9][A-Za-z0-9_-]*$", "a Pico SDK board name like 'pico' or 'pico2_w'"),
    "cmake_cpu": (r"^cortex-m[0-9]+(plus|\+)?(\+[a-z]+)*$", "a GCC -mcpu Cortex-M name like 'cortex-m4'"),
}
# Flash and RAM origins a linker script may use: below 4 GiB, word-aligned.
_ADDRESS_LIMIT = 1 << 32
# Generous ceilings so a typo (1e30, an extra zero group) is caught; real parts sit far below them.
_MAX_BYTES = 1 << 50
_MAX_CLOCK_HZ = 100 * 10**9
_MAX_NUMBER = 1e12
_OP_RE = re.compile(r"^[A-Z][A-Z0-9_]*$")
_USB_RE = re.compile(r"^[0-9a-fA-F]{4}:[0-9a-fA-F]{4}$")
_UNIT_RE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]+)\s*$")
_UNITS = {
    "b": 1, "k": 1024, "kb": 1024, "kib": 1024, "m": 1024**2, "mb": 1024**2, "mib": 1024**2,
    "g": 1024**3, "gb": 1024**3, "gib": 1024**3,
    "hz": 1, "khz": 10**3, "mhz": 10**6, "ghz": 10**9,
}

# The complete key set: section -> {key: required?}. "" is the top level.
SCHEMA: dict[str, dict[str, bool]] = {
    "": {"id": True, "name": True, "kind": True, "core": True, "clock_hz": True, "fpu": False,
         "simd": False, "notes": False, "latency_target_ms": False, "base": False},
    "memory": {"sram_bytes": True, "flash_bytes": True, "reserved_sram_bytes": True,
               "runtime_flash_bytes": True, "flash_origin": False, "flash_region_bytes": False,
               "ram_origin": False, "ram_region_bytes": False},
    "runtime": {"name": True, "kernel_library": True},
    "latency": {"source": True, "op_overhead_cycles": True, "invoke_overhead_cycles": False,
                "cycles_per_mac": True, "cycles_per_element": True, "fast_path_channels": False,
                "slow_path_factor": False, "flash_wait_states": False, "cycles_per_weight_byte": False},
    "serial": {"baud": True, "usb_ids": False, "reset": False, "boot_wait_s": False},
    "ecosystem": {"default_template": True, "platformio_board": False, "platformio_platform": False,
                  "arduino_fqbn": False, "zephyr_board": False, "espidf_target": False,
                  "pico_board": False, "cmake_cpu": False},
    "extra": {},  # free-form: copied into profile.extra
}
_SECTIONS = [s for s in SCHEMA if s]
_ALL_PATHS = [f"{s}.{k}" if s else k for s, keys in SCHEMA.items() for k in keys] + _SECTIONS


class ProfileValidationError(ProfileError):
    """A profile file with one or more invalid fields; ``problems`` lists them one per entry."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = list(problems)
        if len(problems) == 1:
            text = f"{source}: {problems[0]}"
        else:
            text = f"{source}: {len(problems)} problems\n" + "\n".join(f"  {source}: {p}" for p in problems)
        super().__init__(text)


def unit_hint(value: Any, *, unit: str) -> str:
    """For a string like ``"256K"`` or ``"64MHz"``, the integer to write instead (else '')."""
    if not isinstance(value, str):
        return ""
    match = _UNIT_RE.match(value)
    if not match or match.group(2).lower() not in _UNITS:
        return ""
    number = float(match.group(1)) * _UNITS[match.group(2).lower()]
    return f"; write the plain number of {unit}, e.g. {int(number):_}"


def nearest(name: str, candidates: list[str]) -> str:
    """' (did you mean X?)' for the closest candidate, or ''."""
    match = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
    return f"; did you mean {match[0]!r}?" if match else ""


class _Checker:
    """Collects the problems of one file while reading typed fields out of it."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        self.data = data
        self.problems: list[str] = []

    def fail(self, path: str, message: str) -> None:
        problem = f"{path} {message}"
        if problem not in self.problems:
            self.problems.append(problem)

    def section(self, name: str) -> Mapping[str, Any]:
        value = self.data.get(name, {})
        if not isinstance(value, Mapping):
            self.fail(name, f"must be a table ([{name}]), got {_show(value)}")
            return {}
        return value

    def get(self, section: str, key: str, check: Callable[[str, Any], Any], default: Any = None) -> Any:
        table = self.data if not section else self.section(section)
        path = f"{section}.{key}" if section else key
        if key not in table:
            if SCHEMA[section].get(key, False) and (not section or section in self.data):
                where = f" in [{section}]" if section else " at the top of the file"
                self.fail(path, f"is missing; add it{where}")
            return default
        try:
            return check(path, table[key])
        except _Bad as bad:
            self.fail(path, str(bad))
            return default

    def unknown_keys(self) -> None:
        for key, value in self.data.items():
            if key in SCHEMA and key:
                if isinstance(value, Mapping) and key != "extra":
                    for sub in value:
                        if sub not in SCHEMA[key]:
                            here = list(SCHEMA[key])
                            hint = nearest(sub, here) or nearest(sub, _ALL_PATHS)
                            self.fail(f"{key}.{sub}", f"is not a known key of [{key}]{hint or _list(here)}")
            elif key not in SCHEMA[""]:
                hint = nearest(key, _ALL_PATHS)
                self.fail(key, f"is not a known key{hint or '; known top-level keys: ' + ', '.join(SCHEMA[''])}")


class _Bad(Exception):
    pass


def _show(value: Any) -> str:
    return repr(value) if not isinstance(value, Mapping) else "a table"


def _list(keys: list[str]) -> str:
    return "; known keys: " + ", ".join(keys)


# -- field checks: each returns the typed value or raises _Bad(expected...) ----------------
def _str(path: str, value: Any) -> str:
    if not isinstance(value, str):
        raise _Bad(f"must be a string, got {_show(value)}")
    return value


def _nonempty(path: str, value: Any) -> str:
    if not _str(path, value).strip():
        raise _Bad("must not be empty")
    return value


def _bool(path: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise _Bad(f"must be true or false, got {_show(value)}")
    return value


def _int(unit: str, *, allow_zero: bool = False, maximum: int = _MAX_BYTES) -> Callable[[str, Any], int]:
    def check(path: str, value: Any) -> int:
        kind = "a non-negative" if allow_zero else "a positive"
        if isinstance(value, bool) or not isinstance(value, int):
            raise _Bad(f"must be {kind} integer ({unit}), got {_show(value)}{unit_hint(value, unit=unit)}")
        if value < 0 or (value == 0 and not allow_zero):
            raise _Bad(f"must be {kind} integer ({unit}), got {value}")
        if value > maximum:
            raise _Bad(f"must be at most {maximum:_} ({unit}), got {value:_}; check the number of digits")
        return value

    return check


def _number(unit: str, *, allow_zero: bool = True, maximum: float = _MAX_NUMBER) -> Callable[[str, Any], float]:
    def check(path: str, value: Any) -> float:
        kind = "a non-negative" if allow_zero else "a positive"
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _Bad(f"must be {kind} number ({unit}), got {_show(value)}{unit_hint(value, unit=unit)}")
        # inf and nan are valid TOML floats; every later sum and report would carry them silently.
        if not math.isfinite(value):
            raise _Bad(f"must be a finite {kind[2:]} number ({unit}), got {value}")
        if value < 0 or (value == 0 and not allow_zero):
            raise _Bad(f"must be {kind} number ({unit}), got {value}")
        if value > maximum:
            raise _Bad(f"must be at most {maximum:g} ({unit}), got {value:g}; check the number of digits")
        return float(value)

    return check


def _text(path: str, value: Any) -> str:
    """A one-line, non-empty text: names reach comments and strings of generated sources."""
    text = _nonempty(path, value)
    bad = sorted({repr(ch) for ch in text if ord(ch) < 0x20 or ord(ch) == 0x7F})
    if bad:
        raise _Bad(f"must be one line of printable text, got control characters {', '.join(bad)}; "
                   "remove the line breaks")
    return text


def _ecosystem_id(key: str) -> Callable[[str, Any], str]:
    pattern, example = ECOSYSTEM_PATTERNS[key]
    regex = re.compile(pattern)

    def check(path: str, value: Any) -> str:
        text = _str(path, value)
        if text and not regex.match(text):
            raise _Bad(f"must be {example} (pattern {pattern}), got {text!r}; "
                       "board ids reach build commands, so only these characters are allowed")
        return text

    return check


def _address(path: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Bad(f"must be an integer address like 0x08000000, got {_show(value)}")
    if not 0 <= value < _ADDRESS_LIMIT or value % 4:
        raise _Bad(f"must be a word-aligned 32-bit address like 0x08000000, got {value:#x}")
    return value


def _choice(options: tuple[str, ...]) -> Callable[[str, Any], str]:
    def check(path: str, value: Any) -> str:
        if not isinstance(value, str) or value not in options:
            hint = nearest(value, list(options)) if isinstance(value, str) else ""
            raise _Bad(f"must be one of {', '.join(options)}, got {_show(value)}{hint}")
        return value

    return check


def _profile_id(path: str, value: Any) -> str:
    if not isinstance(value, str) or not _ID_RE.match(value):
        raise _Bad(f"must be lower-case letters, digits, '.', '-' or '_' (like 'nucleo-l4r5zi'), got {_show(value)}")
    return value


def _usb_ids(path: str, value: Any) -> tuple[tuple[int, int], ...]:
    if not isinstance(value, list):
        raise _Bad(f"must be a list of \"vid:pid\" hex strings like [\"0483:374b\"], got {_show(value)}")
    pairs = []
    for item in value:
        if not isinstance(item, str) or not _USB_RE.match(item):
            raise _Bad(f"entries must be \"vid:pid\" with 4 hex digits each, like \"0483:374b\", got {_show(item)}")
        vid, pid = item.split(":")
        pairs.append((int(vid, 16), int(pid, 16)))
    return tuple(pairs)


# The part's fast path and flash (LatencyModel): SIMD multiples tinynas.cost.latency counts, and sane ranges.
FAST_PATH_CHANNELS = (1, 4, 8, 16)
_MAX_WAIT_STATES = 15  # the widest flash latency field of common parts (STM32G4/H7 FLASH_ACR.LATENCY: 4 bits)
_MAX_SLOW_PATH_FACTOR = 100.0
_MAX_CYCLES_PER_BYTE = 1000.0


def _fast_path_channels(path: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value not in FAST_PATH_CHANNELS:
        raise _Bad(f"must be one of {', '.join(map(str, FAST_PATH_CHANNELS))} (the channel multiple the kernel "
                   f"library's SIMD path needs: 4 for CMSIS-NN on a DSP core, 8 for ESP-NN on ESP32-S3, 1 for "
                   f"none), got {_show(value)}")
    return value


def _slow_path_factor(path: str, value: Any) -> float:
    number = _number("x a fast-path MAC", allow_zero=False, maximum=_MAX_SLOW_PATH_FACTOR)(path, value)
    if number < 1.0:
        raise _Bad(f"must be at least 1 (a MAC off the fast path never costs less), got {number:g}")
    return number


def _latency_properties(checker: _Checker, section: Mapping[str, Any], base: LatencyModel | None) -> dict[str, Any]:
    """The optional part properties of [latency]; absent keys keep ``base``'s (or the defaults)."""
    checks: dict[str, Callable[[str, Any], Any]] = {
        "fast_path_channels": _fast_path_channels,
        "slow_path_factor": _slow_path_factor,
        "flash_wait_states": _int("wait states", allow_zero=True, maximum=_MAX_WAIT_STATES),
        "cycles_per_weight_byte": _number("cycles per byte", maximum=_MAX_CYCLES_PER_BYTE),
    }
    out: dict[str, Any] = {}
    for key, check in checks.items():
        if key not in section:
            if base is not None:
                out[key] = getattr(base, key)
            continue
        try:
            out[key] = check(f"latency.{key}", section[key])
        except _Bad as bad:
            checker.fail(f"latency.{key}", str(bad))
            if base is not None:
                out[key] = getattr(base, key)
    return out


def check_latency(checker: _Checker, *, partial: bool = False, base: LatencyModel | None = None) -> LatencyModel | None:
    """Read ``[latency]``; with ``partial`` (overlays) missing keys fall back to ``base``."""
    section = checker.section("latency")
    if partial and base is not None:
        merged_mac = dict(base.cycles_per_mac)
        merged_elem = dict(base.cycles_per_element)
        mac = section.get("cycles_per_mac", {})
        elem = section.get("cycles_per_element", {})
        mac_checked = _checked_partial_table(checker, "latency.cycles_per_mac", mac, allow_zero=True)  # a fit may give 0
        elem_checked = _checked_partial_table(checker, "latency.cycles_per_element", elem, allow_zero=True)
        merged_mac.update(mac_checked)
        merged_elem.update(elem_checked)
        op = _opt(checker, section, "latency.op_overhead_cycles", base.op_overhead_cycles)
        inv = _opt(checker, section, "latency.invoke_overhead_cycles", base.invoke_overhead_cycles)
        source = section.get("source", base.source)
        if not isinstance(source, str):
            checker.fail("latency.source", f"must be a string, got {_show(source)}")
            source = base.source
        return LatencyModel(cycles_per_mac=merged_mac, cycles_per_element=merged_elem,
                            op_overhead_cycles=op, invoke_overhead_cycles=inv, source=source,
                            **_latency_properties(checker, section, base))
    tables: dict[str, dict[str, float] | None] = {}
    for key, allow_zero in (("cycles_per_mac", False), ("cycles_per_element", True)):
        path = f"latency.{key}"
        if key not in section:
            if "latency" in checker.data:
                checker.fail(path, f"is missing; add a [{path}] table with at least a 'default' entry")
            tables[key] = None
            continue
        before = len(checker.problems)
        table = _checked_partial_table(checker, path, section[key], allow_zero=allow_zero)
        if isinstance(section[key], Mapping) and "default" not in section[key]:
            checker.fail(path, "needs a 'default' entry (cycles for ops not listed)")
        tables[key] = table if len(checker.problems) == before else None
    op = checker.get("latency", "op_overhead_cycles", _number("cycles"))
    inv = checker.get("latency", "invoke_overhead_cycles", _number("cycles"), 0.0)
    source = checker.get("latency", "source", _nonempty)
    before = len(checker.problems)
    properties = _latency_properties(checker, section, None)
    mac, elem = tables["cycles_per_mac"], tables["cycles_per_element"]
    if mac is None or elem is None or op is None or inv is None or source is None or len(checker.problems) > before:
        return None
    return LatencyModel(cycles_per_mac=mac, cycles_per_element=elem, op_overhead_cycles=op,
                        invoke_overhead_cycles=inv, source=source, **properties)


def _checked_partial_table(checker: _Checker, path: str, value: Any, *, allow_zero: bool) -> dict[str, float]:
    if not isinstance(value, Mapping):
        checker.fail(path, f"must be a table of TFLite op name = number, got {_show(value)}")
        return {}
    out = {}
    for op, cycles in value.items():
        if op != "default" and not _OP_RE.match(op):
            checker.fail(f"{path}.{op}", "is not a TFLite builtin op name like CONV_2D "
                                         "(or the variant CONV_2D_1X1, or 'default')")
            continue
        try:
            out[op] = _number("cycles per MAC" if "mac" in path else "cycles per element",
                              allow_zero=allow_zero)(path, cycles)
        except _Bad as bad:
            checker.fail(f"{path}.{op}", str(bad))
    return out


def _opt(checker: _Checker, section: Mapping[str, Any], path: str, default: float) -> float:
    key = path.rsplit(".", 1)[1]
    if key not in section:
        return default
    try:
        return _number("cycles")(path, section[key])
    except _Bad as bad:
        checker.fail(path, str(bad))
        return default


def parse_profile(data: Mapping[str, Any], *, source: str, file_stem: str | None = None,
                  templates: tuple[str, ...] = BUILTIN_TEMPLATES) -> HardwareProfile:
    """Validate one parsed profile file; raises ProfileValidationError listing every problem.

    ``file_stem``, when given, must equal the profile's ``id`` (profiles are found by file name).
    ``templates`` are the firmware template ids a ``default_template`` may name.
    """
    c = _Checker(data)
    c.unknown_keys()
    for section in ("memory", "runtime", "latency", "ecosystem"):
        if section not in data:
            c.fail(section, f"is missing; add the [{section}] table (see docs/profiles.md)")
    pid = c.get("", "id", _profile_id)
    if pid is not None and file_stem is not None and pid != file_stem:
        c.fail("id", f"is {pid!r} but the file is named {file_stem}.toml; a profile is found by its file "
                     f"name, so rename the file to {pid}.toml or set id = {file_stem!r}")
    name = c.get("", "name", _text)
    kind = c.get("", "kind", _choice(KINDS))
    core = c.get("", "core", _nonempty)
    clock_hz = c.get("", "clock_hz", _int("Hz", maximum=_MAX_CLOCK_HZ))
    fpu = c.get("", "fpu", _bool, False)
    simd = c.get("", "simd", _str, "")
    notes = c.get("", "notes", _str, "")
    base = c.get("", "base", _str, "")
    target = c.get("", "latency_target_ms", _number("ms", allow_zero=False))

    sram = c.get("memory", "sram_bytes", _int("bytes"))
    flash = c.get("memory", "flash_bytes", _int("bytes"))
    reserved = c.get("memory", "reserved_sram_bytes", _int("bytes", allow_zero=True))
    runtime_flash = c.get("memory", "runtime_flash_bytes", _int("bytes", allow_zero=True))
    if None not in (sram, reserved) and reserved >= sram:
        c.fail("memory.reserved_sram_bytes", f"({reserved}) must be less than memory.sram_bytes ({sram}), "
                                             "or nothing is left for the tensor arena")
    if None not in (flash, runtime_flash) and runtime_flash >= flash:
        c.fail("memory.runtime_flash_bytes", f"({runtime_flash}) must be less than memory.flash_bytes "
                                             f"({flash}), or nothing is left for the model")
    flash_origin = c.get("memory", "flash_origin", _address)
    ram_origin = c.get("memory", "ram_origin", _address)
    ram_region = c.get("memory", "ram_region_bytes", _int("bytes"))
    flash_region = c.get("memory", "flash_region_bytes", _int("bytes"))
    if None not in (flash, flash_region) and flash_region > flash:
        c.fail("memory.flash_region_bytes", f"({flash_region}) must not exceed memory.flash_bytes ({flash}); it "
                                            "is the flash the application may use after a boot loader")
    if None not in (sram, ram_region) and ram_region > sram:
        c.fail("memory.ram_region_bytes", f"({ram_region}) must not exceed memory.sram_bytes ({sram}); it is "
                                          "the one RAM block the linker script places data and the arena in")

    runtime = c.get("runtime", "name", _choice(RUNTIMES))
    kernels = c.get("runtime", "kernel_library", _choice(KERNEL_LIBRARIES))
    latency = check_latency(c)

    is_mcu = kind == "mcu"
    if is_mcu and runtime not in (None, "tflm"):
        c.fail("runtime.name", f"must be 'tflm' for kind 'mcu', got {runtime!r}")
    if kind in ("mobile", "gpu") and runtime not in (None, "litert"):
        c.fail("runtime.name", f"must be 'litert' for kind {kind!r}, got {runtime!r}")

    serial = SerialSettings()
    if "serial" in data or is_mcu:
        if "serial" not in data:
            c.fail("serial", "is missing; a microcontroller profile needs [serial] with at least baud")
        else:
            defaults = SerialSettings()
            serial = SerialSettings(
                baud=c.get("serial", "baud", _int("baud", maximum=100_000_000), defaults.baud),
                usb_ids=c.get("serial", "usb_ids", _usb_ids, ()),
                reset=c.get("serial", "reset", _choice(RESETS), defaults.reset),
                boot_wait_s=c.get("serial", "boot_wait_s", _number("s", maximum=600.0), defaults.boot_wait_s),
            )

    allowed = tuple(templates) + ((NO_TEMPLATE,) if not is_mcu else ())
    template = c.get("ecosystem", "default_template", _choice(allowed))
    eco_values = {key: c.get("ecosystem", key, _ecosystem_id(key), "")
                  for key in SCHEMA["ecosystem"] if key != "default_template"}
    needed = TEMPLATE_NEEDS.get(template or "")
    if needed and not eco_values.get(needed):
        c.fail(f"ecosystem.{needed}", f"is empty but default_template = {template!r} needs it")

    extra = c.section("extra")
    threads = extra.get("threads", 1)
    if isinstance(threads, bool) or not isinstance(threads, int) or not 1 <= threads <= MAX_RUNTIME_THREADS:
        c.fail("extra.threads", f"must be a whole number of runtime threads from 1 to {MAX_RUNTIME_THREADS}, "
                                f"got {_show(threads)}")

    if c.problems:
        raise ProfileValidationError(source, c.problems)
    return HardwareProfile(
        id=pid, name=name, kind=kind, core=core, clock_hz=clock_hz, sram_bytes=sram, flash_bytes=flash,
        reserved_sram_bytes=reserved, runtime_flash_bytes=runtime_flash, kernel_library=kernels,
        flash_origin=flash_origin, flash_region_bytes=flash_region, ram_origin=ram_origin,
        ram_region_bytes=ram_region,
        runtime=runtime, latency=latency, serial=serial,
        ecosystem=Ecosystem(default_template=template, **eco_values),
        latency_target_ms=target, fpu=fpu, simd=simd, notes=notes, source_path=source, extra=dict(extra), base=base,
    )


def parse_overlay(data: Mapping[str, Any], *, source: str, profile: HardwareProfile) -> LatencyModel:
    """Validate a calibration overlay and return ``profile.latency`` with its ``[latency]`` applied."""
    c = _Checker(data)
    for key in data:
        if key not in ("profile_id", "latency", "calibration"):
            c.fail(key, f"is not a known key of an overlay{nearest(key, ['profile_id', 'latency', 'calibration'])}"
                        "; an overlay holds profile_id, [latency] and [calibration]")
    for key in c.section("latency"):
        if key not in SCHEMA["latency"]:
            c.fail(f"latency.{key}", f"is not a known key of [latency]{nearest(key, list(SCHEMA['latency']))}")
    pid = data.get("profile_id")
    if pid is not None and pid != profile.id:
        c.fail("profile_id", f"is {pid!r} but this overlay is applied to profile {profile.id!r}; "
                             "delete the file or fix profile_id")
    latency = check_latency(c, partial=True, base=profile.latency)
    if c.problems:
        raise ProfileValidationError(source, c.problems)
    assert latency is not None
    return latency
