"""Where a trained supernet lives in the cache directory, and the guard against reusing the wrong one.

A supernet is keyed by (dataset fingerprint, space, input shape, classes,
shrinking schedule): every board of a sweep and every later run on the same
data reuses it. Its folder holds ``supernet.json`` (what it was trained for),
the checkpoints of ``shrinking`` and, once done, ``supernet.npz``. A folder
trained for something else is refused with the first difference named.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from tinynas.errors import SupernetError

FORMAT = 4  # 3: resolution is elastic only in the last shrinking phase; 4: stride shifts only in
#            a share shift_prob of the elastic steps (shrinking.py)
META_FILE = "supernet.json"


def supernet_meta(*, dataset_fingerprint: str, space: str, input_shape: tuple[int, ...], num_classes: int,
                  schedule: dict[str, Any]) -> dict[str, Any]:
    """What a supernet was trained for (stored beside it, compared before reuse)."""
    return {"format": FORMAT, "dataset_fingerprint": dataset_fingerprint, "space": space,
            "input_shape": [int(d) for d in input_shape], "num_classes": int(num_classes), "schedule": schedule}


def supernet_key(meta: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(meta, sort_keys=True).encode()).hexdigest()[:16]


def supernet_dir(cache_dir: str | Path, meta: dict[str, Any]) -> Path:
    return Path(cache_dir) / "ofa" / supernet_key(meta)


_WHAT = {"dataset_fingerprint": "dataset", "space": "space", "input_shape": "input shape",
         "num_classes": "class count", "schedule": "shrinking schedule", "format": "file format"}


def claim_dir(directory: Path, meta: dict[str, Any]) -> None:
    """Create ``directory`` for ``meta`` or check that it already belongs to it.

    Raises SupernetError naming the first field that differs (another dataset,
    space, input shape or schedule) and the fix, or when supernet.json is unreadable.
    """
    path = directory / META_FILE
    if not path.exists():
        directory.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(meta, indent=2, sort_keys=True))
        tmp.replace(path)
        return
    try:
        have = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise SupernetError(f"{path}: unreadable supernet description ({exc}); delete {directory} to retrain") \
            from exc
    for field, what in _WHAT.items():
        if have.get(field) != meta.get(field):
            if field == "schedule" and isinstance(have.get(field), dict):
                diff = sorted(k for k in set(have[field]) | set(meta[field])
                              if have[field].get(k) != meta[field].get(k))
                detail = f"fields {diff} differ: cached {[have[field].get(k) for k in diff]}, " \
                         f"wanted {[meta[field].get(k) for k in diff]}"
            else:
                detail = f"cached {have.get(field)!r}, wanted {meta.get(field)!r}"
            raise SupernetError(
                f"{directory}: this supernet was trained for another {what} ({detail}); it cannot be reused. "
                f"Point the run at another cache directory or delete {directory} to retrain"
            )
