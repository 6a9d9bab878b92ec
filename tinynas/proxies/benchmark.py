"""How well do the proxies rank? Spearman and Kendall tau of each proxy (and an ensemble)
against published (NAS-Bench-201) or freshly trained accuracy.

Used by ``tinynas proxies benchmark`` and ``scripts/bench_proxies.py``; the
numbers it prints justify the default ensemble in ``proxies/ensemble.py``.
"""

from __future__ import annotations

import csv
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from tinynas.errors import ProxyError
from tinynas.proxies.ensemble import RankEnsemble
from tinynas.proxies.net import Batch
from tinynas.proxies.registry import get_proxy
from tinynas.proxies.score import score_graph
from tinynas.space.arch import Arch
from tinynas.space.base import SearchSpace

log = logging.getLogger(__name__)

NB201_COLUMNS = ("cifar10_val_acc", "cifar100_val_acc", "imagenet16_120_val_acc")


@dataclass(frozen=True)
class ProxyCorrelation:
    """One row of a benchmark table."""

    name: str
    spearman: float
    kendall: float
    seconds_per_arch: float
    n: int

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "spearman": self.spearman, "kendall": self.kendall,
                "seconds_per_arch": self.seconds_per_arch, "n": self.n}


@dataclass(frozen=True)
class BenchmarkResult:
    """Correlations of every proxy (and the ensemble, named ``ensemble``) with the truth."""

    space: str
    truth: str
    n: int
    rows: tuple[ProxyCorrelation, ...]
    batch: str = ""
    ensemble: dict[str, float] = field(default_factory=dict)
    scores: tuple[dict[str, float], ...] = field(default=(), repr=False)
    accuracies: tuple[float, ...] = field(default=(), repr=False)
    archs: tuple[str, ...] = field(default=(), repr=False)

    def row(self, name: str) -> ProxyCorrelation:
        for r in self.rows:
            if r.name == name:
                return r
        raise KeyError(name)

    def to_json(self, *, with_scores: bool = False) -> dict[str, Any]:
        data: dict[str, Any] = {"space": self.space, "truth": self.truth, "n": self.n, "batch": self.batch,
                                "ensemble": self.ensemble, "rows": [r.to_json() for r in self.rows]}
        if with_scores:
            data["archs"] = list(self.archs)
            data["scores"] = list(self.scores)
            data["accuracies"] = list(self.accuracies)
        return data

    def table(self) -> str:
        lines = [f"{self.space} vs {self.truth}, n={self.n}" + (f", batch: {self.batch}" if self.batch else ""),
                 f"{'proxy':<12} {'spearman':>9} {'kendall':>8} {'s/arch':>8}"]
        for r in sorted(self.rows, key=lambda r: -np.nan_to_num(r.spearman, nan=-2)):
            lines.append(f"{r.name:<12} {r.spearman:>9.3f} {r.kendall:>8.3f} {r.seconds_per_arch:>8.4f}")
        return "\n".join(lines)


def correlation(values: Sequence[float], truth: Sequence[float], *, higher_is_better: bool = True) -> tuple[float, float]:
    """(Spearman rho, Kendall tau) of ``values`` against ``truth``, sign-corrected so higher is always better.

    Infinite values (a proxy's 'worst' marker) rank at their end; constant input gives NaN.
    """
    from scipy.stats import kendalltau, rankdata, spearmanr

    v = np.asarray(values, dtype=np.float64)
    v = v if higher_is_better else -v
    ranks = rankdata(np.where(np.isnan(v), -np.inf, v))
    if np.all(ranks == ranks[0]):
        return float("nan"), float("nan")
    return float(spearmanr(ranks, truth).statistic), float(kendalltau(ranks, truth).statistic)


def correlate(
    *, space: str, truth: str, scores: Sequence[Mapping[str, float]], accuracies: Sequence[float],
    timings: Mapping[str, float], ensemble: RankEnsemble | None, batch: str = "", archs: Sequence[str] = (),
) -> BenchmarkResult:
    n = len(scores)
    names = list(scores[0]) if scores else []
    rows = []
    for name in names:
        rho, tau = correlation([s[name] for s in scores], accuracies, higher_is_better=get_proxy(name).higher_is_better)
        rows.append(ProxyCorrelation(name, rho, tau, timings.get(name, 0.0) / max(n, 1), n))
    if ensemble is not None and all(m in names for m in ensemble.names):
        rho, tau = correlation(list(ensemble.combine(scores)), accuracies)
        seconds = sum(timings.get(m, 0.0) for m in ensemble.names) / max(n, 1)
        rows.append(ProxyCorrelation("ensemble", rho, tau, seconds, n))
    return BenchmarkResult(space, truth, n, tuple(rows), batch, ensemble.to_json()["members"] if ensemble else {},
                           tuple(dict(s) for s in scores), tuple(float(a) for a in accuracies), tuple(archs))


def read_nb201_truth(path: str | Path, *, column: str = "cifar10_val_acc") -> dict[str, float]:
    """``{arch_str: accuracy}`` from a NAS-Bench-201 table (raises ProxyError naming file and field)."""
    path = Path(path)
    if not path.is_file():
        raise ProxyError(f"{path}: no such file; pass a NAS-Bench-201 table, or omit --truth to use the one in tinynas's benchmarks/")
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        fields = reader.fieldnames or []
        for need in ("arch_str", column):
            if need not in fields:
                raise ProxyError(f"{path}: column {need!r} is missing (columns: {', '.join(fields)}); "
                                 "expected arch_str plus one accuracy column per dataset")
        truth: dict[str, float] = {}
        for line, row in enumerate(reader, start=2):
            try:
                truth[row["arch_str"]] = float(row[column])
            except (TypeError, ValueError):
                raise ProxyError(f"{path}:{line}: field {column!r} must be a number, got {row[column]!r}") from None
    if not truth:
        raise ProxyError(f"{path}: the table has no rows")
    return truth


def digits_batch(*, input_shape: Sequence[int], n: int = 64, seed: int = 0) -> Batch:
    """A labelled batch of real images for data-dependent proxies where the task's own data is not on
    this machine (CIFAR-10 for NAS-Bench-201): scikit-learn's 8x8 digits, resized and tiled to ``input_shape``."""
    from sklearn.datasets import load_digits

    d = load_digits()
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(d.target), size=n, replace=False)
    img = d.images[idx].astype(np.float32) / 16.0  # (n, 8, 8) in [0, 1]
    h, w = int(input_shape[0]), int(input_shape[1])
    rows = (np.arange(h) * 8 // h)
    cols = (np.arange(w) * 8 // w)
    img = img[:, rows][:, :, cols]
    x = np.repeat(img[..., None], int(input_shape[-1]), axis=-1)
    x = (x - x.mean()) / (x.std() + 1e-6)
    return Batch(x=x.astype(np.float32), y=d.target[idx].astype(np.int64))


def batch_from_dataset(dataset: Any, *, n: int = 64, seed: int = 0) -> Batch:
    """``n`` random training examples of a ``tinynas.data`` Dataset as a Batch."""
    x, y = np.asarray(dataset.x_train), np.asarray(dataset.y_train)
    if len(x) < 2:
        raise ProxyError(f"dataset {getattr(dataset, 'name', '?')!r} has fewer than 2 training examples")
    idx = np.random.default_rng(seed).choice(len(x), size=min(n, len(x)), replace=False)
    return Batch(x=x[idx].astype(np.float32), y=y[idx].astype(np.int64).reshape(-1))


def _iterate(items: Sequence[Any], progress: bool, desc: str) -> Any:
    if not progress:
        return items
    from tqdm import tqdm

    return tqdm(items, desc=desc, unit="arch")


def benchmark_nasbench201(
    *,
    truth_path: str | Path,
    n: int,
    seed: int = 0,
    proxies: Sequence[str],
    column: str = "cifar10_val_acc",
    cells_per_stage: int = 5,
    base_channels: int = 16,
    batch: Batch | None = None,
    batch_description: str = "",
    ensemble: RankEnsemble | None = None,
    progress: bool = False,
) -> BenchmarkResult:
    """Score ``n`` random NAS-Bench-201 cells (seeded) and correlate with the table's ``column``.

    Data-dependent proxies use ``batch`` (default: ``digits_batch`` at 32x32x3,
    since CIFAR-10 is not on this machine). Ctrl-C stops early and correlates
    what was scored.
    """
    from tinynas.space.nasbench201 import NasBench201Space, parse_arch_string

    truth = read_nb201_truth(truth_path, column=column)
    keys = sorted(truth)
    if not 2 <= n <= len(keys):
        raise ProxyError(f"--n must be between 2 and {len(keys)}, got {n}")
    space = NasBench201Space(input_shape=(32, 32, 3), num_classes=10, cells_per_stage=cells_per_stage,
                             base_channels=base_channels)
    chosen = [keys[i] for i in np.random.default_rng(seed).choice(len(keys), size=n, replace=False)]
    if batch is None and any(get_proxy(p).needs_data for p in proxies):
        batch = digits_batch(input_shape=(32, 32, 3), n=64, seed=seed)
        batch_description = batch_description or "64 scikit-learn digits, 8x8 resized to 32x32x3 (CIFAR-10 is not offline)"
    scores, accs, timings, done = [], [], {}, []
    _warm_up(space.graph(parse_arch_string(chosen[0])), proxies, batch, seed)
    try:
        for text in _iterate(chosen, progress, "nasbench201"):
            start = time.perf_counter()
            graph = space.graph(parse_arch_string(text))
            build = time.perf_counter() - start
            s = score_graph(graph, proxies=proxies, batch=batch, seed=seed, timings=timings)
            for p in proxies:
                timings[p] = timings.get(p, 0.0) + build
            scores.append(s)
            accs.append(truth[text])
            done.append(text)
    except KeyboardInterrupt:
        log.warning("interrupted after %d of %d archs: correlating those", len(done), n)
    name = f"nasbench201(N={cells_per_stage},C={base_channels})"
    return correlate(space=name, truth=column, scores=scores, accuracies=accs, timings=timings,
                     ensemble=ensemble, batch=batch_description if batch is not None else "", archs=done)


def benchmark_trained(
    *,
    space: SearchSpace,
    dataset: Any,
    n: int,
    epochs: int,
    seed: int = 0,
    proxies: Sequence[str],
    batch_size: int = 64,
    ensemble: RankEnsemble | None = None,
    progress: bool = False,
    cache_dir: str | Path | None = None,
    max_train_samples: int | None = None,
) -> BenchmarkResult:
    """Sample ``n`` distinct archs, score them, train each for ``epochs`` with ``tinynas.train`` and correlate.

    For spaces without a published table. Ctrl-C stops early and correlates what was finished.
    """
    from tinynas.train import TrainBudget, train_graph

    budget = TrainBudget(epochs=epochs, max_train_samples=max_train_samples, evaluate_test=False)
    rng = np.random.default_rng(seed)
    archs: list[Arch] = []
    seen: set[str] = set()
    for _ in range(n * 50):
        if len(archs) == n:
            break
        a = space.sample(rng)
        if a.id not in seen:
            seen.add(a.id)
            archs.append(a)
    batch = batch_from_dataset(dataset, n=batch_size, seed=seed) if any(get_proxy(p).needs_data for p in proxies) else None
    scores, accs, timings, done = [], [], {}, []
    if archs:
        _warm_up(space.graph(archs[0]), proxies, batch, seed)
    try:
        for arch in _iterate(archs, progress, space.name):
            graph = space.graph(arch)
            s = score_graph(graph, proxies=proxies, batch=batch, seed=seed, timings=timings)
            result = train_graph(graph, dataset, budget=budget, seed=seed, cache_dir=cache_dir, arch_id=arch.id)
            scores.append(s)
            accs.append(_accuracy_of(result))
            done.append(arch.id)
    except KeyboardInterrupt:
        log.warning("interrupted after %d of %d archs: correlating those", len(done), n)
    name = getattr(dataset, "name", "dataset")
    return correlate(space=space.name, truth=f"{name} val accuracy after {epochs} epoch(s)", scores=scores,
                     accuracies=accs, timings=timings, ensemble=ensemble,
                     batch=f"{batch_size} training examples of {name}" if batch is not None else "", archs=done)


def _warm_up(graph: Any, proxies: Sequence[str], batch: Batch | None, seed: int) -> None:
    # TensorFlow's start-up (seconds) is paid once per process, not per arch: keep it out of s/arch.
    score_graph(graph, proxies=proxies, batch=batch, seed=seed)


def _accuracy_of(result: Any) -> float:
    for attr in ("val_accuracy", "accuracy", "test_accuracy"):
        value = getattr(result, attr, None)
        if value is not None:
            return float(value)
    metrics = getattr(result, "metrics", None)
    if isinstance(metrics, Mapping):
        for key in ("val_accuracy", "accuracy"):
            if key in metrics:
                return float(metrics[key])
    raise ProxyError(f"cannot find an accuracy in the training result {type(result).__name__}")


def select_ensemble(
    scores: Sequence[Mapping[str, float]], accuracies: Sequence[float], *, candidates: Sequence[str],
    weights: Sequence[float] = (0.5, 1.0, 2.0), min_gain: float = 0.002,
) -> tuple[RankEnsemble, float]:
    """Greedy forward selection: start from the best single proxy, add the (member, weight) that raises
    Spearman most, stop when no addition gains ``min_gain``. Returns the ensemble and its Spearman."""
    def rho(ens: RankEnsemble) -> float:
        r, _ = correlation(list(ens.combine(scores)), accuracies)
        return -1.0 if np.isnan(r) else r

    singles = {c: rho(RankEnsemble.of([c])) for c in candidates}
    best_name = max(singles, key=singles.get)
    members: dict[str, float] = {best_name: 1.0}
    best = singles[best_name]
    while True:
        trial = None
        for c in candidates:
            if c in members:
                continue
            for w in weights:
                r = rho(RankEnsemble.of({**members, c: w}))
                if trial is None or r > trial[0]:
                    trial = (r, c, w)
        if trial is None or trial[0] < best + min_gain:
            break
        best, members = trial[0], {**members, trial[1]: trial[2]}
    return RankEnsemble.of(members), best


