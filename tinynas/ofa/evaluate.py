"""Score subnets of a trained supernet, behind the same ``submit(job) -> Future`` as the training evaluator.

The search stage's ofa jobs (fidelity "ofa") cost a weight slice, a BatchNorm
recalibration on ``recalibration_samples`` training samples (OFA sec. 3.3) and
one validation pass: inherited accuracy, about a second on a CPU; or, with an accuracy
``predictor`` fitted on such scores, a prediction in microseconds. Final jobs
(fidelity "final") extract the subnet as a plain Keras model and fine-tune it
from its inherited weights with the final budget, learning rate included, saving it
like any final candidate. OFA fine-tunes specialized subnets briefly at a small rate,
but its supernet is trained until inherited accuracy nears stand-alone; a CPU-sized
one is not (glyphs, benchmarks/ofa/README.md (i): inherited 0.73, stand-alone 0.95),
and there a quarter of the rate left the fine-tuned subnet 2 points below the same
subnet at the full rate. For the same reason the inherited kernels are shrunk towards
a fresh initialisation before fine-tuning (``finetune_keep``, ``shrink_perturb``): a
warm start from such weights generalised worse than the same net trained from scratch
for twice the epochs, and the blend closed that gap (README (m)). Runs in the driver
process, one job at a time.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import time
from typing import Any

import numpy as np

from tinynas.ofa.supernet import ElasticMCUNet

log = logging.getLogger(__name__)


def shrink_perturb(model: Any, fresh: Any, *, keep: float) -> None:
    """Set every convolution and dense kernel of ``model`` to ``keep * its weights + (1 - keep) * fresh's``.

    Shrink and perturb (Ash & Adams 2020, "On warm-starting neural network training"), with the
    perturbation drawn from the layer's own initialiser: ``fresh`` is the same graph freshly
    initialised. BatchNorm parameters and statistics stay as inherited, so behind BatchNorm the
    shrink leaves the function nearly as it is while each update moves the smaller kernel further.
    ``keep`` 1 changes nothing; 0 is a fresh start.
    """
    if not 0.0 <= keep <= 1.0:
        raise ValueError(f"keep must be within 0..1, got {keep}")
    if keep == 1.0:
        return
    if len(model.layers) != len(fresh.layers):
        raise ValueError(f"fresh model has {len(fresh.layers)} layers, the model {len(model.layers)}: not the same graph")
    pairs = list(zip(model.layers, fresh.layers))
    for layer, new in pairs:
        if layer.name != new.name or [tuple(w.shape) for w in layer.weights] != [tuple(w.shape) for w in new.weights]:
            raise ValueError(f"fresh model's layer {new.name!r} does not match {layer.name!r}: not the same graph")
    for layer, new in pairs:
        if layer.weights and layer.__class__.__name__ != "BatchNormalization":
            layer.set_weights([keep * w + (1.0 - keep) * f for w, f in zip(layer.get_weights(), new.get_weights())])


class SubnetEvaluator:
    """Evaluates ``EvalJob``s on subnets of ``supernet`` (``workers`` is 1: the supernet lives here)."""

    workers = 1

    def __init__(self, *, supernet: ElasticMCUNet, dataset: Any, spec: Any, recalibration_samples: int = 2000,
                 seed: int = 0, finetune_keep: float = 1.0, supernet_key: str | None = None,
                 predictor: Any = None) -> None:
        self.supernet = supernet
        self.predictor = predictor
        self.finetune_keep = float(finetune_keep)
        self.supernet_key = supernet_key
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
        if job.fidelity == "ofa" and self.predictor is not None:  # "inherited" jobs are measured all the same
            acc = float(self.predictor.predict([job.arch])[0])
            seconds = time.perf_counter() - start
            return {"accuracy": acc, "val_loss": None, "test_accuracy": None, "train_seconds": seconds,
                    "seconds": round(seconds, 6), "cached": False, "worker": "ofa", "inherited": False,
                    "predicted": True}
        acc, loss, stats = self.inherited(job.arch)
        if job.fidelity != "final":
            seconds = time.perf_counter() - start
            return {"accuracy": acc, "val_loss": loss, "test_accuracy": None, "train_seconds": seconds,
                    "seconds": round(seconds, 3), "cached": False, "worker": "ofa", "inherited": True}
        from tinynas.pipeline.evaluate import install_model, kept_model_path, lookup, outcome_of
        from tinynas.space.keras_builder import build_keras_model
        from tinynas.train import TrainCache
        from tinynas.train.trainer import train_keras_model

        key = self._final_key(job)
        cache = None if key is None else TrainCache(self.spec.cache_dir)
        out = None if cache is None else lookup(self.spec, job, fingerprint=self.dataset.fingerprint, cache=cache,
                                                key=key)
        if out is None:
            kept = None if cache is None or job.model_path is None else kept_model_path(self.spec, key)
            model = self.supernet.extract(job.arch, stats)
            if self.finetune_keep < 1.0:
                fresh = build_keras_model(self.supernet.space.graph(job.arch), seed=job.seed)
                shrink_perturb(model, fresh, keep=self.finetune_keep)
            result = train_keras_model(model, self.dataset, budget=job.budget, seed=job.seed,
                                       save_path=kept or job.model_path)
            if cache is not None:
                cache.put(key, result)
            if kept is not None:
                install_model(kept, job.model_path)
            log.info("fine-tuned subnet %s: inherited %.4f -> %.4f", job.arch.id, acc, result.val_accuracy)
            out = outcome_of(result, job, seconds=time.perf_counter() - start, worker="ofa")
        out.update(inherited_accuracy=acc, finetune_keep=self.finetune_keep, worker="ofa")
        return out

    def _final_key(self, job: Any) -> str | None:
        """The training cache key of a final fine-tune: the subnet, the supernet it inherits from, the start
        (``finetune_keep``), budget and seed. Boards of a sweep that pick the same winner fine-tune it once.
        None without a cache or a supernet key (a supernet that is not the cached one)."""
        if self.supernet_key is None or self.spec is None or not getattr(self.spec, "cache_dir", None):
            return None
        from tinynas.train import cache_key

        return cache_key(model_id=f"ofa/{self.supernet_key}/{job.arch.id}/keep{self.finetune_keep:g}",
                         dataset_fingerprint=self.dataset.fingerprint, budget=job.budget, seed=job.seed)

    def submit(self, job: Any) -> cf.Future:
        fut: cf.Future = cf.Future()
        try:
            fut.set_result(self._run(job))
        except Exception as exc:  # journaled as the candidate's error, like a failed training
            fut.set_exception(exc)
        return fut

    def close(self, *, cancel: bool = False) -> None:
        """Nothing runs in the background."""
