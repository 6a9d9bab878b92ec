"""``Arch``: the frozen genotype every strategy, cache and journal line works on.

An Arch is a space name plus the value of each of that space's decisions. It is a
mapping: the order its decisions were written in (the space's, or sorted, as a
JSON file may hold them) never changes its equality, hash or id. Its id is a
short hash of its canonical (sorted-key) JSON, so the same architecture has the
same id on every machine and in every run.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from tinynas.errors import SpaceError, TinyNASError

Scalar = int | float | str | bool


def _check_scalar(name: str, value: Any) -> Scalar:
    if isinstance(value, (bool, int, float, str)):
        return value
    raise SpaceError(
        f"decision {name!r} must be an int, float, str or bool, got {type(value).__name__} {value!r}"
    )


@dataclass(frozen=True, eq=False)
class Arch:
    """A point of a search space: ``space`` and ``decisions`` as (name, value) pairs.

    Equality and hashing ignore the order of ``decisions``: the journal writes
    sorted keys and a user's file may hold any order, and both name the same arch.
    """

    space: str
    decisions: tuple[tuple[str, Scalar], ...]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Arch):
            return NotImplemented
        return self.space == other.space and self._key() == other._key()

    def __hash__(self) -> int:
        return hash((self.space, self._key()))

    def _key(self) -> tuple[tuple[str, str, Scalar], ...]:
        # the type is part of the key: 1, 1.0 and True are different decisions
        return tuple(sorted((k, type(v).__name__, v) for k, v in self.decisions))

    @classmethod
    def from_dict(cls, space: str, decisions: Mapping[str, Any]) -> "Arch":
        return cls(space=space, decisions=tuple((k, _check_scalar(k, v)) for k, v in decisions.items()))

    def __getitem__(self, name: str) -> Scalar:
        for key, value in self.decisions:
            if key == name:
                return value
        raise KeyError(name)

    def get(self, name: str, default: Any = None) -> Any:
        try:
            return self[name]
        except KeyError:
            return default

    def as_dict(self) -> dict[str, Scalar]:
        return dict(self.decisions)

    def replace(self, **changes: Scalar) -> "Arch":
        """A copy with some decisions changed (names must exist)."""
        values = self.as_dict()
        for key, value in changes.items():
            if key not in values:
                raise SpaceError(f"arch of space {self.space!r} has no decision {key!r}")
            values[key] = _check_scalar(key, value)
        return Arch.from_dict(self.space, values)

    def to_json(self) -> dict[str, Any]:
        return {"space": self.space, "decisions": self.as_dict()}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "Arch":
        if not isinstance(data, Mapping) or "space" not in data or "decisions" not in data:
            raise SpaceError(
                "an arch must be a JSON object with 'space' and 'decisions' "
                f"(as printed by `tinynas space sample`), got {str(data)[:120]!r}"
            )
        decisions = data["decisions"]
        if not isinstance(decisions, Mapping):
            raise SpaceError(f"arch 'decisions' must be an object of name: value, got {decisions!r}")
        return cls.from_dict(str(data["space"]), decisions)

    def canonical_json(self) -> str:
        return json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"))

    @property
    def id(self) -> str:
        """12 hex digits of the SHA-1 of the canonical JSON: stable across machines and runs."""
        return hashlib.sha1(self.canonical_json().encode()).hexdigest()[:12]

    def __str__(self) -> str:
        inner = ",".join(f"{k}={v}" for k, v in self.decisions)
        return f"{self.space}({inner})"


def read_arch_file(path: str | os.PathLike[str], *, error: type[TinyNASError] = SpaceError) -> Arch:
    """The Arch in ``path``, as ``tinynas space sample --json`` prints it: an object with an
    ``"arch"`` key, a one-element list of such objects, or a bare Arch object.

    Raises ``error`` (the caller's stage, e.g. TrainError) naming the file and the fix.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise error(f"{path}: no such arch file; write one with "
                    f"`tinynas space sample ... --n 1 --json > {path.name}`") from None
    except (OSError, ValueError) as exc:
        raise error(f"{path}: cannot read it ({exc})") from None
    try:
        data: Any = json.loads(text)
    except ValueError as exc:
        data = _json_lines(text)  # `space sample --json` prints one object per line, five by default
        if data is None:
            raise error(f"{path}: not valid JSON ({exc}); expected one object as printed by "
                        "`tinynas space sample --n 1 --json`") from None
    if isinstance(data, list):
        if len(data) != 1:
            ids = [str(d.get("id", "?")) if isinstance(d, dict) else "?" for d in data[:6]]
            raise error(f"{path}: holds {len(data)} archs ({', '.join(ids)}{', ...' if len(data) > 6 else ''}); "
                        "keep the one you mean (one line of `tinynas space sample --json`, or sample with --n 1)")
        data = data[0]
    if isinstance(data, dict) and "arch" in data:
        data = data["arch"]
    try:
        return Arch.from_json(data)
    except SpaceError as exc:
        raise error(f"{path}: {exc}") from None


def _json_lines(text: str) -> list[Any] | None:
    """The objects of a JSON-lines text, None when some line is not JSON."""
    try:
        return [json.loads(line) for line in text.splitlines() if line.strip()] or None
    except ValueError:
        return None
