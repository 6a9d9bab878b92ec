"""The training result cache: one small JSON file per (architecture, dataset, budget, seed).

Searches evaluate thousands of candidates and sweeps repeat them across boards;
this makes sure nothing is trained twice, across runs and across processes
(writes go to a temporary file and ``os.replace`` it into place).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from tinynas.space.graph import Graph
from tinynas.train.budget import TrainBudget, TrainResult

log = logging.getLogger(__name__)

# Bumped when the trainer changes in a way that changes results, so old entries stop matching.
TRAINER_VERSION = 1


def graph_signature(graph: Graph) -> str:
    """SHA-1 of a graph's ops (kinds, attributes, shapes) in order: equal for equal architectures."""
    ops = [
        [op.kind, sorted((k, repr(v)) for k, v in op.attrs.items()),
         [list(graph.tensors[n].shape) for n in op.inputs if n], [list(graph.tensors[n].shape) for n in op.outputs]]
        for op in graph.ops
    ]
    payload = json.dumps({"input": list(graph.input_shape), "ops": ops}, sort_keys=True)
    return hashlib.sha1(payload.encode()).hexdigest()


def cache_key(*, model_id: str, dataset_fingerprint: str, budget: TrainBudget, seed: int) -> str:
    """SHA-1 of what determines a training result (plus the trainer version)."""
    payload = json.dumps({"model": model_id, "dataset": dataset_fingerprint, "budget": budget.to_json(),
                          "seed": int(seed), "trainer": TRAINER_VERSION}, sort_keys=True)
    return hashlib.sha1(payload.encode()).hexdigest()


class TrainCache:
    """A directory of ``<key>.json`` training results, safe to share between processes."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)

    def _path(self, key: str) -> Path:
        return self.directory / key[:2] / f"{key}.json"

    def get(self, key: str) -> TrainResult | None:
        """The stored result for ``key`` marked ``cached=True``, or None (also for an unreadable entry)."""
        path = self._path(key)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            log.warning("ignoring unreadable training cache entry %s (%s)", path, exc)
            return None
        try:
            result = TrainResult.from_json(data)
        except Exception as exc:  # a stale or foreign file must not stop a search
            log.warning("ignoring malformed training cache entry %s (%s)", path, exc)
            return None
        return _replace(result, cached=True)

    def put(self, key: str, result: TrainResult) -> Path:
        """Store ``result`` under ``key`` atomically; returns the file written."""
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        data = result.to_json()
        data["cached"] = False
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{key}", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as fh:
                json.dump(data, fh, indent=1)
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        return path

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self._path(key).is_file()

    def __len__(self) -> int:
        return sum(1 for _ in self.directory.glob("*/*.json")) if self.directory.is_dir() else 0


def _replace(result: TrainResult, **changes: Any) -> TrainResult:
    from dataclasses import replace

    return replace(result, **changes)
