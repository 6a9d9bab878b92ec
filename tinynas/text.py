"""Wording shared by reports, logs and error messages."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """``n`` and ``noun`` in the number ``n`` asks for: "1 block", "3 blocks", "0 boards".

    Reports read as sentences; "3 block(s)" reads as a form a program filled in."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"


def dataset_words(dataset: str, options: Mapping[str, Any] | Iterable[str] = ()) -> list[str]:
    """``--dataset D -o K=V ...`` as command-line words (for ``shlex.join``): the commands tinynas suggests
    name the dataset and its loader options as the user gave them. ``options``: a mapping or "K=V" strings."""
    pairs = [f"{k}={v}" for k, v in options.items()] if isinstance(options, Mapping) else list(options)
    return ["--dataset", str(dataset), *[w for pair in pairs for w in ("-o", pair)]]
