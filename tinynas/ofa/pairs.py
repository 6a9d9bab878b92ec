"""The (subnet, inherited accuracy) pairs an accuracy predictor learns from, collected once per supernet.

Once-for-All trains its predictor on about a thousand subnets sampled uniformly from
the space, each scored by BN-recalibrated inherited accuracy. Each costs about a
second on a CPU, so the pairs are the expensive part: they are kept beside the
supernet (``pairs_n<N>_s<seed>_r<recal>.json``), written every ``SAVE_EVERY`` pairs so a
killed collection resumes where it stopped, and shared by every later run and every
board of a sweep. The MLP itself refits from them in about a second.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from tinynas.errors import SupernetError
from tinynas.pipeline.rundir import atomic_write_text
from tinynas.space.arch import Arch
from tinynas.space.base import SearchSpace

log = logging.getLogger(__name__)

FORMAT = 1
SAVE_EVERY = 25
#: uniform draws per wanted subnet before giving up: the covered set is most of the space at any max_width
MAX_DRAWS_PER_SUBNET = 200


def pairs_path(supernet_dir: str | Path, *, n: int, seed: int, recalibration_samples: int) -> Path:
    """Where the pairs of a supernet live: the count, the sampling seed and the recalibration set size
    (which changes every inherited accuracy) name the file."""
    return Path(supernet_dir) / f"pairs_n{int(n)}_s{int(seed)}_r{int(recalibration_samples)}.json"


def sample_subnets(space: SearchSpace, covers: Callable[[Arch], bool], *, n: int, seed: int) -> list[Arch]:
    """``n`` distinct archs drawn uniformly from the space among those the supernet covers, in a fixed
    order for a seed (so a resumed collection continues the same list)."""
    rng = np.random.default_rng(seed)
    found: dict[str, Arch] = {}
    for _ in range(MAX_DRAWS_PER_SUBNET * max(1, int(n))):
        if len(found) >= n:
            break
        arch = space.sample(rng)
        if arch.id not in found and covers(arch):
            found[arch.id] = arch
    if len(found) < n:
        raise SupernetError(f"only {len(found)} distinct subnets of the {space.name} space are covered by the "
                            f"supernet, the predictor wants {n}; lower the ofa option predictor_samples")
    return list(found.values())


def _read(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    try:
        data = json.loads(path.read_text())
        if data.get("format") != FORMAT:
            raise ValueError(f"format {data.get('format')!r}, this tinynas writes {FORMAT}")
        return list(data["pairs"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        aside = path.with_suffix(".unreadable")
        path.replace(aside)
        log.warning("%s: unreadable predictor pairs (%s); moved to %s and collected again", path, exc, aside)
        return []


def write_pairs(path: Path, pairs: list[dict[str, Any]]) -> None:
    atomic_write_text(path, json.dumps({"format": FORMAT, "pairs": pairs}))


def collect_pairs(*, space: SearchSpace, covers: Callable[[Arch], bool], score: Callable[[Arch], float],
                  path: str | Path, n: int, seed: int,
                  on_pair: Callable[[int, int], None] | None = None) -> tuple[list[tuple[Arch, float]], dict[str, Any]]:
    """The first ``n`` pairs of the seed's sample list, scoring (``score``: inherited accuracy) only those the
    file at ``path`` does not hold yet. Returns the pairs and what happened (``reused``, ``scored``,
    ``seconds``). ``on_pair(done, n)`` reports progress."""
    path = Path(path)
    archs = sample_subnets(space, covers, n=n, seed=seed)
    have = {p["id"]: float(p["accuracy"]) for p in _read(path)}
    rows = [{"id": a.id, "arch": a.to_json(), "accuracy": have[a.id]} for a in archs if a.id in have]
    start, scored = time.perf_counter(), 0
    for arch in archs:
        if arch.id in have:
            continue
        rows.append({"id": arch.id, "arch": arch.to_json(), "accuracy": float(score(arch))})
        scored += 1
        if scored % SAVE_EVERY == 0:
            write_pairs(path, rows)
        if on_pair is not None:
            on_pair(len(rows), n)
    if scored:
        write_pairs(path, rows)
    order = {a.id: i for i, a in enumerate(archs)}
    rows.sort(key=lambda r: order[r["id"]])
    return ([(Arch.from_json(r["arch"]), float(r["accuracy"])) for r in rows],
            {"reused": n - scored, "scored": scored, "seconds": round(time.perf_counter() - start, 1)})
