"""Score subnets of a trained supernet, behind the same ``submit(job) -> Future`` as the training evaluator.

The search stage's ofa jobs (fidelity "ofa") cost a weight slice, a BatchNorm
recalibration on ``recalibration_samples`` training samples (OFA sec. 3.3) and
one validation pass: inherited accuracy, about a second on a CPU. Final jobs
(fidelity "final") extract the subnet as a plain Keras model and fine-tune it
from its inherited weights with the final budget, learning rate included, saving it
like any final candidate. OFA fine-tunes specialized subnets briefly at a small rate,
but its supernet is trained until inherited accuracy nears stand-alone; a CPU-sized
one is not (glyphs, benchmarks/ofa/README.md (i): inherited 0.73, stand-alone 0.95),
and there a quarter of the rate left the fine-tuned subnet 2 points below the same
subnet at the full rate. Runs in the driver process, one job at a time.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import time
from typing import Any

import numpy as np

from tinynas.ofa.supernet import ElasticMCUNet

log = logging.getLogger(__name__)


class SubnetEvaluator:
    """Evaluates ``EvalJob``s on subnets of ``supernet`` (``workers`` is 1: the supernet lives here)."""

    workers = 1

    def __init__(self, *, supernet: ElasticMCUNet, dataset: Any, spec: Any, recalibration_samples: int = 2000,
                 seed: int = 0) -> None:
        self.supernet = supernet
        self.dataset = dataset
        self.spec = spec
        rng = np.random.default_rng(seed)
        n = min(int(recalibration_samples), len(dataset.x_train))
        self.x_recal = dataset.x_train[np.sort(rng.permutation(len(dataset.x_train))[:n])]

    def inherited(self, arch: Any) -> tuple[float, float, dict[str, Any]]:
        """(accuracy, loss) on the validation split after BN recalibration, and the statistics."""
        stats = self.supernet.recalibrate(arch, self.x_recal)
        probs = self.supernet.predict(arch, self.dataset.x_val, stats)
        y = self.dataset.y_val
        loss = float(-np.mean(np.log(np.clip(probs[np.arange(len(y)), y], 1e-7, 1.0))))
        return float(np.mean(probs.argmax(axis=1) == y)), loss, stats

    def _run(self, job: Any) -> dict[str, Any]:
        start = time.perf_counter()
        acc, loss, stats = self.inherited(job.arch)
        if job.fidelity != "final":
            seconds = time.perf_counter() - start
            return {"accuracy": acc, "val_loss": loss, "test_accuracy": None, "train_seconds": seconds,
                    "seconds": round(seconds, 3), "cached": False, "worker": "ofa", "inherited": True}
        from tinynas.pipeline.evaluate import outcome_of
        from tinynas.train.trainer import train_keras_model

        model = self.supernet.extract(job.arch, stats)
        result = train_keras_model(model, self.dataset, budget=job.budget, seed=job.seed, save_path=job.model_path)
        log.info("fine-tuned subnet %s: inherited %.4f -> %.4f", job.arch.id, acc, result.val_accuracy)
        out = outcome_of(result, job, seconds=time.perf_counter() - start, worker="ofa")
        out.update(inherited_accuracy=acc, params=int(model.count_params()))
        return out

    def submit(self, job: Any) -> cf.Future:
        fut: cf.Future = cf.Future()
        try:
            fut.set_result(self._run(job))
        except Exception as exc:  # journaled as the candidate's error, like a failed training
            fut.set_exception(exc)
        return fut

    def close(self, *, cancel: bool = False) -> None:
        """Nothing runs in the background."""
