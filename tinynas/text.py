"""Wording shared by reports, logs and error messages."""

from __future__ import annotations


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """``n`` and ``noun`` in the number ``n`` asks for: "1 block", "3 blocks", "0 boards".

    Reports read as sentences; "3 block(s)" reads as a form a program filled in."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"
