"""Small helpers shared by the CLI modules: JSON output, shape, size and KEY=VALUE parsing."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def echo_json(data: Any) -> None:
    """Print ``data`` as indented JSON (what every ``--json`` flag gives)."""
    click.echo(json.dumps(data, indent=2, sort_keys=False, default=str))


def parse_shape(text: str) -> tuple[int, ...]:
    """``"32,32,3"`` -> ``(32, 32, 3)``; a clear click error otherwise."""
    try:
        shape = tuple(int(part) for part in text.replace("x", ",").split(",") if part.strip())
    except ValueError:
        raise click.BadParameter(f"expected sizes separated by commas, like 32,32,3 or 49,10,1, got {text!r}")
    if len(shape) not in (2, 3) or any(d < 1 for d in shape):
        raise click.BadParameter(f"expected H,W,C or L,C with positive sizes, got {text!r}")
    return shape


_BYTE_UNITS = {"": 1, "b": 1, "k": 1024, "kb": 1024, "kib": 1024, "m": 1 << 20, "mb": 1 << 20, "mib": 1 << 20}
_COUNT_UNITS = {"": 1, "k": 1_000, "m": 1_000_000, "g": 1_000_000_000}


def _scaled(text: str, units: dict[str, int], *, what: str, example: str) -> int:
    """``"32KiB"`` -> 32768 with ``units``; BadParameter naming the accepted forms otherwise."""
    raw = str(text).strip().replace("_", "")
    number = raw.rstrip("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ").strip()
    unit = raw[len(number):].strip().lower()
    try:
        value = float(number)
    except ValueError:
        value = float("nan")
    if unit not in units or not value > 0 or value == float("inf"):
        raise click.BadParameter(f"expected a positive {what} like {example}, got {text!r}")
    return int(round(value * units[unit]))


class ByteSize(click.ParamType):
    """Bytes on the command line: ``32768``, ``32K``, ``32KiB``, ``1.5MiB`` (K = 1024 bytes, as in RAM sizes)."""

    name = "bytes"

    def convert(self, value, param, ctx) -> int:  # noqa: ANN001 - click's signature
        return value if isinstance(value, int) else _scaled(value, _BYTE_UNITS, what="size in bytes",
                                                            example="32768, 32K, 32KiB or 1.5MiB")


class Count(click.ParamType):
    """A count with an optional decimal suffix: ``500000``, ``500k``, ``1.2M``."""

    name = "count"

    def convert(self, value, param, ctx) -> int:  # noqa: ANN001 - click's signature
        return value if isinstance(value, int) else _scaled(value, _COUNT_UNITS, what="count",
                                                            example="500000, 500k or 1.2M")


def split_setting(text: str) -> tuple[str, str] | None:
    """``"KEY=VALUE"`` -> ``("KEY", "VALUE")``, both stripped; None without ``=`` or when KEY is not a name."""
    key, sep, value = text.partition("=")
    return (key.strip(), value.strip()) if sep and key.strip().isidentifier() else None


class Setting(click.ParamType):
    """``KEY=VALUE`` with the value read as a TOML literal (``200`` an int, ``0.35`` a float, ``true`` a bool),
    anything else as a string: the same types the option gets back from the run's ``config.toml``."""

    name = "key=value"

    def convert(self, value, param, ctx) -> tuple[str, Any]:  # noqa: ANN001 - click's signature
        if isinstance(value, tuple):
            return value
        pair = split_setting(str(value))
        if pair is None:
            self.fail(f"expected KEY=VALUE with a name for KEY, like steps_per_phase=200, got {value!r}", param, ctx)
        key, text = pair
        try:
            return key, tomllib.loads(f"v = {text}")["v"]
        except tomllib.TOMLDecodeError:
            return key, text


#: ``--qat/--no-qat`` of every command that deploys (deploy, run, sweep); None leaves it to deploy's rule.
qat_option = click.option(
    "--qat/--no-qat", default=None,
    help="Force or forbid quantization-aware fine-tuning (default: when int8 loses > 1 point on the validation "
         "split, or for attention models when that split has under 100 samples).")
