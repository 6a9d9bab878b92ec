"""Small helpers shared by the CLI modules: JSON output and shape parsing."""

from __future__ import annotations

import json
from typing import Any

import click


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
