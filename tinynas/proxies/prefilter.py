"""The prefilter: the first stage of a staged search.

It samples candidates from a space, drops those the cost model says do not fit
the board (no proxy is ever computed on an infeasible arch), scores the rest
with zero-cost proxies, and keeps the top K, skipping near-copies of what it
already kept. Runs over local processes, shows a progress bar, and on Ctrl-C
returns what was scored so far, flagged ``partial``.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from tinynas.errors import ProxyError
from tinynas.proxies.benchmark import batch_from_dataset
from tinynas.proxies.ensemble import RankEnsemble
from tinynas.proxies.net import Batch
from tinynas.proxies.registry import get_proxy
from tinynas.proxies.score import score_graph
from tinynas.space.arch import Arch
from tinynas.space.base import SearchSpace

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScoredArch:
    """One feasible candidate: its proxy scores and the combined rank score (higher is better)."""

    arch: Arch
    scores: dict[str, float]
    rank_score: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {"arch": self.arch.to_json(), "id": self.arch.id, "scores": self.scores, "rank_score": self.rank_score}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "ScoredArch":
        return cls(Arch.from_json(data["arch"]), {k: float(v) for k, v in data["scores"].items()},
                   float(data.get("rank_score", 0.0)))


@dataclass(frozen=True)
class PrefilterResult:
    """What the prefilter did: counts, every scored candidate (best first) and the kept top K."""

    n_sampled: int
    n_feasible: int
    n_infeasible: int
    scored: tuple[ScoredArch, ...]
    kept: tuple[ScoredArch, ...]
    proxies: tuple[str, ...]
    partial: bool = False
    min_distance: int = 0
    infeasible_ids: tuple[str, ...] = field(default=(), repr=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "n_sampled": self.n_sampled, "n_feasible": self.n_feasible, "n_infeasible": self.n_infeasible,
            "proxies": list(self.proxies), "partial": self.partial, "min_distance": self.min_distance,
            "kept": [s.to_json() for s in self.kept], "scored": [s.to_json() for s in self.scored],
            "infeasible_ids": list(self.infeasible_ids),
        }


def _sample_distinct(space: SearchSpace, n: int, rng: np.random.Generator) -> list[Arch]:
    archs: dict[str, Arch] = {}
    for _ in range(max(50 * n, 1000)):
        if len(archs) >= n:
            break
        a = space.sample(rng)
        archs.setdefault(a.id, a)
    if len(archs) < n:
        log.info("space %s yielded only %d distinct archs of %d asked", space.name, len(archs), n)
    return list(archs.values())


def _fits(space: SearchSpace, arch: Arch, profile: Any, latency_target_ms: float | None) -> bool:
    from tinynas.cost import estimate

    cost = estimate(space.graph(arch), profile=profile, latency_target_ms=latency_target_ms)
    return bool(cost.fits)


def _init_worker() -> None:
    # One TF thread per process: the workers already fill the cores.
    os.environ["TF_NUM_INTRAOP_THREADS"] = "1"
    os.environ["TF_NUM_INTEROP_THREADS"] = "1"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _score_job(job: tuple[SearchSpace, Arch, tuple[str, ...], Batch | None, int]) -> tuple[Arch, dict[str, float]]:
    space, arch, proxies, batch, seed = job
    return arch, score_graph(space.graph(arch), proxies=proxies, batch=batch, seed=seed)


def hamming(a: Sequence[int], b: Sequence[int]) -> int:
    return int(sum(x != y for x, y in zip(a, b)))


def select_diverse(space: SearchSpace, ranked: Sequence[ScoredArch], *, k: int, min_distance: int) -> list[ScoredArch]:
    """Greedy top-K: walk the ranking, skip a candidate within ``min_distance`` decisions (Hamming distance
    of option indices) of one already kept; if that leaves fewer than K, fill with the best skipped ones."""
    kept: list[ScoredArch] = []
    codes: list[list[int]] = []
    skipped: list[ScoredArch] = []
    for cand in ranked:
        if len(kept) == k:
            break
        code = space.encode(cand.arch)
        if any(hamming(code, c) < min_distance for c in codes):
            skipped.append(cand)
            continue
        kept.append(cand)
        codes.append(code)
    for cand in skipped:
        if len(kept) == k:
            break
        kept.append(cand)
    return kept


def prefilter(
    *,
    space: SearchSpace,
    profile: Any,
    dataset_or_batch: Any = None,
    n_candidates: int,
    k: int,
    proxies: Sequence[str] | None = None,
    ensemble: RankEnsemble | None = None,
    seed: int = 0,
    workers: int = 1,
    latency_target_ms: float | None = None,
    min_distance: int = 2,
    batch_size: int = 64,
    progress: bool = True,
    known_scores: Mapping[str, Mapping[str, float]] | None = None,
) -> PrefilterResult:
    """Sample ``n_candidates`` distinct archs, keep the feasible ones, score them, return the diverse top ``k``.

    Feasibility is ``tinynas.cost.estimate(space.graph(arch), profile=profile,
    latency_target_ms=...).fits``; only feasible archs are scored. With several
    proxies the ranking is their rank ensemble (``ensemble``, default equal
    weights); ``proxies`` defaults to the data-free ensemble measured for the space. A
    ``Dataset`` (``x_train``/``y_train``) or a ``Batch`` feeds data-dependent
    proxies. ``workers > 1`` scores in a process pool. Ctrl-C returns the
    candidates scored so far with ``partial=True``. ``known_scores`` (arch id ->
    proxy -> score, from an earlier prefilter on the same space, data and seed,
    e.g. for another board of a sweep) are used instead of scoring again: proxy
    scores do not depend on the board, only feasibility does. Raises ProxyError for bad
    arguments or a data-dependent proxy without data.
    """
    from tinynas.proxies.ensemble import default_ensemble

    if k < 1 or n_candidates < 1:
        raise ProxyError(f"prefilter needs k >= 1 and n_candidates >= 1, got k={k}, n_candidates={n_candidates}")
    batch: Batch | None
    if dataset_or_batch is None or isinstance(dataset_or_batch, Batch):
        batch = dataset_or_batch
    else:
        batch = batch_from_dataset(dataset_or_batch, n=batch_size, seed=seed)
    if proxies is None:
        ensemble = ensemble or default_ensemble(space=space.name)
        proxies = ensemble.names
    proxies = tuple(proxies)
    specs = [get_proxy(p) for p in proxies]
    if batch is None and any(s.needs_data for s in specs):
        raise ProxyError("the prefilter's proxies include data-dependent ones: pass a dataset or a Batch")
    ensemble = ensemble or RankEnsemble.of({p: 1.0 for p in proxies})
    missing = [m for m in ensemble.names if m not in proxies]
    if missing:
        raise ProxyError(f"ensemble members {missing} are not among the prefilter's proxies {list(proxies)}")

    rng = np.random.default_rng(seed)
    candidates = _sample_distinct(space, n_candidates, rng)
    feasible, infeasible = [], []
    for arch in candidates:
        (feasible if _fits(space, arch, profile, latency_target_ms) else infeasible).append(arch)
    log.info("prefilter: %d sampled, %d feasible, %d infeasible", len(candidates), len(feasible), len(infeasible))

    results: dict[str, tuple[Arch, dict[str, float]]] = {}
    for arch in feasible:
        known = (known_scores or {}).get(arch.id)
        if known is not None and all(p in known for p in proxies):
            results[arch.id] = (arch, {p: float(known[p]) for p in proxies})
    partial = False
    jobs = [(space, a, proxies, batch, seed) for a in feasible if a.id not in results]
    bar = _bar(len(jobs), progress, space.name)
    pool = None
    try:
        if workers > 1 and len(jobs) > 1:
            import multiprocessing as mp

            pool = mp.get_context("spawn").Pool(workers, initializer=_init_worker)
            iterator = pool.imap_unordered(_score_job, jobs, chunksize=1)
        else:
            iterator = map(_score_job, jobs)
        for arch, scores in iterator:
            results[arch.id] = (arch, scores)
            if bar is not None:
                bar.update(1)
    except KeyboardInterrupt:
        partial = True
        log.warning("prefilter interrupted: returning the %d of %d candidates scored", len(results), len(jobs))
    finally:
        if pool is not None:
            pool.terminate() if partial else pool.close()
            pool.join()
        if bar is not None:
            bar.close()

    ordered = [results[a.id] for a in feasible if a.id in results]  # sample order: deterministic with workers
    combined = ensemble.combine([s for _, s in ordered]) if ordered else np.zeros(0)
    scored = [ScoredArch(a, s, float(r)) for (a, s), r in zip(ordered, combined)]
    scored.sort(key=lambda c: -c.rank_score)
    kept = select_diverse(space, scored, k=k, min_distance=min_distance)
    return PrefilterResult(
        n_sampled=len(candidates), n_feasible=len(feasible), n_infeasible=len(infeasible), scored=tuple(scored),
        kept=tuple(kept), proxies=proxies, partial=partial, min_distance=min_distance,
        infeasible_ids=tuple(a.id for a in infeasible),
    )


def _bar(total: int, progress: bool, desc: str) -> Any:
    if not progress:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=f"prefilter {desc}", unit="arch")
