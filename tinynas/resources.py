"""Where the data folders (``hardware_profiles/``, ``firmware_templates/``, ``benchmarks/``) live.

In a checkout they sit at the repository's top level; in an installed wheel they
are packaged as ``tinynas/_data/<name>``. Both are found without the caller
knowing which it is.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


def data_dir(name: str) -> Path:
    """The folder ``name`` (e.g. ``"hardware_profiles"``), from a checkout or an installed wheel."""
    for candidate in (_PACKAGE_DIR.parent / name, _PACKAGE_DIR / "_data" / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"tinynas data folder {name!r} is missing from this installation")
