"""Where tinynas keeps data it can regenerate or download: ``$TINYNAS_HOME`` or ``~/.cache/tinynas``.

Only loaders write here (generated mnist1d arrays); the trainer's result cache
lives wherever its caller says.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np


def tinynas_home() -> Path:
    """The cache root (created on demand)."""
    root = os.environ.get("TINYNAS_HOME")
    path = Path(root).expanduser() if root else Path.home() / ".cache" / "tinynas"
    return path


def save_npz_atomic(path: Path, **arrays: np.ndarray) -> None:
    """Write ``arrays`` to ``path`` via a temporary file and ``os.replace``, so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **arrays)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
