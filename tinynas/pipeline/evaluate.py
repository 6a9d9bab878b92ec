"""Candidate evaluation: train archs through ``tinynas.train`` in a pool of local worker processes.

The search and final-training stages hand archs to an ``Evaluator``; each worker
sets TensorFlow's thread counts before importing it, loads the dataset once,
and trains through the shared on-disk result cache, so no candidate is trained
twice, across workers, resumes and the boards of a sweep.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import os
import shutil
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tinynas.space.arch import Arch
from tinynas.train.budget import TrainBudget

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvalJob:
    """One training: ``arch`` at ``budget``; ``model_path`` (a .keras path) keeps the trained weights."""

    arch: Arch
    budget: TrainBudget
    seed: int
    fidelity: str
    model_path: str | None = None


@dataclass(frozen=True)
class WorkerSpec:
    """What a worker needs to rebuild the space and dataset on its own (all picklable)."""

    dataset: str
    dataset_seed: int
    space: str
    input_shape: tuple[int, ...]
    num_classes: int
    cache_dir: str
    threads: int = 1


_CTX: dict[str, Any] = {}


def _init_worker(spec: WorkerSpec) -> None:
    # Thread counts must be set before TensorFlow is imported in this process.
    os.environ["TF_NUM_INTRAOP_THREADS"] = str(spec.threads)
    os.environ["TF_NUM_INTEROP_THREADS"] = "1"
    os.environ["OMP_NUM_THREADS"] = str(spec.threads)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # Ctrl-C goes to the whole process group: the parent stops the pool, workers must not die mid-write.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from tinynas.tf_runtime import quiet_import

    quiet_import()
    _CTX.clear()
    _CTX["spec"] = spec


def _context(spec: WorkerSpec, dataset: Any = None) -> dict[str, Any]:
    """The dataset, space and cache of this process for ``spec``, built once."""
    if _CTX.get("spec") != spec or "dataset" not in _CTX:
        from tinynas.data import load_dataset
        from tinynas.space import get_space
        from tinynas.train import TrainCache

        data = dataset if dataset is not None else load_dataset(spec.dataset, seed=spec.dataset_seed)
        _CTX.clear()
        _CTX.update(spec=spec, dataset=data, cache=TrainCache(spec.cache_dir),
                    space=get_space(spec.space, input_shape=spec.input_shape, num_classes=spec.num_classes))
    return _CTX


def train_job(spec: WorkerSpec, job: EvalJob, dataset: Any = None) -> dict[str, Any]:
    """Train one candidate (or read it from the cache); returns the journal fields of its result.

    With ``model_path`` the weights are kept: from ``<cache>/models/<key>.keras``
    when an earlier run trained the same arch at the same budget, else trained and saved there.
    """
    from tinynas.train import cache_key, train_graph

    ctx = _context(spec, dataset)
    space, data, cache = ctx["space"], ctx["dataset"], ctx["cache"]
    graph = space.graph(job.arch)
    start = time.perf_counter()
    if job.model_path is None:
        result = train_graph(graph, data, budget=job.budget, seed=job.seed, cache=cache, arch_id=job.arch.id)
    else:
        key = cache_key(model_id=job.arch.id, dataset_fingerprint=data.fingerprint, budget=job.budget, seed=job.seed)
        kept = Path(spec.cache_dir) / "models" / f"{key}.keras"
        hit = cache.get(key)
        if hit is None or not kept.is_file():
            result = train_graph(graph, data, budget=job.budget, seed=job.seed, cache=cache, arch_id=job.arch.id,
                                 save_path=kept)
        else:
            result = hit
        Path(job.model_path).parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(job.model_path).with_suffix(".partial.keras")
        shutil.copyfile(kept, tmp)
        os.replace(tmp, job.model_path)
    return {
        "accuracy": float(result.val_accuracy),
        "val_loss": float(result.val_loss),
        "test_accuracy": None if result.test_accuracy is None else float(result.test_accuracy),
        "train_seconds": float(result.train_seconds),
        "seconds": round(time.perf_counter() - start, 3),
        "cached": bool(result.cached),
        "worker": os.getpid(),
        "params": int(result.params),
        "epochs_run": int(result.epochs_run),
        "model_path": job.model_path,
    }


class Evaluator:
    """Runs ``EvalJob``s: in this process (``workers=1``) or in a spawn pool of ``workers`` processes.

    ``submit`` returns a ``concurrent.futures.Future`` of ``train_job``'s dict.
    With one worker the job runs inside ``submit`` (the future is already done),
    which keeps single-worker runs free of process start-up cost.
    """

    def __init__(self, *, spec: WorkerSpec, workers: int = 1, dataset: Any = None) -> None:
        self.spec = spec
        self.workers = max(1, int(workers))
        self._dataset = dataset
        self._pool: cf.ProcessPoolExecutor | None = None

    def submit(self, job: EvalJob) -> cf.Future:
        if self.workers == 1:
            fut: cf.Future = cf.Future()
            try:
                fut.set_result(train_job(self.spec, job, self._dataset))
            except KeyboardInterrupt:
                raise
            except Exception as exc:  # reported through the future like a worker's failure
                fut.set_exception(exc)
            return fut
        if self._pool is None:
            import multiprocessing as mp

            self._pool = cf.ProcessPoolExecutor(max_workers=self.workers, mp_context=mp.get_context("spawn"),
                                                initializer=_init_worker, initargs=(self.spec,))
        return self._pool.submit(train_job, self.spec, job)

    def close(self, *, cancel: bool = False) -> None:
        """Shut the pool down; ``cancel`` drops queued jobs and stops the workers now (Ctrl-C)."""
        if self._pool is None:
            return
        pool, self._pool = self._pool, None
        if cancel:
            for proc in list(getattr(pool, "_processes", {}).values()):
                try:
                    proc.terminate()
                except Exception:  # already gone
                    pass
            pool.shutdown(wait=False, cancel_futures=True)
        else:
            pool.shutdown(wait=True)

    def __enter__(self) -> "Evaluator":
        return self

    def __exit__(self, exc_type: Any, *rest: Any) -> None:
        self.close(cancel=exc_type is not None)
