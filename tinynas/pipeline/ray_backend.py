"""``--backend ray``: candidate trainings as Ray tasks, on one machine or a cluster.

Only where a training runs changes; strategies, stages and the journal do not:

- The driver (the ``tinynas`` process) owns every file: it reads and writes the
  training cache, the kept weights and the journal. A task gets an arch and a
  budget and returns metrics and, when asked, the trained ``.keras`` bytes, so
  the nodes need no shared file system and a resumed driver sees exactly what
  a local run would.
- The dataset is put into Ray's object store once per driver and handed to
  every task by reference (numpy arrays are read in place from shared memory
  on each node, fetched once per node).
- A task asks for ``num_cpus`` = the TensorFlow threads it uses, so Ray packs
  as many trainings on a node as it has cores.
- A task whose worker or node dies (``WorkerCrashedError``, ``NodeDiedError``,
  a lost object) is submitted again, up to ``MAX_ATTEMPTS`` times, and the
  journal entry says how many attempts it took. A task that raises is a failed
  candidate, as locally.
- Two boards of a concurrent sweep asking for the same training share one task.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import os
import socket
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from tinynas.errors import SearchError
from tinynas.pipeline.evaluate import (EvalJob, WorkerSpec, install_model, job_key, kept_model_path, lookup,
                                       outcome_of, train_fresh)

log = logging.getLogger(__name__)

#: a candidate whose worker dies is trained again, up to this many attempts in all
MAX_ATTEMPTS = 3
#: seconds to open a TCP connection to --ray-address before calling it unreachable
CONNECT_TIMEOUT_S = 5.0
#: seconds for a first task to start and import tinynas on the cluster
PROBE_TIMEOUT_S = 180.0
INSTALL_HINT = "pip install 'tinynas[ray]'"

_LOCK = threading.RLock()
#: per driver: the cluster probed, the dataset references, the trainings in flight, the task function
_STATE: dict[str, Any] = {"probed": None, "data": {}, "inflight": {}, "remote": None, "stopping": False}


def require_ray() -> Any:
    """The ``ray`` module, or a SearchError that says how to install it."""
    try:
        import ray
    except ImportError:
        raise SearchError(f"--backend ray needs Ray, which is not installed in this environment: {INSTALL_HINT} "
                          "(or run with --backend local)") from None
    return ray


def _host_port(address: str) -> tuple[str, int] | None:
    """``(host, port)`` of a GCS or client address, None for ``auto`` and other forms Ray resolves itself."""
    rest = address.split("://", 1)[1] if "://" in address else address
    host, sep, port = rest.rpartition(":")
    if not sep or not port.isdigit():
        return None
    return host.strip("[]"), int(port)


def _check_reachable(address: str) -> None:
    """A TCP connect to the address first: ``ray.init`` would retry an unreachable one for minutes."""
    target = _host_port(address)
    if target is None:
        return
    try:
        with socket.create_connection(target, timeout=CONNECT_TIMEOUT_S):
            pass
    except OSError as exc:
        raise SearchError(
            f"cannot reach the Ray cluster at --ray-address {address} ({exc}); start the head node with "
            "`ray start --head` there and use the address it prints (host:6379 by default), check the host, "
            "port and firewall, or leave --ray-address out to start a local Ray instance"
        ) from None


def connect(address: str | None = None) -> Any:
    """Join the Ray cluster at ``address`` (or ``$RAY_ADDRESS``), or start a local Ray instance with this
    machine's cores; reuse Ray when this process already initialised it. Checks once per cluster that
    its workers can import this tinynas. Returns the ``ray`` module."""
    ray = require_ray()
    with _LOCK:
        if not ray.is_initialized():
            target = address or os.environ.get("RAY_ADDRESS") or None
            if target:
                _check_reachable(target)
                try:
                    ray.init(address=target, log_to_driver=False, logging_level=logging.WARNING)
                except Exception as exc:
                    raise SearchError(f"could not join the Ray cluster at {target}: {type(exc).__name__}: {exc}; "
                                      "check that `ray status` works there and that this machine runs the same "
                                      "Ray and Python versions as the cluster") from None
            else:
                ray.init(address="local", num_cpus=os.cpu_count() or 1, include_dashboard=False,
                         log_to_driver=False, logging_level=logging.WARNING)
            log.info("Ray: %s", _describe(ray))
        elif address:
            log.info("Ray is already initialised in this process; --ray-address %s is not used", address)
        context = ray.get_runtime_context()
        cluster = (context.gcs_address, context.get_node_id())  # a new local instance may reuse a port
        if _STATE["probed"] != cluster:
            _probe(ray)
            _STATE.update(probed=cluster, data={}, inflight={}, remote=ray.remote(_train_task))
    return ray


def _describe(ray: Any) -> str:
    res = ray.cluster_resources()
    return f"{int(res.get('CPU', 0))} CPUs on {len(ray.nodes())} node(s)"


# By value (a lambda is never pickled by reference): it must run on a worker that cannot import tinynas.
_WHO = lambda: (__import__("importlib").import_module("tinynas").__version__,  # noqa: E731
                __import__("platform").python_version())


def _probe(ray: Any) -> None:
    """One tiny task: the workers must import the same tinynas as the driver."""
    import platform

    import tinynas

    ref = ray.remote(num_cpus=0, max_retries=0)(_WHO).remote()
    try:
        version, python = ray.get(ref, timeout=PROBE_TIMEOUT_S)
    except ray.exceptions.GetTimeoutError:
        ray.cancel(ref, force=True)
        raise SearchError(f"no Ray worker ran a task within {PROBE_TIMEOUT_S:.0f} s ({_describe(ray)}); "
                          "check `ray status` for free CPUs and the workers' logs") from None
    except ray.exceptions.RayError as exc:
        cause = getattr(exc, "cause", None) or exc
        raise SearchError(
            f"the Ray cluster's workers cannot import tinynas ({type(cause).__name__}: {str(cause).splitlines()[0]}); "
            f"install tinynas {tinynas.__version__} with its Ray extra ({INSTALL_HINT}) in the Python environment "
            "that every node's `ray start` runs, or start the nodes from this environment"
        ) from None
    if version != tinynas.__version__ or python.rsplit(".", 1)[0] != platform.python_version().rsplit(".", 1)[0]:
        raise SearchError(f"the Ray cluster's workers run tinynas {version} on Python {python}, this driver runs "
                          f"tinynas {tinynas.__version__} on Python {platform.python_version()}; install the same "
                          "versions on every node")


def cluster_cpus() -> int:
    """CPUs in the connected cluster."""
    return int(require_ray().cluster_resources().get("CPU", 0))


def _dataset_ref(ray: Any, dataset: Any) -> Any:
    """The object-store reference of ``dataset``, put there once per driver (and cluster)."""
    with _LOCK:
        refs = _STATE["data"]
        if dataset.fingerprint not in refs:
            refs[dataset.fingerprint] = ray.put(dataset)
        return refs[dataset.fingerprint]


def _train_task(spec: WorkerSpec, job: EvalJob, dataset: Any) -> dict[str, Any]:
    """What runs on a Ray worker: train without touching the driver's files; return metrics and weights."""
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="tinynas-") as tmp:
        save = Path(tmp) / "model.keras" if job.model_path is not None else None
        result = train_fresh(spec, job, dataset, save_path=save)
        model = save.read_bytes() if save is not None else None
    return {"result": {**result.to_json(), "weights_path": None}, "model": model, "worker": os.getpid(),
            "node": socket.gethostname(), "seconds": time.perf_counter() - start}


def _lost(ray: Any, exc: BaseException) -> bool:
    """Whether ``exc`` means the task's worker, node or data went away (worth another attempt)."""
    rex = ray.exceptions
    kinds = tuple(getattr(rex, n) for n in ("WorkerCrashedError", "NodeDiedError", "ObjectLostError",
                                             "OwnerDiedError", "LocalRayletDiedError", "ObjectFetchTimedOutError")
                  if hasattr(rex, n))
    return isinstance(exc, kinds)


class _Task:
    """One training on the cluster and the futures waiting for it (several when boards share it)."""

    def __init__(self, evaluator: "RayEvaluator", job: EvalJob, key: tuple[str, bool]) -> None:
        self.evaluator, self.job, self.key = evaluator, job, key
        self.waiters: list[tuple[cf.Future, EvalJob]] = []
        self.attempts = 0
        self.lost: list[str] = []
        self.ref: Any = None

    def start(self) -> None:
        ev = self.evaluator
        self.attempts += 1
        env = {"TF_NUM_INTRAOP_THREADS": str(ev.spec.threads), "TF_NUM_INTEROP_THREADS": "1",
               "OMP_NUM_THREADS": str(ev.spec.threads), "TF_CPP_MIN_LOG_LEVEL": "2"}
        remote = ev.remote.options(num_cpus=ev.spec.threads, max_retries=0, runtime_env={"env_vars": env})
        self.ref = remote.remote(ev.spec, self.job, ev.data_ref)
        self.ref.future().add_done_callback(self._done)

    def _done(self, fut: cf.Future) -> None:
        ray = self.evaluator.ray
        exc = fut.exception()
        if exc is None:
            try:
                self._finish(fut.result())
            except Exception as err:  # a full disk on the driver: the candidate fails, the run goes on
                self._fail(err)
            return
        if _lost(ray, exc) and self.attempts < MAX_ATTEMPTS:
            self.lost.append(f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
            log.warning("candidate %s lost its Ray worker (%s); training it again (attempt %d of %d)",
                        self.job.arch.id, type(exc).__name__, self.attempts + 1, MAX_ATTEMPTS)
            self.start()
            return
        if _lost(ray, exc):
            self._fail(SearchError(f"candidate {self.job.arch.id} lost its Ray worker {self.attempts} times "
                                   f"(last: {type(exc).__name__}); check the nodes' memory and logs (`ray status`)"))
            return
        cause = getattr(exc, "cause", None)
        self._fail(cause if isinstance(cause, Exception) else exc)

    def _waiters(self) -> list[tuple[cf.Future, EvalJob]]:
        """The futures still waiting (interrupt() may have settled some); the task leaves the in-flight table."""
        with _LOCK:
            if _STATE["inflight"].get(self.key) is self:
                del _STATE["inflight"][self.key]
            return [(f, j) for f, j in self.waiters if not f.done()]

    def _finish(self, value: dict[str, Any]) -> None:
        from tinynas.train import TrainResult

        ev = self.evaluator
        result = TrainResult.from_json(value["result"])
        kept = None
        if value["model"] is not None:
            kept = kept_model_path(ev.spec, result.key)
            kept.parent.mkdir(parents=True, exist_ok=True)
            tmp = kept.with_suffix(".partial")
            tmp.write_bytes(value["model"])
            os.replace(tmp, kept)
            result = replace(result, weights_path=str(kept))
        ev.cache.put(result.key, result)
        for i, (fut, job) in enumerate(self._waiters()):
            if kept is not None and job.model_path is not None:
                install_model(kept, job.model_path)
            out = outcome_of(replace(result, cached=i > 0), job, seconds=float(value["seconds"]),
                             worker=value["worker"])
            out.update(node=value["node"], attempts=self.attempts)
            if self.lost:
                out["lost_workers"] = list(self.lost)
            _settle(fut, result=out)

    def _fail(self, exc: BaseException) -> None:
        for fut, _ in self._waiters():
            _settle(fut, error=exc)


def _settle(fut: cf.Future, *, result: Any = None, error: BaseException | None = None) -> None:
    """Set a waiter's outcome unless interrupt() got there first."""
    try:
        fut.set_exception(error) if error is not None else fut.set_result(result)
    except cf.InvalidStateError:
        pass


def interrupt() -> None:
    """Ctrl-C during a concurrent sweep (the boards run in threads, which never see the signal): every
    waiting stage gets KeyboardInterrupt, so it journals the interruption as on a local Ctrl-C, and the
    running trainings are cancelled. Nothing finished is lost; the same command resumes."""
    ray = require_ray()
    with _LOCK:
        _STATE["stopping"] = True
        tasks = list(_STATE["inflight"].values())
        _STATE["inflight"].clear()
        waiting = [f for t in tasks for f, _ in t.waiters if not f.done()]
    for fut in waiting:
        _settle(fut, error=KeyboardInterrupt())
    for task in tasks:
        try:
            ray.cancel(task.ref, force=True)
        except Exception:  # finished meanwhile
            pass


def clear_interrupt() -> None:
    """A new sweep or run in this process takes work again."""
    _STATE["stopping"] = False


class RayEvaluator:
    """``Evaluator``'s interface on Ray: ``submit`` returns a future of the job's journal fields.

    ``workers`` is how many trainings a stage keeps in flight, as locally; Ray
    queues what the cluster's CPUs cannot start yet.
    """

    def __init__(self, *, spec: WorkerSpec, workers: int = 1, dataset: Any = None, address: str | None = None) -> None:
        from tinynas.train import TrainCache

        self.spec = spec
        self.workers = max(1, int(workers))
        self.ray = connect(address)
        if dataset is None:
            dataset = spec.load_dataset()
        self.fingerprint = dataset.fingerprint
        self.cache = TrainCache(spec.cache_dir)
        self.data_ref = _dataset_ref(self.ray, dataset)
        self.remote = _STATE["remote"]
        self._started: list[_Task] = []

    def submit(self, job: EvalJob) -> cf.Future:
        fut: cf.Future = cf.Future()
        if _STATE["stopping"]:
            fut.set_exception(KeyboardInterrupt())
            return fut
        known = lookup(self.spec, job, fingerprint=self.fingerprint, cache=self.cache)
        if known is not None:
            fut.set_result(known)
            return fut
        key = (job_key(job, fingerprint=self.fingerprint), job.model_path is not None)
        with _LOCK:
            task = _STATE["inflight"].get(key)
            fresh = task is None
            if fresh:
                task = _STATE["inflight"][key] = _Task(self, job, key)
                self._started.append(task)
            task.waiters.append((fut, job))
            if fresh:
                task.start()
        return fut

    def close(self, *, cancel: bool = False) -> None:
        """Forget this evaluator's tasks; ``cancel`` stops those still running (Ctrl-C)."""
        started, self._started = self._started, []
        if not cancel:
            return
        for task in started:
            if task.ref is not None:
                try:
                    self.ray.cancel(task.ref, force=True)
                except Exception:  # already finished or gone with its node
                    pass

    def __enter__(self) -> "RayEvaluator":
        return self

    def __exit__(self, exc_type: Any, *rest: Any) -> None:
        self.close(cancel=exc_type is not None)
