"""Candidate evaluation: train archs through ``tinynas.train`` in local worker processes or on Ray.

The search and final-training stages hand archs to an ``Evaluator``; each worker
sets TensorFlow's thread counts before importing it, loads the dataset once,
and trains through the shared on-disk result cache, so no candidate is trained
twice, across workers, resumes and the boards of a sweep. ``BACKENDS`` names where
trainings run: ``local`` (this module's process pool) or ``ray`` (tinynas.pipeline.ray_backend).
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
from typing import Any, Callable

from tinynas.errors import SearchError
from tinynas.registry import Registry
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
    #: the dataset loader's options as sorted (key, value) pairs
    dataset_options: tuple[tuple[str, Any], ...] = ()

    def load_dataset(self) -> Any:
        from tinynas.data import load_dataset

        return load_dataset(self.dataset, seed=self.dataset_seed, **dict(self.dataset_options))


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
        from tinynas.space import get_space
        from tinynas.train import TrainCache

        data = dataset if dataset is not None else spec.load_dataset()
        _CTX.clear()
        _CTX.update(spec=spec, dataset=data, cache=TrainCache(spec.cache_dir),
                    space=get_space(spec.space, input_shape=spec.input_shape, num_classes=spec.num_classes,
                                    adjacency=data.adjacency, node_task=data.node_task))
    return _CTX


def job_key(job: EvalJob, *, fingerprint: str) -> str:
    """The training cache key of ``job`` on the dataset with ``fingerprint``."""
    from tinynas.train import cache_key

    return cache_key(model_id=job.arch.id, dataset_fingerprint=fingerprint, budget=job.budget, seed=job.seed)


def kept_model_path(spec: WorkerSpec, key: str) -> Path:
    """Where the cache keeps the weights of a training whose model was asked for."""
    return Path(spec.cache_dir) / "models" / f"{key}.keras"


def install_model(kept: Path, model_path: str) -> None:
    """Copy cached weights to a job's ``model_path`` atomically (a reader never sees half a file)."""
    Path(model_path).parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(model_path).with_suffix(".partial.keras")
    shutil.copyfile(kept, tmp)
    os.replace(tmp, model_path)


def lookup(spec: WorkerSpec, job: EvalJob, *, fingerprint: str, cache: Any, key: str | None = None
           ) -> dict[str, Any] | None:
    """The outcome of ``job`` from the cache (its weights installed when it asks for them), or None.
    ``key``: the cache key when it is not the training's own (an ofa fine-tune's names its supernet)."""
    start = time.perf_counter()
    key = key or job_key(job, fingerprint=fingerprint)
    hit = cache.get(key)
    if hit is None:
        return None
    if job.model_path is not None:
        kept = kept_model_path(spec, key)
        if not kept.is_file():
            return None
        install_model(kept, job.model_path)
    return outcome_of(hit, job, seconds=time.perf_counter() - start, worker=os.getpid())


def outcome_of(result: Any, job: EvalJob, *, seconds: float, worker: Any) -> dict[str, Any]:
    """The journal fields of a training result."""
    return {
        "accuracy": float(result.val_accuracy),
        "val_loss": float(result.val_loss),
        "test_accuracy": None if result.test_accuracy is None else float(result.test_accuracy),
        "train_seconds": float(result.train_seconds),
        "seconds": round(seconds, 3),
        "cached": bool(result.cached),
        "worker": worker,
        "params": int(result.params),
        "epochs_run": int(result.epochs_run),
        "model_path": job.model_path,
    }


def train_fresh(spec: WorkerSpec, job: EvalJob, dataset: Any = None, *, save_path: Path | None = None) -> Any:
    """Train ``job`` without reading or writing the cache; the weights go to ``save_path`` when given.

    What a remote worker runs: the driver owns the cache, so a cluster needs no shared file system.
    """
    from tinynas.train import train_graph

    ctx = _context(spec, dataset)
    return train_graph(ctx["space"].graph(job.arch), ctx["dataset"], budget=job.budget, seed=job.seed,
                       arch_id=job.arch.id, save_path=save_path)


def train_job(spec: WorkerSpec, job: EvalJob, dataset: Any = None) -> dict[str, Any]:
    """Train one candidate (or read it from the cache); returns the journal fields of its result.

    With ``model_path`` the weights are kept: from ``<cache>/models/<key>.keras``
    when an earlier run trained the same arch at the same budget, else trained and saved there.
    """
    ctx = _context(spec, dataset)
    data, cache = ctx["dataset"], ctx["cache"]
    start = time.perf_counter()
    known = lookup(spec, job, fingerprint=data.fingerprint, cache=cache)
    if known is not None:
        return known
    key = job_key(job, fingerprint=data.fingerprint)
    kept = None if job.model_path is None else kept_model_path(spec, key)
    result = train_fresh(spec, job, data, save_path=kept)
    cache.put(key, result)
    if kept is not None:
        install_model(kept, job.model_path)
    return outcome_of(result, job, seconds=time.perf_counter() - start, worker=os.getpid())


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


def _ray_evaluator(*, spec: WorkerSpec, workers: int, dataset: Any, address: str | None) -> Any:
    from tinynas.pipeline.ray_backend import RayEvaluator

    return RayEvaluator(spec=spec, workers=workers, dataset=dataset, address=address)


def _local_evaluator(*, spec: WorkerSpec, workers: int, dataset: Any, address: str | None) -> Evaluator:
    if address is not None:
        raise SearchError(f"--ray-address {address} is for --backend ray; add --backend ray or leave it out")
    return Evaluator(spec=spec, workers=workers, dataset=dataset)


#: where candidate trainings run; each makes an object with Evaluator's interface (submit, close, workers, spec)
BACKENDS: Registry[Callable[..., Any]] = Registry("backend", error=SearchError)
BACKENDS.add("local", _local_evaluator)
BACKENDS.add("ray", _ray_evaluator)


def make_evaluator(*, backend: str = "local", spec: WorkerSpec, workers: int = 1, dataset: Any = None,
                   address: str | None = None) -> Any:
    """The evaluator of ``backend``; the Ray one connects (or starts a local Ray) here, before any work."""
    return BACKENDS.get(backend)(spec=spec, workers=int(workers), dataset=dataset, address=address)
