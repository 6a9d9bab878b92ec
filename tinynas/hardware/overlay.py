"""Writes calibration overlays: latency coefficients fitted on a real board, kept apart from its profile.

``tinynas calibrate`` fits a ``LatencyModel`` from measurements and stores it with
``save_latency_overlay``; ``load_profile`` then lays it over the profile's own
``[latency]`` (see ``tinynas.hardware.loader``). The built-in files stay untouched.
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from typing import Mapping

from tinynas.errors import ProfileError
from tinynas.hardware.loader import overlay_path
from tinynas.hardware.profile import LatencyModel

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def _key(name: str) -> str:
    return name if _BARE_KEY.match(name) else json.dumps(name)


def _value(value: object, where: str) -> str:
    # TOML basic strings accept JSON's escapes; floats keep full precision through repr().
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ProfileError(f"overlay {where} must be a finite number, got {value}")
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    raise ProfileError(f"overlay {where} must be a number, string or bool, got {type(value).__name__}")


def _check_latency(latency: LatencyModel) -> None:
    for table_name in ("cycles_per_mac", "cycles_per_element"):
        table = getattr(latency, table_name)
        if "default" not in table:
            raise ProfileError(f"overlay latency.{table_name} needs a 'default' entry")
        for op, cycles in table.items():
            if not (isinstance(cycles, (int, float)) and math.isfinite(cycles) and cycles >= 0):
                raise ProfileError(f"overlay latency.{table_name}.{op} must be a non-negative number, got {cycles!r}")
    for name in ("op_overhead_cycles", "invoke_overhead_cycles"):
        value = getattr(latency, name)
        if not (math.isfinite(value) and value >= 0):
            raise ProfileError(f"overlay latency.{name} must be a non-negative number, got {value!r}")


def save_latency_overlay(
    profile_id: str,
    latency: LatencyModel,
    *,
    home: Path | None = None,
    calibration: Mapping[str, int | float | str | bool] | None = None,
) -> Path:
    """Write ``$TINYNAS_HOME/overlays/<profile_id>.toml`` (or under ``home``) and return its path.

    The whole ``latency`` model is written, so the overlay alone says what the
    board does; ``calibration`` (optional: number of measurements, R², date)
    is stored alongside for people to read. The file is replaced atomically.
    """
    if not profile_id or "/" in profile_id or os.sep in profile_id:
        raise ProfileError(f"overlay profile id must be a plain profile id like 'nano33ble', got {profile_id!r}")
    _check_latency(latency)
    lines = [
        "# Latency overlay written by tinynas (calibration from measurements).",
        "# load_profile() applies [latency] over the profile's own coefficients; delete this file to undo.",
        f"profile_id = {json.dumps(profile_id)}",
        "",
        "[latency]",
        f"source = {_value(latency.source, 'latency.source')}",
        f"op_overhead_cycles = {_value(float(latency.op_overhead_cycles), 'latency.op_overhead_cycles')}",
        f"invoke_overhead_cycles = {_value(float(latency.invoke_overhead_cycles), 'latency.invoke_overhead_cycles')}",
        "",
        "[latency.cycles_per_mac]",
        *(f"{_key(op)} = {_value(float(v), f'latency.cycles_per_mac.{op}')}" for op, v in latency.cycles_per_mac.items()),
        "",
        "[latency.cycles_per_element]",
        *(f"{_key(op)} = {_value(float(v), f'latency.cycles_per_element.{op}')}"
          for op, v in latency.cycles_per_element.items()),
    ]
    if calibration:
        lines += ["", "[calibration]", *(f"{_key(k)} = {_value(v, f'calibration.{k}')}" for k, v in calibration.items())]
    path = overlay_path(profile_id, home=home)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".toml.tmp")
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        raise ProfileError(f"{path}: cannot write the latency overlay: {exc}") from None
    return path
